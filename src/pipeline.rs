//! One run of one job on one report date, stage after stage:
//!
//! ```text
//! list partitions -> read exposures (ExposureFold) -> read events (EventFold)
//!   -> per experiment: per-unit values -> summaries -> analyze -> decide -> render -> export
//! ```
//!
//! Both `abreport run` and the scheduler call [`run`]. It returns every output in memory and
//! writes nothing: publishing is the caller's (export::write_dir, deliver), after a last
//! deadline check, so a run that misses its SLA publishes nothing.

use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Instant;

use arrow::array::ArrayRef;
use chrono::NaiveDate;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use crate::aggregate::UnitStatus;
use crate::aggregate::{self, Aggregator, EventTotals, ExperimentAllocation, Spec};
use crate::analyze::{self, Design, DimensionSlices, ExperimentData, MetricData};
use crate::config::{Experiment, Job};
use crate::decide;
use crate::export::{self, ExperimentOutputs};
use crate::render::{RenderError, Renderer, RunFacts};
use crate::results::{
    CapInfo, CapKind, Decision, ExperimentResult, ReasonCode, Recommendation, ResultsFile, SCHEMA_VERSION, Status,
};
use crate::runlog::{Deadline, RunLog, SlaExceeded};
use crate::source::{ColumnSpec, DataFile, Dataset, Expect, ScanPlan, ScanStats, Source, SourceError};
use crate::store::display_url;

/// What to run.
pub struct RunRequest<'a> {
    pub job: &'a Job,
    pub report_date: NaiveDate,
    /// Only this experiment, when given.
    pub experiment: Option<&'a str>,
    /// When the run started (the SLA clock).
    pub started: Instant,
    /// Draw a progress bar on a terminal.
    pub progress: bool,
    /// Designs earlier runs fixed (sequential tuning, first verdict date), by experiment.
    pub designs: &'a [Design],
    /// Counts the requests to the data source retried after transient errors; the caller
    /// reads it after the run, failed or not.
    pub source_retries: Arc<AtomicU32>,
}

/// Everything a run produced, in memory.
pub struct RunOutput {
    pub results: Vec<ExperimentResult>,
    pub outputs: Vec<ExperimentOutputs>,
    pub facts: RunFacts,
    /// Requests to the data source that were retried after a transient error.
    pub source_retries: u32,
    /// Designs this run fixed, to keep for the next runs.
    pub new_designs: Vec<Design>,
}

impl RunOutput {
    /// Experiments that could not be analysed.
    pub fn failed(&self) -> impl Iterator<Item = &ExperimentResult> {
        self.results.iter().filter(|r| r.status == Status::Failed)
    }
}

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
    Export(#[from] export::ExportError),
    #[error("internal error: {got} of {expected} experiments were processed (a worker failed); nothing was published")]
    Incomplete { expected: usize, got: usize },
}

fn select<'a>(job: &'a Job, only: Option<&str>) -> Result<Vec<&'a Experiment>, RunError> {
    match only {
        None => Ok(job.experiments.iter().collect()),
        Some(id) => match job.experiments.iter().find(|e| e.id == id) {
            Some(experiment) => Ok(vec![experiment]),
            None => Err(RunError::UnknownExperiment {
                job: job.name.clone(),
                id: id.to_string(),
                available: job.experiments.iter().map(|e| e.id.as_str()).collect::<Vec<_>>().join(", "),
            }),
        },
    }
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

/// The columns a run reads of `dataset`, in the order the fold takes them: exposures'
/// `experiment_id, variant, unit_id, ts` and the job's dimensions; events' `unit_id, event,
/// value, ts` (as `[source.columns]` names them). `validate` probes the same.
pub fn read_columns(job: &Job, dataset: Dataset) -> Arc<[ColumnSpec]> {
    let names = &job.source.columns;
    let mut specs: Vec<(&str, Expect)> = match dataset {
        Dataset::Exposures => vec![
            (&names.experiment_id, Expect::Text),
            (&names.variant, Expect::Text),
            (&names.unit_id, Expect::UnitId),
            (&names.exposure_ts, Expect::Timestamp),
        ],
        Dataset::Events => vec![
            (&names.unit_id, Expect::UnitId),
            (&names.event, Expect::Text),
            (&names.value, Expect::Number),
            (&names.event_ts, Expect::Timestamp),
        ],
    };
    if dataset == Dataset::Exposures {
        specs.extend(job.dimensions.iter().map(|d| (d.as_str(), Expect::Text)));
    }
    specs.iter().map(|(name, expect)| ColumnSpec { name: name.to_string(), expect: *expect }).collect()
}

