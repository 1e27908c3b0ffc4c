//! How a run fails: the one error type of the spine, which `outcome` maps to exit codes and
//! ledger statuses. Its own file so the reading stages (`read.rs`) and the spine share it
//! without importing each other.

use crate::aggregate::sufficient::TableError;
use crate::export::ExportError;
use crate::render::RenderError;
use crate::runlog::SlaExceeded;
use crate::source::SourceError;
use crate::source::spark::SparkError;
use crate::sql::SqlError;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("job `{job}` has no experiment `{id}` (experiments: {available})")]
    UnknownExperiment { job: String, id: String, available: String },
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Sla(#[from] SlaExceeded),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error(transparent)]
    Spark(#[from] SparkError),
    #[error("the job's work cannot be written as SQL: {0}")]
    Sql(#[from] SqlError),
    #[error("{engine} returned a sufficient-statistics table abreport cannot use: {cause}")]
    EngineResult { engine: String, cause: TableError },
    #[error("the per-unit exports at `{url}`: {cause}")]
    EngineOutput { url: String, cause: String },
    #[error("internal error: {got} of {expected} experiments were processed (a worker failed); nothing was published")]
    Incomplete { expected: usize, got: usize },
}
