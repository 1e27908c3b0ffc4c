//! A Spark Connect client: sends one SQL statement to a Spark cluster and returns its result as
//! Arrow record batches, every call bounded by the caller's deadline.
//!
//! Spark Connect is gRPC: `ExecutePlan` takes a plan (here a SQL relation) and streams back
//! Arrow IPC bytes. A query (`SELECT ...`) returns its rows; a command (`INSERT OVERWRITE
//! DIRECTORY ... USING parquet SELECT ...`) runs on the server, which writes the files itself,
//! and returns no rows.
//!
//! Why our own client and not the `apache-spark-connect` crate: that crate took ~16 min to
//! build on our 2-core machines, pulls arrow 58 beside our arrow 60 and ~200 crates, and its
//! synchronous API kept waiting past 2 minutes when the server was unreachable. This one is a
//! tonic gRPC client over a trimmed copy of Spark's own protos (`proto/`, only the messages and
//! fields abreport sends or reads, with Spark's package, names and field numbers, so it is
//! wire-compatible), generated once and checked in (`spark/proto/`), so building needs no
//! `protoc`. Its cost is nine crates over what reqwest and hyper already bring (tonic,
//! tonic-prost, prost, prost-derive and small helpers: about 16 s of compile time), TLS from
//! the rustls we already build, and Arrow IPC decoding from the arrow we already build.
//!
//! What it does not do: reattachable executions (it asks for a non-reattachable one, which the
//! server releases by itself when the stream ends, so nothing needs releasing), the DataFrame
//! API, parameters, retries (the caller decides with [`SparkError::is_transient`]).
//!
//! When a deadline passes, the call returns [`SparkError::Timeout`] at once. Spark does not stop
//! an operation whose response stream was dropped (a query kept both cores of the test server
//! busy for minutes), so a detached `Interrupt` of that operation follows, bounded by
//! [`INTERRUPT_TIMEOUT`]: the one request that outlives a deadline, after the call has failed.
//!
//! No secret leaves it: the token of the remote is sent as `authorization: Bearer` metadata
//! only, its `Debug` is redacted, and every error names the remote as `host:port`.

mod proto;

use std::collections::BTreeMap;
use std::fmt;
use std::io::Cursor;
use std::time::{Duration, Instant};

use arrow::ipc::reader::StreamReader;
use arrow::record_batch::RecordBatch;
use prost::Message as _;
use tonic::metadata::{AsciiMetadataValue, MetadataKey};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use uuid::Uuid;

use proto::google::rpc as grpc_status;
use proto::spark::connect as pb;
use proto::spark::connect::spark_connect_service_client::SparkConnectServiceClient;

/// The port a Spark Connect server listens on unless the URL names another.
pub const DEFAULT_PORT: u16 = 15002;

/// Sent as `client_type` (servers log it) and as the gRPC user agent.
const CLIENT_TYPE: &str = concat!("abreport/", env!("CARGO_PKG_VERSION"));

/// The user a session runs as when the URL names none.
const DEFAULT_USER_ID: &str = "abreport";

/// The largest gRPC message accepted: a Spark Arrow batch is up to 4 MiB of rows by default
/// (`spark.connect.grpc.arrow.maxBatchSize`) plus framing, over tonic's 4 MiB default; 128 MiB
/// is what Spark's own clients accept.
const MAX_MESSAGE_BYTES: usize = 128 * 1024 * 1024;

/// How long the `Interrupt` sent after a passed deadline may take; it runs detached, so the
/// caller's error is not delayed by it.
pub const INTERRUPT_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors quote at most this much of the server's message (Spark's can carry a whole plan).
const MAX_MESSAGE_CHARS: usize = 2000;

/// Why a Spark Connect call failed. Every message names the remote as `host:port` and never
/// the token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SparkError {
    /// The `sc://` URL is malformed or asks for something this client does not do.
    #[error("invalid Spark Connect URL: {0}")]
    InvalidRemote(String),
    /// No connection could be made (refused, no route, name not resolved, connect timeout), or
    /// it broke: the server may be starting or restarting.
    #[error("Spark Connect server {remote} is unreachable: {cause}")]
    Unreachable { remote: String, cause: String },
    /// The deadline passed before the call finished.
    #[error("Spark Connect server {remote}: no answer within the deadline ({during})")]
    Timeout { remote: String, during: &'static str },
    /// Spark rejected the SQL itself: a syntax error, an unknown table or column, a type
    /// mismatch. The same SQL fails again.
    #[error("Spark Connect server {remote} rejected the SQL: {message}")]
    Analysis { remote: String, message: String },
    /// The SQL was accepted but running it failed (a failed stage, a lost executor, a data
    /// error); `sql_state` is Spark's SQLSTATE when it gave one.
    #[error("Spark Connect server {remote}: the query failed while running: {message}")]
    Execution { remote: String, message: String, sql_state: Option<String> },
    /// The server refused the session: not authenticated, not allowed, or not a Spark Connect
    /// service.
    #[error("Spark Connect server {remote} refused the request ({code}): {message}")]
    Rejected { remote: String, code: String, message: String },
    /// The server's answer could not be read: bad Arrow data or an unexpected response.
    #[error("Spark Connect server {remote}: unreadable response: {message}")]
    Protocol { remote: String, message: String },
}

