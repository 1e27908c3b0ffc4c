//! Helpers the unit tests of several modules share, so each exists once: a float comparison
//! with a relative tolerance, a date of the tests' month, a planned test, the job file most
//! tests start from, the async runtime of the tests that run the pipeline, and the columns
//! the fold's tests build batches from. Compiled only for tests.

use std::path::Path;
use std::sync::OnceLock;

use chrono::NaiveDate;

use crate::config::Job;
use crate::results::{PlannedTest, PlannedTestKind};

/// Asserts that `actual` is within `tolerance` of `expected`, relative to `expected` (an
/// `expected` of 0 wants exactly 0); `what` names the number in the failure.
#[track_caller]
pub(crate) fn close(actual: f64, expected: f64, tolerance: f64, what: &str) {
    let err = (actual - expected).abs() / expected.abs().max(1e-300);
    assert!(err <= tolerance, "{what}: {actual} vs {expected} (rel err {err:e})");
}

/// `2026-11-DD`: the month the tests' experiments run in.
pub(crate) fn nov(day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, day).expect("a date")
}

/// The planned success test of `treatment` on `conversion` (a 5% effect, α 0.05, 80% power)
/// with `required_units` per variant and the power it has now.
pub(crate) fn planned_success(required_units: u64, power_at_current_n: f64) -> PlannedTest {
    PlannedTest {
        metric: "conversion".into(),
        variant: "treatment".into(),
        test: PlannedTestKind::Success,
        effect: 0.05,
        alpha: 0.05,
        power: 0.8,
        required_units: [required_units, required_units],
        power_at_current_n,
    }
}

/// A job file named `name` reading `url`, with one proportion metric `conversion` (on
/// `purchase` events), then `rest` (more metrics, experiments, destinations).
pub(crate) fn job_text(name: &str, url: &str, rest: &str) -> String {
    format!(
        "name = \"{name}\"\n[source]\nurl = \"{url}\"\n[[metrics]]\nname = \"conversion\"\nkind = \"proportion\"\nevent = \"purchase\"\n{rest}"
    )
}

/// An experiment `id` of a 50/50 split between `control` and `treatment` from `start`
/// (`YYYY-MM-DD`), with `conversion` as its primary metric, as a job file's lines.
pub(crate) fn experiment_text(id: &str, start: &str) -> String {
    format!(
        "[[experiments]]\nid = \"{id}\"\ncontrol = \"control\"\nvariants = {{ control = 0.5, treatment = 0.5 }}\nstart = {start}\nprimary = \"conversion\"\n"
    )
}

/// `text` checked as the job file `path`; panics with its problems when it is not valid.
#[track_caller]
pub(crate) fn checked_job(text: &str, path: &Path) -> Job {
    crate::config::check(text, path).expect("a valid job")
}

/// The runtime the tests that run the pipeline share (two workers, as this machine's cores).
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a runtime")
    })
}

/// One whole run of `job` for `report_date`, as `abreport run` makes it (all experiments, no
/// kept designs, no progress bar), on the tests' runtime.
pub(crate) fn run_job(
    job: &Job,
    report_date: NaiveDate,
) -> Result<crate::pipeline::RunOutput, crate::pipeline::RunError> {
    let mut request = crate::pipeline::RunRequest {
        job,
        report_date,
        experiment: None,
        started: std::time::Instant::now(),
        progress: false,
        designs: &[],
        histories: &[],
        source_retries: Default::default(),
        checkpoint: None,
        outputs_ready: None,
    };
    let log = crate::runlog::RunLog::new(std::time::Instant::now());
    runtime().block_on(crate::pipeline::run(&mut request, &log))
}

/// Microseconds of `hour`:00 UTC on 2026-11-`day`.
pub(crate) fn at(day: u32, hour: i64) -> i64 {
    crate::aggregate::day_start_micros(nov(day)) + hour * 3_600_000_000
}

/// A text column of `values`.
pub(crate) fn text(values: &[&str]) -> arrow::array::ArrayRef {
    std::sync::Arc::new(arrow::array::StringArray::from_iter_values(values.iter().copied()))
}

/// A UTC timestamp column (microseconds) of `values`.
pub(crate) fn times(values: &[i64]) -> arrow::array::ArrayRef {
    std::sync::Arc::new(arrow::array::TimestampMicrosecondArray::from(values.to_vec()).with_timezone("UTC"))
}
