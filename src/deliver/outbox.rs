//! The outbox: where a run's outputs wait when a destination failed, so nothing is lost.
//!
//! One entry per job and report date, `<outbox>/<job>/<report_date>/`: every experiment's
//! files (`<experiment>/…`, manifest last, as `export::write_dir` writes them) and
//! `state.json`, which records the job file, the date and each destination with whether it is
//! done and which messages its SMTP server already accepted. The state is replaced atomically
//! (temporary file, fsync, rename) after every accepted message and every finished
//! destination, so a retry that stops half-way resumes without sending anything twice. An
//! entry whose destinations are all done is removed.
//!
//! This module only reads and writes the outbox folder; sending is `deliver`'s.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::config::{Delivery, Job, safe_path_component};
use crate::deliver::email;
use crate::export::{self, ExperimentOutputs, MANIFEST, Manifest, OutputFile};

/// The state file of an entry.
pub const STATE: &str = "state.json";

/// `state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// Format version of this file.
    pub schema_version: u32,
    /// Job name.
    pub job: String,
    /// The job file of the run (as given on the command line).
    pub job_file: PathBuf,
    /// The run's report date.
    pub report_date: NaiveDate,
    /// When the entry was first written (RFC 3339, UTC).
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
    /// Experiment folder names, in publishing order.
    pub experiments: Vec<String>,
    /// Every destination of the run that failed at least once, done or not.
    pub destinations: Vec<Destination>,
}

/// A destination an entry owes, and how far it got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Destination {
    /// How messages name it (`email to pm@example.com`).
    pub destination: String,
    /// The delivery itself (paths absolute), so a retry does not depend on the job file
    /// staying the same.
    pub delivery: Delivery,
    /// The run ledger's key of the delivery as the job file states it
    /// (`ledger::delivery_key`), so a late delivery can be recorded there.
    #[serde(default)]
    pub key: String,
    /// Whether everything was delivered.
    pub done: bool,
    /// Email: keys of the messages the server accepted (experiment folder names, or `digest`).
    #[serde(default)]
    pub sent: Vec<String>,
    /// Attempts so far, over all runs and retries.
    #[serde(default)]
    pub attempts: u32,
    /// The last failure, in words (never a secret).
    pub last_error: Option<String>,
}

/// One entry: its folder and state.
#[derive(Debug)]
pub struct Entry {
    /// `<outbox>/<job>/<report_date>`.
    pub dir: PathBuf,
    /// Its `state.json`.
    pub state: State,
}

/// Why the outbox could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// A file or folder could not be written, read or removed.
    #[error("outbox `{}`: {cause}", path.display())]
    Io { path: PathBuf, cause: String },
    /// A file is not what the outbox wrote.
    #[error("outbox `{}` is damaged: {cause}", path.display())]
    Damaged { path: PathBuf, cause: String },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> OutboxError + '_ {
    move |e| OutboxError::Io { path: path.to_path_buf(), cause: e.to_string() }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Where a run's undelivered outputs wait and how to send them, for errors and notes.
pub fn waiting_hint(dir: &Path, job_file: &Path) -> String {
    format!(
        "the outputs wait in the outbox `{}`; send them with `abreport deliver --retry --job {}`",
        dir.display(),
        job_file.display()
    )
}

/// What `abreport deliver` says when a job's outbox holds nothing.
pub fn nothing_waiting(job: &Job) -> String {
    format!("{}: nothing waiting in `{}`", job.name, job_dir(job).display())
}

/// The folder of a job's entries: `<outbox>/<job>`.
pub fn job_dir(job: &Job) -> PathBuf {
    job.outbox.join(safe_path_component(&job.name))
}

/// The folder of one entry: `<outbox>/<job>/<report_date>`.
pub fn entry_dir(job: &Job, report_date: NaiveDate) -> PathBuf {
    job_dir(job).join(report_date.to_string())
}