impl SparkError {
    /// Whether the same call may succeed later. Unreachable servers and passed deadlines are
    /// weather. An execution failure is transient (a lost executor, a failed fetch, a cluster
    /// short of memory are the usual causes on a shared cluster) unless Spark classed it as a
    /// data exception (SQLSTATE class `22`: a division by zero, a bad cast) or as unsupported
    /// (class `0A`), which the same data would repeat. Analysis errors, rejections, bad URLs and
    /// unreadable responses are permanent.
    pub fn is_transient(&self) -> bool {
        match self {
            SparkError::Unreachable { .. } | SparkError::Timeout { .. } => true,
            SparkError::Execution { sql_state, .. } => {
                !sql_state.as_deref().is_some_and(|state| state.starts_with("22") || state.starts_with("0A"))
            }
            SparkError::InvalidRemote(_)
            | SparkError::Analysis { .. }
            | SparkError::Rejected { .. }
            | SparkError::Protocol { .. } => false,
        }
    }
}

/// A bearer token: sent, never shown. `Debug` is redacted and there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A parsed Spark Connect URL: `sc://host[:port][/][;param=value]...`, as Spark's clients read
/// it. Parameters: `token` (sent as `authorization: Bearer`), `user_id`, `user_agent` (sent as
/// `client_type`), `session_id` (a UUID; default a new one per session), `use_ssl` (`true` for
/// TLS with the platform's root certificates; implied by a token, as in Spark's clients). Any
/// other parameter is sent as gRPC metadata on every call, as Spark's clients do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparkRemote {
    pub host: String,
    pub port: u16,
    pub use_ssl: bool,
    pub user_id: String,
    pub user_agent: String,
    pub session_id: Option<String>,
    token: Option<Token>,
    /// The other parameters, sent as metadata.
    pub headers: BTreeMap<String, String>,
}

impl SparkRemote {
    /// Parses an `sc://` URL.
    pub fn parse(url: &str) -> Result<SparkRemote, SparkError> {
        let invalid = |why: String| SparkError::InvalidRemote(why);
        let rest = url.strip_prefix("sc://").ok_or_else(|| invalid("it must start with `sc://`".into()))?;
        let (authority, params) = match rest.split_once(';') {
            Some((authority, params)) => (authority, params),
            None => (rest, ""),
        };
        let authority = authority.strip_suffix('/').unwrap_or(authority);
        if authority.contains('/') {
            return Err(invalid("it has a path; only `sc://host:port/;param=value` is allowed".into()));
        }
        let (host, port) = split_host_port(authority).map_err(invalid)?;

        let mut remote = SparkRemote {
            host,
            port,
            use_ssl: false,
            user_id: DEFAULT_USER_ID.into(),
            user_agent: CLIENT_TYPE.into(),
            session_id: None,
            token: None,
            headers: BTreeMap::new(),
        };
        let mut use_ssl = None;
        for param in params.split(';').filter(|p| !p.is_empty()) {
            let (key, value) = param
                .split_once('=')
                .ok_or_else(|| invalid(format!("parameter `{}` has no `=value`", redacted_param(param))))?;
            match key {
                "token" if value.is_empty() => return Err(invalid("parameter `token` is empty".into())),
                "token" => remote.token = Some(Token(value.to_string())),
                "user_id" => remote.user_id = value.to_string(),
                "user_agent" => remote.user_agent = value.to_string(),
                "session_id" => {
                    Uuid::parse_str(value)
                        .map_err(|_| invalid(format!("parameter `session_id` is not a UUID: `{value}`")))?;
                    remote.session_id = Some(value.to_string());
                }
                "use_ssl" => {
                    use_ssl = Some(match value {
                        "true" => true,
                        "false" => false,
                        other => {
                            return Err(invalid(format!("parameter `use_ssl` must be true or false, not `{other}`")));
                        }
                    });
                }
                other => {
                    MetadataKey::<tonic::metadata::Ascii>::from_bytes(other.as_bytes())
                        .map_err(|_| invalid(format!("parameter `{other}` cannot be a gRPC header name")))?;
                    AsciiMetadataValue::try_from(value).map_err(|_| {
                        invalid(format!("parameter `{other}` has a value that cannot be a gRPC header"))
                    })?;
                    remote.headers.insert(other.to_string(), value.to_string());
                }
            }
        }
        remote.use_ssl = use_ssl.unwrap_or(remote.token.is_some());
        if remote.token.is_some() && !remote.use_ssl {
            return Err(invalid("a `token` needs TLS; remove `use_ssl=false`".into()));
        }
        Ok(remote)
    }

