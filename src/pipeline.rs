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
use std::time::Instant;

use arrow::array::ArrayRef;
use chrono::NaiveDate;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use crate::aggregate::{self, Aggregator, EventTotals, ExperimentAllocation, Spec};
use crate::analyze::{self, ExperimentData};
use crate::config::{Experiment, Job};
use crate::decide;
use crate::export::{self, ExperimentOutputs};
use crate::render::{RenderError, Renderer, RunFacts};
use crate::results::{Decision, ExperimentResult, Recommendation, ResultsFile, SCHEMA_VERSION, Status};
use crate::runlog::{Deadline, RunLog, SlaExceeded};
use crate::source::{ColumnSpec, DataFile, Dataset, Expect, ScanPlan, ScanStats, Source, SourceError};

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
}

/// Everything a run produced, in memory.
pub struct RunOutput {
    pub results: Vec<ExperimentResult>,
    pub outputs: Vec<ExperimentOutputs>,
    pub facts: RunFacts,
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

fn columns(specs: &[(&str, Expect)]) -> Arc<[ColumnSpec]> {
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
        let concurrency = std::thread::available_parallelism().map_or(2, |n| n.get()).max(2);
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
    let (in_window, not_started): (Vec<&Experiment>, Vec<&Experiment>) =
        selected.into_iter().partition(|e| e.start <= report_date);
    let spec = Arc::new(Spec::new(job, &in_window, report_date));

    // List the partitions of every date any experiment's window covers.
    let started = Instant::now();
    let source = Source::open(&job.source.url)?;
    let plan = match spec.first_date() {
        Some(first) => {
            let dates: Vec<NaiveDate> = first.iter_days().take_while(|d| *d <= report_date).collect();
            deadline
                .within("list", source.plan(&[(Dataset::Exposures, dates.clone()), (Dataset::Events, dates)]))
                .await??
        }
        None => ScanPlan::default(),
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
    let names = &job.source.columns;
    let exposure_columns = columns(&[
        (&names.experiment_id, Expect::Text),
        (&names.variant, Expect::Text),
        (&names.unit_id, Expect::UnitId),
        (&names.exposure_ts, Expect::Timestamp),
    ]);
    let fold = aggregator.clone();
    let exposure_stats = reader
        .read(Dataset::Exposures, exposure_columns, move |file, columns| fold.fold_exposures(file.date, columns))
        .await?;

    let event_columns = columns(&[
        (&names.unit_id, Expect::UnitId),
        (&names.event, Expect::Text),
        (&names.value, Expect::Number),
        (&names.event_ts, Expect::Timestamp),
    ]);
    let fold = aggregator.clone();
    let event_stats = reader.read(Dataset::Events, event_columns, move |_, columns| fold.fold_events(columns)).await?;
    let started = Instant::now();
    let (allocation, mut totals) = aggregator.finish();
    drop(aggregator);
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

    let mut results = Vec::new();
    let mut outputs = Vec::new();
    let empty_allocation =
        ExperimentAllocation { variants: Vec::new(), n_configured: 0, units: Vec::new(), exposure_rows: 0 };
    let experiments =
        in_window.iter().enumerate().map(|(i, e)| (*e, Some(i))).chain(not_started.iter().map(|e| (*e, None)));
    for (experiment, index) in experiments {
        let started = Instant::now();
        // Each experiment's accumulators are taken (and freed) as soon as it is done.
        let (experiment_allocation, experiment_totals) = match index {
            Some(i) => (&allocation.experiments[i], std::mem::take(&mut totals[i])),
            None => (&empty_allocation, EventTotals::default()),
        };
        let plans = index.map(|i| spec.experiments[i].metrics.clone()).unwrap_or_default();
        let values: Vec<aggregate::MetricValues> =
            plans.iter().map(|p| aggregate::metric_values(p, &experiment_totals)).collect();
        let variant_of: Vec<u8> = experiment_allocation.analyzable().map(|u| u.variant).collect();
        let summaries: Vec<aggregate::VariantSummaries> =
            values.iter().map(|v| aggregate::summarize(v, &variant_of, experiment.variants.len())).collect();
        let data = ExperimentData {
            job,
            experiment,
            report_date,
            allocation: experiment_allocation,
            totals: &experiment_totals,
            summaries: &summaries,
            missing_partitions: &plan.missing,
        };
        let mut result = analyze::analyze(&data);
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
        deadline.check("analyze")?;

        let encode_started = Instant::now();
        facts.timings = log.timings();
        facts.elapsed_seconds = request.started.elapsed().as_secs_f64();
        let (html, markdown) = renderer.report(&result, &facts)?;
        let results_file = ResultsFile {
            schema_version: SCHEMA_VERSION,
            job: job.name.clone(),
            report_date,
            generated_at: generated_at.clone(),
            abreport_version: env!("CARGO_PKG_VERSION").to_string(),
            experiments: vec![result.clone()],
        };
        let metric_names: Vec<&str> = experiment.metrics.iter().map(|m| job.metrics[m.metric].name.as_str()).collect();
        let mut files = vec![
            export::text_file("report.html", html),
            export::text_file("report.md", markdown),
            export::results_json(&results_file)?,
            export::results_parquet(&report_date.to_string(), &result)?,
            export::allocation_parquet(&allocation, experiment_allocation)?,
            export::units_parquet(&allocation, experiment_allocation, &metric_names, &values)?,
        ];
        log.info(
            "export",
            Some(&experiment.id),
            "reports and exports encoded",
            json!({ "seconds": encode_started.elapsed().as_secs_f64() }),
        );
        files.push(export::text_file("run.log.jsonl", log.jsonl_for(&experiment.id)));
        outputs.push(export::with_manifest(&results_file, &result, &experiment.output_dir, files)?);
        results.push(result);
        deadline.check("render and export")?;
    }
    facts.timings = log.timings();
    facts.elapsed_seconds = request.started.elapsed().as_secs_f64();
    Ok(RunOutput { results, outputs, facts })
}

/// A URL for reports and messages: no credentials, no query string.
pub fn display_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_password(None);
            let _ = parsed.set_username("");
            parsed.set_query(None);
            parsed.to_string()
        }
        Err(_) => url.to_string(),
    }
}