/// Replaces `state.json` of `dir` atomically.
pub fn save_state(dir: &Path, state: &State) -> Result<(), OutboxError> {
    let target = dir.join(STATE);
    let temporary = dir.join(format!(".{STATE}.tmp-{}", std::process::id()));
    let mut state = state.clone();
    state.updated_at = now();
    let json = serde_json::to_vec_pretty(&state)
        .map_err(|e| OutboxError::Damaged { path: target.clone(), cause: e.to_string() })?;
    let result = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(&json)?;
        file.sync_all()?;
        std::fs::rename(&temporary, &target)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&temporary);
        return Err(io(&target)(e));
    }
    Ok(())
}

fn read_state(dir: &Path) -> Result<Option<State>, OutboxError> {
    let path = dir.join(STATE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map(Some).map_err(|e| OutboxError::Damaged { path, cause: e.to_string() })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&path)(e)),
    }
}

/// The job's waiting entries, oldest report date first.
pub fn list(job: &Job) -> Result<Vec<Entry>, OutboxError> {
    let dir = job_dir(job);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(&dir)(e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let path = entry.map_err(io(&dir))?.path();
        if path.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse::<NaiveDate>().ok()).is_none() {
            continue;
        }
        if let Some(state) = read_state(&path)? {
            found.push(Entry { dir: path, state });
        }
    }
    found.sort_by_key(|e| e.state.report_date);
    Ok(found)
}

/// The outputs kept in an entry, each file checked against its manifest.
pub fn load_outputs(entry: &Entry) -> Result<Vec<ExperimentOutputs>, OutboxError> {
    let mut outputs = Vec::new();
    for dir_name in &entry.state.experiments {
        let dir = entry.dir.join(dir_name);
        let manifest_path = dir.join(MANIFEST);
        let manifest_bytes = std::fs::read(&manifest_path).map_err(io(&manifest_path))?;
        let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| OutboxError::Damaged { path: manifest_path.clone(), cause: e.to_string() })?;
        let mut files = Vec::with_capacity(manifest.files.len() + 1);
        for listed in &manifest.files {
            let path = dir.join(&listed.name);
            let bytes = std::fs::read(&path).map_err(io(&path))?;
            if export::sha256_hex(&bytes) != listed.sha256 {
                return Err(OutboxError::Damaged { path, cause: "its sha256 differs from the manifest's".into() });
            }
            files.push(OutputFile { name: listed.name.clone(), bytes: bytes.into() });
        }
        files.push(OutputFile { name: MANIFEST.to_string(), bytes: manifest_bytes.into() });
        outputs.push(ExperimentOutputs { experiment_id: manifest.experiment, dir_name: dir_name.clone(), files });
    }
    Ok(outputs)
}

