//! How a run ended, in the two vocabularies that report it: the process exit code ([`Exit`],
//! documented in the README) and the run ledger's status ([`RunStatus`]). This is the one place
//! that maps a run's outcome to both, so `app`, `recorded`, the ledger and the metrics agree.

use serde::{Deserialize, Serialize};

use crate::pipeline::RunError;
use crate::source::spark::SparkError;

/// Process exit codes. Documented in the README; one place maps outcomes to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Everything was analysed and delivered.
    Ok = 0,
    /// A bug or an unexpected local failure.
    Internal = 1,
    /// Bad command line or job file.
    Config = 2,
    /// The data source could not be read: unreachable, access denied, or a file that is
    /// corrupt or lacks the expected columns.
    SourceUnavailable = 3,
    /// At least one experiment had no analyzable data (the others were still published).
    NoAnalyzableData = 4,
    /// Writing the outputs or the run ledger, or a delivery, failed.
    DeliveryFailed = 5,
    /// The run did not finish within `sla_seconds`; nothing was published.
    SlaExceeded = 6,
    /// `validate`: the job files are valid, but the machine lacks what they need (an SMTP
    /// setting or the secrets file, a folder the job writes that cannot be written).
    Environment = 7,
}

impl Exit {
    /// How bad an outcome of `validate` is, so that the worst of several jobs is returned:
    /// a job-file error, then a source that cannot be read, then the environment.
    pub(crate) fn validate_rank(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Environment => 1,
            Exit::SourceUnavailable => 2,
            Exit::Config => 3,
            _ => 4,
        }
    }

    /// The worse of `self` and `other` (for `validate`).
    pub(crate) fn or_worse(self, other: Exit) -> Exit {
        if other.validate_rank() > self.validate_rank() { other } else { self }
    }
}

/// The exit code of a run that failed with `error`.
pub(crate) fn exit_for(error: &RunError) -> Exit {
    match error {
        RunError::UnknownExperiment { .. } | RunError::Sql(_) | RunError::Spark(SparkError::InvalidRemote(_)) => {
            Exit::Config
        }
        RunError::Source(_) | RunError::Spark(_) => Exit::SourceUnavailable,
        RunError::EngineOutput { .. } => Exit::DeliveryFailed,
        RunError::Sla(_) => Exit::SlaExceeded,
        RunError::Render(_) | RunError::Export(_) | RunError::Incomplete { .. } | RunError::EngineResult { .. } => {
            Exit::Internal
        }
    }
}

/// How a run ended (or that it is still going).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Started and not finished: still going, or the process died (catch-up runs it again).
    Running,
    /// Every experiment analysed, published and delivered.
    Ok,
    /// Published and delivered, but at least one experiment had no analyzable data.
    NoData,
    /// The data source could not be reached or read (after retries, or refused outright).
    SourceUnavailable,
    /// The run passed its SLA; nothing was published as complete.
    SlaMissed,
    /// Writing the outputs or a delivery failed.
    DeliveryFailed,
    /// Anything else: a corrupt file, a bad job, a bug.
    Failed,
}

impl RunStatus {
    /// Every status, for metrics that list them all.
    pub const ALL: [RunStatus; 7] = [
        RunStatus::Running,
        RunStatus::Ok,
        RunStatus::NoData,
        RunStatus::SourceUnavailable,
        RunStatus::SlaMissed,
        RunStatus::DeliveryFailed,
        RunStatus::Failed,
    ];

    /// The name used in the ledger, metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Ok => "ok",
            RunStatus::NoData => "no_data",
            RunStatus::SourceUnavailable => "source_unavailable",
            RunStatus::SlaMissed => "sla_missed",
            RunStatus::DeliveryFailed => "delivery_failed",
            RunStatus::Failed => "failed",
        }
    }

    /// Statuses the job's admin hears about.
    pub fn needs_notice(self) -> bool {
        matches!(
            self,
            RunStatus::SourceUnavailable
                | RunStatus::SlaMissed
                | RunStatus::Failed
                | RunStatus::NoData
                | RunStatus::DeliveryFailed
        )
    }
}

/// The ledger status of an outcome. Source errors about a file's content (corrupt, missing or
/// mistyped columns) are `failed`; a store that cannot be reached or read is
/// `source_unavailable`.
pub(crate) fn status_for(exit: Exit, error: Option<&RunError>) -> RunStatus {
    match exit {
        Exit::Ok => RunStatus::Ok,
        Exit::NoAnalyzableData => RunStatus::NoData,
        Exit::DeliveryFailed => RunStatus::DeliveryFailed,
        Exit::SlaExceeded => RunStatus::SlaMissed,
        Exit::SourceUnavailable => match error {
            Some(RunError::Source(e)) if !e.is_unavailable() => RunStatus::Failed,
            // A server that cannot be reached, or refuses the session, is unavailable; SQL it
            // rejects or a query that fails on the data fails the same way again.
            Some(RunError::Spark(e)) if !e.is_transient() && !matches!(e, SparkError::Rejected { .. }) => {
                RunStatus::Failed
            }
            _ => RunStatus::SourceUnavailable,
        },
        Exit::Internal | Exit::Config | Exit::Environment => RunStatus::Failed,
    }
}

/// The status and exit code of a run whose failed deliveries all went through later
/// (`abreport deliver`): what it would have had if they had gone through at once.
pub(crate) fn delivered_late(no_data: bool) -> (RunStatus, Exit) {
    if no_data { (RunStatus::NoData, Exit::NoAnalyzableData) } else { (RunStatus::Ok, Exit::Ok) }
}
