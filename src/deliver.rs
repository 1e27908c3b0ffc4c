//! Publishing a run's outputs to the job's destinations: a local folder (`dir`), any object
//! store (`upload`), email and a chat webhook (`chat`); keeping what could not be delivered in
//! the outbox; and the short failure notice to the job's admin.
//!
//! Every destination receives the same set at `<job>/<report_date>/<experiment>/<file>`,
//! manifest last, so a reader that sees a manifest sees a complete set; re-running a job and
//! date overwrites the same keys. One failed destination does not stop the others. Folders
//! and uploads go before mail and chat, so their links point at files that are already there.
//! A destination that fails is retried when that can help (see [`retry`]), then recorded in
//! the outbox with the run's outputs; [`retry_outbox`] sends what waits there, each message at
//! most once. Nothing here prints: callers report the [`DeliveryReport`]s.

pub mod chat;
pub mod email;
pub mod outbox;
mod retry;
pub mod smtp;
mod upload;

use std::future::Future;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use crate::config::{Delivery, Job, safe_path_component};
pub use crate::export::run_prefix;
use crate::export::{self, ExperimentOutputs};
use crate::stale;
use chat::{ChatError, Webhook};
use email::{EmailError, EmailSpec};
use outbox::{Destination, OutboxError};
use smtp::{Mailer, SmtpError, SmtpSettings};

/// How one destination fared.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeliveryReport {
    /// The destination in words (`email to pm@example.com`, `upload s3://bucket/prefix`).
    pub destination: String,
    /// Whether it received everything.
    pub ok: bool,
    /// What went wrong, naming the destination's server or path and the cause (never a secret).
    pub error: Option<String>,
    /// Attempts made in this delivery (retries included).
    pub attempts: u32,
    /// The outbox entry where the outputs wait for this destination, when it failed.
    pub outbox: Option<PathBuf>,
    /// The run ledger's key of the destination (`ledger::delivery_key`); none for
    /// the outbox itself.
    pub key: Option<String>,
    /// The report date of the outputs, for deliveries from the outbox.
    pub report_date: Option<NaiveDate>,
    /// The experiments (ids) whose outputs the destination received in this delivery: all it
    /// was sent when it succeeded; when it failed, those of the email messages the server
    /// accepted before the failure.
    pub delivered: Vec<String>,
}

impl DeliveryReport {
    /// An outbox entry that could not be read or cleaned up.
    fn outbox_entry_failed(dir: &Path, report_date: NaiveDate, error: &dyn std::fmt::Display) -> Self {
        DeliveryReport {
            destination: format!("outbox entry {}", dir.display()),
            ok: false,
            error: Some(error.to_string()),
            attempts: 0,
            outbox: Some(dir.to_path_buf()),
            key: None,
            report_date: Some(report_date),
            delivered: Vec::new(),
        }
    }
}

/// The experiments of `outputs` a destination received: all when it succeeded, else those
/// whose email message or chat post (by key: the experiment's folder, or `digest` for all)
/// was accepted.
fn received(outputs: &[ExperimentOutputs], ok: bool, accepted: &[String]) -> Vec<String> {
    outputs
        .iter()
        .filter(|o| ok || accepted.iter().any(|key| *key == o.dir_name || key == email::DIGEST_KEY))
        .map(|o| o.experiment_id.clone())
        .collect()
}