/// What every read of a run shares: where, which files, the clock and the log.
struct Reader<'a> {
    source: &'a Source,
    plan: &'a ScanPlan,
    progress: bool,
    deadline: &'a Deadline,
    log: &'a RunLog,
}

impl Reader<'_> {
    /// Reads the files of one dataset through `fold`, timed and under the deadline.
    async fn read(
        &self,
        dataset: Dataset,
        columns: Arc<[ColumnSpec]>,
        fold: impl Fn(&DataFile, &[ArrayRef]) -> Result<(), aggregate::AggregateError> + Send + Sync + 'static,
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

/// Runs the pipeline. See the module docs.
pub async fn run(request: &RunRequest<'_>, log: &RunLog) -> Result<RunOutput, RunError> {
    let job = request.job;
    let report_date = request.report_date;
    let deadline = Deadline::new(request.started, job.sla);
    let selected = select(job, request.experiment)?;
    log.info(
        "start",
        None,
        format!("run of job `{}` for {report_date}", job.name),
        json!({ "job": job.name, "report_date": report_date.to_string(), "experiments": selected.len(), "sla_seconds": job.sla.as_secs_f64() }),
    );
    let in_window = started(&selected, report_date);
    let not_started: Vec<&Experiment> = selected.into_iter().filter(|e| e.start > report_date).collect();
    let spec = Arc::new(Spec::new(job, &in_window, report_date));

    // List the partitions of every date any experiment's window covers.
    let started = Instant::now();
    // Every request to the source gets a timeout and retries bounded by the deadline.
    let source = Source::open_counting(&job.source.url, deadline, request.source_retries.clone())?;
    let datasets = scan_dates(&spec);
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

    let reader = Reader { source: &source, plan: &plan, progress: request.progress, deadline: &deadline, log };
    let aggregator = Arc::new(Aggregator::new(spec.clone()));
    let exposure_columns = read_columns(job, Dataset::Exposures);
    let fold = aggregator.clone();
    let exposure_stats = reader
        .read(Dataset::Exposures, exposure_columns, move |file, columns| fold.fold_exposures(file.date, columns))
        .await?;

    let event_columns = read_columns(job, Dataset::Events);
    let fold = aggregator.clone();
    let event_stats =
        reader.read(Dataset::Events, event_columns, move |file, columns| fold.fold_events(file.date, columns)).await?;
    // Logged before the experiments' run logs are cut, so each run.log.jsonl shows it.
    let source_retries = source.retries();
    if source_retries > 0 {
        log.warn(
            "read",
            None,
            format!("{source_retries} request(s) to the data source were retried after transient errors"),
            json!({ "retries": source_retries }),
        );
    }
    let started = Instant::now();
    // The readers' clones of the aggregator are gone once both scans have returned.
    let aggregator = Arc::try_unwrap(aggregator).map_err(|_| RunError::Incomplete { expected: 1, got: 0 })?;
    let (allocation, mut totals) = tokio::task::block_in_place(|| aggregator.finish());
    log.stage_done(
        "allocate",
        started.elapsed(),
        json!({
            "distinct_units": allocation.keys.len(),
            "unit_index_bytes": allocation.keys.heap_bytes(),
            "rows_without_key": allocation.rows_without_key,
        }),
    );

    let renderer = Renderer::new()?;
    let generated_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut facts = RunFacts {
        job: job.name.clone(),
        report_date: report_date.to_string(),
        generated_at: generated_at.clone(),
        source: display_url(&job.source.url),
        files_read: exposure_stats.files + event_stats.files,
        bytes_read: exposure_stats.bytes + event_stats.bytes,
        rows_read: exposure_stats.rows + event_stats.rows,
        timings: Vec::new(),
        elapsed_seconds: 0.0,
        sla_seconds: job.sla.as_secs_f64(),
    };

    // Each experiment is analysed, rendered and encoded on its own; both cores take turns
    // from the queue. Accumulators are moved into their experiment's work and freed with it.
    let mut work: Vec<(usize, &Experiment, Option<usize>, EventTotals)> = Vec::new();
    for (i, experiment) in in_window.iter().enumerate() {
        work.push((work.len(), experiment, Some(i), std::mem::take(&mut totals[i])));
    }
    for experiment in &not_started {
        work.push((work.len(), experiment, None, EventTotals::default()));
    }
    facts.timings = log.timings();
    let context = ExperimentContext {
        job,
        report_date,
        spec: &spec,
        allocation: &allocation,
        missing_partitions: &plan.missing,
        renderer: &renderer,
        facts: &facts,
        generated_at: &generated_at,
        designs: request.designs,
        started: request.started,
        deadline: &deadline,
        log,
    };
    let n_work = work.len();
    let queue = std::sync::Mutex::new(work);
    let threads = crate::threads::count().min(n_work.max(1));
    let done: Vec<(usize, Processed)> = tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop();
                            let Some((position, experiment, index, totals)) = next else { break };
                            let outcome = context.experiment(experiment, index, totals);
                            let failed = outcome.is_err();
                            done.push((position, outcome));
                            if failed {
                                break;
                            }
                        }
                        done
                    })
                })
                .collect();
            workers.into_iter().flat_map(|w| w.join().unwrap_or_default()).collect()
        })
    });
    let mut done = done;
    done.sort_by_key(|(position, _)| *position);
    let mut results = Vec::with_capacity(n_work);
    let mut outputs = Vec::with_capacity(n_work);
    let mut new_designs = Vec::new();
    for (_, outcome) in done {
        let (result, output, design) = outcome?;
        results.push(result);
        outputs.push(output);
        new_designs.extend(design);
    }
    if results.len() != n_work {
        // A worker thread panicked: its experiments are missing. Say so rather than publish
        // a partial run as complete.
        return Err(RunError::Incomplete { expected: n_work, got: results.len() });
    }
    facts.timings = log.timings();
    facts.elapsed_seconds = request.started.elapsed().as_secs_f64();
    Ok(RunOutput { results, outputs, facts, source_retries, new_designs })
}

