//! One run of one job on one report date, stage after stage:
//!
//! ```text
//! list partitions -> read exposures -> read events -> allocate        (read.rs, aggregate::fold)
//!   -> per experiment: aggregate -> analyze -> decide -> render -> export
//! ```
//!
//! Both `abreport run` and the scheduler call [`run`]. It returns every output in memory and
//! writes nothing: publishing is the caller's (export::stage_dir and commit, deliver), after a
//! last deadline check, so a run that misses its SLA publishes nothing. The caller may write
//! outputs aside as they come ([`RunRequest::outputs_ready`], the checkpoint's
//! [`Checkpointing::encoded`]) so that publishing is renames.

mod floor;
mod incremental;
mod read;
mod spark;

use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Instant;

use chrono::NaiveDate;
use serde_json::json;

use crate::aggregate::sufficient::ExperimentStats;
use crate::aggregate::{self, EventTotals, ExperimentAllocation, ExperimentInput, Spec};
use crate::analyze::{self, Design, ExperimentData};
use crate::config::{Engine, Experiment, Job, SourceKind};
use crate::decide;
use crate::export::{self, ExperimentExports, ExperimentOutputs, PerUnit};
use crate::render::{Renderer, RunFacts};
use crate::results::{ExperimentHistory, ExperimentResult, ResultsFile, SCHEMA_VERSION, Status};
use crate::runlog::{Deadline, RunLog};
use crate::source::spark::SparkRemote;
use crate::source::{Dataset, Source};
use read::Work;

use crate::store::display_url;

mod error;
pub use error::RunError;
pub use floor::{DatasetScan, DecodeFloor, decode_floor};
pub use incremental::Checkpointing;
pub use read::{scan_dates, started};

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
    /// What earlier published runs reported, by experiment: the reports' trend (the story
    /// over time) is these points before the report date plus this run's.
    pub histories: &'a [ExperimentHistory],
    /// Counts the requests to the data source retried after transient errors; the caller
    /// reads it after the run, failed or not.
    pub source_retries: Arc<AtomicU32>,
    /// The job's checkpoint, for a run of the embedded engine over all the job's experiments
    /// (see [`uses_checkpoint`]); `None`: the run neither reads nor makes one.
    pub checkpoint: Option<Checkpointing>,
    /// Where each experiment's outputs go too, the moment they are complete, so the caller can
    /// write them aside while the other experiments are computed (publishing them, or not,
    /// once the run is done); they are in [`RunOutput::outputs`] all the same.
    pub outputs_ready: Option<std::sync::mpsc::Sender<ExperimentOutputs>>,
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
    /// Each analysed experiment's history with this run's point put in (replacing one of the
    /// same date), to keep once the outputs are published.
    pub histories: Vec<ExperimentHistory>,
}

/// Whether runs of `job` keep a checkpoint: the embedded engine reading Parquet (another
/// engine keeps no per-unit state here).
pub fn uses_checkpoint(job: &Job) -> bool {
    matches!((job.source.kind, &job.source.engine), (SourceKind::Parquet, Engine::Embedded))
}

