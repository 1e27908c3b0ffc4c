//! The service loop of `abreport serve`.
//!
//! - Loads every job file of the folder; invalid ones are reported and skipped, jobs without a
//!   `schedule` are left to `abreport run`.
//! - Schedules each job with tokio-cron-scheduler: one one-shot job per next fire instant, which
//!   [`cron`](crate::cron) computes in the job's time zone (DST-correct), re-armed after every
//!   fire. A fire runs the job for the report date it implies through `app::run_recorded`, the
//!   same code path as `abreport run`.
//! - One run per job at a time (a per-job mutex that survives reloads): a fire while the
//!   previous run is going waits for it or is skipped (`--overlap`), and says which in the log.
//! - On start, catches up the fires of the last `--catch-up-days` days whose report date the
//!   ledger does not show as delivered, oldest first.
//! - SIGTERM/SIGINT: no new runs; running ones get `--grace-seconds` to finish. SIGHUP, or a
//!   changed job file (checked every two seconds), reloads the jobs without touching a run in
//!   progress (it finishes with the job as it was when it started).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, NaiveDate, Utc};
use sha2::{Digest, Sha256};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Mutex, MutexGuard, mpsc};
use tokio::task::JoinSet;
use tokio_cron_scheduler::{Job as CronJob, JobScheduler};
use uuid::Uuid;

use super::http::{self, Health};
use super::metrics::Metrics;
use crate::config::{self, Job};
use crate::cron::{self, Schedule};
use crate::deliver;
use crate::ledger::{Ledger, RunStatus, Trigger};
use crate::recorded::{self, Ran, RunSettings};

/// How often the job folder is checked for changed files.
const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// What a fire does while the job's previous run is still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Overlap {
    /// Wait for the running run, then run (at most one fire waits; a further one is skipped).
    Wait,
    /// Skip the fire.
    Skip,
}

/// Everything `abreport serve` was asked to do.
pub struct ServeSettings {
    /// Folder of job files.
    pub jobs: PathBuf,
    /// Local outputs: `<out>/<job>/<report_date>/<experiment>/…`.
    pub out: PathBuf,
    /// The run ledger.
    pub ledger: Ledger,
    /// Catch-up window in days (0: none).
    pub catch_up_days: u32,
    /// Address of `/healthz` and `/metrics`, if any.
    pub metrics_addr: Option<SocketAddr>,
    /// How long running runs may take to finish after SIGTERM/SIGINT.
    pub grace: Duration,
    /// The overlap policy.
    pub overlap: Overlap,
}

