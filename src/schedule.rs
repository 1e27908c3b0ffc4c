//! The clock around the pipeline: `abreport serve` fires each job on its cron schedule in its
//! time zone, keeps a run ledger, catches up missed runs, and reports health and metrics.
//!
//! - [`cron`]: next fire times in a time zone, DST-correct (pure).
//! - [`ledger`]: one record per job and report date, in a folder or an object store.
//! - [`service`]: the loop: tokio-cron-scheduler, one run per job at a time, signals, reload.
//! - [`metrics`] and [`http`]: Prometheus metrics and `/healthz`.
//!
//! A scheduled run is the same `app::run_recorded` call `abreport run` makes; this module adds
//! only when, for which date, and what to do about the outcome. It reads no data itself.

pub mod cron;
pub mod http;
pub mod ledger;
pub mod metrics;
pub mod service;

use crate::config::Job;
use ledger::RunRecord;

/// Tells the job's admin that a run ended badly (`source_unavailable`, `sla_missed`, `failed`,
/// `no_data`, `delivery_failed`).
///
/// The one place failure notices go out: mailed to the job's `admin` (through
/// `deliver::notify_admin`, with the job's SMTP settings) and always logged at error level with
/// everything it says, so the service's log collector shows it too, and whether the mail went.
pub async fn notify_failure(job: &Job, record: &RunRecord) {
    let subject = notice_subject(record);
    let body = notice_body(record, &job.file);
    let mailed = match &job.admin {
        None => "not mailed: the job names no `admin`".to_string(),
        Some(admin) => match crate::deliver::notify_admin(job, &subject, &body).await {
            Ok(()) => format!("mailed to {admin}"),
            Err(e) => format!("not mailed: {e}"),
        },
    };
    tracing::error!(
        job = %job.name,
        report_date = %record.report_date,
        status = record.status.name(),
        subject = %subject,
        body = %body,
        "admin notice ({mailed})"
    );
}

/// The subject line of a failure notice.
pub fn notice_subject(record: &RunRecord) -> String {
    format!("[abreport] job `{}` for {}: {}", record.job, record.report_date, record.status.name())
}

/// The text of a failure notice: what happened, where it stopped, and what happens next.
/// `job_file` is the job file as the run was given it, for the commands it quotes.
pub fn notice_body(record: &RunRecord, job_file: &std::path::Path) -> String {
    let job_file = job_file.display();
    let mut body = format!(
        "The run of job `{}` for report date {} ended with status `{}` after {:.1} s (SLA {:.0} s, attempt {}).\n",
        record.job,
        record.report_date,
        record.status.name(),
        record.duration_seconds.unwrap_or_default(),
        record.sla_seconds,
        record.attempt
    );
    if let Some(stage) = &record.sla_missed_stage {
        body.push_str(&format!("The SLA passed during stage `{stage}`; nothing was published as complete.\n"));
    }
    if let Some(error) = &record.error {
        body.push_str(&format!("Error: {error}\n"));
    }
    if record.status == ledger::RunStatus::DeliveryFailed {
        // Say where the outputs really are: the outbox may be what could not be written.
        let destination_failed = record.deliveries.iter().any(|d| !d.ok && d.key != "outbox");
        match &record.outbox {
            Some(outbox) => body.push_str(&format!(
                "The report was made and kept: the outputs wait in the outbox `{outbox}`. \
                 `abreport deliver --retry --job {job_file}` sends each destination that failed what it did not receive, \
                 once (the next scheduled run does the same).\n"
            )),
            None if destination_failed => body.push_str(&format!(
                "The outputs could not be kept in the outbox either (see the error), so nothing waits there. \
                 Once the cause is fixed, `abreport run --job {job_file} --date {}` makes the report again and sends \
                 each destination only what it did not receive.\n",
                record.report_date
            )),
            None => body.push_str(&format!(
                "Every destination received its outputs; what could not be written is named in the error. \
                 `abreport run --job {job_file} --date {} --no-deliver` writes the local outputs again.\n",
                record.report_date
            )),
        }
    } else {
        body.push_str(&format!(
            "The next scheduled run tries the source again. To redo this date now: `abreport run --job {job_file} --date {}` \
             (a restart of `abreport serve` also catches it up while it is within `--catch-up-days`).\n",
            record.report_date
        ));
    }
    body
}
