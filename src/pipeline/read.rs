//! The reading stages of the spine: which partition dates a run lists, the listing itself, each
//! dataset's files streamed through the fold (timed, logged, under the run's deadline, with a
//! progress bar on a terminal), and the fold's end, the allocation. Storage itself is
//! `source`'s and the fold `aggregate`'s; this only drives them.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::ArrayRef;
use chrono::NaiveDate;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use super::error::RunError;
use crate::aggregate::{AggregateError, Aggregator, Allocation, EventTotals, Spec};
use crate::config::{Experiment, Job};
use crate::runlog::{Deadline, RunLog};
use crate::source::{self, ColumnSpec, DataFile, Dataset, ScanPlan, ScanStats, Source};

/// The experiments of `selected` whose window has begun by `report_date` (the others are
/// reported as not started, and read nothing).
pub fn started<'a>(selected: &[&'a Experiment], report_date: NaiveDate) -> Vec<&'a Experiment> {
    selected.iter().copied().filter(|e| e.start <= report_date).collect()
}

/// The partition dates a run of `spec` lists and reads: exposures from the earliest start,
/// events from it less the CUPED lookback of the experiments that need covariates, both
/// through the report date; nothing without experiments. `run` and `validate` both plan
/// with it, so `validate` counts the files a run reads.
pub fn scan_dates(spec: &Spec) -> Vec<(Dataset, Vec<NaiveDate>)> {
    let Some(first) = spec.first_date() else { return Vec::new() };
    let dates =
        |from: NaiveDate| -> Vec<NaiveDate> { from.iter_days().take_while(|d| *d <= spec.report_date).collect() };
    let event_dates = dates(spec.first_event_date().unwrap_or(first));
    vec![(Dataset::Exposures, dates(first)), (Dataset::Events, event_dates)]
}

/// Lists the partitions of every date any experiment's window covers, and logs the missing ones.
pub(super) async fn list(
    source: &Source,
    spec: &Spec,
    deadline: &Deadline,
    log: &RunLog,
) -> Result<ScanPlan, RunError> {
    let started = Instant::now();
    let datasets = scan_dates(spec);
    let plan = if datasets.is_empty() {
        ScanPlan::default()
    } else {
        deadline.within("list", source.plan(&datasets)).await??
    };
    log.stage_done(
        "list",
        started.elapsed(),
        json!({ "files": plan.files.len(), "bytes": plan.bytes(), "missing_partitions": plan.missing.len() }),
    );
    for (dataset, date) in &plan.missing {
        log.warn(
            "list",
            None,
            format!("no {dataset} partition for {date}"),
            json!({ "dataset": dataset, "date": date.to_string() }),
        );
    }
    Ok(plan)
}

fn progress_bar(enabled: bool, total: u64, message: &'static str) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{msg:>16} [{bar:30}] {bytes}/{total_bytes} {elapsed}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message);
    bar
}

/// What every read of a run shares: where, which files, the clock and the log.
pub(super) struct Reader<'a> {
    pub source: &'a Source,
    pub plan: &'a ScanPlan,
    pub progress: bool,
    pub deadline: &'a Deadline,
    pub log: &'a RunLog,
}

impl Reader<'_> {
    /// Reads the exposure files into `aggregator`: each experiment's allocation.
    pub(super) async fn exposures(&self, job: &Job, aggregator: &Arc<Aggregator>) -> Result<ScanStats, RunError> {
        let fold = aggregator.clone();
        let columns = source::read_columns(job, Dataset::Exposures);
        self.read(Dataset::Exposures, columns, move |file, columns| fold.fold_exposures(file.date, columns)).await
    }

    /// Reads the event files into `aggregator` (after the exposures): the units' accumulators.
    pub(super) async fn events(&self, job: &Job, aggregator: &Arc<Aggregator>) -> Result<ScanStats, RunError> {
        let fold = aggregator.clone();
        let columns = source::read_columns(job, Dataset::Events);
        self.read(Dataset::Events, columns, move |file, columns| fold.fold_events(file.date, columns)).await
    }

    /// Reads the files of one dataset through `fold`, timed and under the deadline.
    async fn read(
        &self,
        dataset: Dataset,
        columns: Arc<[ColumnSpec]>,
        fold: impl Fn(&DataFile, &[ArrayRef]) -> Result<(), AggregateError> + Send + Sync + 'static,
    ) -> Result<ScanStats, RunError> {
        let stage = match dataset {
            Dataset::Exposures => "read exposures",
            Dataset::Events => "read events",
        };
        let files: Vec<DataFile> = self.plan.files_of(dataset).cloned().collect();
        let total: u64 = files.iter().map(|f| f.size).sum();
        let bar = progress_bar(self.progress, total, stage);
        let concurrency = crate::threads::count().max(2);
        let started = Instant::now();
        let scan = self.source.scan(files, columns, concurrency, &bar, Arc::new(fold));
        let stats = self.deadline.within(stage, scan).await??;
        bar.finish_and_clear();
        self.log.stage_done(
            stage,
            started.elapsed(),
            json!({ "files": stats.files, "bytes": stats.bytes, "rows": stats.rows }),
        );
        Ok(stats)
    }
}

/// The requests to `source` retried after transient errors, warned about when there were any.
/// Logged before the experiments' run logs are cut, so each run.log.jsonl shows it.
pub(super) fn retries(source: &Source, log: &RunLog) -> u32 {
    let retries = source.retries();
    if retries > 0 {
        log.warn(
            "read",
            None,
            format!("{retries} request(s) to the data source were retried after transient errors"),
            json!({ "retries": retries }),
        );
    }
    retries
}

/// Ends the fold once both scans have returned: the allocation of every experiment, and each
/// experiment's event accumulators, gathered on all cores.
pub(super) fn allocate(aggregator: Arc<Aggregator>, log: &RunLog) -> Result<(Allocation, Vec<EventTotals>), RunError> {
    let started = Instant::now();
    // The readers' clones of the aggregator are gone once both scans have returned.
    let aggregator = Arc::try_unwrap(aggregator).map_err(|_| RunError::Incomplete { expected: 1, got: 0 })?;
    let (allocation, totals) = tokio::task::block_in_place(|| aggregator.finish());
    log.stage_done(
        "allocate",
        started.elapsed(),
        json!({
            "distinct_units": allocation.keys.len(),
            "unit_index_bytes": allocation.keys.heap_bytes(),
            "rows_without_key": allocation.rows_without_key,
        }),
    );
    Ok((allocation, totals))
}
