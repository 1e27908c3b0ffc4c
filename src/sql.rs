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
mod error;
mod query;
mod source;

pub use dialect::Dialect;
pub use error::SqlError;
pub use query::PerUnitTable;
pub use source::SqlSource;

use crate::aggregate::Spec;
use crate::config::Job;
use query::Query;

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
