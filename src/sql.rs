//! The work of a run as SQL: the query that computes the sufficient-statistics table
//! (docs/sufficient-stats.md) where the data lives — on Spark, in DuckDB, in a warehouse — and
//! the per-unit queries behind `allocation.parquet` and `units.parquet`. It follows the
//! contract's attribution exactly as `aggregate::fold` does; the tests prove the two equal.

use crate::aggregate::Spec;
use crate::config::Job;

/// The SQL dialect a query is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Spark,
    DuckDb,
    Trino,
    BigQuery,
}

/// Where the query reads the two datasets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlSource {
    /// The contract's layout under a root the engine can read (a local path, `s3://...`):
    /// `<root>/exposures/date=YYYY-MM-DD/*.parquet` and `<root>/events/...`.
    Files { root: String },
    /// Tables (or views) with the datasets' columns and a `date` partition column.
    Tables { exposures: String, events: String },
}

/// One of the per-unit exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PerUnitTable {
    /// `allocation.parquet`'s columns: every unit exposed in the window.
    Allocation,
    /// `units.parquet`'s columns: the analyzable units' metric values.
    Units,
}

/// Why no SQL can be written.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SqlError {
    #[error("{0}")]
    Unsupported(String),
}

/// The query computing the sufficient-statistics table of `spec`'s experiments.
pub fn sufficient_stats_sql(
    _job: &Job,
    _spec: &Spec,
    _source: &SqlSource,
    dialect: Dialect,
) -> Result<String, SqlError> {
    Err(SqlError::Unsupported(format!("{dialect:?}: not written yet")))
}

/// The query computing one per-unit export of `spec.experiments[experiment]`.
pub fn per_unit_sql(
    _job: &Job,
    _spec: &Spec,
    _experiment: usize,
    _table: PerUnitTable,
    _source: &SqlSource,
    dialect: Dialect,
) -> Result<String, SqlError> {
    Err(SqlError::Unsupported(format!("{dialect:?}: not written yet")))
}

/// `text` as a string literal of `dialect`. Spark and BigQuery read backslash escapes inside
/// literals, so a backslash is doubled and a quote escaped with one; DuckDB and Trino follow
/// standard SQL, where only a doubled quote escapes.
pub fn string_literal(text: &str, dialect: Dialect) -> String {
    match dialect {
        Dialect::Spark | Dialect::BigQuery => format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'")),
        Dialect::DuckDb | Dialect::Trino => format!("'{}'", text.replace('\'', "''")),
    }
}
