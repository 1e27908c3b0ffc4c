//! The run ledger: one JSON record per job and report date, `<ledger>/<job>/<report_date>.json`,
//! in a local folder or under any object-store URL.
//!
//! The ledger is what makes the service safe to restart: it says which dates were delivered
//! (so nothing is sent twice unless asked) and which were missed (so catch-up runs them). A
//! record is written when a run starts (`running`) and replaced when it ends. Writes are
//! atomic: object stores publish a PUT whole, and the local store writes a temporary file,
//! fsyncs it and renames it into place. This module reads and writes its own records and
//! nothing else.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::analyze::Design;
use crate::config::{Delivery, Job, safe_path_component};
pub use crate::outcome::RunStatus;
use crate::results::ExperimentHistory;
use crate::runlog::StageTiming;

/// The folder of experiment designs (sequential tuning and first verdict date) beside the
/// jobs' record folders; a job name never becomes it (`safe_path_component` keeps no leading
/// dot).
const DESIGNS: &str = ".designs";

/// The folder of the experiments' histories (what each published run reported, for the
/// reports' trend charts) beside the records: `<ledger>/.history/<job>/<experiment>.json`.
const HISTORY: &str = ".history";

/// The folder of the jobs' checkpoints (the per-unit state of the last run, for incremental
/// runs) beside the records: `<ledger>/.checkpoints/<job>/state.abrckpt`.
const CHECKPOINTS: &str = ".checkpoints";
/// Appended to a checkpoint's name while it is written aside, before its run is published.
const STAGED_SUFFIX: &str = ".staged";
const CHECKPOINT_FILE: &str = "state.abrckpt";

/// Version of the record format.
pub const SCHEMA_VERSION: u32 = 1;

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// `abreport run`.
    Manual,
    /// A scheduled fire of `abreport serve`.
    Schedule,
    /// A fire missed while the service was down, run when it started.
    CatchUp,
}

/// How one destination fared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryStatus {
    /// The destination in words (`dir /srv/reports`, `upload s3://bucket/prefix`).
    pub destination: String,
    /// Its [`delivery_key`], a digest of where the destination is: a re-run of the same date
    /// sends only to destinations whose key has no successful delivery yet.
    pub key: String,
    /// Whether the destination received the complete set.
    pub ok: bool,
    /// Why it did not.
    pub error: Option<String>,
    /// Not sent again in this run: an earlier attempt delivered it.
    #[serde(default)]
    pub skipped: bool,
}

/// What one destination has received of a job and date, over every run of that date.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivered {
    /// The destination in words, as when it last received something.
    pub destination: String,
    /// Its [`delivery_key`].
    pub key: String,
    /// The experiments (ids) whose outputs it received, in the order they first went.
    pub experiments: Vec<String>,
}

/// The digest identifying a destination in the ledger: `v2:` and 16 hex digits of the SHA-256
/// of a canonical JSON object (keys sorted) of what says *where* the outputs go, and nothing
/// about *how*: the kind, then the recipients of an email (sorted and without repeats, so
/// reordering them sends nothing again), the URL of an upload, the folder of a copy, the
/// name of the variable holding a chat webhook's URL (never the URL, a secret). The
/// digest, attachment limit and link base of an email change how a message looks, not who
/// has it, so changing them (or adding a field to [`Delivery`]) keeps every key and re-sends
/// nothing. The prefix names the formula: records written before it carry
/// [`legacy_delivery_key`]s, which [`received`] honours as well.
pub fn delivery_key(delivery: &Delivery) -> String {
    use serde_json::Value;
    let mut identity = std::collections::BTreeMap::new();
    match delivery {
        Delivery::Email { to, .. } => {
            let recipients: std::collections::BTreeSet<&String> = to.iter().collect();
            identity.insert("kind", Value::from("email"));
            identity.insert("to", recipients.into_iter().map(|r| Value::from(r.as_str())).collect());
        }
        Delivery::Upload { url } => {
            identity.insert("kind", Value::from("upload"));
            identity.insert("url", Value::from(url.as_str()));
        }
        Delivery::Dir { path } => {
            identity.insert("kind", Value::from("dir"));
            identity.insert("path", Value::from(path.to_string_lossy()));
        }
        // The variable's name stands for the channel: the URL it holds is a secret.
        Delivery::Chat { webhook_env, .. } => {
            identity.insert("kind", Value::from("chat"));
            identity.insert("webhook_env", Value::from(webhook_env.as_str()));
        }
    }
    let canonical = serde_json::to_string(&identity).expect("strings serialize");
    format!("v2:{}", short_digest(&canonical))
}

/// The key records written before [`delivery_key`]'s `v2:` formula carry: a digest of the
/// `Debug` text of the whole [`Delivery`], which any new field changed. Only read, never
/// written, so that upgrading abreport does not send delivered dates again.
fn legacy_delivery_key(delivery: &Delivery) -> String {
    short_digest(&format!("{delivery:?}"))
}

