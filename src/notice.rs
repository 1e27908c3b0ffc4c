//! Failure notices to a job's admin: what a run that ended badly says (subject and body), and
//! a gate that mails at most one per job and status an hour. `recorded` calls it at the end
//! of every run, whatever started it (`run`, `serve`, `deliver`).

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use crate::config::Job;
use crate::ledger::{RunRecord, RunStatus};

/// At most one notice per job and status is mailed within this long; the runs that end the same
/// way in between are logged at error level as usual and counted in the next mailed notice. A
/// run that ends `ok` lets the next failure through at once.
pub const NOTICE_INTERVAL: Duration = Duration::from_secs(3600);

/// The notices of this process, per job and status: when the last was mailed and how many
/// were held back since. A job failing every two seconds would otherwise mail sixty notices
/// in two minutes.
static NOTICES: LazyLock<Mutex<NoticeGate>> = LazyLock::new(Mutex::default);

/// Decides which failure notices are mailed (see [`NOTICE_INTERVAL`]); no clock of its own.
#[derive(Debug, Default)]
pub struct NoticeGate {
    last: HashMap<(String, RunStatus), (Instant, u32)>,
}

/// What to do with one notice.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    /// Mail it, saying how many like it were held back since the last one.
    Mail { held_back: u32 },
    /// Do not mail it: one like it went `ago`.
    Hold { ago: Duration },
}

impl NoticeGate {
    /// A notice about `job` ending with `status`, at `now`.
    pub fn admit(&mut self, job: &str, status: RunStatus, now: Instant) -> Admit {
        match self.last.get_mut(&(job.to_string(), status)) {
            Some((mailed, held)) if now.duration_since(*mailed) < NOTICE_INTERVAL => {
                *held += 1;
                Admit::Hold { ago: now.duration_since(*mailed) }
            }
            Some((mailed, held)) => {
                let held_back = std::mem::take(held);
                *mailed = now;
                Admit::Mail { held_back }
            }
            None => {
                self.last.insert((job.to_string(), status), (now, 0));
                Admit::Mail { held_back: 0 }
            }
        }
    }

    /// `job` ran well: its next failure is news.
    pub fn clear(&mut self, job: &str) {
        self.last.retain(|(name, _), _| name != job);
    }
}

/// Tells the notice gate that a run of `job` ended `ok`.
pub fn run_succeeded(job: &Job) {
    NOTICES.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear(&job.name);
}

/// Tells the job's admin that a run ended badly (`source_unavailable`, `sla_missed`, `failed`,
/// `no_data`, `delivery_failed`).
///
/// The one place failure notices go out: mailed to the job's `admin` (through
/// `deliver::notify_admin`, with the job's SMTP settings) and always logged at error level with
/// everything it says, so the service's log collector shows it too, and whether the mail went.
pub async fn notify_failure(job: &Job, record: &RunRecord) {
    let subject = notice_subject(record);
    let mut body = notice_body(record, &job.file);
    let admit = {
        NOTICES.lock().unwrap_or_else(std::sync::PoisonError::into_inner).admit(
            &job.name,
            record.status,
            Instant::now(),
        )
    };
    let mailed = match (&job.admin, admit) {
        (None, _) => "not mailed: the job names no `admin`".to_string(),
        (Some(_), Admit::Hold { ago }) => format!(
            "not mailed: held back, a notice for this job and status went {:.0} s ago; at most one an hour, the next counts this one",
            ago.as_secs_f64()
        ),
        (Some(admin), Admit::Mail { held_back }) => {
            if held_back > 0 {
                body.push_str(&format!(
                    "{held_back} more run(s) of this job ended `{}` since the last notice; their notices were held back \
                     (at most one per job and status an hour) and are in the log.\n",
                    record.status.name()
                ));
            }
            match crate::deliver::notify_admin(job, &subject, &body).await {
                Ok(()) => format!("mailed to {admin}"),
                Err(e) => format!("not mailed: {e}"),
            }
        }
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
    if record.status == RunStatus::DeliveryFailed {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_notice_per_job_and_status_an_hour_and_the_next_counts_the_held_ones() {
        let mut gate = NoticeGate::default();
        let t0 = Instant::now();
        let at = |seconds: u64| t0 + Duration::from_secs(seconds);
        assert_eq!(gate.admit("daily", RunStatus::SourceUnavailable, at(0)), Admit::Mail { held_back: 0 });
        assert_eq!(
            gate.admit("daily", RunStatus::SourceUnavailable, at(2)),
            Admit::Hold { ago: Duration::from_secs(2) }
        );
        assert!(matches!(gate.admit("daily", RunStatus::SourceUnavailable, at(4)), Admit::Hold { .. }));
        // Another cause, or another job, is news.
        assert_eq!(gate.admit("daily", RunStatus::SlaMissed, at(5)), Admit::Mail { held_back: 0 });
        assert_eq!(gate.admit("hourly", RunStatus::SourceUnavailable, at(5)), Admit::Mail { held_back: 0 });
        assert_eq!(gate.admit("daily", RunStatus::SourceUnavailable, at(3600)), Admit::Mail { held_back: 2 });
        assert!(matches!(gate.admit("daily", RunStatus::SourceUnavailable, at(3601)), Admit::Hold { .. }));
        // A good run in between: the next failure goes at once.
        gate.clear("daily");
        assert_eq!(gate.admit("daily", RunStatus::SourceUnavailable, at(3602)), Admit::Mail { held_back: 0 });
    }
}