impl RunOutput {
    /// Experiments that could not be analysed.
    pub fn failed(&self) -> impl Iterator<Item = &ExperimentResult> {
        self.results.iter().filter(|r| r.status == Status::Failed)
    }
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

/// Runs the pipeline. See the module docs.
pub async fn run(request: &mut RunRequest<'_>, log: &RunLog) -> Result<RunOutput, RunError> {
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

    // Every request to the source gets a timeout and retries bounded by the deadline.
    let source = Source::open_counting(&job.source.url, deadline, request.source_retries.clone())?;
    let mut read_note = None;
    let computed = match (job.source.kind, &job.source.engine) {
        (SourceKind::SufficientStats, _) => {
            read::sufficient_stats(&source, job, &spec, request.progress, &deadline, log).await?
        }
        (SourceKind::Parquet, Engine::Embedded) => match &mut request.checkpoint {
            Some(checkpointing) => {
                let checkpointed =
                    incremental::embedded(&source, job, &spec, request.progress, &deadline, log, checkpointing).await?;
                read_note = checkpointed.read_note;
                checkpointed.computed
            }
            None => read::embedded(&source, job, &spec, request.progress, &deadline, log).await?,
        },
        (SourceKind::Parquet, Engine::Spark { remote, output }) => {
            let engine = spark::SparkEngine { remote, output: output.as_deref(), retries: &request.source_retries };
            spark::spark(&engine, job, &spec, &deadline, log).await?
        }
    };
    let source_retries = read::retries(&source, log);

    let renderer = Renderer::new()?;
    let generated_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut facts = RunFacts {
        job: job.name.clone(),
        report_date: report_date.to_string(),
        generated_at: generated_at.clone(),
        source: display_url(&job.source.url),
        engine: engine_description(job),
        per_unit: per_unit_description(job),
        files_read: computed.read.files,
        bytes_read: computed.read.bytes,
        rows_read: computed.read.rows,
        read_note,
        timings: log.timings(),
        elapsed_seconds: 0.0,
        sla_seconds: job.sla.as_secs_f64(),
    };

    // Each experiment is analysed, rendered and encoded on its own, on every core. Accumulators
    // are moved into their experiment's work and freed with it; experiments not started yet
    // come last, with none.
    let mut work: Vec<(&Experiment, Option<Work>)> =
        in_window.iter().copied().zip(computed.work.into_iter().map(Some)).collect();
    work.extend(not_started.iter().map(|experiment| (*experiment, None)));
    let context = ExperimentContext {
        job,
        report_date,
        spec: &spec,
        allocation: computed.allocation.as_ref(),
        missing_partitions: &computed.missing,
        renderer: &renderer,
        facts: &facts,
        generated_at: &generated_at,
        designs: request.designs,
        histories: request.histories,
        started: request.started,
        deadline: &deadline,
        log,
        outputs_ready: request.outputs_ready.as_ref(),
    };
    let n_work = work.len();
    let done = tokio::task::block_in_place(|| {
        crate::threads::each(work, |(experiment, work)| context.experiment(experiment, work))
    });
    let mut results = Vec::with_capacity(n_work);
    let mut outputs = Vec::with_capacity(n_work);
    let mut new_designs = Vec::new();
    let mut histories = Vec::new();
    for (_, outcome) in done {
        let (result, output, design, history) = outcome?;
        results.push(result);
        outputs.push(output);
        new_designs.extend(design);
        histories.extend(history);
    }
    if results.len() != n_work {
        // A worker thread panicked: its experiments are missing. Say so rather than publish
        // a partial run as complete.
        return Err(RunError::Incomplete { expected: n_work, got: results.len() });
    }
    facts.timings = log.timings();
    facts.elapsed_seconds = request.started.elapsed().as_secs_f64();
    Ok(RunOutput { results, outputs, facts, source_retries, new_designs, histories })
}

/// One experiment's statistics, its per-unit values when this process computed them, and the
/// per-unit files another engine wrote.
type Statistics<'a> = (ExperimentStats, Option<PerUnit<'a>>, Vec<export::EngineFile>);

/// One experiment's outcome.
type Processed = Result<(ExperimentResult, ExperimentOutputs, Option<Design>, Option<ExperimentHistory>), RunError>;

/// What every experiment's analysis, rendering and encoding share.
struct ExperimentContext<'a> {
    job: &'a Job,
    report_date: NaiveDate,
    spec: &'a Spec,
    /// The embedded fold's allocation; `None` when another engine computed the statistics.
    allocation: Option<&'a aggregate::Allocation>,
    missing_partitions: &'a [(Dataset, NaiveDate)],
    renderer: &'a Renderer,
    facts: &'a RunFacts,
    generated_at: &'a str,
    designs: &'a [Design],
    histories: &'a [ExperimentHistory],
    started: Instant,
    deadline: &'a Deadline,
    log: &'a RunLog,
    outputs_ready: Option<&'a std::sync::mpsc::Sender<ExperimentOutputs>>,
}