/// The first 8 bytes of the SHA-256 of `text`, in hex.
fn short_digest(text: &str) -> String {
    Sha256::digest(text.as_bytes())[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The experiments `delivery` received, according to `history`: under its [`delivery_key`]
/// or its [`legacy_delivery_key`] (a date delivered before the upgrade and completed after
/// it has both), in the order they first went.
pub fn received(history: &[Delivered], delivery: &Delivery) -> Vec<String> {
    let keys = [delivery_key(delivery), legacy_delivery_key(delivery)];
    let mut experiments: Vec<String> = Vec::new();
    for id in history.iter().filter(|d| keys.contains(&d.key)).flat_map(|d| &d.experiments) {
        if !experiments.contains(id) {
            experiments.push(id.clone());
        }
    }
    experiments
}

/// The experiments the destination recorded under `key` received, according to `history`: an
/// outbox entry names its destination by the key of when it was written, which may be a
/// legacy one; when one of `deliveries` has that key, either of its keys counts.
pub fn received_by_key(history: &[Delivered], deliveries: &[Delivery], key: &str) -> Vec<String> {
    match deliveries.iter().find(|d| delivery_key(d) == key || legacy_delivery_key(d) == key) {
        Some(delivery) => received(history, delivery),
        None => history.iter().find(|d| d.key == key).map_or_else(Vec::new, |d| d.experiments.clone()),
    }
}

/// One experiment's outcome, in brief.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentOutcome {
    /// The experiment's id.
    pub id: String,
    /// `ok` or `failed`, as in results.json.
    pub status: String,
    /// `promote`, `rollback`, `continue`, `pause` or `inconclusive`.
    pub recommendation: String,
}

/// One run of one job for one report date.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The job's name.
    pub job: String,
    /// The date reported on.
    pub report_date: NaiveDate,
    /// How the run ended, or `running`.
    pub status: RunStatus,
    /// What started it.
    pub trigger: Trigger,
    /// The scheduled fire time this run is for (serve only).
    pub fire_time: Option<DateTime<Utc>>,
    /// 1 for the first run of this job and date, then counting re-runs.
    pub attempt: u32,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// When it ended (none while running).
    pub finished_at: Option<DateTime<Utc>>,
    /// How long it took, from its start to its ledger record.
    pub duration_seconds: Option<f64>,
    /// The job's SLA.
    pub sla_seconds: f64,
    /// The stage that was running when the SLA passed.
    pub sla_missed_stage: Option<String>,
    /// Stage timings, in order.
    pub stages: Vec<StageTiming>,
    /// Where the outputs were written locally.
    pub output_dir: Option<String>,
    /// Only this experiment was run (`abreport run --experiment`).
    pub experiment: Option<String>,
    /// Whether the run was to deliver (false with `--no-deliver`).
    pub deliver: bool,
    /// Each experiment's outcome, in job order.
    pub experiments: Vec<ExperimentOutcome>,
    /// Each destination's outcome in this run, in job order.
    pub deliveries: Vec<DeliveryStatus>,
    /// What each destination has received of this date over all of its runs, this one
    /// included, late deliveries from the outbox too: kept by every later run, whatever its
    /// flags (`--no-deliver`, `--experiment`) or outcome, so that no run sends a destination an
    /// experiment it already received unless `--force` asks for it.
    /// Absent from records written before it existed: [`RunRecord::history`] then reads it
    /// from `deliveries`.
    #[serde(default)]
    pub delivered: Option<Vec<Delivered>>,
    /// The outbox entry where this run's outputs wait for the destinations that failed; none
    /// when nothing waits, or when writing the outbox failed too.
    #[serde(default)]
    pub outbox: Option<String>,
    /// Requests to the data source retried after transient errors.
    pub source_retries: u32,
    /// What went wrong, in words (no credentials: URLs are shown without them).
    pub error: Option<String>,
    /// The exit code `abreport run` returns for this outcome.
    pub exit_code: u8,
    /// The version that made the run.
    pub abreport_version: String,
}

impl RunRecord {
    /// A record for a run that starts now.
    pub fn start(job: &str, report_date: NaiveDate, trigger: Trigger, sla_seconds: f64) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            job: job.to_string(),
            report_date,
            status: RunStatus::Running,
            trigger,
            fire_time: None,
            attempt: 1,
            started_at: Utc::now(),
            finished_at: None,
            duration_seconds: None,
            sla_seconds,
            sla_missed_stage: None,
            stages: Vec::new(),
            output_dir: None,
            experiment: None,
            deliver: true,
            experiments: Vec::new(),
            deliveries: Vec::new(),
            delivered: Some(Vec::new()),
            outbox: None,
            source_retries: 0,
            error: None,
            exit_code: 0,
            abreport_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// True when nothing of `job` is owed for this date, so a scheduled run or catch-up skips
    /// it and only `abreport run --force` sends it again: every destination of the job has
    /// received every experiment of the job that had started by the date (over all the date's
    /// runs; an experiment added later with a later start does not make past dates owed). A job
    /// without destinations counts as done once a run of all its experiments ended `ok` or
    /// `no_data`.
    pub fn fully_delivered(&self, job: &Job) -> bool {
        if job.deliveries.is_empty() {
            return matches!(self.status, RunStatus::Ok | RunStatus::NoData)
                && self.deliver
                && self.experiment.is_none();
        }
        let history = self.history();
        job.deliveries.iter().all(|delivery| {
            let received = received(&history, delivery);
            job.experiments.iter().filter(|e| e.start <= self.report_date).all(|e| received.contains(&e.id))
        })
    }