    /// `host:port`, what errors and logs name.
    pub fn display_addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Whether a token is set (the token itself is never handed out).
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    fn endpoint_uri(&self) -> String {
        let scheme = if self.use_ssl { "https" } else { "http" };
        format!("{scheme}://{}", self.display_addr())
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port` → host and port.
fn split_host_port(authority: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) =
            bracketed.split_once(']').ok_or_else(|| format!("`{authority}` opens `[` without closing it"))?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("it has no host".into());
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(port) => {
            port.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| format!("port `{port}` is not a port number"))?
        }
    };
    Ok((host.to_string(), port))
}

/// A parameter as errors may quote it: a token's value is never shown.
fn redacted_param(param: &str) -> &str {
    if param.starts_with("token") { "token" } else { param }
}

/// A connection to a Spark Connect server and one Spark session on it (a `session_id`): the
/// statements of one session share its temporary views and settings.
#[derive(Debug, Clone)]
pub struct SparkSession {
    remote: SparkRemote,
    session_id: String,
    client: SparkConnectServiceClient<Channel>,
}

impl SparkSession {
    /// Parses `remote` (an `sc://` URL) and connects, giving up with
    /// [`SparkError::Unreachable`] or [`SparkError::Timeout`] by `deadline`.
    pub async fn connect(remote: &str, deadline: Instant) -> Result<SparkSession, SparkError> {
        SparkSession::connect_to(SparkRemote::parse(remote)?, deadline).await
    }

    /// Connects to an already parsed remote.
    pub async fn connect_to(remote: SparkRemote, deadline: Instant) -> Result<SparkSession, SparkError> {
        let addr = remote.display_addr();
        let unreachable = |cause: String| SparkError::Unreachable { remote: addr.clone(), cause };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(SparkError::Timeout { remote: addr, during: "connecting" });
        }
        let mut endpoint = Endpoint::from_shared(remote.endpoint_uri())
            .map_err(|e| SparkError::InvalidRemote(format!("`{addr}`: {e}")))?
            .user_agent(remote.user_agent.clone())
            .map_err(|e| SparkError::InvalidRemote(format!("`user_agent`: {e}")))?
            .connect_timeout(left)
            .tcp_nodelay(true)
            // a long query sends nothing for minutes; pings tell a dead connection from a slow
            // query without waiting for the deadline
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(20))
            .keep_alive_while_idle(true);
        if remote.use_ssl {
            let tls = tonic::transport::ClientTlsConfig::new().with_native_roots().domain_name(remote.host.clone());
            endpoint = endpoint.tls_config(tls).map_err(|e| unreachable(format!("TLS setup: {}", error_chain(&e))))?;
        }
        let channel = match tokio::time::timeout_at(deadline.into(), endpoint.connect()).await {
            Err(_) => return Err(SparkError::Timeout { remote: addr, during: "connecting" }),
            Ok(Err(e)) => return Err(unreachable(error_chain(&e))),
            Ok(Ok(channel)) => channel,
        };
        let client = SparkConnectServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let session_id = remote.session_id.clone().unwrap_or_else(|| Uuid::new_v4().to_string());
        Ok(SparkSession { remote, session_id, client })
    }

    /// The remote this session talks to.
    pub fn remote(&self) -> &SparkRemote {
        &self.remote
    }

