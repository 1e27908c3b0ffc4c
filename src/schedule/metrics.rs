//! The service's Prometheus metrics, kept in memory and rendered in the text exposition format
//! (version 0.0.4) by hand: a handful of series does not need a metrics crate.
//!
//! - `abreport_runs_total{job,status}`: finished runs (and skipped fires, `status="skipped"`).
//! - `abreport_run_duration_seconds{job}`: histogram of run durations, buckets up to 120 s.
//! - `abreport_last_success_timestamp_seconds{job}`: when the job last ended `ok` or `no_data`.
//! - `abreport_delivery_failures_total{job,destination}`: failed deliveries.
//! - `abreport_runs_in_progress{job}` and `abreport_jobs`: what the service is doing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use crate::ledger::{RunRecord, RunStatus};

/// Upper bounds of the duration histogram, in seconds (the default SLA is 60 s).
const BUCKETS: [f64; 12] = [0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0];

#[derive(Debug, Default)]
struct Histogram {
    /// Count per bucket (not cumulative; made cumulative when rendered).
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Debug, Default)]
struct Series {
    runs: BTreeMap<(String, String), u64>,
    durations: BTreeMap<String, Histogram>,
    last_success: BTreeMap<String, f64>,
    delivery_failures: BTreeMap<(String, String), u64>,
    in_progress: BTreeMap<String, i64>,
    jobs: usize,
}

/// Metrics of one service process.
#[derive(Debug, Default)]
pub struct Metrics {
    series: Mutex<Series>,
}