    /// What each destination has received of this date ([`RunRecord::delivered`]). Records
    /// written before that field existed say it through their successful `deliveries`.
    pub fn history(&self) -> Vec<Delivered> {
        if let Some(delivered) = &self.delivered {
            return delivered.clone();
        }
        let experiments: Vec<String> = match &self.experiment {
            Some(id) => vec![id.clone()],
            None => self.experiments.iter().map(|e| e.id.clone()).collect(),
        };
        self.deliveries
            .iter()
            .filter(|d| d.ok && d.key != "outbox")
            .map(|d| Delivered {
                destination: d.destination.clone(),
                key: d.key.clone(),
                experiments: experiments.clone(),
            })
            .collect()
    }

    /// Adds to [`RunRecord::delivered`] that the destination `key` received `experiments`.
    pub fn add_delivered(&mut self, key: &str, destination: &str, experiments: &[String]) {
        if experiments.is_empty() {
            return;
        }
        let history = self.history();
        let delivered = self.delivered.insert(history);
        let entry = match delivered.iter().position(|d| d.key == key) {
            Some(i) => &mut delivered[i],
            None => {
                delivered.push(Delivered {
                    destination: destination.to_string(),
                    key: key.to_string(),
                    experiments: Vec::new(),
                });
                delivered.last_mut().expect("just pushed")
            }
        };
        entry.destination = destination.to_string();
        for experiment in experiments {
            if !entry.experiments.contains(experiment) {
                entry.experiments.push(experiment.clone());
            }
        }
    }

    /// Records a run's delivery to the destination `key`: it was sent `attempted` and received
    /// `delivered`. What it was sent and did not receive is no longer counted as received from
    /// an earlier run: only a `--force` run sends a destination what it had, and when that
    /// fails, a folder or bucket holds a half-replaced set, and the forced mail is still owed.
    pub fn redelivered(&mut self, key: &str, destination: &str, attempted: &[String], delivered: &[String]) {
        let lost: Vec<&String> = attempted.iter().filter(|id| !delivered.contains(id)).collect();
        if !lost.is_empty() {
            let history = self.history();
            let delivered = self.delivered.insert(history);
            for entry in delivered.iter_mut().filter(|d| d.key == key) {
                entry.experiments.retain(|id| !lost.contains(&id));
            }
            delivered.retain(|d| !d.experiments.is_empty());
        }
        self.add_delivered(key, destination, delivered);
    }

    /// Records that the destination `key` received `experiments` of this date later, from the
    /// outbox. When that was the last destination this run owed, a `delivery_failed` run becomes
    /// `ok` (or `no_data` when an experiment had none). Returns whether anything changed.
    pub fn record_late_delivery(&mut self, key: &str, destination: &str, experiments: &[String]) -> bool {
        let before = self.history();
        self.add_delivered(key, destination, experiments);
        let mut changed = self.history() != before;
        for delivery in self.deliveries.iter_mut().filter(|d| d.key == key && !d.ok) {
            delivery.ok = true;
            delivery.error = None;
            changed = true;
        }
        if changed
            && self.status == RunStatus::DeliveryFailed
            && self.deliveries.iter().all(|d| d.ok || d.key == "outbox")
        {
            let no_data = self.experiments.iter().any(|e| e.status == "failed");
            let (status, exit) = crate::outcome::delivered_late(no_data);
            self.status = status;
            self.exit_code = exit as u8;
            self.error = None;
        }
        changed
    }
}

/// Why the ledger could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The folder cannot be created or the URL is not a store.
    #[error("cannot open the run ledger `{location}`: {cause}")]
    Open { location: String, cause: String },
    /// A record or listing could not be read or parsed.
    #[error("cannot read the run ledger record `{key}`: {cause}")]
    Read { key: String, cause: String },
    /// A record could not be written.
    #[error("cannot write the run ledger record `{key}`: {cause}")]
    Write { key: String, cause: String },
}

/// The ledger of a service or of `abreport run`.
#[derive(Clone)]
pub struct Ledger {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    location: String,
    /// The folder of a local ledger (none for an object store).
    folder: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("location", &self.location).finish()
    }
}

impl Ledger {
    /// Opens the ledger at `location`: a folder (created when missing) or an object-store URL
    /// (`s3://bucket/prefix`, `gs://…`, `az://…`, `file:///…`).
    pub fn open(location: &str) -> Result<Self, LedgerError> {
        let open_error = |cause: String| LedgerError::Open { location: location.to_string(), cause };
        let folder = match url::Url::parse(location) {
            // A one-letter scheme is a Windows drive, not a URL.
            Ok(url) if url.scheme().len() > 1 && url.scheme() != "file" => None,
            Ok(url) if url.scheme() == "file" => {
                Some(url.to_file_path().map_err(|()| open_error("not a local path".into()))?)
            }
            _ => Some(std::path::PathBuf::from(location)),
        };
        let Some(folder) = folder else {
            let (store, prefix) = crate::store::open_writer(location).map_err(open_error)?;
            return Ok(Self { store, prefix, location: crate::store::display_url(location), folder: None });
        };
        std::fs::create_dir_all(&folder).map_err(|e| open_error(e.to_string()))?;
        // fsync before the rename: a record that says "delivered" must survive a power cut,
        // or a restart would send the same reports again.
        let store = object_store::local::LocalFileSystem::new_with_prefix(&folder)
            .map_err(|e| open_error(e.to_string()))?
            .with_fsync(true);
        Ok(Self {
            store: Arc::new(store),
            prefix: Path::default(),
            location: folder.display().to_string(),
            folder: Some(folder),
        })
    }