    /// The Spark session id (a UUID) every statement of this session carries.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// Runs one SQL statement and returns the batches of its result (none for a command such as
    /// `INSERT OVERWRITE DIRECTORY`, which Spark runs eagerly). Fails by `deadline`.
    pub async fn sql(&self, query: &str, deadline: Instant) -> Result<Vec<RecordBatch>, SparkError> {
        let addr = self.remote.display_addr();
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(SparkError::Timeout { remote: addr, during: "before sending the SQL" });
        }
        let operation_id = Uuid::new_v4().to_string();
        let mut request = tonic::Request::new(self.execute_request(query, &operation_id));
        self.add_metadata(request.metadata_mut());
        // the server sees the deadline too (`grpc-timeout`), the client enforces it below
        request.set_timeout(left);
        match tokio::time::timeout_at(deadline.into(), self.execute(request)).await {
            Ok(Ok(batches)) => Ok(batches),
            Ok(Err(error)) if Instant::now() < deadline => Err(error),
            // the deadline passed: either timer fired (tonic enforces `grpc-timeout` too, as a
            // `CANCELLED` status)
            Ok(Err(_)) | Err(_) => {
                // the server does not stop an operation whose stream was dropped: ask it to
                self.interrupt_detached(operation_id);
                Err(SparkError::Timeout { remote: addr, during: "running the SQL" })
            }
        }
    }

    fn execute_request(&self, query: &str, operation_id: &str) -> pb::ExecutePlanRequest {
        let relation = pb::Relation {
            common: None,
            rel_type: Some(pb::relation::RelType::Sql(pb::Sql { query: query.to_string() })),
        };
        pb::ExecutePlanRequest {
            session_id: self.session_id.clone(),
            user_context: Some(self.user_context()),
            plan: Some(pb::Plan { op_type: Some(pb::plan::OpType::Root(relation)) }),
            client_type: Some(self.remote.user_agent.clone()),
            request_options: vec![pb::execute_plan_request::RequestOption {
                request_option: Some(pb::execute_plan_request::request_option::RequestOption::ReattachOptions(
                    pb::ReattachOptions { reattachable: false },
                )),
            }],
            operation_id: Some(operation_id.to_string()),
        }
    }

    fn user_context(&self) -> pb::UserContext {
        pb::UserContext { user_id: self.remote.user_id.clone(), user_name: self.remote.user_id.clone() }
    }

    /// The token and the URL's extra parameters, on every call.
    fn add_metadata(&self, metadata: &mut tonic::metadata::MetadataMap) {
        if let Some(Token(token)) = &self.remote.token
            && let Ok(mut value) = AsciiMetadataValue::try_from(format!("Bearer {token}"))
        {
            value.set_sensitive(true);
            metadata.insert("authorization", value);
        }
        for (key, value) in &self.remote.headers {
            // both were checked when the URL was parsed
            if let (Ok(key), Ok(value)) =
                (MetadataKey::from_bytes(key.as_bytes()), AsciiMetadataValue::try_from(value.as_str()))
            {
                metadata.insert(key, value);
            }
        }
    }

    async fn execute(&self, request: tonic::Request<pb::ExecutePlanRequest>) -> Result<Vec<RecordBatch>, SparkError> {
        let addr = self.remote.display_addr();
        let mut client = self.client.clone();
        let mut stream = client.execute_plan(request).await.map_err(|status| classify(&status, &addr))?.into_inner();
        let mut batches = Vec::new();
        while let Some(response) = stream.message().await.map_err(|status| classify(&status, &addr))? {
            match response.response_type {
                Some(pb::execute_plan_response::ResponseType::ArrowBatch(arrow_batch)) => {
                    decode_arrow_batch(&arrow_batch, &mut batches)
                        .map_err(|message| SparkError::Protocol { remote: addr.clone(), message })?;
                }
                // a non-reattachable stream ends after its last batch; other responses
                // (progress, metrics, schema) are skipped, including kinds this subset omits
                Some(pb::execute_plan_response::ResponseType::ResultComplete(_)) | None => {}
            }
        }
        Ok(batches)
    }

    /// Asks the server to stop an operation whose caller gave up, without waiting for it.
    fn interrupt_detached(&self, operation_id: String) {
        let mut client = self.client.clone();
        let mut request = tonic::Request::new(pb::InterruptRequest {
            session_id: self.session_id.clone(),
            user_context: Some(self.user_context()),
            client_type: Some(self.remote.user_agent.clone()),
            interrupt_type: pb::interrupt_request::InterruptType::OperationId.into(),
            interrupt: Some(pb::interrupt_request::Interrupt::OperationId(operation_id)),
        });
        self.add_metadata(request.metadata_mut());
        request.set_timeout(INTERRUPT_TIMEOUT);
        let addr = self.remote.display_addr();
        tokio::spawn(async move {
            match tokio::time::timeout(INTERRUPT_TIMEOUT, client.interrupt(request)).await {
                Ok(Ok(_)) => tracing::debug!(remote = %addr, "Spark operation interrupted after its deadline"),
                Ok(Err(status)) => {
                    tracing::debug!(remote = %addr, code = ?status.code(), "interrupting a Spark operation failed");
                }
                Err(_) => tracing::debug!(remote = %addr, "interrupting a Spark operation timed out"),
            }
        });
    }
}