/// One experiment's outcome.
type Processed = Result<(ExperimentResult, ExperimentOutputs, Option<Design>), RunError>;

/// What every experiment's analysis, rendering and encoding share.
struct ExperimentContext<'a> {
    job: &'a Job,
    report_date: NaiveDate,
    spec: &'a Spec,
    allocation: &'a aggregate::Allocation,
    missing_partitions: &'a [(Dataset, NaiveDate)],
    renderer: &'a Renderer,
    facts: &'a RunFacts,
    generated_at: &'a str,
    designs: &'a [Design],
    started: Instant,
    deadline: &'a Deadline,
    log: &'a RunLog,
}

impl ExperimentContext<'_> {
    /// Values -> summaries -> analyze -> decide -> render -> encode, for one experiment.
    /// `index` is its position in the spec (`None`: it starts after the report date).
    fn experiment(&self, experiment: &Experiment, index: Option<usize>, totals: EventTotals) -> Processed {
        let (job, report_date, log) = (self.job, self.report_date, self.log);
        let started = Instant::now();
        let empty = ExperimentAllocation::default();
        let experiment_allocation = index.map_or(&empty, |i| &self.allocation.experiments[i]);
        let (values, covariates, metrics) =
            metric_data(job, experiment, index.map(|i| &self.spec.experiments[i]), experiment_allocation, &totals);
        // The per-unit accumulators are values now; only the counts are still needed.
        let totals = EventTotals { slots: Vec::new(), pre_slots: Vec::new(), ..totals };
        let breakdowns = breakdowns(job, experiment, experiment_allocation, values.first());
        let counts = experiment_allocation.counts(experiment.start);
        let data = ExperimentData {
            job,
            experiment,
            report_date,
            allocation: &counts,
            counted_events: totals.counted_events,
            invalid_values: totals.invalid_values,
            metrics: &metrics,
            missing_partitions: self.missing_partitions,
            breakdowns: &breakdowns,
            design: self.designs.iter().find(|d| d.experiment == experiment.id),
        };
        let analyze::Analysis { mut result, new_design } = analyze::analyze(&data);
        let failure = match index {
            None => Some(format!(
                "experiment `{}` starts on {}, after the report date {report_date}: nothing to analyse yet",
                experiment.id, experiment.start
            )),
            Some(_) if experiment_allocation.units.is_empty() => Some(format!(
                "experiment `{}` has no exposures in its window {} to {report_date} under {}",
                experiment.id,
                experiment.start,
                display_url(&job.source.url)
            )),
            Some(_) => None,
        };
        match failure {
            Some(error) => {
                log.error("analyze", Some(&experiment.id), error.clone(), json!({}));
                result.status = Status::Failed;
                result.decision = Decision {
                    recommendation: Recommendation::Inconclusive,
                    variant: None,
                    reasons: vec![error.clone()],
                    reason_codes: vec![ReasonCode::NoData],
                    rule: "the experiment has no analyzable data".into(),
                    expected_verdict_date: None,
                };
                result.error = Some(error);
            }
            None => result.decision = decide::recommend(&result),
        }
        log.info(
            "analyze",
            Some(&experiment.id),
            format!("{}: {}", experiment.id, result.decision.recommendation.name()),
            json!({
                "units": result.variants.iter().map(|v| v.units).sum::<u64>(),
                "recommendation": result.decision.recommendation.name(),
                "variant": result.decision.variant,
                "seconds": started.elapsed().as_secs_f64(),
            }),
        );
        self.deadline.check("analyze")?;

        let encode_started = Instant::now();
        let facts = RunFacts { elapsed_seconds: self.started.elapsed().as_secs_f64(), ..self.facts.clone() };
        let (html, markdown) = self.renderer.report(&result, &facts)?;
        let results_file = ResultsFile {
            schema_version: SCHEMA_VERSION,
            job: job.name.clone(),
            report_date,
            generated_at: self.generated_at.to_string(),
            abreport_version: env!("CARGO_PKG_VERSION").to_string(),
            experiments: vec![result.clone()],
        };
        let metric_names: Vec<&str> = experiment.metrics.iter().map(|m| job.metrics[m.metric].name.as_str()).collect();
        let mut files = vec![
            export::text_file("report.html", html),
            export::text_file("report.md", markdown),
            export::results_json(&results_file)?,
            export::results_parquet(&report_date.to_string(), &result)?,
            export::allocation_parquet(self.allocation, experiment_allocation)?,
            export::units_parquet(self.allocation, experiment_allocation, &metric_names, values, covariates)?,
        ];
        log.info(
            "export",
            Some(&experiment.id),
            "reports and exports encoded",
            json!({ "seconds": encode_started.elapsed().as_secs_f64(), "peak_rss_mib": crate::runlog::peak_rss_mib() }),
        );
        files.push(export::text_file("run.log.jsonl", log.jsonl_for(&experiment.id)));
        let outputs = export::with_manifest(&results_file, &result, &experiment.output_dir, files)?;
        self.deadline.check("render and export")?;
        // A failed experiment fixes no design: its numbers are not the experiment's.
        let new_design = new_design.filter(|_| result.status == Status::Ok);
        Ok((result, outputs, new_design))
    }
}