/// What every run task shares.
struct Shared {
    out: PathBuf,
    ledger: Ledger,
    overlap: Overlap,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

/// One job's serialisation: one run at a time, at most one fire waiting.
#[derive(Default)]
struct Gate {
    lock: Mutex<()>,
    waiting: AtomicBool,
}

/// A scheduled job.
struct Entry {
    job: Arc<Job>,
    schedule: Schedule,
    /// Digest of the checked job: a reload re-schedules the job only when it changed.
    fingerprint: String,
    /// Fires of older generations (armed before a reload) are ignored.
    generation: u64,
    /// The tokio-cron-scheduler one-shot job of the next fire.
    pending: Option<Uuid>,
}

/// A fire, sent by a tokio-cron-scheduler one-shot job to the service loop.
struct Fire {
    job: String,
    generation: u64,
    at: DateTime<Utc>,
}

struct Service {
    jobs_dir: PathBuf,
    scheduler: JobScheduler,
    fires: mpsc::UnboundedSender<Fire>,
    entries: BTreeMap<String, Entry>,
    gates: HashMap<String, Arc<Gate>>,
    generation: u64,
    folder_fingerprint: Option<String>,
    shared: Arc<Shared>,
    runs: JoinSet<()>,
}

/// Runs the service until SIGTERM or SIGINT. Fails only when it cannot start (a missing job
/// folder, a taken metrics port); everything after that is logged and survived.
pub async fn serve(settings: ServeSettings) -> anyhow::Result<()> {
    anyhow::ensure!(settings.jobs.is_dir(), "job folder `{}` does not exist", settings.jobs.display());
    let metrics = Arc::new(Metrics::default());
    let health = Arc::new(Health::default());
    if let Some(addr) = settings.metrics_addr {
        let listener = http::bind(addr).await.with_context(|| format!("cannot listen on {addr} (--metrics-addr)"))?;
        tracing::info!(addr = %listener.local_addr().unwrap_or(addr), "serving /healthz and /metrics");
        tokio::spawn(http::serve(listener, metrics.clone(), health.clone()));
    }
    let scheduler = JobScheduler::new().await.context("cannot create the scheduler")?;
    scheduler.start().await.context("cannot start the scheduler")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut hangup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;

    let (fires, mut fired) = mpsc::unbounded_channel();
    let mut service = Service {
        jobs_dir: settings.jobs,
        scheduler,
        fires,
        entries: BTreeMap::new(),
        gates: HashMap::new(),
        generation: 0,
        folder_fingerprint: None,
        shared: Arc::new(Shared {
            out: settings.out,
            ledger: settings.ledger,
            overlap: settings.overlap,
            metrics,
            health,
        }),
        runs: JoinSet::new(),
    };
    tracing::info!(
        jobs = %service.jobs_dir.display(),
        ledger = service.shared.ledger.location(),
        catch_up_days = settings.catch_up_days,
        "abreport serve starting"
    );
    service.reload("start").await;
    service.remove_stale_temporaries();
    service.catch_up(settings.catch_up_days).await;

    let mut watch = tokio::time::interval(WATCH_INTERVAL);
    watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let signal_name = loop {
        tokio::select! {
            Some(fire) = fired.recv() => service.fired(fire).await,
            _ = terminate.recv() => break "SIGTERM",
            _ = interrupt.recv() => break "SIGINT",
            _ = hangup.recv() => service.reload("SIGHUP").await,
            _ = watch.tick() => {
                if folder_fingerprint(&service.jobs_dir) != service.folder_fingerprint {
                    service.reload("a job file changed").await;
                }
            }
            Some(joined) = service.runs.join_next(), if !service.runs.is_empty() => {
                if let Err(error) = joined {
                    tracing::error!(%error, "a run task ended abnormally");
                }
            }
        }
    };
    service.stop(signal_name, settings.grace).await;
    Ok(())
}

impl Service {
    /// (Re)loads the job folder: new and changed jobs are (re)scheduled, removed ones dropped.
    /// A run in progress keeps the job it started with.
    async fn reload(&mut self, reason: &str) {
        self.folder_fingerprint = folder_fingerprint(&self.jobs_dir);
        let files = match config::load_all(&self.jobs_dir) {
            Ok(files) => files,
            Err(error) => {
                tracing::error!(reason, %error, "cannot load the job folder; the jobs already scheduled stay");
                return;
            }
        };
        let mut loaded: BTreeMap<String, (Job, Schedule, String)> = BTreeMap::new();
        let mut kept: HashSet<String> = HashSet::new();
        for (file, outcome) in files {
            let job = match outcome {
                Ok(job) => job,
                Err(error) => {
                    tracing::error!(file = %file.display(), %error, "invalid job file skipped");
                    // A file that was valid before keeps its last good version on the schedule.
                    for (name, entry) in &self.entries {
                        if entry.job.file == file {
                            tracing::warn!(job = %name, "the previous version of this job stays scheduled");
                            kept.insert(name.clone());
                        }
                    }
                    continue;
                }
            };
            let Some(expr) = job.schedule.clone() else {
                tracing::info!(job = %job.name, file = %file.display(), "no `schedule`: not scheduled (run it with `abreport run`)");
                continue;
            };
            let schedule = match Schedule::parse(&expr, job.timezone) {
                Ok(schedule) => schedule,
                Err(error) => {
                    tracing::error!(file = %file.display(), %error, "invalid job file skipped");
                    continue;
                }
            };
            if let Some((other, ..)) = loaded.get(&job.name) {
                tracing::error!(
                    job = %job.name,
                    file = %file.display(),
                    other = %other.file.display(),
                    "two job files use this name; this one is skipped"
                );
                continue;
            }
            let fingerprint = hex_digest(format!("{job:?}").as_bytes());
            loaded.insert(job.name.clone(), (job, schedule, fingerprint));
        }

        let gone: Vec<String> =
            self.entries.keys().filter(|name| !loaded.contains_key(*name) && !kept.contains(*name)).cloned().collect();
        for name in gone {
            if let Some(entry) = self.entries.remove(&name) {
                self.unarm(&entry).await;
                tracing::info!(job = %name, reason, "job removed from the schedule");
            }
        }
        for (name, (job, schedule, fingerprint)) in loaded {
            if self.entries.get(&name).is_some_and(|entry| entry.fingerprint == fingerprint) {
                continue;
            }
            match self.entries.remove(&name) {
                Some(old) => {
                    self.unarm(&old).await;
                    tracing::info!(job = %name, reason, "job changed: rescheduled (a run in progress finishes as it started)");
                }
                None => tracing::info!(
                    job = %name,
                    schedule = schedule.expr(),
                    timezone = %schedule.timezone(),
                    sla_seconds = job.sla.as_secs_f64(),
                    "job scheduled"
                ),
            }
            // A job folder mounted read-only (a container) makes the default outbox unwritable:
            // say so now, not at the first failed delivery.
            for problem in deliver::unwritable_folders(&job) {
                tracing::error!(job = %name, %problem, "a folder this job writes cannot be written");
            }
            self.generation += 1;
            let entry = Entry { job: Arc::new(job), schedule, fingerprint, generation: self.generation, pending: None };
            self.entries.insert(name.clone(), entry);
            self.arm(&name, Utc::now()).await;
        }
        self.shared.metrics.set_jobs(self.entries.len());
        tracing::info!(reason, jobs = self.entries.len(), "jobs loaded");
    }

