//! One recorded run, the lifecycle that `abreport run`, `abreport serve` and `abreport
//! deliver` share: ledger check -> [`pipeline::run`] -> publish (`--out`, then deliveries
//! inside the SLA budget) -> ledger record -> failure notice. `app` only parses subcommands
//! and maps outcomes to exit codes; this module decides what a run writes and records.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use chrono::{DateTime, NaiveDate, Utc};

use crate::config::Job;
use crate::deliver::{self, DeliveryReport, outbox};
use crate::export;
use crate::ledger::{self, DeliveryStatus, ExperimentOutcome, Ledger, RunRecord, Trigger};
use crate::notice;
use crate::outcome::{Exit, RunStatus, exit_for, status_for};
use crate::pipeline::{self, RunError, RunOutput, RunRequest};
use crate::render::bytes;
use crate::results::Status;
use crate::runlog::{Deadline, RunLog};

/// How a run is made, beyond the job and the report date. `abreport run`, `demo` and the
/// scheduler differ only in these settings.
#[derive(Clone, Copy)]
pub struct RunSettings<'a> {
    /// Only this experiment of the job.
    pub experiment: Option<&'a str>,
    /// Local folder for the outputs (`<out>/<experiment>/…`).
    pub out: &'a Path,
    /// Deliver to the job's destinations.
    pub deliver: bool,
    /// Run and send even when the ledger says this job and date were delivered.
    pub force: bool,
    /// Where the run is recorded (none for the demo).
    pub ledger: Option<&'a Ledger>,
    /// What started the run.
    pub trigger: Trigger,
    /// The scheduled fire time this run is for.
    pub fire_time: Option<DateTime<Utc>>,
    /// Draw a progress bar on a terminal.
    pub progress: bool,
    /// Print the per-experiment summary on stdout.
    pub print_summary: bool,
    /// Send a failure notice to the job's admin for `source_unavailable`, `sla_missed` and
    /// `failed` outcomes.
    pub notify: bool,
    /// Read the whole window, ignoring the job's checkpoint (a new one is written all the
    /// same).
    pub full: bool,
}

/// The end of [`run_recorded`].
pub enum Ran {
    /// The ledger says this job and date were delivered already: nothing ran or was sent.
    AlreadyDelivered(RunRecord),
    /// The run happened.
    Finished {
        /// The exit code of the outcome.
        exit: Exit,
        /// The record as written to the ledger.
        record: RunRecord,
        /// Every error, in order, each a full sentence.
        errors: Vec<String>,
    },
}