/// Appends the record batches of one `ArrowBatch` (an Arrow IPC stream) and checks its row count.
fn decode_arrow_batch(
    arrow_batch: &pb::execute_plan_response::ArrowBatch,
    batches: &mut Vec<RecordBatch>,
) -> Result<(), String> {
    let reader = StreamReader::try_new(Cursor::new(&arrow_batch.data), None)
        .map_err(|e| format!("an Arrow batch does not start with an Arrow IPC schema: {e}"))?;
    let mut rows = 0;
    for batch in reader {
        let batch = batch.map_err(|e| format!("an Arrow batch is not valid Arrow IPC: {e}"))?;
        rows += batch.num_rows();
        batches.push(batch);
    }
    if i64::try_from(rows).ok() != Some(arrow_batch.row_count) {
        return Err(format!("an Arrow batch says {} rows but holds {rows}", arrow_batch.row_count));
    }
    Ok(())
}

/// What a failed call's status means. Spark reports its own errors as `INTERNAL` with a
/// `google.rpc.ErrorInfo` in the status details whose metadata lists the exception's classes
/// (`classes`, a JSON array) and its SQLSTATE (`sqlState`); an `AnalysisException` (parse
/// errors included) or a SQLSTATE of class `42` (syntax error or access rule violation) is an
/// analysis error.
fn classify(status: &Status, remote: &str) -> SparkError {
    let remote = remote.to_string();
    let message = shorten(status.message());
    match status.code() {
        Code::Unavailable => SparkError::Unreachable { remote, cause: unavailable_cause(status) },
        Code::DeadlineExceeded => SparkError::Timeout { remote, during: "running the SQL" },
        Code::InvalidArgument => SparkError::Analysis { remote, message },
        Code::Unauthenticated | Code::PermissionDenied | Code::Unimplemented => {
            SparkError::Rejected { remote, code: format!("{:?}", status.code()), message }
        }
        Code::Internal
        | Code::Unknown
        | Code::Cancelled
        | Code::Aborted
        | Code::ResourceExhausted
        | Code::FailedPrecondition
        | Code::NotFound
        | Code::AlreadyExists
        | Code::OutOfRange
        | Code::DataLoss
        | Code::Ok => {
            let info = error_info(status);
            let sql_state = info.as_ref().and_then(|info| info.metadata.get("sqlState").cloned());
            let is_analysis = info.as_ref().is_some_and(|info| {
                info.reason.ends_with("AnalysisException")
                    || info.metadata.get("classes").is_some_and(|classes| classes.contains("AnalysisException"))
            }) || sql_state.as_deref().is_some_and(|state| state.starts_with("42"));
            if is_analysis {
                SparkError::Analysis { remote, message }
            } else {
                SparkError::Execution { remote, message, sql_state }
            }
        }
    }
}

/// The `ErrorInfo` a Spark server attaches to a failed call, if any.
fn error_info(status: &Status) -> Option<grpc_status::ErrorInfo> {
    let details = grpc_status::Status::decode(status.details()).ok()?;
    details
        .details
        .iter()
        .find(|detail| detail.type_url.ends_with("google.rpc.ErrorInfo"))
        .and_then(|detail| grpc_status::ErrorInfo::decode(detail.value.as_slice()).ok())
}

/// Why a call found no server: tonic says "transport error" and keeps the reason (connection
/// refused, reset) in its source chain.
fn unavailable_cause(status: &Status) -> String {
    let mut cause = status.message().to_string();
    let mut source = std::error::Error::source(status);
    while let Some(inner) = source {
        let text = inner.to_string();
        if !cause.contains(&text) {
            cause = format!("{cause}: {text}");
        }
        source = inner.source();
    }
    shorten(&cause)
}

/// An error and its causes in one line ("transport error: tcp connect error: Connection refused").
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let part = inner.to_string();
        if !text.contains(&part) {
            text = format!("{text}: {part}");
        }
        source = inner.source();
    }
    text
}

/// A server message cut to [`MAX_MESSAGE_CHARS`] on a character boundary.
fn shorten(message: &str) -> String {
    match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &message[..cut]),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod server_tests;
