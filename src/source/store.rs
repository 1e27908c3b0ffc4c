//! Dataset root URL -> an [`ObjectStore`] and the prefix inside it.
//!
//! Cloud stores are configured the usual way, from the environment (`AWS_*`, `GOOGLE_*`,
//! `AZURE_*`), so no secret ever sits in a job file.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStore, ObjectStoreScheme, RetryConfig};
use url::Url;

/// How long one HTTP request to a cloud store may take before it is abandoned. Runs have a
/// 60-second deadline by default, so a hung connection must not eat all of it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens the store behind `url` (an absolute URL; plain paths were made `file://` URLs by
/// `config`). Returns the store and the prefix of `url` inside it.
pub fn open(url: &str) -> Result<(Arc<dyn ObjectStore>, Path), String> {
    let parsed = Url::parse(url).map_err(|e| format!("not a valid URL: {e}"))?;
    let (scheme, prefix) = ObjectStoreScheme::parse(&parsed).map_err(|e| e.to_string())?;
    let client = ClientOptions::new().with_timeout(REQUEST_TIMEOUT).with_connect_timeout(CONNECT_TIMEOUT);
    let retry = RetryConfig { max_retries: 3, retry_timeout: Duration::from_secs(30), ..RetryConfig::default() };
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
                .with_client_options(client)
                .with_retry(retry)
                .build()
                .map_err(|e| e.to_string())?,
        ),
        ObjectStoreScheme::GoogleCloudStorage => Arc::new(
            GoogleCloudStorageBuilder::from_env()
                .with_url(url)
                .with_client_options(client)
                .with_retry(retry)
                .build()
                .map_err(|e| e.to_string())?,
        ),
        ObjectStoreScheme::MicrosoftAzure => Arc::new(
            MicrosoftAzureBuilder::from_env()
                .with_url(url)
                .with_client_options(client)
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