/// Runs `job` for `report_date`, publishes and delivers, and records the run in the ledger:
/// the one code path of `abreport run` and of every scheduled run.
///
/// Each destination is sent only the experiments it has not received of this date, over all
/// the date's runs (the ledger record's `delivered`, which every run carries on, whatever its
/// flags or outcome); `force` sends everything again. A run with nothing left to send is not
/// made (by hand: unless it sends nothing anyway, `--no-deliver` or no destination, and only
/// rewrites the local outputs).
pub async fn run_recorded(job: &Job, report_date: NaiveDate, settings: &RunSettings<'_>) -> Ran {
    let started = Instant::now();
    let mut record = RunRecord::start(&job.name, report_date, settings.trigger, job.sla.as_secs_f64());
    record.fire_time = settings.fire_time;
    record.experiment = settings.experiment.map(str::to_string);
    record.deliver = settings.deliver;
    record.output_dir = Some(settings.out.display().to_string());
    let mut errors = Vec::new();

    let previous = match settings.ledger {
        None => None,
        Some(ledger) => match ledger.read(&job.name, report_date).await {
            Ok(previous) => previous,
            Err(e) => {
                // Without the ledger there is no knowing whether this date was sent already;
                // not sending is the safe side. Nor is a record written: it would replace the
                // one that could not be read, and with it what the date's runs delivered.
                errors.push(format!("{e}; the run was not started"));
                let unrecorded = RunSettings { ledger: None, ..*settings };
                return finish(job, &unrecorded, record, Exit::DeliveryFailed, RunStatus::Failed, errors, started)
                    .await;
            }
        },
    };
    // What each destination received of this date before: kept in this run's record from
    // its start, so that no outcome of this run forgets it.
    let history = previous.as_ref().map(RunRecord::history).unwrap_or_default();
    let owed = owed(job, settings, &history);
    record.delivered = Some(history);
    if let Some(previous) = previous {
        let sends = settings.deliver && !job.deliveries.is_empty();
        let skip = if sends {
            // Nothing left to send to any destination.
            owed.iter().all(Vec::is_empty)
        } else {
            // A run that sends nothing only rewrites the local outputs: harmless by hand, and
            // how settings are tried out; a scheduled one of a done date is skipped.
            settings.trigger != Trigger::Manual && previous.fully_delivered(job)
        };
        if skip && !settings.force {
            return Ran::AlreadyDelivered(previous);
        }
        record.attempt = previous.attempt + 1;
    }
    if let Some(ledger) = settings.ledger
        && let Err(e) = ledger.write(&record).await
    {
        tracing::warn!(job = %job.name, %report_date, error = %e, "could not record the run's start");
    }
    // Runs killed half-way leave temporary files that nothing else would remove.
    let mut removed = deliver::remove_stale_temporaries(job, settings.out);
    if let Some(ledger) = settings.ledger {
        removed += ledger.remove_stale(&job.name, job.sla + deliver::STALE_AFTER_SLA);
    }
    if removed.files > 0 {
        tracing::info!(job = %job.name, files = removed.files, bytes = removed.bytes, "removed stale temporary files of killed runs");
    }

    let log = RunLog::new(started);
    let designs = match settings.ledger {
        Some(ledger) => {
            let ids: Vec<&str> = job.experiments.iter().map(|e| e.id.as_str()).collect();
            ledger.designs(&job.name, &ids).await.unwrap_or_else(|e| {
                // Without the kept designs the tuning is made again from today's data: the
                // intervals stay valid per run; say so, as a run cannot fix the store.
                log.warn("design", None, format!("{e}; designs are made again"), serde_json::json!({}));
                Vec::new()
            })
        }
        None => Vec::new(),
    };
    let (mut histories, mut unreadable) = (Vec::new(), Vec::new());
    if let Some(ledger) = settings.ledger {
        // Only the experiments this run analyses, all at once (an object-store ledger answers
        // each in a round trip).
        let analysed = job.experiments.iter().filter(|e| settings.experiment.is_none_or(|id| id == e.id));
        let read = futures::future::join_all(
            analysed.map(|experiment| async move { (experiment, ledger.history(&job.name, &experiment.id).await) }),
        )
        .await;
        for (experiment, kept) in read {
            match kept {
                Ok(history) => histories.extend(history),
                Err(e) => {
                    // The report then tells only this run's point, and the kept story is left
                    // as it is rather than replaced by that one point.
                    log.warn(
                        "history",
                        Some(&experiment.id),
                        format!("{e}; the trend shows only this run, and the history is not updated"),
                        serde_json::json!({}),
                    );
                    unreadable.push(experiment.id.clone());
                }
            }
        }
    }
    let (checkpoint, staging) = match settings.ledger {
        // An ad hoc run of one experiment neither uses nor replaces the job's checkpoint.
        Some(ledger) if settings.experiment.is_none() && pipeline::uses_checkpoint(job) => {
            let (checkpointing, staging) = read_checkpoint(ledger, job, settings.full, &log).await;
            (Some(checkpointing), Some(staging))
        }
        _ => (None, None),
    };
    let (outputs_ready, staged_outputs) = OutputStaging::start(settings.out);
    let mut request = RunRequest {
        job,
        report_date,
        experiment: settings.experiment,
        started,
        progress: settings.progress,
        designs: &designs,
        histories: &histories,
        source_retries: Arc::default(),
        checkpoint,
        outputs_ready: Some(outputs_ready),
    };
    let ran = pipeline::run(&mut request, &log).await;
    // The senders go with the request: a run that failed before making a checkpoint or an
    // experiment's outputs must not leave their staging waiting for them.
    request.checkpoint = None;
    request.outputs_ready = None;
    let staged_outputs = staged_outputs.finished().await;
    let output = match ran {
        Ok(output) => output,
        Err(e) => {
            record.stages = log.timings();
            record.source_retries = request.source_retries.load(Ordering::Relaxed);
            if let RunError::Sla(sla) = &e {
                record.sla_missed_stage = Some(sla.stage.clone());
            }
            let exit = exit_for(&e);
            let status = status_for(exit, Some(&e));
            errors.push(e.to_string());
            if let Some(staging) = staging {
                staging.discard().await;
            }
            discard_outputs(staged_outputs);
            return finish(job, settings, record, exit, status, errors, started).await;
        }
    };
    record.source_retries = output.source_retries;
    if let Some(ledger) = settings.ledger {
        for design in &output.new_designs {
            if let Err(e) = ledger.write_design(&job.name, design).await {
                tracing::warn!(job = %job.name, experiment = %design.experiment, error = %e, "could not keep the experiment's design");
            }
        }
    }
    record.experiments = output
        .results
        .iter()
        .map(|r| ExperimentOutcome {
            id: r.id.clone(),
            status: if r.status == Status::Failed { "failed" } else { "ok" }.to_string(),
            recommendation: r.decision.recommendation.name().to_string(),
        })
        .collect();
    let deadline = Deadline::new(started, job.sla);
    let published_at = Instant::now();
    let published =
        publish(job, report_date, &output, staged_outputs, settings.out, settings.deliver, &owed, &deadline).await;
    log.stage_done(
        "publish",
        published_at.elapsed(),
        serde_json::json!({ "destinations": published.deliveries.len() }),
    );
    if let Some(staging) = staging {
        if published.exit == Exit::SlaExceeded {
            staging.discard().await;
        } else {
            staging.commit(&log).await;
        }
    }
    // The story is what abreport reported: only a published run adds its point.
    if let Some(ledger) = settings.ledger
        && published.exit != Exit::SlaExceeded
    {
        let kept = output.histories.iter().filter(|h| !unreadable.contains(&h.experiment));
        let written = futures::future::join_all(
            kept.map(|history| async move { (history, ledger.write_history(&job.name, history).await) }),
        )
        .await;
        for (history, outcome) in written {
            if let Err(e) = outcome {
                log.warn(
                    "history",
                    Some(&history.experiment),
                    format!("{e}; the next reports' trend will lack this day"),
                    serde_json::json!({}),
                );
            }
        }
    }
    record.stages = log.timings();
    for (status, attempted, delivered) in &published.received {
        record.redelivered(&status.key, &status.destination, attempted, delivered);
    }
    record.deliveries = published.deliveries;
    record.outbox = published.outbox.map(|dir| dir.display().to_string());
    record.sla_missed_stage = published.sla_stage;
    errors.extend(published.errors);
    if settings.print_summary && published.exit != Exit::SlaExceeded {
        print_summary(job, report_date, &output, &published.dirs);
    }
    let status = status_for(published.exit, None);
    finish(job, settings, record, published.exit, status, errors, started).await
}

