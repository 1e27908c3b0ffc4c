//! The object-store client that the source, uploads and the ledger share: a URL -> an
//! [`ObjectStore`] and the prefix inside it, store errors in words a user can act on, and URLs
//! fit to show (no credentials).
//!
//! Cloud stores are configured the usual way, from the environment (`AWS_*`, `GOOGLE_*`,
//! `AZURE_*`), so no secret ever sits in a job file.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ClientConfigKey, ObjectStore, ObjectStoreScheme, RetryConfig};
use url::Url;

/// How long one HTTP request to a cloud store may take before it is abandoned. Runs have a
/// 60-second deadline by default, so a hung connection must not eat all of it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Per-request limits of a store's HTTP client.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Timeout of one request, body included.
    pub request_timeout: Duration,
    /// Timeout of establishing a connection.
    pub connect_timeout: Duration,
    /// object_store's own retries of one request (0: the caller retries).
    pub max_retries: usize,
    /// How long object_store's own retries of one request may go on.
    pub retry_timeout: Duration,
}

impl Default for Limits {
    /// For writers (uploads, the ledger): object_store retries a few times on its own.
    fn default() -> Self {
        Self {
            request_timeout: REQUEST_TIMEOUT,
            connect_timeout: CONNECT_TIMEOUT,
            max_retries: 3,
            retry_timeout: Duration::from_secs(30),
        }
    }
}

impl Limits {
    /// For a run's data reads: requests never outlast the run's remaining budget, and
    /// object_store does not retry, because `source::retry` does, within that budget.
    pub fn within(budget: Duration) -> Self {
        Self {
            request_timeout: REQUEST_TIMEOUT.min(budget).max(Duration::from_millis(50)),
            connect_timeout: CONNECT_TIMEOUT.min(budget).max(Duration::from_millis(50)),
            max_retries: 0,
            retry_timeout: budget,
        }
    }
}

/// Opens the store behind `url` (an absolute URL; plain paths were made `file://` URLs by
/// `config`). Returns the store and the prefix of `url` inside it.
pub fn open(url: &str, limits: Limits) -> Result<(Arc<dyn ObjectStore>, Path), String> {
    let parsed = Url::parse(url).map_err(|e| format!("not a valid URL: {e}"))?;
    let (scheme, prefix) = ObjectStoreScheme::parse(&parsed).map_err(|e| e.to_string())?;
    // Set as single keys: `with_client_options` would replace the options `from_env` read
    // (such as AWS_ALLOW_HTTP for a local endpoint) with defaults.
    let timeout = (ClientConfigKey::Timeout, format!("{}ms", limits.request_timeout.as_millis()));
    let connect_timeout = (ClientConfigKey::ConnectTimeout, format!("{}ms", limits.connect_timeout.as_millis()));
    let retry =
        RetryConfig { max_retries: limits.max_retries, retry_timeout: limits.retry_timeout, ..RetryConfig::default() };
    let store: Arc<dyn ObjectStore> = match scheme {
        ObjectStoreScheme::Local => {
            let dir = parsed.to_file_path().map_err(|()| "not a local path".to_string())?;
            if !dir.is_dir() {
                return Err(format!("folder `{}` does not exist", dir.display()));
            }
            let store = LocalFileSystem::new_with_prefix(&dir).map_err(|e| e.to_string())?;
            return Ok((Arc::new(store), Path::default()));
        }
        ObjectStoreScheme::AmazonS3 => Arc::new(
            AmazonS3Builder::from_env()
                .with_url(url)
                .with_config(AmazonS3ConfigKey::Client(timeout.0), timeout.1)
                .with_config(AmazonS3ConfigKey::Client(connect_timeout.0), connect_timeout.1)
                .with_retry(retry)
                .build()
                .map_err(|e| e.to_string())?,
        ),
        ObjectStoreScheme::GoogleCloudStorage => Arc::new(
            GoogleCloudStorageBuilder::from_env()
                .with_url(url)
                .with_config(GoogleConfigKey::Client(timeout.0), timeout.1)
                .with_config(GoogleConfigKey::Client(connect_timeout.0), connect_timeout.1)
                .with_retry(retry)
                .build()
                .map_err(|e| e.to_string())?,
        ),
        ObjectStoreScheme::MicrosoftAzure => Arc::new(
            MicrosoftAzureBuilder::from_env()
                .with_url(url)
                .with_config(AzureConfigKey::Client(timeout.0), timeout.1)
                .with_config(AzureConfigKey::Client(connect_timeout.0), connect_timeout.1)
                .with_retry(retry)
                .build()
                .map_err(|e| e.to_string())?,
        ),
        other => {
            return Err(format!("unsupported store {other:?}; use file://, s3://, gs:// or az://"));
        }
    };
    Ok((store, prefix))
}