    /// Removes the staging files (`<record>#<n>`) that writes of a local ledger killed half-way
    /// left in `job`'s folders, when older than `older_than`. An object store publishes a PUT
    /// whole and leaves none.
    pub fn remove_stale(&self, job: &str, older_than: std::time::Duration) -> crate::stale::Removed {
        use crate::stale::{self, TempName};
        let Some(folder) = &self.folder else { return stale::Removed::default() };
        let job = safe_path_component(job);
        let mut removed = stale::remove(&folder.join(&job), 0, TempName::Staged, older_than);
        removed += stale::remove(&folder.join(DESIGNS).join(&job), 0, TempName::Staged, older_than);
        removed += stale::remove(&folder.join(CHECKPOINTS).join(&job), 0, TempName::Staged, older_than);
        removed += stale::remove(&folder.join(HISTORY).join(&job), 0, TempName::Staged, older_than);
        removed
    }

    /// Where the ledger is, for messages.
    pub fn location(&self) -> &str {
        &self.location
    }

    fn key(&self, job: &str, report_date: NaiveDate) -> Path {
        self.prefix.clone().join(safe_path_component(job)).join(format!("{report_date}.json"))
    }

    /// Where the design of `job`'s `experiment` is kept: beside the records, in a folder that
    /// listings of records skip.
    fn design_key(&self, job: &str, experiment: &str) -> Path {
        self.experiment_key(DESIGNS, job, experiment)
    }

    /// `<folder>/<job>/<experiment>.json`: where the ledger keeps one experiment's file of a
    /// kind (its design, its history), path-safe.
    fn experiment_key(&self, folder: &str, job: &str, experiment: &str) -> Path {
        self.prefix
            .clone()
            .join(folder)
            .join(safe_path_component(job))
            .join(format!("{}.json", safe_path_component(experiment)))
    }

    /// The designs earlier runs of `job` fixed for `experiments` (those that have one).
    pub async fn designs(&self, job: &str, experiments: &[&str]) -> Result<Vec<Design>, LedgerError> {
        let mut designs = Vec::new();
        for experiment in experiments {
            designs.extend(self.read_json(&self.design_key(job, experiment), "a design").await?);
        }
        Ok(designs)
    }

    /// Keeps a design for the next runs of `job`.
    pub async fn write_design(&self, job: &str, design: &Design) -> Result<(), LedgerError> {
        self.write_json(&self.design_key(job, &design.experiment), design).await
    }

    /// Where the history of `job`'s `experiment` is kept, beside its design.
    fn history_key(&self, job: &str, experiment: &str) -> Path {
        self.experiment_key(HISTORY, job, experiment)
    }

    /// The history earlier published runs of `job` kept for `experiment`, if any: one small
    /// read.
    pub async fn history(&self, job: &str, experiment: &str) -> Result<Option<ExperimentHistory>, LedgerError> {
        self.read_json(&self.history_key(job, experiment), "an experiment history").await
    }

    /// Replaces the history of its experiment for the next runs of `job`.
    pub async fn write_history(&self, job: &str, history: &ExperimentHistory) -> Result<(), LedgerError> {
        self.write_json(&self.history_key(job, &history.experiment), history).await
    }

    fn checkpoint_key(&self, job: &str) -> Path {
        self.checkpoint_folder(job).join(CHECKPOINT_FILE)
    }

    /// `.checkpoints/<job>`: where `job`'s checkpoint is, and the next one while it is staged.
    fn checkpoint_folder(&self, job: &str) -> Path {
        self.prefix.clone().join(CHECKPOINTS).join(safe_path_component(job))
    }

    /// Where `job`'s checkpoint is, for messages.
    pub fn checkpoint_location(&self, job: &str) -> String {
        format!("{}/{CHECKPOINTS}/{}/{CHECKPOINT_FILE}", self.location, safe_path_component(job))
    }

