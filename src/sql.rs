//! The work of a run as SQL: the query that computes the sufficient-statistics table
//! (docs/sufficient-stats.md) where the data lives — on Spark, in DuckDB, in a warehouse — and
//! the per-unit queries behind `allocation.parquet` and `units.parquet`. It follows the
//! contract's attribution exactly as `aggregate::fold` does; tests/it/engines.rs runs the
//! queries on DuckDB and proves the results equal to the embedded engine's.
//!
//! Pure text: no IO, not async, no engine. Every name and string from the job (experiment
//! ids, variants, metrics, events, column remaps, dimensions, table names, paths) is quoted
//! or escaped for the dialect, so no job can change what a query does.

mod dialect;
mod query;

use chrono::NaiveDate;

use crate::aggregate::Spec;
use crate::config::Job;
use query::Query;

/// The SQL dialect a query is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Dialect {
    Spark,
    #[value(name = "duckdb")]
    DuckDb,
    Trino,
    #[value(name = "bigquery")]
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
        let root = source_url.strip_prefix("file://").unwrap_or(source_url);
        Ok(SqlSource::Files { root: root.to_string() })
    }
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
    #[error(
        "{dialect} cannot read the Parquet files of a source root: create tables over `exposures/` and `events/` (with a `date` partition column) and name them with --exposures-table and --events-table"
    )]
    FilesUnsupported { dialect: &'static str },
    #[error("job `{job}`: no experiment has started by {report_date}: there is nothing to compute")]
    NoExperiments { job: String, report_date: NaiveDate },
    #[error("job `{job}`: the run has no experiment number {index} (it has {count})")]
    NoSuchExperiment { job: String, index: usize, count: usize },
}

/// The query computing the sufficient-statistics table of `spec`'s experiments at
/// `spec.report_date`: one SELECT with the table's columns and types.
pub fn sufficient_stats_sql(job: &Job, spec: &Spec, source: &SqlSource, dialect: Dialect) -> Result<String, SqlError> {
    Ok(Query::new(job, spec, spec.experiments.iter().collect(), source, dialect)?.sufficient_stats())
}

/// The query computing one per-unit export of `spec.experiments[experiment]`: a SELECT with
/// the columns of `allocation.parquet` or `units.parquet` (rows in no particular order).
pub fn per_unit_sql(
    job: &Job,
    spec: &Spec,
    experiment: usize,
    table: PerUnitTable,
    source: &SqlSource,
    dialect: Dialect,
) -> Result<String, SqlError> {
    let Some(one) = spec.experiments.get(experiment) else {
        return Err(SqlError::NoSuchExperiment {
            job: job.name.clone(),
            index: experiment,
            count: spec.experiments.len(),
        });
    };
    Ok(Query::new(job, spec, vec![one], source, dialect)?.per_unit(table))
}