/// Opens any store URL (for writers such as uploads): the store and the prefix inside it.
pub fn open_writer(url: &str) -> Result<(Arc<dyn ObjectStore>, Path), String> {
    open(url, Limits::default())
}

/// A URL for reports and messages: no credentials, no query string.
pub fn display_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_password(None);
            let _ = parsed.set_username("");
            parsed.set_query(None);
            parsed.to_string()
        }
        Err(_) => url.to_string(),
    }
}

/// A store error in words a user can act on, without credentials or signed URLs.
pub fn describe_error(err: &object_store::Error) -> String {
    if is_instance_metadata_failure(err) {
        return format!(
            "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or run where the cloud's \
             instance-metadata service provides a role); without them, asking that service for credentials failed: {}",
            root_cause(err)
        );
    }
    match err {
        object_store::Error::PermissionDenied { .. } => "access denied (check the credentials' permissions)".into(),
        object_store::Error::Unauthenticated { .. } => "not authenticated (check the credentials)".into(),
        object_store::Error::NotFound { path, .. } => {
            format!("`{path}` not found (does the bucket or folder exist?)")
        }
        other => {
            let text = with_root_cause(other);
            // reqwest errors quote the request URL, which for some stores carries a signature.
            match text.find("?X-Amz-") {
                Some(pos) => format!("{}…", &text[..pos]),
                None => tidy_xml_error(&text),
            }
        }
    }
}

/// The innermost cause of `err` ("Connection refused (os error 111)"), or its own text.
fn root_cause(err: &object_store::Error) -> String {
    let mut text = err.to_string();
    let mut current = std::error::Error::source(err);
    while let Some(cause) = current {
        text = cause.to_string();
        current = cause.source();
    }
    text
}

/// The error's text, followed by its innermost cause when the text does not already say it:
/// a transport error's own message ("error sending request") hides the useful part
/// ("Connection refused").
fn with_root_cause(err: &object_store::Error) -> String {
    let text = err.to_string();
    let mut root: Option<&(dyn std::error::Error + 'static)> = None;
    let mut current = std::error::Error::source(err);
    while let Some(cause) = current {
        root = Some(cause);
        current = cause.source();
    }
    match root.map(ToString::to_string) {
        Some(cause) if !cause.is_empty() && !text.contains(&cause) => format!("{text}: {cause}"),
        _ => text,
    }
}

/// S3-style error bodies are XML; keep their code and message and drop the rest (request and
/// host ids), so the error fits on a line of a log or a notice.
fn tidy_xml_error(text: &str) -> String {
    let between = |open: &str, close: &str| {
        let start = text.find(open)? + open.len();
        let end = start + text[start..].find(close)?;
        Some(&text[start..end])
    };
    match (between("<Code>", "</Code>"), between("<Message>", "</Message>")) {
        (Some(code), Some(message)) => {
            let head = text.find(": <").map_or(text, |i| &text[..i]);
            format!("{head}: {code}: {message}")
        }
        _ => text.to_string(),
    }
}

/// True when the request that failed was object_store asking the cloud instance-metadata
/// service for credentials, which it does when the environment holds none (`AWS_ACCESS_KEY_ID`
/// …): off a cloud instance, that means there are no credentials, and waiting will not make
/// any. Its token (`/latest/api/token`) and role (`/latest/meta-data/iam/…`) paths are the
/// same on every cloud that serves it and appear nowhere else.
pub fn is_instance_metadata_failure(err: &object_store::Error) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(error) = current {
        let text = error.to_string();
        if text.contains("/latest/api/token") || text.contains("/latest/meta-data/") {
            return true;
        }
        current = error.source();
    }
    false
}

/// [`describe_error`] followed by every cause behind a generic error (a refused connection, a
/// TLS failure), still without signed URLs: what uploads report, as a failed PUT often hides
/// its reason several causes deep.
pub fn describe_error_chain(err: &object_store::Error) -> String {
    let mut text = describe_error(err);
    if matches!(err, object_store::Error::Generic { .. }) {
        let mut source = std::error::Error::source(err);
        while let Some(cause) = source {
            let part = cause.to_string();
            let part = match part.find("?X-Amz-") {
                Some(pos) => format!("{}…", &part[..pos]),
                None => part,
            };
            if !text.contains(&part) {
                text.push_str(": ");
                text.push_str(&part);
            }
            source = cause.source();
        }
    }
    text
}