    /// The bytes of `job`'s checkpoint, or `None` when there is none.
    pub async fn read_checkpoint(&self, job: &str) -> Result<Option<bytes::Bytes>, LedgerError> {
        let key = self.checkpoint_key(job);
        let read_error = |cause: String| LedgerError::Read { key: key.to_string(), cause };
        match self.store.get(&key).await {
            Ok(result) => result.bytes().await.map(Some).map_err(|e| read_error(crate::store::describe_error(&e))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(read_error(crate::store::describe_error(&e))),
        }
    }

    /// Where a run writes `job`'s next checkpoint before it is published: beside the
    /// checkpoint, under a name no reader takes for it. One per job, so a run that died before
    /// publishing leaves at most one, which the next run overwrites.
    fn staged_checkpoint_key(&self, job: &str) -> Path {
        self.checkpoint_folder(job).join(format!("{CHECKPOINT_FILE}{STAGED_SUFFIX}"))
    }

    /// Writes `job`'s next checkpoint aside, whole, from `parts` whose concatenation it is
    /// (one PUT; in a folder a temporary file, fsynced and renamed): the checkpoint runs read
    /// is unchanged until [`Ledger::commit_checkpoint`].
    pub async fn stage_checkpoint(&self, job: &str, parts: Vec<Vec<u8>>) -> Result<(), LedgerError> {
        let key = self.staged_checkpoint_key(job);
        self.store
            .put(&key, parts.into_iter().map(bytes::Bytes::from).collect::<PutPayload>())
            .await
            .map(|_| ())
            .map_err(|e| LedgerError::Write { key: key.to_string(), cause: crate::store::describe_error(&e) })
    }

    /// Puts the staged checkpoint in place of `job`'s checkpoint: a rename in a folder (atomic);
    /// a server-side copy then a delete on an object store, where a reader sees the old or the
    /// new checkpoint whole, never a part.
    pub async fn commit_checkpoint(&self, job: &str) -> Result<(), LedgerError> {
        let (staged, key) = (self.staged_checkpoint_key(job), self.checkpoint_key(job));
        self.store
            .rename(&staged, &key)
            .await
            .map_err(|e| LedgerError::Write { key: key.to_string(), cause: crate::store::describe_error(&e) })
    }

    /// Removes a staged checkpoint the run will not publish (best effort: the next run's
    /// staging overwrites a leftover).
    pub async fn discard_staged_checkpoint(&self, job: &str) {
        let _ = self.store.delete(&self.staged_checkpoint_key(job)).await;
    }

    /// The record of `job` and `report_date`, if any.
    pub async fn read(&self, job: &str, report_date: NaiveDate) -> Result<Option<RunRecord>, LedgerError> {
        self.read_key(&self.key(job, report_date)).await
    }

    async fn read_key(&self, key: &Path) -> Result<Option<RunRecord>, LedgerError> {
        self.read_json(key, "a ledger record").await
    }

    /// The JSON object at `key` (`what` names it in errors), or `None` when there is none.
    async fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        key: &Path,
        what: &str,
    ) -> Result<Option<T>, LedgerError> {
        let read_error = |cause: String| LedgerError::Read { key: key.to_string(), cause };
        let bytes = match self.store.get(key).await {
            Ok(result) => result.bytes().await.map_err(|e| read_error(crate::store::describe_error(&e)))?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(read_error(crate::store::describe_error(&e))),
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| read_error(format!("not {what}: {e}")))
    }

    /// Writes (or replaces) the record of its job and date.
    pub async fn write(&self, record: &RunRecord) -> Result<(), LedgerError> {
        self.write_json(&self.key(&record.job, record.report_date), record).await
    }

    /// Puts `value` at `key` as pretty JSON, whole (atomic on every store).
    async fn write_json<T: Serialize>(&self, key: &Path, value: &T) -> Result<(), LedgerError> {
        let mut bytes = serde_json::to_vec_pretty(value).expect("ledger records and designs serialize");
        bytes.push(b'\n');
        self.store
            .put(key, PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|e| LedgerError::Write { key: key.to_string(), cause: crate::store::describe_error(&e) })
    }