/// The job's checkpoint for the run (a store that cannot be read is a warning, and the run
/// reads everything), and the staging of the next one.
async fn read_checkpoint(
    ledger: &Ledger,
    job: &Job,
    full: bool,
    log: &RunLog,
) -> (pipeline::Checkpointing, CheckpointStaging) {
    let location = ledger.checkpoint_location(&job.name);
    let previous = if full {
        None
    } else {
        ledger.read_checkpoint(&job.name).await.unwrap_or_else(|e| {
            log.warn(
                "checkpoint",
                None,
                format!("{e}; the run reads everything"),
                serde_json::json!({ "location": location }),
            );
            None
        })
    };
    let (encoded, staging) = CheckpointStaging::start(ledger, &job.name);
    (pipeline::Checkpointing { location, previous, full, encoded: Some(encoded) }, staging)
}

/// Each experiment's folder as written aside during the run, by folder name.
type StagedOutputs = HashMap<String, Result<export::StagedDir, export::ExportError>>;

/// The experiments' folders written aside under `--out` while the run goes on: each as soon as
/// its outputs are complete, on a thread of its own (mostly waiting for the disk), so that
/// publishing is renames. Nothing is published until [`publish`] commits them.
struct OutputStaging {
    written: std::thread::JoinHandle<StagedOutputs>,
}