impl ExperimentContext<'_> {
    /// Values -> summaries -> analyze -> decide -> render -> encode, for one experiment.
    /// `work` is its statistics-to-be (`None`: it starts after the report date).
    fn experiment(&self, experiment: &Experiment, work: Option<Work>) -> Processed {
        let (job, report_date, log) = (self.job, self.report_date, self.log);
        let started = Instant::now();
        let (stats, per_unit, engine_files) = self.statistics(experiment, work);
        let analysis = analyze::analyze(&ExperimentData {
            job,
            experiment,
            report_date,
            allocation: &stats.counts,
            counted_events: stats.counted_events,
            invalid_values: stats.invalid_values,
            metrics: &stats.metrics,
            missing_partitions: self.missing_partitions,
            breakdowns: &stats.breakdowns,
            design: self.designs.iter().find(|d| d.experiment == experiment.id),
        });
        let units = stats.counts.all_units as usize;
        let source = display_url(&job.source.url);
        let no_data = decide::missing_data(&experiment.id, experiment.start, report_date, units, &source);
        let mut result = decide::decide(analysis.result, no_data);
        let kept = self.histories.iter().find(|h| h.experiment == experiment.id);
        let history = tell_story(&mut result, kept, report_date);
        if let Some(error) = &result.error {
            log.error("analyze", Some(&experiment.id), error.clone(), json!({}));
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
        let mut files = export::experiment_files(ExperimentExports {
            html,
            markdown,
            results_file: &results_file,
            result: &result,
            per_unit,
        })?;
        log.info(
            "export",
            Some(&experiment.id),
            "reports and exports encoded",
            json!({ "seconds": encode_started.elapsed().as_secs_f64(), "peak_rss_mib": crate::runlog::peak_rss_mib() }),
        );
        files.push(export::text_file("run.log.jsonl", log.jsonl_for(&experiment.id)));
        let outputs = export::with_manifest(&results_file, &result, &experiment.output_dir, files, engine_files)?;
        self.deadline.check("render and export")?;
        if let Some(ready) = self.outputs_ready {
            // A caller that stopped listening writes the outputs at publishing instead.
            let _ = ready.send(outputs.clone());
        }
        // A failed experiment fixes no design: its numbers are not the experiment's.
        let new_design = analysis.new_design.filter(|_| result.status == Status::Ok);
        Ok((result, outputs, new_design, history))
    }
}

/// Puts the story over time into `result.trend`: the points `kept` has before `report_date`,
/// then this run's. Returns the history with this run's point put in (replacing one of the same
/// date, keeping later ones), for the caller to keep once the run is published; `None` for a
/// failed experiment, which adds no point and shows no story.
fn tell_story(
    result: &mut ExperimentResult,
    kept: Option<&ExperimentHistory>,
    report_date: NaiveDate,
) -> Option<ExperimentHistory> {
    let point = result.trend_point(report_date)?;
    let mut trend = kept.map(|h| h.before(report_date)).unwrap_or_default();
    trend.push(point.clone());
    result.trend = trend;
    let mut history = kept.cloned().unwrap_or_else(|| ExperimentHistory::new(&result.id));
    history.upsert(point);
    Some(history)
}

