//! SMTP settings and sending: the server, credentials and sender come from the environment or
//! from a job's `secrets_file` (never from the job file itself), and a message goes out over
//! STARTTLS, implicit TLS or — for a test server on loopback only — plain text.
//!
//! Secrets stay secret: the password lives in a [`Secret`] whose `Debug` is redacted, and no
//! error or log line built here quotes a setting's value other than the server's host and
//! port. Errors name `host:port` and the server's reply code and text.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::address::Envelope;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::env;

/// Default time one attempt to send one message may take: connecting, TLS, login and data.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// How the connection to the SMTP server is secured (`ABREPORT_SMTP_TLS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain connection upgraded with STARTTLS, which must succeed (default; port 587).
    StartTls,
    /// TLS from the first byte ("implicit TLS", SMTPS; port 465).
    Tls,
    /// No encryption at all: only for a test server on loopback.
    None,
}

/// A value that must never be printed: `Debug` shows `<redacted>`, and there is no `Display`.
#[derive(Clone)]
pub struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Everything needed to send mail, resolved from the environment and the secrets file.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    /// Server host name or address.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// How the connection is secured.
    pub tls: TlsMode,
    /// Login, when the server wants AUTH.
    pub username: Option<String>,
    password: Option<Secret>,
    /// The sender of every message.
    pub from: Mailbox,
    /// Extra root certificates (PEM) to trust.
    pub ca_file: Option<PathBuf>,
    /// How long one attempt to send one message may take, from connecting to the server's
    /// final reply.
    pub timeout: Duration,
}

/// Why mail could not be sent, or not even attempted. Messages never carry a secret.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SmtpError {
    /// A setting is missing or malformed; names the variable and where it was looked for.
    #[error("{0}")]
    Settings(String),
    /// The server, or the way to it, refused.
    #[error("SMTP server {server}: {cause}")]
    Send {
        /// `host:port`.
        server: String,
        /// What happened, with the server's reply code and text when there is one.
        cause: String,
        /// Whether trying again later can help (connection refused, timeouts, 4xx replies).
        transient: bool,
    },
}

impl SmtpError {
    /// Whether another attempt can help.
    pub fn is_transient(&self) -> bool {
        matches!(self, SmtpError::Send { transient: true, .. })
    }
}

/// Reads a secrets file: `KEY=value` lines (blank lines, `#` comments and an `export ` prefix
/// allowed; values may be quoted) with the `ABREPORT_SMTP_*` names only. Problems name the file
/// and line, never the line's content, which may be a password.
pub fn read_secrets_file(path: &Path) -> Result<HashMap<String, String>, SmtpError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SmtpError::Settings(format!("cannot read secrets file `{}`: {e}", path.display())))?;
    parse_secrets(&text).map_err(|message| SmtpError::Settings(format!("secrets file `{}`: {message}", path.display())))
}

fn parse_secrets(text: &str) -> Result<HashMap<String, String>, String> {
    let mut values = HashMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {} is not KEY=value", number + 1));
        };
        let key = key.trim();
        if !env::SMTP_SETTINGS.contains(&key) {
            return Err(format!(
                "line {}: unknown key `{key}` (expected one of {})",
                number + 1,
                env::SMTP_SETTINGS.join(", ")
            ));
        }
        let value = value.trim();
        let unquoted = [('"', '"'), ('\'', '\'')]
            .iter()
            .find_map(|(open, close)| value.strip_prefix(*open).and_then(|v| v.strip_suffix(*close)))
            .unwrap_or(value);
        values.insert(key.to_string(), unquoted.to_string());
    }
    Ok(values)
}

impl SmtpSettings {
    /// Resolves the settings. A job's secrets file wins over the environment for the keys it
    /// sets (so each job of a scheduler can have its own account); the environment supplies
    /// the rest.
    pub fn load(secrets_file: Option<&Path>) -> Result<Self, SmtpError> {
        let file = match secrets_file {
            Some(path) => read_secrets_file(path)?,
            None => HashMap::new(),
        };
        let where_ = match secrets_file {
            Some(path) => format!("in the environment or in the secrets file `{}`", path.display()),
            None => "in the environment (or in a `secrets_file` named by the job)".to_string(),
        };
        Self::resolve(|key| file.get(key).cloned().or_else(|| std::env::var(key).ok()), &where_)
    }