/// Per-unit values (capped), CUPED covariates and per-variant statistics of every metric of one
/// experiment. `spec` is `None` for an experiment outside the run (no data).
type Prepared = (Vec<aggregate::MetricValues>, Vec<Option<Vec<f64>>>, Vec<MetricData>);

fn metric_data(
    job: &Job,
    experiment: &Experiment,
    spec: Option<&aggregate::ExperimentSpec>,
    allocation: &ExperimentAllocation,
    totals: &EventTotals,
) -> Prepared {
    let Some(spec) = spec else {
        let empty = experiment
            .metrics
            .iter()
            .map(|m| {
                let summaries = match job.metrics[m.metric].kind {
                    crate::config::MetricKind::Ratio { .. } => {
                        aggregate::VariantSummaries::Ratio(vec![Default::default(); experiment.variants.len()])
                    }
                    _ => aggregate::VariantSummaries::Single(vec![Default::default(); experiment.variants.len()]),
                };
                MetricData { summaries, covariates: None, cap: None }
            })
            .collect();
        return (Vec::new(), Vec::new(), empty);
    };
    let variant_of: Vec<u32> = allocation.analyzable().map(|u| u.variant).collect();
    let n_variants = experiment.variants.len();
    let mut values = Vec::with_capacity(spec.metrics.len());
    let mut covariates = Vec::with_capacity(spec.metrics.len());
    let mut data = Vec::with_capacity(spec.metrics.len());
    for ((plan, cuped), m) in spec.metrics.iter().zip(&spec.cuped).zip(&experiment.metrics) {
        let metric = &job.metrics[m.metric];
        let mut metric_values = aggregate::metric_values(plan, totals);
        let mut covariate = if *cuped { aggregate::covariate_values(plan, totals) } else { None };
        let cap = metric.cap.and_then(|cap| {
            let (value, capped_units) = aggregate::apply_cap(&mut metric_values, covariate.as_mut(), cap)?;
            let (kind, percentile) = match cap {
                crate::config::Cap::Absolute(_) => (CapKind::Absolute, None),
                crate::config::Cap::Percentile(q) => (CapKind::Percentile, Some(q)),
            };
            Some(CapInfo { kind, percentile, value, capped_units })
        });
        let summaries = aggregate::summarize(&metric_values, &variant_of, n_variants);
        let covariate_summaries = match (&metric_values, &covariate) {
            (aggregate::MetricValues::Single(ys), Some(xs)) => {
                Some(aggregate::summarize_covariate(ys, xs, &variant_of, n_variants))
            }
            _ => None,
        };
        data.push(MetricData { summaries, covariates: covariate_summaries, cap });
        values.push(metric_values);
        covariates.push(covariate);
    }
    (values, covariates, data)
}