    /// The last `last` records of each job (all jobs, or only `job`), newest report date
    /// first, jobs in name order.
    pub async fn recent(&self, job: Option<&str>, last: usize) -> Result<Vec<(String, Vec<RunRecord>)>, LedgerError> {
        let list_error =
            |e: object_store::Error| LedgerError::Read { key: self.location.clone(), cause: e.to_string() };
        let folders: Vec<Path> = match job {
            Some(job) => vec![self.prefix.clone().join(safe_path_component(job))],
            None => {
                let mut folders =
                    self.store.list_with_delimiter(Some(&self.prefix)).await.map_err(list_error)?.common_prefixes;
                folders.retain(|f| f.filename().is_none_or(|name| ![DESIGNS, CHECKPOINTS, HISTORY].contains(&name)));
                folders
            }
        };
        let mut jobs = Vec::new();
        for folder in folders {
            let metas: Vec<object_store::ObjectMeta> = match self.store.list(Some(&folder)).try_collect().await {
                Ok(metas) => metas,
                Err(object_store::Error::NotFound { .. }) => Vec::new(),
                Err(e) => return Err(list_error(e)),
            };
            let mut keys: Vec<Path> = metas
                .into_iter()
                .map(|m| m.location)
                .filter(|p| p.filename().is_some_and(|name| name.ends_with(".json") && !name.starts_with('.')))
                .collect();
            // Keys end in the ISO date, so name order is date order.
            keys.sort();
            let mut records = Vec::new();
            for key in keys.iter().rev().take(last) {
                if let Some(record) = self.read_key(key).await? {
                    records.push(record);
                }
            }
            if let Some(first) = records.first() {
                jobs.push((first.job.clone(), records));
            }
        }
        jobs.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(jobs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> NaiveDate {
        text.parse().expect("date")
    }

    fn record(job: &str, day: &str, status: RunStatus) -> RunRecord {
        RunRecord { status, ..RunRecord::start(job, date(day), Trigger::Schedule, 60.0) }
    }

    #[test]
    fn a_late_delivery_of_the_last_owed_destination_makes_the_date_delivered() {
        let status = |key: &str, ok: bool| DeliveryStatus {
            destination: format!("dest {key}"),
            key: key.into(),
            ok,
            error: (!ok).then(|| "refused".to_string()),
            skipped: false,
        };
        let mut r = record("daily", "2026-11-20", RunStatus::DeliveryFailed);
        r.exit_code = 5;
        r.error = Some("delivery to dest b failed: refused".into());
        r.deliveries = vec![status("a", true), status("b", false), status("c", false)];
        let x = ["x".to_string()];
        assert!(r.record_late_delivery("b", "dest b", &x));
        assert_eq!(r.status, RunStatus::DeliveryFailed, "c is still owed");
        assert!(!r.record_late_delivery("b", "dest b", &x), "nothing changes twice");
        assert!(r.record_late_delivery("c", "dest c", &x));
        assert_eq!((r.status, r.exit_code, r.error.as_deref()), (RunStatus::Ok, 0, None));
        assert!(!r.record_late_delivery("unknown", "dest", &[]));
    }

    #[tokio::test]
    async fn histories_are_kept_beside_the_records_and_not_listed_as_a_job() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = Ledger::open(&dir.path().join("ledger").display().to_string()).expect("opens");
        let mut history = ExperimentHistory::new("checkout/v2");
        history.upsert(crate::results::sample_result().trend_point(date("2026-11-14")).expect("a point"));
        assert_eq!(ledger.history("daily", "checkout/v2").await.expect("reads"), None);
        ledger.write_history("daily", &history).await.expect("writes");
        assert_eq!(ledger.history("daily", "checkout/v2").await.expect("reads"), Some(history));
        assert_eq!(ledger.history("daily", "other").await.expect("reads"), None);
        assert_eq!(ledger.history("weekly", "checkout/v2").await.expect("reads"), None, "per job");
        assert!(
            dir.path().join(format!("ledger/.history/daily/{}.json", safe_path_component("checkout/v2"))).is_file()
        );
        ledger.write(&record("daily", "2026-11-14", RunStatus::Ok)).await.expect("writes");
        let jobs: Vec<String> = ledger.recent(None, 5).await.expect("lists").into_iter().map(|(job, _)| job).collect();
        assert_eq!(jobs, vec!["daily".to_string()]);
    }

    #[tokio::test]
    async fn designs_are_kept_beside_the_records_and_not_listed_as_a_job() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ledger = Ledger::open(dir.path().join("ledger").to_str().expect("utf-8")).expect("opens");
        ledger.write(&record("daily", "2026-11-20", RunStatus::Ok)).await.expect("writes");
        let design = Design {
            experiment: "checkout/v2".into(),
            fingerprint: "0123456789abcdef".into(),
            designed_on: date("2026-11-14"),
            tuning_source: crate::results::TuningSource::Design,
            tuning: vec![48_000.0],
            expected_verdict_date: Some(date("2026-11-30")),
            quoted_on: Some(date("2026-11-20")),
        };
        assert_eq!(ledger.designs("daily", &["checkout/v2"]).await.expect("reads"), vec![]);
        ledger.write_design("daily", &design).await.expect("writes");
        assert_eq!(ledger.designs("daily", &["checkout/v2", "other"]).await.expect("reads"), vec![design.clone()]);
        assert_eq!(ledger.designs("weekly", &["checkout/v2"]).await.expect("reads"), vec![], "per job");
        // The experiment id became a safe file name, in the folder listings skip.
        assert!(
            dir.path().join(format!("ledger/.designs/daily/{}.json", safe_path_component("checkout/v2"))).is_file()
        );
        let jobs: Vec<String> = ledger.recent(None, 5).await.expect("lists").into_iter().map(|(job, _)| job).collect();
        assert_eq!(jobs, ["daily"]);
        let recent = ledger.recent(Some("daily"), 5).await.expect("lists");
        assert_eq!(recent[0].1.len(), 1, "a job's own listing holds its records only");
    }

    #[tokio::test]
    async fn records_round_trip_and_list_newest_first() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ledger = Ledger::open(dir.path().join("ledger").to_str().expect("utf-8")).expect("opens");
        assert_eq!(ledger.read("daily", date("2026-11-20")).await.expect("reads"), None);
        for (day, status) in [("2026-11-19", RunStatus::Ok), ("2026-11-20", RunStatus::SourceUnavailable)] {
            ledger.write(&record("daily", day, status)).await.expect("writes");
        }
        ledger.write(&record("hourly job", "2026-11-20", RunStatus::Ok)).await.expect("writes");

        let back = ledger.read("daily", date("2026-11-20")).await.expect("reads").expect("exists");
        assert_eq!(back, record("daily", "2026-11-20", RunStatus::SourceUnavailable).clone_times_from(&back));
        assert!(dir.path().join("ledger/daily/2026-11-20.json").is_file(), "one file per job and date");