/// Why one destination failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    /// SMTP settings, or the server.
    #[error(transparent)]
    Smtp(#[from] SmtpError),
    /// The message could not be built.
    #[error(transparent)]
    Email(#[from] EmailError),
    /// The chat webhook is not configured, or refused (never quotes its URL).
    #[error(transparent)]
    Chat(#[from] ChatError),
    /// The object store refused or could not be reached (object_store retried what it could).
    #[error("{0}")]
    Upload(String),
    /// A local folder could not be written.
    #[error(transparent)]
    Dir(#[from] export::ExportError),
    /// The outbox could not record progress, so sending more could duplicate messages.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// The run's deadline left no time for this destination; it waits in the outbox.
    #[error("{0}")]
    Sla(String),
}

/// A destination in words, for messages and the outbox.
pub fn describe(delivery: &Delivery) -> String {
    match delivery {
        Delivery::Dir { path } => format!("dir {}", path.display()),
        Delivery::Upload { url } => format!("upload {}", crate::store::display_url(url)),
        Delivery::Email { to, digest, .. } => {
            format!("email{} to {}", if *digest { " digest" } else { "" }, to.join(", "))
        }
        // The variable's name, never its value: the URL is a secret.
        Delivery::Chat { webhook_env, .. } => format!("chat webhook from ${webhook_env}"),
    }
}

/// How much older than the job's SLA a temporary file must be to count as left by a killed
/// run: a live one exists only while its file is written and renamed, and no run outlives its
/// SLA by this much.
pub const STALE_AFTER_SLA: std::time::Duration = std::time::Duration::from_secs(3600);

/// Removes the stale temporary files of earlier runs of `job` ([`stale`]) from the folders a
/// run writes: each experiment's folder under `out`, and `<job>/<date>/<experiment>/` under
/// every `dir` destination and the outbox. (The local run ledger cleans its own.)
pub fn remove_stale_temporaries(job: &Job, out: &Path) -> stale::Removed {
    let older_than = job.sla + STALE_AFTER_SLA;
    let mut removed = stale::Removed::default();
    for experiment in &job.experiments {
        removed += stale::remove(&out.join(&experiment.output_dir), 0, stale::TempName::Dotted, older_than);
    }
    let job_folder = safe_path_component(&job.name);
    let mut roots = vec![job.outbox.join(&job_folder)];
    roots.extend(job.deliveries.iter().filter_map(|d| match d {
        Delivery::Dir { path } => Some(path.join(&job_folder)),
        _ => None,
    }));
    for root in roots {
        removed += stale::remove(&root, 2, stale::TempName::Dotted, older_than);
    }
    removed
}

/// The folders `job` writes that cannot be written, each in a sentence that says how to fix
/// it: the outbox and every `dir` destination. Asked of the file system (`access(2)` on the
/// nearest folder that exists), so nothing is created.
pub fn unwritable_folders(job: &Job) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(cause) = writable(&job.outbox) {
        problems.push(format!(
            "the outbox `{}` cannot be written: {cause}; name a writable folder with `outbox = \"…\"` in the job file",
            job.outbox.display()
        ));
    }
    for delivery in &job.deliveries {
        if let Delivery::Dir { path } = delivery
            && let Err(cause) = writable(path)
        {
            problems.push(format!(
                "the dir destination `{}` cannot be written: {cause}; point its `path` at a writable folder",
                path.display()
            ));
        }
    }
    problems
}

/// Whether files can be made under `path` (which may not exist yet): its nearest existing
/// ancestor must be a folder this process may write and enter.
fn writable(path: &Path) -> Result<(), String> {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = absolute.as_path();
    loop {
        match std::fs::metadata(existing) {
            Ok(meta) if meta.is_dir() => break,
            Ok(_) => return Err(format!("`{}` is not a folder", existing.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match existing.parent() {
                Some(parent) => existing = parent,
                None => return Err(format!("no folder of `{}` exists", path.display())),
            },
            Err(e) => return Err(format!("`{}`: {e}", existing.display())),
        }
    }
    rustix::fs::access(existing, rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK)
        .map_err(|e| format!("`{}`: {}", existing.display(), std::io::Error::from(e)))
}

/// The same delivery with its folder made absolute, so the outbox works from any directory.
fn absolute(delivery: &Delivery) -> Delivery {
    match delivery {
        Delivery::Dir { path } => Delivery::Dir { path: std::path::absolute(path).unwrap_or_else(|_| path.clone()) },
        other => other.clone(),
    }
}

/// Delivers one destination. `sent` lists email messages already accepted (from the outbox);
/// `on_sent` is called with each message's key right after the server accepted it, before
/// the next one is sent. Returns the outcome and the attempts made.
async fn deliver_one(
    job: &Job,
    report_date: NaiveDate,
    outputs: &[ExperimentOutputs],
    delivery: &Delivery,
    sent: &[String],
    on_sent: &mut (dyn FnMut(&str) -> Result<(), OutboxError> + Send),
) -> (Result<(), DeliverError>, u32) {
    let prefix = run_prefix(&job.name, report_date);
    match delivery {
        Delivery::Dir { path } => (deliver_dir(path, &prefix, outputs).map_err(DeliverError::from), 1),
        // object_store retries transient HTTP failures itself (RetryConfig in source/store.rs).
        Delivery::Upload { url } => (upload::upload(url, &prefix, outputs).await.map_err(DeliverError::Upload), 1),
        Delivery::Email { to, digest, attach_max_bytes, link_base_url } => {
            let spec = EmailSpec {
                to,
                digest: *digest,
                attach_max_bytes: *attach_max_bytes,
                link_base_url: link_base_url.as_deref(),
            };
            send_email(job, report_date, outputs, &spec, sent, on_sent).await
        }
        Delivery::Chat { webhook_env, link_base_url } => {
            send_chat(job, report_date, outputs, webhook_env, link_base_url.as_deref(), sent, on_sent).await
        }
    }
}

/// Posts one message per experiment, skipping those `sent` lists; each is recorded through
/// `on_sent` right after the webhook accepted it, as a mail is.
async fn send_chat(
    job: &Job,
    report_date: NaiveDate,
    outputs: &[ExperimentOutputs],
    webhook_env: &str,
    link_base_url: Option<&str>,
    sent: &[String],
    on_sent: &mut (dyn FnMut(&str) -> Result<(), OutboxError> + Send),
) -> (Result<(), DeliverError>, u32) {
    let prepared = chat::build(job, report_date, outputs, link_base_url)
        .and_then(|posts| Ok((Webhook::from_env(webhook_env)?, posts)));
    let (webhook, posts) = match prepared {
        Ok(prepared) => prepared,
        Err(e) => return (Err(e.into()), 0),
    };
    send_each(
        &posts,
        |post| &post.key,
        sent,
        on_sent,
        |post| webhook.post(&post.body),
        ChatError::is_transient,
        with_chat_retry_note,
    )
    .await
}

/// Sends each of `messages` that `sent` does not list, retrying a transient failure (see
/// [`retry`]), and records each through `on_sent` right after it was accepted, before the next:
/// a crash then must not make a retry send it again. Stops at the first failure, which
/// `failed` words with the attempts made. Returns the outcome and the attempts over all.
async fn send_each<'a, M, E, Fut>(
    messages: &'a [M],
    key: impl Fn(&M) -> &String,
    sent: &[String],
    on_sent: &mut (dyn FnMut(&str) -> Result<(), OutboxError> + Send),
    mut send: impl FnMut(&'a M) -> Fut,
    is_transient: impl Fn(&E) -> bool,
    failed: impl Fn(E, u32) -> DeliverError,
) -> (Result<(), DeliverError>, u32)
where
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut attempts = 0;
    for message in messages.iter().filter(|m| !sent.contains(key(m))) {
        let (result, made) = retry::retry(|| send(message), &is_transient).await;
        attempts += made;
        if let Err(e) = result {
            return (Err(failed(e, made)), attempts);
        }
        if let Err(e) = on_sent(key(message)) {
            return (Err(e.into()), attempts);
        }
    }
    (Ok(()), attempts)
}

/// Whether a failed send was retried, so the reader knows if waiting can help.
fn retry_note(transient: bool, attempts: u32) -> String {
    if transient {
        format!("gave up after {attempts} attempts")
    } else {
        "not retried: trying again cannot help".to_string()
    }
}

/// [`with_retry_note`] for a chat post.
fn with_chat_retry_note(error: ChatError, attempts: u32) -> DeliverError {
    match error {
        ChatError::Send { var, host, cause, transient } => {
            let cause = format!("{cause} ({})", retry_note(transient, attempts));
            DeliverError::Chat(ChatError::Send { var, host, cause, transient })
        }
        other => DeliverError::Chat(other),
    }
}

async fn send_email(
    job: &Job,
    report_date: NaiveDate,
    outputs: &[ExperimentOutputs],
    spec: &EmailSpec<'_>,
    sent: &[String],
    on_sent: &mut (dyn FnMut(&str) -> Result<(), OutboxError> + Send),
) -> (Result<(), DeliverError>, u32) {
    let prepared = (|| {
        let settings = SmtpSettings::load(job.secrets_file.as_deref())?;
        let mails = email::build(job, report_date, outputs, spec, &settings.from)?;
        Ok::<_, DeliverError>((Mailer::new(&settings)?, mails))
    })();
    let (mailer, mails) = match prepared {
        Ok(prepared) => prepared,
        Err(e) => return (Err(e), 0),
    };
    let mailer = &mailer;
    send_each(
        &mails,
        |mail| &mail.key,
        sent,
        on_sent,
        |mail| {
            let formatted = mail.message.formatted();
            async move { mailer.send(mail.message.envelope(), &formatted).await }
        },
        SmtpError::is_transient,
        with_retry_note,
    )
    .await
}

/// Says whether a failed send was retried, so the reader knows if waiting can help.
fn with_retry_note(error: SmtpError, attempts: u32) -> DeliverError {
    match error {
        SmtpError::Send { server, cause, transient } => {
            let cause = format!("{cause} ({})", retry_note(transient, attempts));
            DeliverError::Smtp(SmtpError::Send { server, cause, transient })
        }
        other => DeliverError::Smtp(other),
    }
}

fn deliver_dir(path: &Path, prefix: &str, outputs: &[ExperimentOutputs]) -> Result<(), export::ExportError> {
    let root = path.join(prefix);
    for output in outputs {
        export::write_dir(&root, output)?;
    }
    Ok(())
}

/// Folders and uploads first, then mail and chat (which link to them); otherwise in job-file
/// order.
fn sending_order(deliveries: &[Delivery]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..deliveries.len()).collect();
    order.sort_by_key(|&i| matches!(deliveries[i], Delivery::Email { .. } | Delivery::Chat { .. }));
    order
}

fn log_outcome(destination: &str, result: &Result<(), DeliverError>, attempts: u32) {
    match result {
        Ok(()) => tracing::info!(destination, attempts, "delivered"),
        Err(error) => tracing::error!(destination, attempts, %error, "delivery failed"),
    }
}

/// Delivers `outputs` to every destination of `job`. When any destination fails, the outputs
/// are kept in the job's outbox with what is still owed, and the failed reports say where.
pub async fn deliver_all(job: &Job, report_date: NaiveDate, outputs: &[ExperimentOutputs]) -> Vec<DeliveryReport> {
    let all: Vec<String> = outputs.iter().map(|o| o.experiment_id.clone()).collect();
    let owed = vec![all; job.deliveries.len()];
    deliver_all_within(job, report_date, outputs, &owed, None).await
}

/// [`deliver_all`] of what each destination is owed — `owed[i]`, the experiment ids of
/// `outputs` that `job.deliveries[i]` is to receive — inside the run's deadline: a destination
/// is not started once the budget is spent, and one still sending when it runs out is stopped.
/// Either is left owed in the outbox (a stopped email may then arrive twice, once now and once
/// on retry; a stopped upload or copy is simply redone), so the SLA holds and nothing is lost.
/// The outbox keeps all of `outputs`; what a destination received before is the run ledger's
/// to say when the outbox is retried ([`retry_outbox`]).
pub async fn deliver_all_within(
    job: &Job,
    report_date: NaiveDate,
    outputs: &[ExperimentOutputs],
    owed: &[Vec<String>],
    deadline: Option<&crate::runlog::Deadline>,
) -> Vec<DeliveryReport> {
    let mut states: Vec<Destination> = job
        .deliveries
        .iter()
        .map(|d| Destination {
            destination: describe(d),
            key: crate::ledger::delivery_key(d),
            delivery: absolute(d),
            done: false,
            sent: Vec::new(),
            attempts: 0,
            last_error: None,
        })
        .collect();
    let mut reports: Vec<Option<DeliveryReport>> = vec![None; states.len()];
    for i in sending_order(&job.deliveries) {
        let delivery = states[i].delivery.clone();
        let subset: Vec<ExperimentOutputs> =
            outputs.iter().filter(|o| owed.get(i).is_none_or(|ids| ids.contains(&o.experiment_id))).cloned().collect();
        let mut accepted: Vec<String> = Vec::new();
        let remaining = deadline.map(super::runlog::Deadline::remaining);
        let (result, attempts) = if remaining.is_some_and(|r| r.is_zero()) {
            (Err(DeliverError::Sla("not started: the run's SLA budget was spent".into())), 0)
        } else {
            let mut record = |key: &str| {
                accepted.push(key.to_string());
                Ok(())
            };
            let send = deliver_one(job, report_date, &subset, &delivery, &[], &mut record);
            match remaining {
                Some(budget) => tokio::time::timeout(budget, send).await.unwrap_or_else(|_| {
                    (Err(DeliverError::Sla("stopped: the run's SLA budget ran out while sending".into())), 1)
                }),
                None => send.await,
            }
        };
        log_outcome(&states[i].destination, &result, attempts);
        let state = &mut states[i];
        let delivered = received(&subset, result.is_ok(), &accepted);
        state.sent = accepted;
        state.attempts = attempts;
        state.done = result.is_ok();
        state.last_error = result.as_ref().err().map(ToString::to_string);
        reports[i] = Some(DeliveryReport {
            destination: state.destination.clone(),
            ok: state.done,
            error: state.last_error.clone(),
            attempts,
            outbox: None,
            key: Some(state.key.clone()),
            report_date: None,
            delivered,
        });
    }
    let mut reports: Vec<DeliveryReport> = reports.into_iter().flatten().collect();
    // Covering every experiment of the job makes this run the date's full set.
    let full = job.experiments.iter().all(|e| outputs.iter().any(|o| o.dir_name == e.output_dir));
    match outbox::record_run(job, report_date, outputs, states, full) {
        Ok(Some(dir)) => {
            for report in reports.iter_mut().filter(|r| !r.ok) {
                report.outbox = Some(dir.clone());
            }
        }
        Ok(None) => {}
        Err(e) => {
            tracing::error!(error = %e, "cannot keep the outputs in the outbox");
            reports.push(DeliveryReport {
                destination: format!("outbox {}", job.outbox.display()),
                ok: false,
                error: Some(e.to_string()),
                attempts: 1,
                outbox: None,
                key: None,
                report_date: None,
                delivered: Vec::new(),
            });
        }
    }
    reports
}

/// What a destination already received of a date, by the run ledger: `(report date,
/// destination key) -> experiment ids`.
pub type Received<'a> = &'a (dyn Fn(NaiveDate, &str) -> Vec<String> + Sync);

/// Sends what waits in the job's outbox: for every entry (oldest first), only the destinations
/// still owed, and to each only the experiments `received` does not list (runs made since the
/// entry may have delivered some), for email only the messages not yet accepted. Progress is
/// saved after every message and destination, so a second retry sends nothing twice; an entry
/// is removed once every destination is done. Reports name the entry's date.
pub async fn retry_outbox(job: &Job, received_before: Received<'_>) -> Vec<DeliveryReport> {
    let entries = match outbox::list(job) {
        Ok(entries) => entries,
        Err(e) => {
            return vec![DeliveryReport {
                destination: format!("outbox {}", job.outbox.display()),
                ok: false,
                error: Some(e.to_string()),
                attempts: 0,
                outbox: None,
                key: None,
                report_date: None,
                delivered: Vec::new(),
            }];
        }
    };
    let mut reports = Vec::new();
    for mut entry in entries {
        let report_date = entry.state.report_date;
        let outputs = match outbox::load_outputs(&entry) {
            Ok(outputs) => outputs,
            Err(e) => {
                reports.push(DeliveryReport::outbox_entry_failed(&entry.dir, report_date, &e));
                continue;
            }
        };
        for i in 0..entry.state.destinations.len() {
            if entry.state.destinations[i].done {
                continue;
            }
            let pending = entry.state.destinations[i].clone();
            let already = if pending.key.is_empty() { Vec::new() } else { received_before(report_date, &pending.key) };
            let owed: Vec<ExperimentOutputs> =
                outputs.iter().filter(|o| !already.contains(&o.experiment_id)).cloned().collect();
            let destination = format!("{} ({report_date} from the outbox)", pending.destination);
            if owed.is_empty() {
                // A run since the entry was made delivered all of it.
                tracing::info!(destination, "already delivered by a later run; not sent again from the outbox");
                entry.state.destinations[i].done = true;
                if let Err(e) = outbox::save_state(&entry.dir, &entry.state) {
                    reports.push(DeliveryReport::outbox_entry_failed(&entry.dir, report_date, &e));
                }
                continue;
            }
            let dir = entry.dir.clone();
            let mut accepted: Vec<String> = Vec::new();
            let (result, attempts) = {
                let state = &mut entry.state;
                let mut on_sent = |key: &str| {
                    accepted.push(key.to_string());
                    state.destinations[i].sent.push(key.to_string());
                    outbox::save_state(&dir, state)
                };
                deliver_one(job, report_date, &owed, &pending.delivery, &pending.sent, &mut on_sent).await
            };
            log_outcome(&destination, &result, attempts);
            let state = &mut entry.state.destinations[i];
            state.attempts += attempts;
            state.done = result.is_ok();
            state.last_error = result.as_ref().err().map(ToString::to_string);
            let saved = outbox::save_state(&entry.dir, &entry.state);
            let error = match (&result, saved) {
                (Err(e), _) => Some(e.to_string()),
                (Ok(()), Err(e)) => Some(format!("delivered, but the outbox could not record it: {e}")),
                (Ok(()), Ok(())) => None,
            };
            // Messages accepted by an earlier attempt count as received as well.
            accepted.extend(pending.sent.iter().cloned());
            reports.push(DeliveryReport {
                destination,
                ok: error.is_none(),
                error,
                attempts,
                outbox: result.is_err().then(|| entry.dir.clone()),
                key: Some(pending.key.clone()).filter(|k| !k.is_empty()),
                report_date: Some(report_date),
                delivered: received(&owed, result.is_ok(), &accepted),
            });
        }
        if entry.state.destinations.iter().all(|d| d.done)
            && let Err(e) = outbox::remove(&entry.dir)
        {
            reports.push(DeliveryReport::outbox_entry_failed(&entry.dir, report_date, &e));
        }
    }
    reports
}

/// Mails a short plain-text notice to the job's `admin` (nothing to do without one). Used when
/// a delivery or a run fails. Transient failures are retried; the error names the server and
/// cause, never a credential.
pub async fn notify_admin(job: &Job, subject: &str, body: &str) -> Result<(), String> {
    let Some(admin) = &job.admin else {
        return Ok(());
    };
    let settings =
        SmtpSettings::load(job.secrets_file.as_deref()).map_err(|e| format!("cannot notify {admin}: {e}"))?;
    let message =
        email::notice(&settings.from, admin, subject, body).map_err(|e| format!("cannot notify {admin}: {e}"))?;
    let mailer = Mailer::new(&settings).map_err(|e| format!("cannot notify {admin}: {e}"))?;
    let formatted = message.formatted();
    let (result, made) = retry::retry(|| mailer.send(message.envelope(), &formatted), SmtpError::is_transient).await;
    result.map_err(|e| format!("cannot notify {admin}: {}", with_retry_note(e, made)))
}