    /// Schedules the first fire of `name` after `after` as a tokio-cron-scheduler one-shot.
    async fn arm(&mut self, name: &str, after: DateTime<Utc>) {
        let Some(entry) = self.entries.get_mut(name) else { return };
        let Some(at) = entry.schedule.next_after(after) else {
            tracing::warn!(job = %name, schedule = entry.schedule.expr(), "the schedule never fires again");
            return;
        };
        let (fires, job, generation) = (self.fires.clone(), name.to_string(), entry.generation);
        let instant = std::time::Instant::now() + (at - Utc::now()).to_std().unwrap_or_default();
        let one_shot = CronJob::new_one_shot_at_instant_async(instant, move |_, _| {
            let (fires, job) = (fires.clone(), job.clone());
            Box::pin(async move {
                // tokio-cron-scheduler keeps one-shot times in whole seconds and checks them every
                // 500 ms, so it can fire up to a second early: wait for the exact instant, which
                // the report date and the local-time guarantee depend on.
                if let Ok(early) = (at - Utc::now()).to_std() {
                    tokio::time::sleep(early).await;
                }
                let _ = fires.send(Fire { job, generation, at });
            })
        });
        let added = match one_shot {
            Ok(one_shot) => self.scheduler.add(one_shot).await,
            Err(error) => Err(error),
        };
        match added {
            Ok(id) => {
                entry.pending = Some(id);
                let tz = entry.job.timezone;
                tracing::info!(
                    job = %name,
                    next_fire = %at.to_rfc3339(),
                    next_fire_local = %at.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S %Z"),
                    report_date = %cron::report_date(at, tz),
                    "next run scheduled"
                );
            }
            Err(error) => tracing::error!(job = %name, %error, "cannot schedule the next run"),
        }
    }

    /// Removes the pending one-shot of `entry`. A fire already on its way is ignored by its
    /// generation.
    async fn unarm(&self, entry: &Entry) {
        if let Some(id) = entry.pending
            && let Err(error) = self.scheduler.remove(&id).await
        {
            tracing::debug!(job = %entry.job.name, %error, "pending fire already gone");
        }
    }

    /// A fire arrived: re-arm the job first (so the schedule goes on however long the run
    /// takes), then start the run.
    async fn fired(&mut self, fire: Fire) {
        let Some(entry) = self.entries.get_mut(&fire.job) else { return };
        if entry.generation != fire.generation {
            tracing::debug!(job = %fire.job, "fire of a replaced job version ignored");
            return;
        }
        entry.pending = None;
        let job = entry.job.clone();
        // From now, not from the fire: after a stall (a suspended machine) the fires missed in
        // between are not replayed one after another; catch-up on start is for missed runs.
        self.arm(&fire.job, Utc::now().max(fire.at)).await;
        let report_date = cron::report_date(fire.at, job.timezone);
        let (shared, gate) = (self.shared.clone(), self.gate(&fire.job));
        self.runs.spawn(async move {
            let Some(_turn) = take_turn(&shared, &job, &gate, report_date).await else { return };
            run_one(&shared, &job, report_date, Trigger::Schedule, Some(fire.at)).await;
        });
    }