/// Records a run's delivery outcome for `report_date`.
///
/// A run of all the job's experiments (`full`) supersedes any waiting entry of that date: the
/// entry is replaced by this run's outputs and the destinations that failed now, or removed
/// when none did. A run of some experiments (`--experiment`) is merged into a waiting entry:
/// its files replace those experiments' files, and a destination stays owed when it was owed
/// before or failed now; email messages of the re-run experiments count as sent only if they
/// were sent now. Returns the entry's folder when something is waiting.
pub fn record_run(
    job: &Job,
    report_date: NaiveDate,
    outputs: &[ExperimentOutputs],
    destinations: Vec<Destination>,
    full: bool,
) -> Result<Option<PathBuf>, OutboxError> {
    let dir = entry_dir(job, report_date);
    let previous = if full { None } else { read_state(&dir)? };
    let rerun: Vec<&str> = outputs.iter().map(|o| o.dir_name.as_str()).collect();
    let mut merged: Vec<Destination> = Vec::new();
    for mut now in destinations {
        if let Some(before) =
            previous.as_ref().and_then(|p| p.destinations.iter().find(|d| d.delivery == now.delivery && !d.done))
        {
            // Keys of experiments not re-run stay as they were; a digest covers the whole
            // entry, so it is owed again.
            let kept = before.sent.iter().filter(|k| !rerun.contains(&k.as_str()) && *k != email::DIGEST_KEY).cloned();
            now.sent = kept.chain(now.sent.into_iter().filter(|k| k != email::DIGEST_KEY)).collect();
            now.done = false;
            now.attempts += before.attempts;
            if now.last_error.is_none() {
                now.last_error.clone_from(&before.last_error);
            }
        }
        merged.push(now);
    }
    if let Some(previous) = &previous {
        for before in previous.destinations.iter().filter(|d| !d.done) {
            if !merged.iter().any(|d| d.delivery == before.delivery) {
                merged.push(before.clone());
            }
        }
    }
    // Nothing owed (previously owed destinations were merged in as owed, so this also means
    // nothing was waiting): a full run clears a stale entry of the date.
    if merged.iter().all(|d| d.done) {
        if full {
            remove(&dir)?;
        }
        return Ok(None);
    }
    if full {
        remove(&dir)?;
    }
    for output in outputs {
        export::write_dir(&dir, output).map_err(|e| OutboxError::Io { path: dir.clone(), cause: e.to_string() })?;
    }
    let mut experiments: Vec<String> = previous.as_ref().map(|p| p.experiments.clone()).unwrap_or_default();
    for output in outputs {
        if !experiments.contains(&output.dir_name) {
            experiments.push(output.dir_name.clone());
        }
    }
    let state = State {
        schema_version: 1,
        job: job.name.clone(),
        job_file: job.file.clone(),
        report_date,
        created_at: previous.as_ref().map_or_else(now, |p| p.created_at.clone()),
        updated_at: now(),
        experiments,
        destinations: merged,
    };
    save_state(&dir, &state)?;
    Ok(Some(dir))
}

