//! The service's Prometheus metrics, kept with `prometheus-client` (the Prometheus project's
//! own Rust client) and written in its Prometheus text format (version 0.0.4), the format and
//! `Content-Type` the hand-written encoder this replaced used: same names, labels, HELP and
//! TYPE lines. A well-kept encoder gets escaping and float formatting right (`le` bounds as
//! the Go client writes them) without us; it costs one small crate and its derive macro.
//!
//! - `abreport_runs_total{job,status}`: finished runs (and skipped fires, `status="skipped"`).
//! - `abreport_run_duration_seconds{job}`: histogram of run durations, buckets up to 120 s.
//! - `abreport_last_success_timestamp_seconds{job}`: when the job last ended `ok` or `no_data`.
//! - `abreport_delivery_failures_total{job,destination}`: failed deliveries.
//! - `abreport_runs_in_progress{job}` and `abreport_jobs`: what the service is doing.
//!
//! Three differences from the hand-written text, none seen by a Prometheus scrape: a metric
//! without series yet (no run finished) has no HELP and TYPE lines either, a floating-point
//! value that is a whole number is written with `.0` (a timestamp on a whole second, a
//! duration sum), and the series of one metric come in no particular order.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::ledger::{RunRecord, RunStatus};

/// Upper bounds of the duration histogram, in seconds (the default SLA is 60 s).
const BUCKETS: [f64; 12] = [0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0];

/// The `Content-Type` of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The labels of a job's series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct JobLabel {
    job: String,
}

/// The labels of `abreport_runs_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RunLabels {
    job: String,
    status: String,
}

/// The labels of `abreport_delivery_failures_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DeliveryLabels {
    job: String,
    destination: String,
}

/// Metrics of one service process.
#[derive(Debug)]
pub struct Metrics {
    /// Every metric below, registered in the order they are written.
    registry: Registry,
    jobs: Gauge,
    runs: Family<RunLabels, Counter>,
    in_progress: Family<JobLabel, Gauge>,
    durations: Family<JobLabel, Histogram, fn() -> Histogram>,
    last_success: Family<JobLabel, Gauge<f64, AtomicU64>>,
    delivery_failures: Family<DeliveryLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let metrics = Self {
            registry: Registry::default(),
            jobs: Gauge::default(),
            runs: Family::default(),
            in_progress: Family::default(),
            durations: Family::new_with_constructor(|| Histogram::new(BUCKETS)),
            last_success: Family::default(),
            delivery_failures: Family::default(),
        };
        let mut registry = Registry::default();
        // Help texts without the final period: the registry adds it. Counters are registered
        // without `_total`: the encoder adds it.
        registry.register("abreport_jobs", "Jobs scheduled by this service", metrics.jobs.clone());
        registry.register(
            "abreport_runs",
            "Runs by job and final status (skipped: fires not run)",
            metrics.runs.clone(),
        );
        registry.register("abreport_runs_in_progress", "Runs going on now", metrics.in_progress.clone());
        registry.register("abreport_run_duration_seconds", "Duration of finished runs", metrics.durations.clone());
        registry.register(
            "abreport_last_success_timestamp_seconds",
            "Unix time of the job's last run that ended ok or no_data",
            metrics.last_success.clone(),
        );
        registry.register(
            "abreport_delivery_failures",
            "Failed deliveries by job and destination",
            metrics.delivery_failures.clone(),
        );
        Self { registry, ..metrics }
    }
}

impl Metrics {
    /// Sets the number of scheduled jobs.
    pub fn set_jobs(&self, jobs: usize) {
        self.jobs.set(i64::try_from(jobs).unwrap_or(i64::MAX));
    }

    /// A run of `job` started.
    pub fn run_started(&self, job: &str) {
        self.in_progress.get_or_create(&job_label(job)).inc();
    }

    /// A run of `job` ended as `record` says.
    pub fn run_finished(&self, record: &RunRecord) {
        let job = job_label(&record.job);
        self.in_progress.get_or_create(&job).dec();
        self.runs.get_or_create(&RunLabels { job: record.job.clone(), status: record.status.name().into() }).inc();
        if let Some(seconds) = record.duration_seconds {
            self.durations.get_or_create(&job).observe(seconds);
        }
        if matches!(record.status, RunStatus::Ok | RunStatus::NoData) {
            let finished = record.finished_at.unwrap_or(record.started_at);
            self.last_success.get_or_create(&job).set(finished.timestamp_millis() as f64 / 1000.0);
        }
        for delivery in record.deliveries.iter().filter(|d| !d.ok) {
            let labels = DeliveryLabels { job: record.job.clone(), destination: delivery.destination.clone() };
            self.delivery_failures.get_or_create(&labels).inc();
        }
    }

    /// A run of `job` that [`Metrics::run_started`] counted did not start after all: the ledger
    /// showed its date delivered.
    pub fn run_not_started(&self, job: &str) {
        self.in_progress.get_or_create(&job_label(job)).dec();
        self.fire_skipped(job);
    }

    /// A fire of `job` was skipped (already delivered, or a run still going).
    pub fn fire_skipped(&self, job: &str) {
        self.runs.get_or_create(&RunLabels { job: job.to_string(), status: "skipped".into() }).inc();
    }

    /// The metrics in the Prometheus text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            .expect("writing to a String does not fail");
        out
    }
}

fn job_label(job: &str) -> JobLabel {
    JobLabel { job: job.to_string() }
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
    fn names_help_and_types_are_those_dashboards_know() {
        // As the hand-written encoder wrote them before `prometheus-client`, byte for byte.
        let expected = [
            "# HELP abreport_jobs Jobs scheduled by this service.",
            "# TYPE abreport_jobs gauge",
            "# HELP abreport_runs_total Runs by job and final status (skipped: fires not run).",
            "# TYPE abreport_runs_total counter",
            "# HELP abreport_runs_in_progress Runs going on now.",
            "# TYPE abreport_runs_in_progress gauge",
            "# HELP abreport_run_duration_seconds Duration of finished runs.",
            "# TYPE abreport_run_duration_seconds histogram",
            "# HELP abreport_last_success_timestamp_seconds Unix time of the job's last run that ended ok or no_data.",
            "# TYPE abreport_last_success_timestamp_seconds gauge",
            "# HELP abreport_delivery_failures_total Failed deliveries by job and destination.",
            "# TYPE abreport_delivery_failures_total counter",
        ];
        let metrics = Metrics::default();
        assert_eq!(metrics.render(), format!("{}\n{}\nabreport_jobs 0\n", expected[0], expected[1]), "no series yet");
        metrics.run_started("daily");
        let mut failed = finished("daily", RunStatus::Ok, 1.0);
        failed.deliveries.push(DeliveryStatus {
            destination: "dir /srv".into(),
            key: "k".into(),
            ok: false,
            error: None,
            skipped: false,
        });
        metrics.run_finished(&failed);
        let text = metrics.render();
        assert_eq!(text.lines().filter(|l| l.starts_with('#')).collect::<Vec<_>>(), expected, "{text}");
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
            "abreport_last_success_timestamp_seconds{job=\"daily\"} 1795240801.0",
            "abreport_delivery_failures_total{job=\"daily\",destination=\"upload s3://b/\\\"x\\\"\"} 1",
            "# TYPE abreport_run_duration_seconds histogram",
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}` in\n{text}");
        }
    }
}