    fn gate(&mut self, job: &str) -> Arc<Gate> {
        self.gates.entry(job.to_string()).or_default().clone()
    }

    /// Removes what runs killed half-way left under `<out>/<job>/<date>/<experiment>/`, for
    /// every date; each run cleans the rest of what it writes (`recorded::run_recorded`).
    fn remove_stale_temporaries(&self) {
        for (name, entry) in &self.entries {
            let root = self.shared.out.join(config::safe_path_component(name));
            let older_than = entry.job.sla + deliver::STALE_AFTER_SLA;
            let removed = crate::stale::remove(&root, 2, crate::stale::TempName::Dotted, older_than);
            if removed.files > 0 {
                tracing::info!(job = %name, files = removed.files, bytes = removed.bytes, "removed stale temporary files of killed runs");
            }
        }
    }

    /// Runs, once each and oldest first, the fires of the last `days` days whose report date
    /// the ledger does not show as delivered.
    async fn catch_up(&mut self, days: u32) {
        if days == 0 {
            return;
        }
        let now = Utc::now();
        let from = now - chrono::Duration::days(i64::from(days));
        let mut plans = Vec::new();
        for (name, entry) in &self.entries {
            let mut due: Vec<(NaiveDate, DateTime<Utc>)> = Vec::new();
            for fire in entry.schedule.first_fire_per_day(from, now) {
                let report_date = cron::report_date(fire, entry.job.timezone);
                if due.iter().any(|(date, _)| *date == report_date) {
                    continue;
                }
                match self.shared.ledger.read(name, report_date).await {
                    Ok(Some(record)) if record.fully_delivered(&entry.job) => {}
                    Ok(_) => due.push((report_date, fire)),
                    Err(error) => {
                        tracing::error!(job = %name, %report_date, %error, "catch-up: cannot read the ledger; date skipped");
                    }
                }
            }
            if due.is_empty() {
                tracing::info!(job = %name, days, "catch-up: no missed run");
                continue;
            }
            let dates: Vec<String> = due.iter().map(|(date, _)| date.to_string()).collect();
            tracing::info!(job = %name, dates = %dates.join(", "), "catch-up: running missed runs, oldest first");
            plans.push((entry.job.clone(), due));
        }
        for (job, due) in plans {
            let (shared, gate) = (self.shared.clone(), self.gate(&job.name));
            self.runs.spawn(async move {
                for (report_date, fire) in due {
                    let _turn = gate.lock.lock().await;
                    if shared.health.stopping.load(Ordering::Relaxed) {
                        tracing::info!(job = %job.name, %report_date, "catch-up run not started: the service is stopping");
                        return;
                    }
                    run_one(&shared, &job, report_date, Trigger::CatchUp, Some(fire)).await;
                }
            });
        }
    }