impl OutputStaging {
    /// The sender the pipeline hands each experiment's outputs to, and their writer.
    fn start(out: &Path) -> (std::sync::mpsc::Sender<export::ExperimentOutputs>, Self) {
        let (ready, outputs) = std::sync::mpsc::channel::<export::ExperimentOutputs>();
        let out = out.to_path_buf();
        let written = std::thread::spawn(move || {
            outputs.into_iter().map(|outputs| (outputs.dir_name.clone(), export::stage_dir(&out, &outputs))).collect()
        });
        (ready, Self { written })
    }

    /// Every folder written aside, once the run has dropped its sender. A writer that panicked
    /// wrote none: publishing writes them then.
    async fn finished(self) -> StagedOutputs {
        tokio::task::block_in_place(|| self.written.join().unwrap_or_default())
    }
}

/// Removes the folders' staged files of a run that is not published.
fn discard_outputs(staged: StagedOutputs) {
    for staged in staged.into_values().flatten() {
        staged.discard();
    }
}

/// The next checkpoint's write, in the background from the moment the run has encoded it:
/// it is written aside while the experiments are analysed, and put in place only once the
/// outputs are published (a run that is not published leaves the checkpoint as it was).
struct CheckpointStaging {
    ledger: Ledger,
    job: String,
    /// The staged bytes' size and the time their write took, or why there are none.
    written: tokio::task::JoinHandle<Result<(usize, std::time::Duration), String>>,
}

impl CheckpointStaging {
    fn start(ledger: &Ledger, job: &str) -> (tokio::sync::oneshot::Sender<Vec<Vec<u8>>>, Self) {
        let (encoded, parts) = tokio::sync::oneshot::channel::<Vec<Vec<u8>>>();
        let (writer, name) = (ledger.clone(), job.to_string());
        let written = tokio::spawn(async move {
            let parts = parts.await.map_err(|_| "the run made no checkpoint".to_string())?;
            let (started, n_bytes) = (Instant::now(), parts.iter().map(Vec::len).sum::<usize>());
            writer.stage_checkpoint(&name, parts).await.map_err(|e| e.to_string())?;
            Ok((n_bytes, started.elapsed()))
        });
        (encoded, Self { ledger: ledger.clone(), job: job.to_string(), written })
    }

    /// Waits for the write aside; returns the ledger and job with its outcome.
    async fn finished(self) -> (Ledger, String, Result<(usize, std::time::Duration), String>) {
        let written = self.written.await.unwrap_or_else(|e| Err(format!("the checkpoint's write stopped: {e}")));
        (self.ledger, self.job, written)
    }