impl<'a> ExperimentContext<'a> {
    /// One experiment's statistics, and its per-unit values when this process computed them.
    /// The embedded fold's accumulators become values here and are freed before the statistics
    /// run; another engine's statistics arrive whole.
    fn statistics(&self, experiment: &'a Experiment, work: Option<Work>) -> Statistics<'a> {
        let job = self.job;
        let metric_names = || experiment.metrics.iter().map(|m| job.metrics[m.metric].name.as_str()).collect();
        match work {
            Some(Work::Computed { stats, engine_files }) => (*stats, None, engine_files),
            Some(Work::Embedded { index, totals }) => {
                let allocation = self.allocation.expect("the embedded engine hands over its allocation");
                let experiment_allocation = &allocation.experiments[index];
                let spec = Some(&self.spec.experiments[index]);
                let input =
                    ExperimentInput { job, experiment, spec, allocation: experiment_allocation, totals: &totals };
                let aggregates = aggregate::experiment(&input);
                let EventTotals { counted_events, invalid_values, .. } = totals;
                drop(totals);
                let stats = ExperimentStats {
                    counts: experiment_allocation.counts(experiment.start),
                    counted_events,
                    invalid_values,
                    metrics: aggregates.metrics,
                    breakdowns: aggregates.breakdowns,
                };
                let per_unit = PerUnit {
                    allocation,
                    experiment_allocation,
                    metric_names: metric_names(),
                    values: aggregates.values,
                    covariates: aggregates.covariates,
                };
                (stats, Some(per_unit), Vec::new())
            }
            None => {
                let empty = ExperimentAllocation::default();
                let input = ExperimentInput {
                    job,
                    experiment,
                    spec: None,
                    allocation: &empty,
                    totals: &EventTotals::default(),
                };
                let aggregates = aggregate::experiment(&input);
                let stats = ExperimentStats {
                    counts: empty.counts(experiment.start),
                    metrics: aggregates.metrics,
                    breakdowns: aggregates.breakdowns,
                    ..ExperimentStats::default()
                };
                (stats, None, Vec::new())
            }
        }
    }
}

/// Where a report's per-unit values are, completing "the per-unit values …".
fn per_unit_description(job: &Job) -> String {
    match (job.source.kind, &job.source.engine) {
        (SourceKind::SufficientStats, _) => "stay where the sufficient statistics were computed".to_string(),
        (SourceKind::Parquet, Engine::Embedded) => {
            "are in units.parquet, and each unit's allocation in allocation.parquet, beside it".to_string()
        }
        (SourceKind::Parquet, Engine::Spark { output: Some(output), .. }) => format!(
            "are in Spark's part files under {} (units/ and allocation/ of this job, date and experiment; manifest.json lists them)",
            display_url(output)
        ),
        (SourceKind::Parquet, Engine::Spark { output: None, .. }) => {
            "stayed on the Spark cluster (no `spark_output` was set)".to_string()
        }
    }
}

/// How the report names what computed its statistics.
fn engine_description(job: &Job) -> String {
    match (job.source.kind, &job.source.engine) {
        (SourceKind::SufficientStats, _) => "sufficient statistics computed elsewhere (`abreport sql`)".to_string(),
        (SourceKind::Parquet, Engine::Embedded) => "abreport (embedded engine)".to_string(),
        (SourceKind::Parquet, Engine::Spark { remote, .. }) => match SparkRemote::parse(remote) {
            Ok(remote) => format!("Spark at {}", remote.display_addr()),
            Err(_) => "Spark".to_string(),
        },
    }
}

#[cfg(test)]
mod properties;
#[cfg(test)]
mod snapshot;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::sample_result;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).expect("a date")
    }

    fn dates(points: &[crate::results::TrendPoint]) -> Vec<NaiveDate> {
        points.iter().map(|p| p.report_date).collect()
    }

    #[test]
    fn a_run_shows_the_kept_points_before_its_date_and_returns_the_history_with_its_own() {
        let mut kept = ExperimentHistory::new("checkout-redesign");
        for d in [10, 11, 13] {
            kept.upsert(sample_result().trend_point(day(d)).expect("a point"));
        }
        // A re-run of the 11th, with another number than the kept point of that date.
        let mut result = sample_result();
        result.variants[0].units = 7;
        let history = tell_story(&mut result, Some(&kept), day(11)).expect("an ok result adds a point");
        assert_eq!(dates(&result.trend), vec![day(10), day(11)], "later days are not shown");
        assert_eq!(result.trend[1].units[0].units, 7, "today's point is this run's");
        assert_eq!(dates(&history.points), vec![day(10), day(11), day(13)], "later days are kept");
        assert_eq!(history.points[1].units[0].units, 7, "the date's point is replaced");
    }

    #[test]
    fn a_failed_experiment_shows_no_story_and_keeps_nothing() {
        let mut result = sample_result();
        result.status = Status::Failed;
        assert!(tell_story(&mut result, None, day(11)).is_none());
        assert!(result.trend.is_empty());
        let mut fresh = sample_result();
        let history = tell_story(&mut fresh, None, day(11)).expect("a point");
        assert_eq!((history.experiment.as_str(), dates(&fresh.trend)), ("checkout-redesign", vec![day(11)]));
    }
}
