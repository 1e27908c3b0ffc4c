//! Every environment variable abreport reads, declared once. The README lists them.
//!
//! Cloud stores read their own usual variables (`AWS_*`, `GOOGLE_*`, `AZURE_*`) through
//! object_store; those are not repeated here. They also point abreport at storage emulators
//! (README, "Storage emulators"): `AWS_ENDPOINT` + `AWS_ALLOW_HTTP` for an S3 server,
//! `AZURE_STORAGE_USE_EMULATOR` + `AZURITE_BLOB_STORAGE_URL` for Azurite, `GOOGLE_BASE_URL` +
//! `GOOGLE_BEARER_TOKEN` for a GCS emulator; unset, the real services and their credential
//! chains apply. This module only names variables: it reads none (`threads` reads `THREADS`).

/// A `tracing` filter for the log on stderr (default `warn`, or `info` with `--log-format json`).
pub const LOG: &str = "ABREPORT_LOG";

/// The log format on stderr, `text` or `json` (the `--log-format` flag).
pub const LOG_FORMAT: &str = "ABREPORT_LOG_FORMAT";

/// SMTP server host name (required for email deliveries and admin notices).
pub const SMTP_HOST: &str = "ABREPORT_SMTP_HOST";

/// SMTP server port. Default 587 with `starttls`, 465 with `tls`, 25 with `none`.
pub const SMTP_PORT: &str = "ABREPORT_SMTP_PORT";

/// How the SMTP connection is secured: `starttls` (default), `tls` (implicit TLS, usually port
/// 465) or `none` (plain text, only for a test server on loopback).
pub const SMTP_TLS: &str = "ABREPORT_SMTP_TLS";

/// SMTP login. When unset, no AUTH is attempted.
pub const SMTP_USERNAME: &str = "ABREPORT_SMTP_USERNAME";

/// SMTP password; required when a username is set. Never printed or written anywhere.
pub const SMTP_PASSWORD: &str = "ABREPORT_SMTP_PASSWORD";

/// The sender, `reports@example.com` or `abreport <reports@example.com>` (required).
pub const SMTP_FROM: &str = "ABREPORT_SMTP_FROM";

/// A PEM file with extra root certificates to trust for the SMTP server (a private CA).
pub const SMTP_CA_FILE: &str = "ABREPORT_SMTP_CA_FILE";

/// Seconds one attempt to send one message may take, from connecting to the server's final
/// reply. Default 60.
pub const SMTP_TIMEOUT_SECONDS: &str = "ABREPORT_SMTP_TIMEOUT_SECONDS";

/// The default variable holding the incoming-webhook URL of a `chat` delivery (a job file's
/// `webhook_env` names another). The URL is a secret: never printed, logged or written.
pub const CHAT_WEBHOOK: &str = "ABREPORT_CHAT_WEBHOOK";

/// Seconds one attempt to post one chat message may take, connecting included. Default 30.
pub const CHAT_TIMEOUT_SECONDS: &str = "ABREPORT_CHAT_TIMEOUT_SECONDS";

/// The first wait between two delivery attempts, in milliseconds (default 200; the second wait
/// is four times as long). Tests set it low.
pub const RETRY_DELAY_MS: &str = "ABREPORT_RETRY_DELAY_MS";

/// Threads a run works with (a whole number from 1 to 1024): the async runtime's workers, the
/// files read at once (at least 2, for overlapping requests) and the experiments analysed at
/// once. Default: one per core. The outputs are the same whatever the number.
pub const THREADS: &str = "ABREPORT_THREADS";

/// The engine that computes the statistics, over the job file's `[source] engine`:
/// `embedded` or `spark`. `--engine` wins over it.
pub const ENGINE: &str = "ABREPORT_ENGINE";

/// The Spark Connect URL (`sc://host:15002`, with `;token=…` when the cluster wants one) over
/// the job file's `[source] spark_remote`. `--spark-remote` wins over it. Never printed whole.
pub const SPARK_REMOTE: &str = "ABREPORT_SPARK_REMOTE";

/// Where Spark writes the per-unit exports (`allocation/`, `units/` part files), over the job
/// file's `[source] spark_output`; `--spark-output` wins over it. A URL or a path that both
/// the Spark cluster and abreport can reach.
pub const SPARK_OUTPUT: &str = "ABREPORT_SPARK_OUTPUT";

/// The SMTP settings that may also come from a job's `secrets_file`.
pub const SMTP_SETTINGS: [&str; 8] =
    [SMTP_HOST, SMTP_PORT, SMTP_TLS, SMTP_USERNAME, SMTP_PASSWORD, SMTP_FROM, SMTP_CA_FILE, SMTP_TIMEOUT_SECONDS];