    /// Puts the staged checkpoint in place. A failed write is a warning: the run is done, and
    /// the next one reads everything.
    async fn commit(self, log: &RunLog) {
        let (ledger, job, written) = self.finished().await;
        let (ledger, job) = (&ledger, job.as_str());
        let location = ledger.checkpoint_location(job);
        let committed_at = Instant::now();
        let outcome = match written {
            Ok(staged) => ledger.commit_checkpoint(job).await.map(|()| staged).map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        match outcome {
            // The stage's time is what the run waited for; the write itself overlapped the
            // experiments.
            Ok((n_bytes, written)) => log.stage_done(
                "checkpoint write",
                committed_at.elapsed(),
                serde_json::json!({ "bytes": n_bytes, "location": location, "written_aside_seconds": written.as_secs_f64() }),
            ),
            Err(e) => {
                ledger.discard_staged_checkpoint(job).await;
                log.warn(
                    "checkpoint",
                    None,
                    format!("{e}; the next run reads everything"),
                    serde_json::json!({ "location": location }),
                );
            }
        }
    }

    /// Drops the staged checkpoint of a run that is not published.
    async fn discard(self) {
        let (ledger, job, written) = self.finished().await;
        if written.is_ok() {
            ledger.discard_staged_checkpoint(&job).await;
        }
    }
}

/// Completes `record`, writes it to the ledger and sends the failure notice it calls for.
async fn finish(
    job: &Job,
    settings: &RunSettings<'_>,
    mut record: RunRecord,
    mut exit: Exit,
    status: RunStatus,
    mut errors: Vec<String>,
    started: Instant,
) -> Ran {
    record.status = status;
    record.finished_at = Some(Utc::now());
    record.duration_seconds = Some((started.elapsed().as_secs_f64() * 1e3).round() / 1e3);
    if !errors.is_empty() {
        record.error = Some(errors.join("; "));
    }
    record.exit_code = exit as u8;
    if let Some(ledger) = settings.ledger
        && let Err(e) = ledger.write(&record).await
    {
        // A delivered run that is not recorded would be sent again by catch-up: say so, and
        // do not report success.
        errors.push(format!("{e}; a later scheduled run may send this date again"));
        if exit == Exit::Ok {
            exit = Exit::DeliveryFailed;
        }
    }
    if settings.notify && record.status.needs_notice() {
        notice::notify_failure(job, &record).await;
    }
    if record.status == RunStatus::Ok {
        notice::run_succeeded(job);
    }
    Ran::Finished { exit, record, errors }
}

/// What each destination of `job` is to receive in this run: the experiment ids of the run
/// (the one of `--experiment`, or all) that `history` does not show it received, or all of
/// them with `--force`. Parallel to `job.deliveries`; empty lists without `deliver`.
fn owed(job: &Job, settings: &RunSettings<'_>, history: &[ledger::Delivered]) -> Vec<Vec<String>> {
    let selected: Vec<&str> = match settings.experiment {
        Some(id) => vec![id],
        None => job.experiments.iter().map(|e| e.id.as_str()).collect(),
    };
    job.deliveries
        .iter()
        .map(|delivery| {
            if !settings.deliver {
                return Vec::new();
            }
            let received = ledger::received(history, delivery);
            selected
                .iter()
                .filter(|id| settings.force || !received.iter().any(|r| r == *id))
                .map(ToString::to_string)
                .collect()
        })
        .collect()
}

/// Where a run's outputs went, and how the run ends.
struct Published {
    /// Each experiment's folder under `--out`, in the order of the run's outputs (and
    /// results); `None` where writing it failed.
    dirs: Vec<Option<PathBuf>>,
    exit: Exit,
    deliveries: Vec<DeliveryStatus>,
    /// Each destination sent to: what it was to receive and what it received (experiment
    /// ids), for the ledger's history.
    received: Vec<(DeliveryStatus, Vec<String>, Vec<String>)>,
    /// The outbox entry where the outputs wait, when a destination failed and it was written.
    outbox: Option<PathBuf>,
    errors: Vec<String>,
    /// The stage during which the SLA passed.
    sla_stage: Option<String>,
}

/// Writes `output` under `out`, then delivers to each destination what it is `owed`
/// (parallel to `job.deliveries`), each under what is left of the deadline.
#[allow(clippy::too_many_arguments)]
async fn publish(
    job: &Job,
    report_date: NaiveDate,
    output: &RunOutput,
    mut staged: StagedOutputs,
    out: &Path,
    deliver: bool,
    owed: &[Vec<String>],
    deadline: &Deadline,
) -> Published {
    let mut published = Published {
        dirs: Vec::new(),
        exit: Exit::Ok,
        deliveries: Vec::new(),
        received: Vec::new(),
        outbox: None,
        errors: Vec::new(),
        sla_stage: None,
    };
    if let Err(e) = deadline.check("publish") {
        published.errors.push(e.to_string());
        published.sla_stage = Some(e.stage);
        published.exit = Exit::SlaExceeded;
        discard_outputs(staged);
        return published;
    }
    // Folders written aside during the run are renamed into place; any other (none, unless
    // the aside writer stopped) is written now, each on its own thread: most of a write is
    // waiting for the disk's fsync, and the folders do not depend on each other.
    let written = tokio::task::block_in_place(|| {
        let staged: Vec<_> = output.outputs.iter().map(|outputs| (outputs, staged.remove(&outputs.dir_name))).collect();
        crate::threads::each(staged, |(outputs, staged)| {
            Ok::<_, std::convert::Infallible>(match staged {
                Some(staged) => staged.and_then(export::StagedDir::commit),
                None => export::write_dir(out, outputs),
            })
        })
    });
    discard_outputs(staged);
    // A writer thread that panicked lost its folders: they stay `None`, not written.
    let mut by_position: Vec<Option<Result<PathBuf, export::ExportError>>> =
        std::iter::repeat_with(|| None).take(output.outputs.len()).collect();
    for (position, Ok(dir)) in written {
        by_position[position] = Some(dir);
    }
    for (written, outputs) in by_position.into_iter().zip(&output.outputs) {
        match written {
            Some(Ok(dir)) => published.dirs.push(Some(dir)),
            Some(Err(e)) => {
                published.dirs.push(None);
                published.errors.push(e.to_string());
                published.exit = Exit::DeliveryFailed;
            }
            None => {
                published.dirs.push(None);
                published.errors.push(format!("the outputs of `{}` were not written", outputs.dir_name));
                published.exit = Exit::DeliveryFailed;
            }
        }
    }
    if deliver {
        // A destination that received all this run's experiments before is not sent again.
        let mut pending = Vec::new();
        for (delivery, owed) in job.deliveries.iter().zip(owed) {
            let key = ledger::delivery_key(delivery);
            let destination = deliver::describe(delivery);
            if owed.is_empty() {
                tracing::info!(%destination, "already delivered by an earlier run of this date; not sent again");
                published.deliveries.push(DeliveryStatus { destination, key, ok: true, error: None, skipped: true });
                continue;
            }
            pending.push((key, delivery.clone(), owed.clone()));
        }
        if !pending.is_empty() {
            // The SLA covers delivery too: a destination gets what is left of the budget and,
            // when that runs out, waits in the outbox with the outputs instead of holding the
            // run (or the next scheduled one) hostage.
            let pending_job = Job { deliveries: pending.iter().map(|(_, d, _)| d.clone()).collect(), ..job.clone() };
            let owed: Vec<Vec<String>> = pending.iter().map(|(_, _, owed)| owed.clone()).collect();
            let reports =
                deliver::deliver_all_within(&pending_job, report_date, &output.outputs, &owed, Some(deadline)).await;
            if let Err(e) = deadline.check("deliver") {
                published.errors.push(e.to_string());
                published.sla_stage = Some(e.stage);
                published.exit = Exit::SlaExceeded;
            }
            for (i, report) in reports.iter().enumerate() {
                // deliver_all reports each destination in order, then possibly the outbox.
                let key = pending.get(i).map_or_else(|| "outbox".to_string(), |(key, ..)| key.clone());
                if !report.ok {
                    published.errors.push(format!(
                        "delivery to {} failed: {}",
                        report.destination,
                        report.error.as_deref().unwrap_or("unknown error")
                    ));
                    if published.exit != Exit::SlaExceeded {
                        published.exit = Exit::DeliveryFailed;
                    }
                }
                let status = DeliveryStatus {
                    destination: report.destination.clone(),
                    key,
                    ok: report.ok,
                    error: report.error.clone(),
                    skipped: false,
                };
                if let Some((_, _, attempted)) = pending.get(i) {
                    published.received.push((status.clone(), attempted.clone(), report.delivered.clone()));
                }
                published.deliveries.push(status);
            }
            published.outbox = reports.iter().filter(|r| !r.ok).find_map(|r| r.outbox.clone());
            if reports.iter().any(|r| !r.ok) && published.outbox.is_none() {
                published.errors.push(format!(
                    "the outputs could not be kept in the outbox, so nothing waits there; once the cause is fixed, \
                     `abreport run --job {} --date {report_date}` sends each destination only what it did not receive",
                    job.file.display()
                ));
            }
            if let Some(dir) = &published.outbox {
                published.errors.push(outbox::waiting_hint(dir, &job.file));
            }
        }
    }
    if published.exit == Exit::Ok && output.failed().next().is_some() {
        published.exit = Exit::NoAnalyzableData;
    }
    published
}

/// Prints each failed delivery and where its outputs wait; true when any failed.
pub(crate) fn print_failures(job: &Job, reports: &[DeliveryReport]) -> bool {
    let mut failed = false;
    for report in reports.iter().filter(|r| !r.ok) {
        failed = true;
        eprintln!(
            "error: delivery to {} failed: {}",
            report.destination,
            report.error.as_deref().unwrap_or("unknown error")
        );
    }
    if let Some(dir) = reports.iter().filter(|r| !r.ok).find_map(|r| r.outbox.as_ref()) {
        eprintln!("note: {}", outbox::waiting_hint(dir, &job.file));
    }
    failed
}

/// Mails the job's admin (when it has one); a failure to do so is a warning, not a new error.
pub(crate) async fn notify(job: &Job, subject: &str, body: &str) {
    if let Err(e) = deliver::notify_admin(job, subject, body).await {
        eprintln!("warning: {e}");
    }
}

/// The run in a few lines: one per experiment with its verdict and where its report is.
/// `dirs` is aligned with `output.results` (a run's results and outputs are in the same order).
fn print_summary(job: &Job, report_date: NaiveDate, output: &RunOutput, dirs: &[Option<PathBuf>]) {
    say!(
        "abreport: job `{}`, report date {report_date}: {} experiment(s) in {:.2} s (SLA {:.0} s), {} files / {} read{}",
        job.name,
        output.results.len(),
        output.facts.elapsed_seconds,
        job.sla.as_secs_f64(),
        output.facts.files_read,
        bytes(output.facts.bytes_read),
        output.facts.read_note.as_ref().map_or_else(String::new, |note| format!(" ({note})"))
    );
    for (result, dir) in output.results.iter().zip(dirs.iter().map(Option::as_ref).chain(std::iter::repeat(None))) {
        let decision = &result.decision;
        let verdict = match &decision.variant {
            Some(v) => format!("{} {v}", decision.recommendation.name().to_uppercase()),
            None => decision.recommendation.name().to_uppercase(),
        };
        let place = match dir {
            Some(dir) => dir.join("report.html").display().to_string(),
            None => "not written (see the error below)".to_string(),
        };
        say!("  {:<28} {:<24} {place}", result.id, verdict);
        if let Some(error) = &result.error {
            say!("  {:<28} error: {error}", "");
        }
    }
}

/// The ledger of `--ledger`, or `<out>/ledger`.
/// Sends what waits in the job's outbox (`deliver::retry_outbox`) and records each late
/// delivery in the run ledger, so that neither a re-run nor catch-up sends that date to that
/// destination again. Used by `abreport deliver --retry` and before every scheduled run.
pub async fn retry_outbox_recorded(job: &Job, ledger: Option<&Ledger>) -> Vec<DeliveryReport> {
    let Some(ledger) = ledger else {
        return deliver::retry_outbox(job, &|_, _| Vec::new()).await;
    };
    // What the ledger shows a destination received of the date (by a run made since the entry,
    // or a late delivery) is not sent again from the outbox.
    let mut history: HashMap<NaiveDate, Vec<ledger::Delivered>> = HashMap::new();
    for entry in outbox::list(job).unwrap_or_default() {
        let date = entry.state.report_date;
        match ledger.read(&job.name, date).await {
            Ok(record) => {
                history.insert(date, record.map(|r| r.history()).unwrap_or_default());
            }
            Err(e) => {
                // The entry then goes by what the outbox itself recorded (messages it sent).
                tracing::warn!(job = %job.name, report_date = %date, error = %e, "cannot read the ledger; the outbox entry is sent by its own record");
            }
        }
    }
    let received_before = |date: NaiveDate, key: &str| -> Vec<String> {
        history.get(&date).map(|h| ledger::received_by_key(h, &job.deliveries, key)).unwrap_or_default()
    };
    let reports = deliver::retry_outbox(job, &received_before).await;
    for report in reports.iter().filter(|r| r.ok || !r.delivered.is_empty()) {
        let (Some(key), Some(report_date)) = (&report.key, report.report_date) else {
            continue;
        };
        let recorded = match ledger.read(&job.name, report_date).await {
            Ok(Some(mut record)) => {
                let before = record.clone();
                let suffix = format!(" ({report_date} from the outbox)");
                let destination = report.destination.strip_suffix(&suffix).unwrap_or(&report.destination);
                if report.ok {
                    record.record_late_delivery(key, destination, &report.delivered);
                } else {
                    // Messages the server accepted before the failure were delivered all the same.
                    record.add_delivered(key, destination, &report.delivered);
                }
                if record == before { Ok(()) } else { ledger.write(&record).await }
            }
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = recorded {
            tracing::warn!(job = %job.name, %report_date, error = %e, "delivered from the outbox, but the ledger could not record it");
        }
    }
    reports
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(checkpoint, staged checkpoint)` of job `daily` in the ledger folder `dir`, as read back.
    fn files(dir: &Path) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        let folder = dir.join(".checkpoints/daily");
        (std::fs::read(folder.join("state.abrckpt")).ok(), std::fs::read(folder.join("state.abrckpt.staged")).ok())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_checkpoint_is_written_aside_and_replaces_the_old_one_only_when_committed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ledger = Ledger::open(&dir.path().display().to_string()).expect("ledger");
        ledger.stage_checkpoint("daily", vec![b"o".to_vec(), b"ld".to_vec()]).await.expect("staged");
        ledger.commit_checkpoint("daily").await.expect("committed");
        assert_eq!(files(dir.path()), (Some(b"old".to_vec()), None));

        // Encoded and written aside while the run goes on; in place once committed.
        let log = RunLog::default();
        let (encoded, staging) = CheckpointStaging::start(&ledger, "daily");
        encoded.send(vec![b"new".to_vec()]).expect("listening");
        staging.commit(&log).await;
        assert_eq!(files(dir.path()), (Some(b"new".to_vec()), None));
        assert!(log.timings().iter().any(|t| t.stage == "checkpoint write"));

        // A run that is not published: the checkpoint stays, and nothing is left aside.
        let (encoded, staging) = CheckpointStaging::start(&ledger, "daily");
        encoded.send(vec![b"unpublished".to_vec()]).expect("listening");
        staging.discard().await;
        assert_eq!(files(dir.path()), (Some(b"new".to_vec()), None));

        // A run that made none (it failed before encoding): a warning, the checkpoint stays.
        let log = RunLog::default();
        let (encoded, staging) = CheckpointStaging::start(&ledger, "daily");
        drop(encoded);
        staging.commit(&log).await;
        assert_eq!(files(dir.path()), (Some(b"new".to_vec()), None));
        let warnings = log.warnings();
        assert!(warnings.iter().any(|w| w.message.contains("no checkpoint")), "{warnings:?}");
    }
}
