//! Where a query reads the two datasets: Parquet files under a root, or tables.

use super::dialect::Dialect;
use super::error::SqlError;

/// Where the query reads the two datasets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlSource {
    /// The contract's layout under a root the engine can read (a local path, `s3://...`):
    /// `<root>/exposures/date=YYYY-MM-DD/*.parquet` and `<root>/events/...`.
    Files { root: String },
    /// Tables (or views) with the datasets' columns and a `date` partition column.
    Tables { exposures: String, events: String },
}

impl SqlSource {
    /// The source of a query for `dialect`: the tables when given (`(exposures, events)`),
    /// else the job's `[source] url` as files, a `file://` URL as its local path and any other
    /// URL (`s3://…`) as it is. Trino and BigQuery read tables only.
    pub fn for_dialect(dialect: Dialect, source_url: &str, tables: Option<(String, String)>) -> Result<Self, SqlError> {
        if let Some((exposures, events)) = tables {
            return Ok(SqlSource::Tables { exposures, events });
        }
        if matches!(dialect, Dialect::Trino | Dialect::BigQuery) {
            return Err(SqlError::FilesUnsupported { dialect: dialect.name() });
        }
        Ok(SqlSource::Files { root: engine_location(source_url) })
    }
}

/// A URL as a SQL engine names the location: a `file://` URL as its local path
/// (percent-decoded), any other URL (`s3://…`) as it is; no trailing slash.
pub fn engine_location(url: &str) -> String {
    let url = url.trim_end_matches('/');
    if let Some(path) = url.strip_prefix("file://") {
        return url::Url::parse(&format!("file://{path}/"))
            .ok()
            .and_then(|u| u.to_file_path().ok())
            .map_or_else(|| path.to_string(), |p| p.to_string_lossy().trim_end_matches('/').to_string());
    }
    url.to_string()
}