    /// Stops taking runs, lets the running ones finish within `grace`, then returns.
    async fn stop(mut self, signal_name: &str, grace: Duration) {
        self.shared.health.stopping.store(true, Ordering::Relaxed);
        if let Err(error) = self.scheduler.shutdown().await {
            tracing::warn!(%error, "scheduler shutdown");
        }
        tracing::info!(
            signal = signal_name,
            tasks = self.runs.len(),
            grace_seconds = grace.as_secs_f64(),
            "stopping: no new runs; the running ones may finish"
        );
        let runs = &mut self.runs;
        let drained = tokio::time::timeout(grace, async {
            while let Some(joined) = runs.join_next().await {
                if let Err(error) = joined {
                    tracing::error!(%error, "a run task ended abnormally");
                }
            }
        })
        .await;
        match drained {
            Ok(()) => tracing::info!("stopped"),
            Err(_) => {
                tracing::error!(
                    unfinished = self.runs.len(),
                    "grace period over: exiting with runs unfinished; their ledger records stay `running` and the next start catches them up"
                );
                self.runs.abort_all();
            }
        }
    }
}

/// Waits for the job's turn under the overlap policy. `None`: this fire does not run.
async fn take_turn<'a>(
    shared: &Shared,
    job: &Job,
    gate: &'a Gate,
    report_date: NaiveDate,
) -> Option<MutexGuard<'a, ()>> {
    let turn = match gate.lock.try_lock() {
        Ok(turn) => turn,
        Err(_) => match shared.overlap {
            Overlap::Skip => {
                tracing::info!(job = %job.name, %report_date, "fire skipped: the job's previous run is still going");
                shared.metrics.fire_skipped(&job.name);
                return None;
            }
            Overlap::Wait if gate.waiting.swap(true, Ordering::SeqCst) => {
                tracing::info!(
                    job = %job.name,
                    %report_date,
                    "fire skipped: the job's previous run is still going and another fire already waits"
                );
                shared.metrics.fire_skipped(&job.name);
                return None;
            }
            Overlap::Wait => {
                tracing::info!(job = %job.name, %report_date, "fire waits: the job's previous run is still going");
                let turn = gate.lock.lock().await;
                gate.waiting.store(false, Ordering::SeqCst);
                turn
            }
        },
    };
    if shared.health.stopping.load(Ordering::Relaxed) {
        tracing::info!(job = %job.name, %report_date, "run not started: the service is stopping");
        return None;
    }
    Some(turn)
}

/// Runs `job` for `report_date` (unless the ledger shows it delivered) and logs the outcome.
async fn run_one(
    shared: &Shared,
    job: &Job,
    report_date: NaiveDate,
    trigger: Trigger,
    fire_time: Option<DateTime<Utc>>,
) {
    let out = shared.out.join(deliver::run_prefix(&job.name, report_date));
    let settings = RunSettings {
        experiment: None,
        out: &out,
        deliver: true,
        force: false,
        ledger: Some(&shared.ledger),
        trigger,
        fire_time,
        progress: false,
        print_summary: false,
        notify: true,
        full: false,
    };
    // What an earlier run could not deliver goes first, from the outbox; a date it completes
    // is then recorded as delivered and not run again below.
    for report in recorded::retry_outbox_recorded(job, Some(&shared.ledger)).await {
        match &report.error {
            None => tracing::info!(job = %job.name, destination = %report.destination, "delivered from the outbox"),
            Some(error) => tracing::error!(
                job = %job.name,
                destination = %report.destination,
                %error,
                "delivery from the outbox failed; it stays there"
            ),
        }
    }
    shared.metrics.run_started(&job.name);
    match recorded::run_recorded(job, report_date, &settings).await {
        Ran::AlreadyDelivered(previous) => {
            shared.metrics.run_not_started(&job.name);
            tracing::info!(
                job = %job.name,
                %report_date,
                status = previous.status.name(),
                "skipped: this job and date were already delivered (`abreport run --force` sends them again)"
            );
        }
        Ran::Finished { record, errors, .. } => {
            shared.metrics.run_finished(&record);
            let seconds = record.duration_seconds.unwrap_or_default();
            if matches!(record.status, RunStatus::Ok | RunStatus::NoData) {
                tracing::info!(
                    job = %job.name,
                    %report_date,
                    status = record.status.name(),
                    attempt = record.attempt,
                    seconds,
                    source_retries = record.source_retries,
                    "run finished"
                );
            } else {
                tracing::error!(
                    job = %job.name,
                    %report_date,
                    status = record.status.name(),
                    attempt = record.attempt,
                    seconds,
                    stage = record.sla_missed_stage.as_deref().unwrap_or(""),
                    error = %errors.join("; "),
                    "run failed"
                );
            }
        }
    }
}

/// A digest of the job folder's `*.toml` files (names and contents), to notice edits.
fn folder_fingerprint(dir: &Path) -> Option<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    let mut hasher = Sha256::new();
    for file in files {
        hasher.update(file.to_string_lossy().as_bytes());
        hasher.update(std::fs::read(&file).unwrap_or_default());
        hasher.update([0u8]);
    }
    Some(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn hex_digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