    /// Resolves the settings from `lookup` (key -> value); `where_` says where a missing key
    /// should be set, for messages.
    pub fn resolve(lookup: impl Fn(&str) -> Option<String>, where_: &str) -> Result<Self, SmtpError> {
        let get = |key: &str| lookup(key).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let missing = |key: &str, what: &str| SmtpError::Settings(format!("email needs {what}: set {key} {where_}"));
        let host = get(env::SMTP_HOST).ok_or_else(|| missing(env::SMTP_HOST, "the SMTP server"))?;
        let tls = match get(env::SMTP_TLS).as_deref() {
            None | Some("starttls") => TlsMode::StartTls,
            Some("tls") => TlsMode::Tls,
            Some("none") => TlsMode::None,
            Some(other) => {
                return Err(SmtpError::Settings(format!(
                    "{} is `{other}`; expected `starttls`, `tls` or `none`",
                    env::SMTP_TLS
                )));
            }
        };
        let port = match get(env::SMTP_PORT) {
            None => match tls {
                TlsMode::StartTls => 587,
                TlsMode::Tls => 465,
                TlsMode::None => 25,
            },
            Some(text) => text
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| SmtpError::Settings(format!("{} `{text}` is not a port number", env::SMTP_PORT)))?,
        };
        let username = get(env::SMTP_USERNAME);
        // The password is taken as written: spaces can be part of it.
        let password = lookup(env::SMTP_PASSWORD).filter(|p| !p.is_empty()).map(Secret);
        if username.is_some() && password.is_none() {
            return Err(missing(env::SMTP_PASSWORD, "a password for the SMTP login"));
        }
        let from_text = get(env::SMTP_FROM).ok_or_else(|| missing(env::SMTP_FROM, "a sender address"))?;
        let from = from_text.parse::<Mailbox>().map_err(|_| {
            SmtpError::Settings(format!(
                "{} `{from_text}` is not an address such as `abreport <reports@example.com>`",
                env::SMTP_FROM
            ))
        })?;
        let timeout = match get(env::SMTP_TIMEOUT_SECONDS) {
            None => DEFAULT_TIMEOUT,
            Some(text) => {
                text.parse::<f64>().ok().filter(|s| s.is_finite() && *s > 0.0).map(Duration::from_secs_f64).ok_or_else(
                    || SmtpError::Settings(format!("{} `{text}` is not a positive number", env::SMTP_TIMEOUT_SECONDS)),
                )?
            }
        };
        Ok(Self {
            host,
            port,
            tls,
            username,
            password,
            from,
            ca_file: get(env::SMTP_CA_FILE).map(PathBuf::from),
            timeout,
        })
    }

    /// `host:port`, for messages.
    pub fn server(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// A connection recipe for one SMTP server; each send opens its own connection.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    server: String,
    timeout: Duration,
}

impl Mailer {
    /// Builds the transport (TLS parameters, extra roots, credentials); does not connect.
    pub fn new(settings: &SmtpSettings) -> Result<Self, SmtpError> {
        let server = settings.server();
        let tls_parameters = || {
            let mut builder = TlsParameters::builder(settings.host.clone());
            if let Some(ca_file) = &settings.ca_file {
                let pem = std::fs::read(ca_file).map_err(|e| {
                    SmtpError::Settings(format!("cannot read {} `{}`: {e}", env::SMTP_CA_FILE, ca_file.display()))
                })?;
                let certificate = Certificate::from_pem(&pem).map_err(|e| {
                    SmtpError::Settings(format!(
                        "{} `{}`: not a PEM certificate: {e}",
                        env::SMTP_CA_FILE,
                        ca_file.display()
                    ))
                })?;
                builder = builder.add_root_certificate(certificate);
            }
            builder.build_rustls().map_err(|e| SmtpError::Settings(format!("cannot set up TLS for {server}: {e}")))
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.host.as_str())
            .port(settings.port)
            .timeout(Some(settings.timeout));
        builder = match settings.tls {
            TlsMode::StartTls => builder.tls(Tls::Required(tls_parameters()?)),
            TlsMode::Tls => builder.tls(Tls::Wrapper(tls_parameters()?)),
            TlsMode::None => builder,
        };
        if let (Some(username), Some(Secret(password))) = (&settings.username, &settings.password) {
            builder = builder.credentials(Credentials::new(username.clone(), password.clone()));
        }
        Ok(Self { transport: builder.build(), server, timeout: settings.timeout })
    }

    /// Sends one formatted message. `Ok` means the server accepted it (250 after DATA).
    pub async fn send(&self, envelope: &Envelope, message: &[u8]) -> Result<(), SmtpError> {
        // lettre's own timeout covers connecting and writing, but its async client waits for
        // replies without one (a server that accepts and never greets hangs it), so the whole
        // attempt is bounded here.
        match tokio::time::timeout(self.timeout, self.transport.send_raw(envelope, message)).await {
            Ok(result) => result.map(|_| ()).map_err(|e| describe(&self.server, &e)),
            Err(_) => Err(SmtpError::Send {
                server: self.server.clone(),
                cause: format!("timed out: no reply within {:.1} s", self.timeout.as_secs_f64()),
                transient: true,
            }),
        }
    }
}