impl Metrics {
    fn with<T>(&self, f: impl FnOnce(&mut Series) -> T) -> T {
        f(&mut self.series.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Sets the number of scheduled jobs.
    pub fn set_jobs(&self, jobs: usize) {
        self.with(|s| s.jobs = jobs);
    }

    /// A run of `job` started.
    pub fn run_started(&self, job: &str) {
        self.with(|s| *s.in_progress.entry(job.to_string()).or_default() += 1);
    }

    /// A run of `job` ended as `record` says.
    pub fn run_finished(&self, record: &RunRecord) {
        self.with(|s| {
            let job = record.job.clone();
            *s.in_progress.entry(job.clone()).or_default() -= 1;
            *s.runs.entry((job.clone(), record.status.name().to_string())).or_default() += 1;
            if let Some(seconds) = record.duration_seconds {
                let histogram = s.durations.entry(job.clone()).or_default();
                if let Some(i) = BUCKETS.iter().position(|upper| seconds <= *upper) {
                    histogram.counts[i] += 1;
                }
                histogram.sum += seconds;
                histogram.count += 1;
            }
            if matches!(record.status, RunStatus::Ok | RunStatus::NoData) {
                let finished = record.finished_at.unwrap_or(record.started_at);
                s.last_success.insert(job.clone(), finished.timestamp_millis() as f64 / 1000.0);
            }
            for delivery in record.deliveries.iter().filter(|d| !d.ok) {
                *s.delivery_failures.entry((job.clone(), delivery.destination.clone())).or_default() += 1;
            }
        });
    }

    /// A run of `job` that [`Metrics::run_started`] counted did not start after all: the ledger
    /// showed its date delivered.
    pub fn run_not_started(&self, job: &str) {
        self.with(|s| *s.in_progress.entry(job.to_string()).or_default() -= 1);
        self.fire_skipped(job);
    }

    /// A fire of `job` was skipped (already delivered, or a run still going).
    pub fn fire_skipped(&self, job: &str) {
        self.with(|s| *s.runs.entry((job.to_string(), "skipped".to_string())).or_default() += 1);
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        self.with(|s| {
            let mut out = String::new();
            header(&mut out, "abreport_jobs", "gauge", "Jobs scheduled by this service.");
            let _ = writeln!(out, "abreport_jobs {}", s.jobs);
            header(
                &mut out,
                "abreport_runs_total",
                "counter",
                "Runs by job and final status (skipped: fires not run).",
            );
            for ((job, status), n) in &s.runs {
                let _ = writeln!(out, "abreport_runs_total{{job=\"{}\",status=\"{}\"}} {n}", escape(job), status);
            }
            header(&mut out, "abreport_runs_in_progress", "gauge", "Runs going on now.");
            for (job, n) in &s.in_progress {
                let _ = writeln!(out, "abreport_runs_in_progress{{job=\"{}\"}} {n}", escape(job));
            }
            header(&mut out, "abreport_run_duration_seconds", "histogram", "Duration of finished runs.");
            for (job, h) in &s.durations {
                let job = escape(job);
                let mut cumulative = 0;
                for (upper, count) in BUCKETS.iter().zip(h.counts) {
                    cumulative += count;
                    let _ = writeln!(
                        out,
                        "abreport_run_duration_seconds_bucket{{job=\"{job}\",le=\"{upper}\"}} {cumulative}"
                    );
                }
                let _ = writeln!(out, "abreport_run_duration_seconds_bucket{{job=\"{job}\",le=\"+Inf\"}} {}", h.count);
                let _ = writeln!(out, "abreport_run_duration_seconds_sum{{job=\"{job}\"}} {}", h.sum);
                let _ = writeln!(out, "abreport_run_duration_seconds_count{{job=\"{job}\"}} {}", h.count);
            }
            header(
                &mut out,
                "abreport_last_success_timestamp_seconds",
                "gauge",
                "Unix time of the job's last run that ended ok or no_data.",
            );
            for (job, ts) in &s.last_success {
                let _ = writeln!(out, "abreport_last_success_timestamp_seconds{{job=\"{}\"}} {ts}", escape(job));
            }
            header(
                &mut out,
                "abreport_delivery_failures_total",
                "counter",
                "Failed deliveries by job and destination.",
            );
            for ((job, destination), n) in &s.delivery_failures {
                let _ = writeln!(
                    out,
                    "abreport_delivery_failures_total{{job=\"{}\",destination=\"{}\"}} {n}",
                    escape(job),
                    escape(destination)
                );
            }
            out
        })
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value: backslash, double quote and newline, as the format requires.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{DeliveryStatus, Trigger};

    fn finished(job: &str, status: RunStatus, seconds: f64) -> RunRecord {
        let mut record = RunRecord::start(job, "2026-11-20".parse().expect("date"), Trigger::Schedule, 60.0);
        record.status = status;
        record.duration_seconds = Some(seconds);
        record.finished_at = Some("2026-11-21T06:00:01Z".parse().expect("instant"));
        record
    }

    #[test]
    fn runs_durations_successes_and_failures_are_rendered() {
        let metrics = Metrics::default();
        metrics.set_jobs(1);
        metrics.run_started("daily");
        metrics.run_finished(&finished("daily", RunStatus::Ok, 0.7));
        metrics.run_started("daily");
        let mut failed = finished("daily", RunStatus::DeliveryFailed, 61.0);
        failed.deliveries.push(DeliveryStatus {
            destination: "upload s3://b/\"x\"".into(),
            key: "k".into(),
            ok: false,
            error: Some("denied".into()),
            skipped: false,
        });
        metrics.run_finished(&failed);
        metrics.fire_skipped("daily");
        let text = metrics.render();
        for line in [
            "abreport_jobs 1",
            "abreport_runs_total{job=\"daily\",status=\"ok\"} 1",
            "abreport_runs_total{job=\"daily\",status=\"delivery_failed\"} 1",
            "abreport_runs_total{job=\"daily\",status=\"skipped\"} 1",
            "abreport_runs_in_progress{job=\"daily\"} 0",
            "abreport_run_duration_seconds_bucket{job=\"daily\",le=\"0.5\"} 0",
            "abreport_run_duration_seconds_bucket{job=\"daily\",le=\"1\"} 1",
            "abreport_run_duration_seconds_bucket{job=\"daily\",le=\"60\"} 1",
            "abreport_run_duration_seconds_bucket{job=\"daily\",le=\"90\"} 2",
            "abreport_run_duration_seconds_bucket{job=\"daily\",le=\"+Inf\"} 2",
            "abreport_run_duration_seconds_sum{job=\"daily\"} 61.7",
            "abreport_run_duration_seconds_count{job=\"daily\"} 2",
            // 2026-11-21T06:00:01Z
            "abreport_last_success_timestamp_seconds{job=\"daily\"} 1795240801",
            "abreport_delivery_failures_total{job=\"daily\",destination=\"upload s3://b/\\\"x\\\"\"} 1",
            "# TYPE abreport_run_duration_seconds histogram",
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}` in\n{text}");
        }
    }
}