        let recent = ledger.recent(None, 5).await.expect("lists");
        let summary: Vec<(String, Vec<String>)> = recent
            .iter()
            .map(|(job, records)| (job.clone(), records.iter().map(|r| r.report_date.to_string()).collect()))
            .collect();
        assert_eq!(
            summary,
            [
                ("daily".to_string(), vec!["2026-11-20".to_string(), "2026-11-19".to_string()]),
                ("hourly job".to_string(), vec!["2026-11-20".to_string()]),
            ]
        );
        assert_eq!(ledger.recent(Some("daily"), 1).await.expect("lists")[0].1.len(), 1);
    }

    /// A job with experiments `a` and `b` and the given destinations (dir paths).
    fn job(dirs: &[&str]) -> Job {
        let text = format!(
            "name = \"j\"\n[source]\nurl = \"file:///data\"\n\
             [[metrics]]\nname = \"conversion\"\nkind = \"proportion\"\nevent = \"purchase\"\n\
             [[experiments]]\nid = \"a\"\ncontrol = \"c\"\nvariants = {{ c = 0.5, t = 0.5 }}\nstart = 2026-11-01\nprimary = \"conversion\"\n\
             [[experiments]]\nid = \"b\"\ncontrol = \"c\"\nvariants = {{ c = 0.5, t = 0.5 }}\nstart = 2026-11-01\nprimary = \"conversion\"\n{}",
            dirs.iter().map(|d| format!("[[deliver]]\nkind = \"dir\"\npath = \"{d}\"\n")).collect::<String>()
        );
        crate::config::check(&text, std::path::Path::new("/srv/jobs/j.toml")).expect("a valid job")
    }

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_date_is_delivered_when_every_destination_received_every_experiment_over_its_runs() {
        let job = job(&["/srv/x", "/srv/y"]);
        let (x, y) = (delivery_key(&job.deliveries[0]), delivery_key(&job.deliveries[1]));
        let mut r = record("j", "2026-11-20", RunStatus::Ok);
        assert!(!r.fully_delivered(&job));
        r.add_delivered(&x, "dir /srv/x", &ids(&["a"]));
        r.add_delivered(&y, "dir /srv/y", &ids(&["a", "b"]));
        assert!(!r.fully_delivered(&job), "x has not received b");
        r.add_delivered(&x, "dir /srv/x", &ids(&["b", "a"]));
        assert_eq!(r.history()[0].experiments, ids(&["a", "b"]), "a union, in first-delivery order");
        assert!(r.fully_delivered(&job));
        // An experiment that starts after the date is not owed for catch-up.
        let mut later = job.clone();
        later.experiments[1].start = date("2026-11-21");
        let mut only_a = record("j", "2026-11-20", RunStatus::Ok);
        only_a.add_delivered(&x, "dir /srv/x", &ids(&["a"]));
        only_a.add_delivered(&y, "dir /srv/y", &ids(&["a"]));
        assert!(only_a.fully_delivered(&later) && !only_a.fully_delivered(&job));
        // Whatever the last run was, what went is not forgotten.
        for status in [RunStatus::Running, RunStatus::SourceUnavailable, RunStatus::Failed] {
            let later = RunRecord { status, deliver: false, experiment: Some("a".into()), ..r.clone() };
            assert!(later.fully_delivered(&job), "{status:?}");
        }
    }

    #[test]
    fn a_forced_delivery_that_fails_makes_what_it_did_not_deliver_owed_again() {
        let mut r = record("j", "2026-11-20", RunStatus::Ok);
        r.add_delivered("k", "dest", &ids(&["a", "b"]));
        r.redelivered("k", "dest", &ids(&["a", "b"]), &ids(&["a"]));
        assert_eq!(received_by_key(&r.history(), &[], "k"), ids(&["a"]));
        r.redelivered("k", "dest", &ids(&["a"]), &[]);
        assert_eq!(r.history(), vec![], "nothing left");
        r.redelivered("k", "dest", &ids(&["b"]), &ids(&["b"]));
        assert_eq!(received_by_key(&r.history(), &[], "k"), ids(&["b"]));
    }

    #[test]
    fn a_job_without_destinations_is_done_after_a_full_run() {
        let job = job(&[]);
        assert!(record("j", "2026-11-20", RunStatus::Ok).fully_delivered(&job));
        assert!(record("j", "2026-11-20", RunStatus::NoData).fully_delivered(&job));
        for status in [RunStatus::Running, RunStatus::SourceUnavailable, RunStatus::SlaMissed, RunStatus::Failed] {
            assert!(!record("j", "2026-11-20", status).fully_delivered(&job), "{status:?}");
        }
        let not_sent = RunRecord { deliver: false, ..record("j", "2026-11-20", RunStatus::Ok) };
        assert!(!not_sent.fully_delivered(&job), "a --no-deliver run does not block the scheduled one");
        let partial = RunRecord { experiment: Some("a".into()), ..record("j", "2026-11-20", RunStatus::Ok) };
        assert!(!partial.fully_delivered(&job), "a single-experiment run does not either");
    }

    #[test]
    fn records_from_before_the_history_field_read_it_from_their_deliveries() {
        let mut r = record("j", "2026-11-20", RunStatus::DeliveryFailed);
        r.experiments = ["a", "b"]
            .iter()
            .map(|id| ExperimentOutcome { id: id.to_string(), status: "ok".into(), recommendation: "continue".into() })
            .collect();
        let status = |key: &str, ok: bool| DeliveryStatus {
            destination: format!("dest {key}"),
            key: key.into(),
            ok,
            error: None,
            skipped: false,
        };
        r.deliveries = vec![status("k1", true), status("k2", false), status("outbox", false)];
        let mut json: serde_json::Value = serde_json::to_value(&r).expect("serializes");
        json.as_object_mut().expect("object").remove("delivered");
        let old: RunRecord = serde_json::from_value(json).expect("an old record reads");
        assert_eq!(
            old.history(),
            vec![Delivered { destination: "dest k1".into(), key: "k1".into(), experiments: ids(&["a", "b"]) }]
        );
    }

    #[test]
    fn statuses_serialize_as_the_documented_names() {
        for status in RunStatus::ALL {
            assert_eq!(serde_json::to_value(status).expect("serializes"), status.name());
        }
    }

    #[test]
    fn delivery_keys_follow_the_destination() {
        let a = Delivery::Dir { path: "/srv/a".into() };
        let b = Delivery::Dir { path: "/srv/b".into() };
        assert_eq!(delivery_key(&a), delivery_key(&a.clone()));
        assert_ne!(delivery_key(&a), delivery_key(&b));
        let upload = Delivery::Upload { url: "/srv/a".into() };
        assert_ne!(delivery_key(&a), delivery_key(&upload), "the kind is part of the destination");
        assert_eq!(delivery_key(&a).len(), "v2:".len() + 16);
    }

    fn email(to: &[&str], digest: bool, attach_max_bytes: u64, link_base_url: Option<&str>) -> Delivery {
        Delivery::Email {
            to: to.iter().map(ToString::to_string).collect(),
            digest,
            attach_max_bytes,
            link_base_url: link_base_url.map(str::to_string),
        }
    }

    #[test]
    fn a_delivery_key_ignores_how_a_destination_is_sent_to() {
        let mail = email(&["pm@example.com", "ds@example.com"], false, 10_000_000, None);
        // Fields about how (and any field added later) keep the key; the legacy key changed.
        let restyled = email(&["ds@example.com", "pm@example.com", "pm@example.com"], true, 5, Some("https://r/"));
        assert_eq!(delivery_key(&mail), delivery_key(&restyled));
        assert_ne!(legacy_delivery_key(&mail), legacy_delivery_key(&restyled));
        let more = email(&["pm@example.com", "ds@example.com", "cfo@example.com"], false, 10_000_000, None);
        assert_ne!(delivery_key(&mail), delivery_key(&more), "who receives it is the destination");
    }

    #[test]
    fn a_chat_key_is_its_variable_name_and_never_the_url() {
        let chat = |var: &str, link: Option<&str>| Delivery::Chat {
            webhook_env: var.into(),
            link_base_url: link.map(str::to_string),
        };
        let team = chat("TEAM_HOOK", None);
        assert_eq!(delivery_key(&team), delivery_key(&chat("TEAM_HOOK", Some("https://r/"))), "the link is how");
        assert_ne!(delivery_key(&team), delivery_key(&chat("OPS_HOOK", None)), "another variable, another channel");
        // `{"kind":"chat","webhook_env":"ABREPORT_CHAT_WEBHOOK"}`: the key holds nothing the
        // environment says, so the URL cannot leak into the ledger through it.
        assert_eq!(delivery_key(&chat("ABREPORT_CHAT_WEBHOOK", None)), "v2:a28addc6b61bfd45");
    }

    #[test]
    fn delivery_keys_are_pinned() {
        // The SHA-256 of `{"kind":"dir","path":"/srv/reports"}` and so on, checked by hand. A
        // change of these values re-sends every delivered date: it needs a new version prefix
        // and the old formula kept for reading, as `legacy_delivery_key` is.
        assert_eq!(delivery_key(&Delivery::Dir { path: "/srv/reports".into() }), "v2:2f37c051838a1815");
        assert_eq!(delivery_key(&Delivery::Upload { url: "s3://bucket/ab".into() }), "v2:6e027627e05aefcc");
        assert_eq!(delivery_key(&email(&["pm@example.com"], false, 1, None)), "v2:5f1b0c9a15225a05");
        assert_eq!(legacy_delivery_key(&Delivery::Dir { path: "/srv/reports".into() }), "d8b2b93c84cbc4a2");
    }

    /// The ledger's delivery key before `v2:` keys, as it was written.
    fn old_delivery_key(delivery: &Delivery) -> String {
        let digest = Sha256::digest(format!("{delivery:?}").as_bytes());
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    #[tokio::test]
    async fn records_written_with_legacy_keys_are_honoured() {
        let job = job(&["/srv/x", "/srv/y"]);
        let x = &job.deliveries[0];
        assert_eq!(legacy_delivery_key(x), old_delivery_key(x));
        let dir = tempfile::tempdir().expect("temp dir");
        let ledger = Ledger::open(dir.path().to_str().expect("utf-8")).expect("opens");
        // Written before the upgrade: both destinations under their old keys, x only got `a`.
        let mut before = record("j", "2026-11-20", RunStatus::Ok);
        before.add_delivered(&old_delivery_key(x), "dir /srv/x", &ids(&["a"]));
        before.add_delivered(&old_delivery_key(&job.deliveries[1]), "dir /srv/y", &ids(&["a", "b"]));
        ledger.write(&before).await.expect("writes");
        let mut after = ledger.read("j", date("2026-11-20")).await.expect("reads").expect("exists");
        assert!(!after.fully_delivered(&job), "x is owed b");
        assert_eq!(received(&after.history(), &job.deliveries[1]), ids(&["a", "b"]), "y has all");
        // Completed after the upgrade: the new key adds to what the legacy key recorded.
        after.add_delivered(&delivery_key(x), "dir /srv/x", &ids(&["b"]));
        assert_eq!(received(&after.history(), x), ids(&["a", "b"]));
        assert!(after.fully_delivered(&job));
        assert_eq!(received_by_key(&after.history(), &job.deliveries, &old_delivery_key(x)), ids(&["a", "b"]));
    }

    impl RunRecord {
        /// `self` with the clock readings of `other` (they differ between two `start` calls).
        fn clone_times_from(mut self, other: &RunRecord) -> RunRecord {
            self.started_at = other.started_at;
            self
        }
    }
}