/// An SMTP failure in words, classified as worth retrying or not: replies 4xx, timeouts and
/// connection or network failures may pass; 5xx replies (535 login rejected, 550 mailbox
/// refused), TLS failures (an untrusted certificate) and client-side problems will not.
fn describe(server: &str, error: &lettre::transport::smtp::Error) -> SmtpError {
    let text = error_chain(error);
    // lettre reports a certificate it cannot verify as a connection error, which alone would
    // read as transient.
    let tls_failure = error.is_tls() || crate::source::retry::is_tls_failure(error);
    let (cause, transient) = if tls_failure {
        (format!("TLS failed: {text} (a private CA can be trusted with {})", env::SMTP_CA_FILE), false)
    } else if error.is_permanent() {
        match error.status().map(|c| c.to_string()) {
            Some(code) if code == "535" || code == "534" || code == "530" => (format!("login rejected: {text}"), false),
            _ => (format!("rejected: {text}"), false),
        }
    } else if error.is_transient() {
        (format!("temporarily refused: {text}"), true)
    } else if error.is_timeout() {
        (format!("timed out: {text}"), true)
    } else if error.is_client() || error.is_response() {
        (text, false)
    } else {
        (format!("cannot connect: {text}"), true)
    };
    SmtpError::Send { server: server.to_string(), cause, transient }
}

/// An error and its sources, `: `-joined, without repeating a source already in the text.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(pairs: &[(&str, &str)]) -> Result<SmtpSettings, SmtpError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        SmtpSettings::resolve(|k| map.get(k).cloned(), "in the environment")
    }

    #[test]
    fn defaults_are_starttls_on_587_with_a_60_second_timeout() {
        let s = resolve(&[(env::SMTP_HOST, "smtp.example.com"), (env::SMTP_FROM, "abreport <r@example.com>")])
            .expect("valid");
        assert_eq!((s.tls, s.port, s.timeout), (TlsMode::StartTls, 587, Duration::from_secs(60)));
        assert_eq!(s.server(), "smtp.example.com:587");
        assert_eq!(s.from.email.to_string(), "r@example.com");
        assert!(s.username.is_none());
    }

    #[test]
    fn implicit_tls_defaults_to_465() {
        let s = resolve(&[(env::SMTP_HOST, "h"), (env::SMTP_FROM, "r@example.com"), (env::SMTP_TLS, "tls")])
            .expect("valid");
        assert_eq!((s.tls, s.port), (TlsMode::Tls, 465));
    }

    #[test]
    fn missing_settings_name_the_variable_and_never_a_value() {
        let e = resolve(&[(env::SMTP_FROM, "r@example.com")]).expect_err("no host");
        assert_eq!(e.to_string(), "email needs the SMTP server: set ABREPORT_SMTP_HOST in the environment");
        let e = resolve(&[(env::SMTP_HOST, "h"), (env::SMTP_FROM, "r@example.com"), (env::SMTP_USERNAME, "bob")])
            .expect_err("no password");
        assert!(e.to_string().contains("ABREPORT_SMTP_PASSWORD"), "{e}");
        let e = resolve(&[(env::SMTP_HOST, "h"), (env::SMTP_FROM, "r@example.com"), (env::SMTP_TLS, "ssl")])
            .expect_err("bad mode");
        assert!(e.to_string().contains("`starttls`, `tls` or `none`"), "{e}");
    }

    #[test]
    fn the_password_is_redacted_in_debug_output() {
        let s = resolve(&[
            (env::SMTP_HOST, "h"),
            (env::SMTP_FROM, "r@example.com"),
            (env::SMTP_USERNAME, "bob"),
            (env::SMTP_PASSWORD, "hunter2-very-secret"),
        ])
        .expect("valid");
        let debug = format!("{s:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("<redacted>"));
    }

    #[test]
    fn secrets_files_take_key_value_lines_and_reject_unknown_keys_without_quoting_values() {
        let text = "# smtp\nexport ABREPORT_SMTP_HOST=smtp.example.com\nABREPORT_SMTP_PASSWORD = \"p a=ss\"\n\n";
        let values = parse_secrets(text).expect("valid");
        assert_eq!(values[env::SMTP_HOST], "smtp.example.com");
        assert_eq!(values[env::SMTP_PASSWORD], "p a=ss");
        let e = parse_secrets("ABREPORT_SMTP_HOST=h\nhunter2\n").expect_err("not key=value");
        assert_eq!(e, "line 2 is not KEY=value");
        let e = parse_secrets("AWS_SECRET_ACCESS_KEY=abc123\n").expect_err("unknown key");
        assert!(e.starts_with("line 1: unknown key `AWS_SECRET_ACCESS_KEY`") && !e.contains("abc123"), "{e}");
    }

    #[tokio::test]
    async fn a_refused_connection_is_transient_and_names_the_server() {
        // A port that was free a moment ago: nothing listens there.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let s = resolve(&[
            (env::SMTP_HOST, "127.0.0.1"),
            (env::SMTP_PORT, &port.to_string()),
            (env::SMTP_TLS, "none"),
            (env::SMTP_FROM, "r@example.com"),
        ])
        .expect("valid");
        let mailer = Mailer::new(&s).expect("transport");
        let envelope = Envelope::new(
            Some("r@example.com".parse().expect("address")),
            vec!["to@example.com".parse().expect("address")],
        )
        .expect("envelope");
        let e = mailer.send(&envelope, b"Subject: x\r\n\r\nx\r\n").await.expect_err("nothing listens");
        assert!(e.is_transient(), "{e}");
        assert!(e.to_string().starts_with(&format!("SMTP server 127.0.0.1:{port}: cannot connect")), "{e}");
    }
}