/// The primary metric's statistics per value of each dimension: the 20 values with the most
/// units, the rest pooled as `(other)`, nulls as `(missing)`.
fn breakdowns(
    job: &Job,
    experiment: &Experiment,
    allocation: &ExperimentAllocation,
    primary: Option<&aggregate::MetricValues>,
) -> Vec<DimensionSlices> {
    let Some(primary) = primary else { return Vec::new() };
    let n_variants = experiment.variants.len();
    let variant_of: Vec<u32> = allocation.analyzable().map(|u| u.variant).collect();
    job.dimensions
        .iter()
        .enumerate()
        .filter_map(|(d, dimension)| {
            let codes = allocation.dimensions.get(d)?;
            let names = allocation.dimension_values.get(d)?;
            let codes: Vec<u16> = allocation
                .units
                .iter()
                .zip(codes)
                .filter(|(u, _)| u.status == UnitStatus::Ok)
                .map(|(_, &c)| c)
                .collect();
            let mut counts: std::collections::HashMap<u16, u64> = std::collections::HashMap::new();
            for &code in &codes {
                *counts.entry(code).or_default() += 1;
            }
            let mut ranked: Vec<(u16, u64)> = counts.into_iter().collect();
            // Ties by value: codes number the values in the order reader threads first saw them.
            let value = |code: u16| (code == aggregate::NO_DIMENSION, names.get(usize::from(code)));
            ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| value(a.0).cmp(&value(b.0))));
            let top: Vec<u16> = ranked.iter().take(analyze::TOP_SLICES).map(|(c, _)| *c).collect();
            let other = top.len();
            let slice_of = |code: u16| top.iter().position(|&c| c == code).unwrap_or(other);
            let n_slices = other + usize::from(ranked.len() > top.len());
            let group_of: Vec<u32> =
                codes.iter().zip(&variant_of).map(|(&code, &v)| (slice_of(code) * n_variants) as u32 + v).collect();
            let grouped = aggregate::summarize(primary, &group_of, n_slices * n_variants);
            let slices = (0..n_slices)
                .map(|s| {
                    let name = match top.get(s) {
                        Some(&code) if code == aggregate::NO_DIMENSION => "(missing)".to_string(),
                        Some(&code) => names.get(usize::from(code)).cloned().unwrap_or_else(|| "(other)".into()),
                        None => "(other)".to_string(),
                    };
                    let part = |range: std::ops::Range<usize>| match &grouped {
                        aggregate::VariantSummaries::Single(all) => {
                            aggregate::VariantSummaries::Single(all[range].to_vec())
                        }
                        aggregate::VariantSummaries::Ratio(all) => {
                            aggregate::VariantSummaries::Ratio(all[range].to_vec())
                        }
                    };
                    (name, part(s * n_variants..(s + 1) * n_variants))
                })
                .collect();
            Some(DimensionSlices { dimension: dimension.clone(), slices })
        })
        .collect()
}

#[cfg(test)]
mod properties;
