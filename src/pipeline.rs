//! One run of one job on one report date, stage after stage:
//!
//! ```text
//! list partitions -> read exposures -> read events -> allocate        (read.rs, aggregate::fold)
//!   -> per experiment: aggregate -> analyze -> decide -> render -> export
//! ```
//!
//! Both `abreport run` and the scheduler call [`run`]. It returns every output in memory and
//! writes nothing: publishing is the caller's (export::write_dir, deliver), after a last
//! deadline check, so a run that misses its SLA publishes nothing.

mod read;

use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Instant;

use chrono::NaiveDate;
use serde_json::json;

use crate::aggregate::{self, Aggregator, EventTotals, ExperimentAllocation, ExperimentInput, Spec};
use crate::analyze::{self, Design, ExperimentData};
use crate::config::{Experiment, Job};
use crate::decide;
use crate::export::{self, ExperimentExports, ExperimentOutputs};
use crate::render::{Renderer, RunFacts};
use crate::results::{ExperimentResult, ResultsFile, SCHEMA_VERSION, Status};
use crate::runlog::{Deadline, RunLog};
use crate::source::{Dataset, Source};

use crate::store::display_url;

mod error;
pub use error::RunError;
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

    // Every request to the source gets a timeout and retries bounded by the deadline.
    let source = Source::open_counting(&job.source.url, deadline, request.source_retries.clone())?;
    let plan = read::list(&source, &spec, &deadline, log).await?;

    let reader = read::Reader { source: &source, plan: &plan, progress: request.progress, deadline: &deadline, log };
    let aggregator = Arc::new(Aggregator::new(spec.clone()));
    let exposure_stats = reader.exposures(job, &aggregator).await?;
    let event_stats = reader.events(job, &aggregator).await?;
    let source_retries = read::retries(&source, log);
    let (allocation, mut totals) = read::allocate(aggregator, log)?;

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
        timings: log.timings(),
        elapsed_seconds: 0.0,
        sla_seconds: job.sla.as_secs_f64(),
    };

    // Each experiment is analysed, rendered and encoded on its own, on every core. Accumulators
    // are moved into their experiment's work and freed with it; experiments not started yet
    // come last, with none.
    let mut work: Vec<(&Experiment, Option<usize>, EventTotals)> = Vec::new();
    for (i, experiment) in in_window.iter().enumerate() {
        work.push((experiment, Some(i), std::mem::take(&mut totals[i])));
    }
    work.extend(not_started.iter().map(|experiment| (*experiment, None, EventTotals::default())));
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
    let done = tokio::task::block_in_place(|| {
        crate::threads::each(work, |(experiment, index, totals)| context.experiment(experiment, index, totals))
    });
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
        let spec = index.map(|i| &self.spec.experiments[i]);
        let input = ExperimentInput { job, experiment, spec, allocation: experiment_allocation, totals: &totals };
        let aggregates = aggregate::experiment(&input);
        // The per-unit accumulators are values now; only the counts are still needed, so the
        // accumulators are freed before the statistics run.
        let EventTotals { counted_events, invalid_values, .. } = totals;
        drop(totals);
        let counts = experiment_allocation.counts(experiment.start);
        let analysis = analyze::analyze(&ExperimentData {
            job,
            experiment,
            report_date,
            allocation: &counts,
            counted_events,
            invalid_values,
            metrics: &aggregates.metrics,
            missing_partitions: self.missing_partitions,
            breakdowns: &aggregates.breakdowns,
            design: self.designs.iter().find(|d| d.experiment == experiment.id),
        });
        let units = experiment_allocation.units.len();
        let source = display_url(&job.source.url);
        let no_data = decide::missing_data(&experiment.id, experiment.start, report_date, units, &source);
        let result = decide::decide(analysis.result, no_data);
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
            allocation: self.allocation,
            experiment_allocation,
            metric_names: experiment.metrics.iter().map(|m| job.metrics[m.metric].name.as_str()).collect(),
            values: aggregates.values,
            covariates: aggregates.covariates,
        })?;
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
        let new_design = analysis.new_design.filter(|_| result.status == Status::Ok);
        Ok((result, outputs, new_design))
    }
}

#[cfg(test)]
mod properties;
#[cfg(test)]
mod snapshot;