/// Removes an entry (all destinations done). A missing folder is fine.
pub fn remove(dir: &Path) -> Result<(), OutboxError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(dir)(e)),
    }
    // The job's folder goes too once it is empty; another entry keeps it.
    if let Some(parent) = dir.parent() {
        let _ = std::fs::remove_dir(parent);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::OutputFile;
    use crate::test_support::{checked_job, experiment_text, job_text};

    fn job(dir: &Path) -> Job {
        let experiments = experiment_text("a", "2026-11-20") + &experiment_text("b", "2026-11-20");
        checked_job(&job_text("daily", "file:///data", &experiments), &dir.join("daily.toml"))
    }

    /// An outbox entry owing one message of one experiment.
    fn waiting(job: &Job) -> PathBuf {
        record_run(job, date(), &[outputs("a", "report a")], vec![destination("x@example.com", false, &[])], false)
            .expect("recorded")
            .expect("waiting")
    }

    fn date() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 20).expect("date")
    }

    /// A minimal output set: one file and its manifest.
    fn outputs(dir_name: &str, content: &str) -> ExperimentOutputs {
        let file = OutputFile { name: "report.md".into(), bytes: content.as_bytes().to_vec().into() };
        let manifest = Manifest {
            schema_version: 1,
            job: "daily".into(),
            experiment: dir_name.into(),
            report_date: date().to_string(),
            status: "ok".into(),
            recommendation: "continue".into(),
            files: vec![export::ManifestEntry {
                name: "report.md".into(),
                bytes: content.len() as u64,
                sha256: export::sha256_hex(content.as_bytes()),
            }],
            engine_files: Vec::new(),
        };
        let manifest = OutputFile { name: MANIFEST.into(), bytes: serde_json::to_vec(&manifest).expect("json").into() };
        ExperimentOutputs { experiment_id: dir_name.into(), dir_name: dir_name.into(), files: vec![file, manifest] }
    }

    fn destination(to: &str, done: bool, sent: &[&str]) -> Destination {
        Destination {
            key: String::new(),
            destination: format!("email to {to}"),
            delivery: Delivery::Email { to: vec![to.into()], digest: false, attach_max_bytes: 10, link_base_url: None },
            done,
            sent: sent.iter().map(ToString::to_string).collect(),
            attempts: 1,
            last_error: (!done).then(|| "SMTP server h:25: cannot connect".to_string()),
        }
    }

    #[test]
    fn a_failed_run_is_kept_and_read_back_byte_for_byte_and_a_later_full_success_clears_it() {
        let tmp = tempfile::tempdir().expect("tmp");
        let job = job(tmp.path());
        let set = [outputs("a", "report a"), outputs("b", "report b")];
        let dir = record_run(&job, date(), &set, vec![destination("pm@example.com", false, &["a"])], true)
            .expect("recorded")
            .expect("something waits");
        assert_eq!(dir, tmp.path().join("outbox/daily/2026-11-20"));
        let entries = list(&job).expect("listed");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].state.destinations[0].sent, ["a"], "the accepted message is remembered");
        let back = load_outputs(&entries[0]).expect("loaded");
        for (kept, original) in back.iter().zip(&set) {
            assert_eq!(kept.dir_name, original.dir_name);
            let names = |o: &ExperimentOutputs| o.files.iter().map(|f| f.name.clone()).collect::<Vec<_>>();
            assert_eq!(names(kept), names(original), "manifest last");
            assert_eq!(kept.files[0].bytes, original.files[0].bytes);
        }
        assert!(
            record_run(&job, date(), &set, vec![destination("pm@example.com", true, &["a", "b"])], true)
                .expect("recorded")
                .is_none()
        );
        assert!(list(&job).expect("listed").is_empty(), "superseded and removed");
        assert!(!tmp.path().join("outbox/daily").exists());
    }

    #[test]
    fn a_partial_run_is_merged_into_the_waiting_entry() {
        let tmp = tempfile::tempdir().expect("tmp");
        let job = job(tmp.path());
        let first = [outputs("a", "old a"), outputs("b", "old b")];
        record_run(&job, date(), &first, vec![destination("pm@example.com", false, &["a", "b"])], true)
            .expect("recorded");
        // `--experiment a` later: delivered now, but b was owed before and still is.
        let dir = record_run(
            &job,
            date(),
            &[outputs("a", "new a")],
            vec![destination("pm@example.com", true, &["a"])],
            false,
        )
        .expect("recorded")
        .expect("still waiting");
        let entry = list(&job).expect("listed").remove(0);
        assert_eq!(entry.dir, dir);
        assert_eq!(entry.state.experiments, ["a", "b"]);
        let owed = &entry.state.destinations[0];
        assert!(!owed.done);
        assert_eq!(owed.sent, ["b", "a"], "b from before, a sent now");
        assert_eq!(owed.attempts, 2);
        let back = load_outputs(&entry).expect("loaded");
        assert_eq!(&*back[0].files[0].bytes, b"new a", "the re-run replaced its files");
        assert_eq!(&*back[1].files[0].bytes, b"old b");
    }

    #[test]
    fn a_damaged_file_is_refused_rather_than_sent() {
        let tmp = tempfile::tempdir().expect("tmp");
        let job = job(tmp.path());
        let dir = waiting(&job);
        std::fs::write(dir.join("a/report.md"), "changed").expect("tamper");
        let entry = list(&job).expect("listed").remove(0);
        let error = load_outputs(&entry).expect_err("damaged");
        assert!(error.to_string().contains("sha256 differs"), "{error}");
    }

    #[test]
    fn the_state_file_is_replaced_atomically_without_temporary_leftovers() {
        let tmp = tempfile::tempdir().expect("tmp");
        let job = job(tmp.path());
        let dir = waiting(&job);
        let mut entry = list(&job).expect("listed").remove(0);
        entry.state.destinations[0].sent.push("a".into());
        save_state(&dir, &entry.state).expect("saved");
        assert_eq!(list(&job).expect("listed")[0].state.destinations[0].sent, ["a"]);
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .expect("dir")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty());
    }
}
