//! Why no SQL can be written: each error names the job or the dialect.

use chrono::NaiveDate;

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
