//! The reading stages of the spine: which partition dates a run lists, the listing itself, each
//! dataset's files streamed through the fold (timed, logged, under the run's deadline, with a
//! progress bar on a terminal), and the fold's end, the allocation. Storage itself is
//! `source`'s and the fold `aggregate`'s; this only drives them.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{Field, Schema};
use chrono::NaiveDate;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use super::error::RunError;
use crate::aggregate::sufficient::{self, ExperimentStats};
use crate::aggregate::{Aggregator, Allocation, EventTotals, Spec};
use crate::config::{Experiment, Job};
use crate::export::EngineFile;
use crate::runlog::{Deadline, RunLog};
use crate::source::{self, ColumnSpec, DataFile, Dataset, ScanPlan, ScanStats, Source, SourceError};

/// What the reading stages hand the experiments, whichever engine computed it.
pub(super) struct Computed {
    /// The embedded fold's allocation (unit ids and per-unit states, for the per-unit exports);
    /// `None` when another engine computed the statistics.
    pub allocation: Option<Allocation>,
    /// Per experiment of the spec, in its order.
    pub work: Vec<Work>,
    /// Window dates without a partition, per dataset.
    pub missing: Vec<(Dataset, NaiveDate)>,
    /// What this process read.
    pub read: ScanStats,
}

/// One experiment's statistics-to-be.
pub(super) enum Work {
    /// The embedded fold's accumulators of experiment `index` of the spec.
    Embedded { index: usize, totals: EventTotals },
    /// Statistics another engine computed, and the per-unit files it wrote (if any).
    Computed { stats: Box<ExperimentStats>, engine_files: Vec<EngineFile> },
}

/// The embedded engine: lists, reads and folds every file of the window in this process.
pub(super) async fn embedded(
    source: &Source,
    job: &Job,
    spec: &Arc<Spec>,
    progress: bool,
    deadline: &Deadline,
    log: &RunLog,
) -> Result<Computed, RunError> {
    let plan = list(source, spec, deadline, log).await?;
    let reader = Reader { source, plan: &plan, progress, deadline, log };
    let aggregator = Arc::new(Aggregator::new(spec.clone()));
    let read = reader.window(job, &aggregator).await?;
    folded(aggregator, plan.missing, read, log)
}

/// The embedded fold's end, whichever way it was fed: the allocation and one `Work` per
/// experiment.
pub(super) fn folded(
    aggregator: Arc<Aggregator>,
    missing: Vec<(Dataset, NaiveDate)>,
    read: ScanStats,
    log: &RunLog,
) -> Result<Computed, RunError> {
    let (allocation, totals) = allocate(aggregator, log)?;
    let work = totals.into_iter().enumerate().map(|(index, totals)| Work::Embedded { index, totals }).collect();
    Ok(Computed { allocation: Some(allocation), work, missing, read })
}

/// A `sufficient_stats` source: reads the report date's table (`sufficient_stats/date=D/`),
/// computed elsewhere from `abreport sql`, and checks it against the job.
pub(super) async fn sufficient_stats(
    source: &Source,
    job: &Job,
    spec: &Spec,
    progress: bool,
    deadline: &Deadline,
    log: &RunLog,
) -> Result<Computed, RunError> {
    let started = Instant::now();
    let dates = vec![(Dataset::SufficientStats, vec![spec.report_date])];
    let plan = deadline.within("list", source.plan(&dates)).await??;
    let folder = format!("{}/{}/date={}", source.url(), Dataset::SufficientStats.folder(), spec.report_date);
    if spec.experiments.is_empty() {
        return Ok(Computed { allocation: None, work: Vec::new(), missing: Vec::new(), read: ScanStats::default() });
    }
    if plan.files.is_empty() {
        return Err(SourceError::Missing {
            url: folder,
            cause: format!(
                "no sufficient statistics for {}: the `abreport sql` result of that date is not there",
                spec.report_date
            ),
        }
        .into());
    }
    log.stage_done("list", started.elapsed(), json!({ "files": plan.files.len(), "bytes": plan.bytes() }));
    let reader = Reader { source, plan: &plan, progress, deadline, log };
    let columns = source::read_columns(job, Dataset::SufficientStats);
    let batches = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = {
        let (batches, names) = (batches.clone(), columns.clone());
        move |_: &DataFile, arrays: &[ArrayRef]| -> Result<(), arrow::error::ArrowError> {
            let fields: Vec<Field> =
                names.iter().zip(arrays).map(|(c, a)| Field::new(&c.name, a.data_type().clone(), true)).collect();
            let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays.to_vec())?;
            batches.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(batch);
            Ok(())
        }
    };
    let read = reader.read(Dataset::SufficientStats, columns, sink).await?;
    let batches = std::mem::take(&mut *batches.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    let table = sufficient::read(&batches, job, spec)
        .map_err(|cause| SourceError::Batch { file: folder.clone(), cause: Box::new(cause) })?;
    let missing = missing_partitions(spec, &table.partitions, log);
    let work = table
        .experiments
        .into_iter()
        .map(|stats| Work::Computed { stats: Box::new(stats), engine_files: Vec::new() })
        .collect();
    Ok(Computed { allocation: None, work, missing, read })
}

/// The window dates of `spec` that a sufficient-statistics table has no partition rows for
/// (a date without rows had no partition), each logged as the embedded listing logs it.
pub(super) fn missing_partitions(
    spec: &Spec,
    partitions: &[(Dataset, NaiveDate)],
    log: &RunLog,
) -> Vec<(Dataset, NaiveDate)> {
    let missing: Vec<(Dataset, NaiveDate)> = scan_dates(spec)
        .into_iter()
        .flat_map(|(dataset, dates)| dates.into_iter().map(move |date| (dataset, date)))
        .filter(|key| !partitions.contains(key))
        .collect();
    log_missing(&missing, log);
    missing
}

fn log_missing(missing: &[(Dataset, NaiveDate)], log: &RunLog) {
    for (dataset, date) in missing {
        log.warn(
            "list",
            None,
            format!("no {dataset} partition for {date}"),
            json!({ "dataset": dataset, "date": date.to_string() }),
        );
    }
}

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
    log_missing(&plan.missing, log);
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
    /// Every exposure, then every event of the plan, through the fold: the events need the
    /// exposures' units first.
    pub(super) async fn window(&self, job: &Job, aggregator: &Arc<Aggregator>) -> Result<ScanStats, RunError> {
        let exposures = self.exposures(job, aggregator).await?;
        let events = self.events(job, aggregator).await?;
        Ok([exposures, events].into_iter().sum())
    }

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
    async fn read<E: std::error::Error + Send + Sync + 'static>(
        &self,
        dataset: Dataset,
        columns: Arc<[ColumnSpec]>,
        fold: impl Fn(&DataFile, &[ArrayRef]) -> Result<(), E> + Send + Sync + 'static,
    ) -> Result<ScanStats, RunError> {
        let stage = match dataset {
            Dataset::Exposures => "read exposures",
            Dataset::Events => "read events",
            Dataset::SufficientStats => "read sufficient statistics",
        };
        self.read_as(stage, dataset, columns, fold).await
    }

    /// [`Reader::read`], timed and logged as `stage`.
    pub(super) async fn read_as<E: std::error::Error + Send + Sync + 'static>(
        &self,
        stage: &'static str,
        dataset: Dataset,
        columns: Arc<[ColumnSpec]>,
        fold: impl Fn(&DataFile, &[ArrayRef]) -> Result<(), E> + Send + Sync + 'static,
    ) -> Result<ScanStats, RunError> {
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
