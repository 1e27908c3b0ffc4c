//! Dataset root URL -> an [`ObjectStore`] and the prefix inside it.
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
