//! The job file exactly as written: serde types that mirror the TOML.
//!
//! Nothing here is checked beyond TOML syntax and field names (`deny_unknown_fields`);
//! [`super::job`] turns a [`RawJob`] into a checked [`super::Job`], collecting every problem
//! with its line.

use serde::Deserialize;
use toml::Spanned;

/// One job file: a source, metric definitions, experiments and deliveries.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJob {
    /// Job name; used in reports, upload paths and the run ledger.
    pub name: Spanned<String>,
    /// Cron expression with a seconds field (`sec min hour day month weekday [year]`).
    pub schedule: Option<Spanned<String>>,
    /// IANA time zone of the schedule and of the default report date. Default `UTC`.
    pub timezone: Option<Spanned<String>>,
    /// Deadline for a whole run, in seconds. Default 60.
    pub sla_seconds: Option<Spanned<f64>>,
    /// Where the exposure and event partitions live.
    pub source: RawSource,
    /// Statistical settings shared by all experiments of the job.
    #[serde(default)]
    pub stats: RawStats,
    /// Metric definitions, referenced by name from experiments.
    #[serde(default)]
    pub metrics: Vec<Spanned<RawMetric>>,
    /// Experiments analysed by this job.
    #[serde(default)]
    pub experiments: Vec<Spanned<RawExperiment>>,
    /// Where the outputs go after a run.
    #[serde(default)]
    pub deliver: Vec<Spanned<RawDelivery>>,
    /// Extra string columns of the exposure log to break the primary metric down by
    /// (exploratory; never used for the recommendation).
    #[serde(default)]
    pub dimensions: Vec<Spanned<String>>,
    /// Address that receives a short notice when a delivery or a run fails.
    pub admin: Option<Spanned<String>>,
    /// A file of `KEY=value` lines with the `ABREPORT_SMTP_*` settings (server, credentials,
    /// sender), relative to the job file's folder. Secrets never go in the job file itself.
    pub secrets_file: Option<Spanned<String>>,
    /// Folder where a run's outputs wait when a delivery fails, relative to the job file's
    /// folder. Default `outbox` next to the job file.
    pub outbox: Option<Spanned<String>>,
}

/// `[source]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    /// Root URL: `file:///…`, `s3://bucket/prefix`, `gs://…`, `az://…`, or a path relative
    /// to the job file's folder.
    pub url: Spanned<String>,
    /// Column names in the files, when they differ from the contract's names.
    #[serde(default)]
    pub columns: RawColumns,
    /// What `url` holds: `parquet` (the two datasets; the default) or `sufficient_stats` (the
    /// table of docs/sufficient-stats.md, computed elsewhere).
    pub kind: Option<Spanned<String>>,
    /// What computes the statistics of `parquet` data: `embedded` (this process; the default) or
    /// `spark` (a Spark cluster through Spark Connect).
    pub engine: Option<Spanned<String>>,
    /// The Spark Connect URL (`sc://host:15002`) when `engine = "spark"`.
    pub spark_remote: Option<Spanned<String>>,
    /// Where Spark writes the per-unit exports (a URL or a path both Spark and abreport reach).
    pub spark_output: Option<Spanned<String>>,
}

/// `[source.columns]`: each key names the column in the files.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawColumns {
    /// Exposure column holding the experiment id. Default `experiment_id`.
    pub experiment_id: Option<String>,
    /// Exposure column holding the variant name. Default `variant`.
    pub variant: Option<String>,
    /// Unit id column, in both datasets. Default `unit_id`.
    pub unit_id: Option<String>,
    /// Exposure timestamp column. Default `ts`.
    pub exposure_ts: Option<String>,
    /// Event name column. Default `event`.
    pub event: Option<String>,
    /// Event value column. Default `value`.
    pub value: Option<String>,
    /// Event timestamp column. Default `ts`.
    pub event_ts: Option<String>,
}

/// `[stats]`, and the per-experiment overrides of the same names.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStats {
    /// Significance level, two-sided. Default 0.05.
    pub alpha: Option<Spanned<f64>>,
    /// Power used for sample-size estimates. Default 0.8.
    pub power: Option<Spanned<f64>>,
    /// Multiple-comparison correction: `holm`, `bh` or `none`. Default `holm`.
    pub correction: Option<Spanned<String>>,
    /// p-value below which the SRM check fails. Default 0.001.
    pub srm_p_value: Option<Spanned<f64>>,
    /// Minimum detectable effect, relative (0.05 = 5%). Default 0.05.
    pub mde: Option<Spanned<f64>>,
    /// Always-valid (sequential) inference, safe to read daily. Default: on, for every job (a
    /// report read twice is a peek, whether a schedule or a person reads it).
    pub sequential: Option<Spanned<bool>>,
    /// Days before a unit's first exposure whose events form the CUPED covariate. Default 14.
    pub cuped_lookback_days: Option<Spanned<i64>>,
    /// Standard deviation of a proper normal prior N(0, sd²) on the relative effect for the
    /// Bayesian view. Default: none (flat prior).
    pub prior_stddev: Option<Spanned<f64>>,
    /// Smallest relative deviation of a variant's share from its expected weight for the SRM
    /// check to fail (besides p < srm_p_value). Default 0.005.
    pub srm_min_deviation: Option<Spanned<f64>>,
    /// Non-inferiority margin (relative) of guardrails listed by name only. Default: none, so
    /// such guardrails only block on significant harm.
    pub guardrail_margin: Option<Spanned<f64>>,
    /// The longest an experiment should run, in days from its start: from then on a run
    /// without a verdict recommends stopping. Default 42.
    pub max_days: Option<Spanned<i64>>,
}

/// `[[metrics]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetric {
    /// Name experiments refer to.
    pub name: Spanned<String>,
    /// `proportion`, `mean` or `ratio`.
    pub kind: Spanned<String>,
    /// Event name (`proportion`, `mean`).
    pub event: Option<Spanned<String>>,
    /// Per-unit aggregate of `value` for `mean`: `sum`, `count` or `max`. Default `sum`.
    pub aggregate: Option<Spanned<String>>,
    /// Numerator of a `ratio` metric.
    pub numerator: Option<Spanned<RawEventAggregate>>,
    /// Denominator of a `ratio` metric.
    pub denominator: Option<Spanned<RawEventAggregate>>,
    /// Whether an increase is good. Default true.
    pub higher_is_better: Option<bool>,
    /// Variance reduction with the metric's own pre-exposure value as covariate (CUPED).
    pub cuped: Option<bool>,
    /// Outlier capping of per-unit values (`mean` metrics): `{ absolute = 500.0 }` or
    /// `{ percentile = 0.99 }`.
    pub cap: Option<Spanned<RawCap>>,
    /// Free text shown in reports.
    pub description: Option<String>,
}

/// `cap = { absolute = X }` or `cap = { percentile = 0.99 }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCap {
    /// Cap every per-unit value at this number.
    pub absolute: Option<f64>,
    /// Cap at this quantile of the experiment's per-unit values (computed in the run).
    pub percentile: Option<f64>,
}

/// `{ event = "purchase", aggregate = "sum" }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEventAggregate {
    /// Event name.
    pub event: Spanned<String>,
    /// `sum`, `count` or `max`. Default `sum`.
    pub aggregate: Option<Spanned<String>>,
}

/// `[[experiments]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExperiment {
    /// Experiment id as it appears in the exposure log.
    pub id: Spanned<String>,
    /// Name of the control variant.
    pub control: Spanned<String>,
    /// Expected split, `{ control = 0.5, treatment = 0.5 }`, in display order.
    pub variants: Spanned<toml::Table>,
    /// First day of the analysis window (a TOML date or a `YYYY-MM-DD` string).
    pub start: Spanned<toml::Value>,
    /// Primary (success) metric.
    pub primary: Spanned<String>,
    /// Secondary metrics.
    #[serde(default)]
    pub secondary: Vec<Spanned<String>>,
    /// Guardrail metrics: names, or `{ metric = "latency", margin = 0.02 }` with a relative
    /// non-inferiority margin.
    #[serde(default)]
    pub guardrails: Vec<Spanned<toml::Value>>,
    /// Planned total units (all variants): tunes the sequential intervals to be narrowest there.
    pub planned_units: Option<Spanned<i64>>,
    /// Free text shown in reports.
    pub description: Option<String>,
    /// Override of `[stats] alpha`.
    pub alpha: Option<Spanned<f64>>,
    /// Override of `[stats] power`.
    pub power: Option<Spanned<f64>>,
    /// Override of `[stats] correction`.
    pub correction: Option<Spanned<String>>,
    /// Override of `[stats] srm_p_value`.
    pub srm_p_value: Option<Spanned<f64>>,
    /// Override of `[stats] mde`.
    pub mde: Option<Spanned<f64>>,
    /// Override of `[stats] max_days`.
    pub max_days: Option<Spanned<i64>>,
}

impl RawExperiment {
    /// The per-experiment overrides, in the shape of `[stats]`.
    pub fn stats_overrides(&self) -> RawStats {
        RawStats {
            alpha: self.alpha.clone(),
            power: self.power.clone(),
            correction: self.correction.clone(),
            srm_p_value: self.srm_p_value.clone(),
            mde: self.mde.clone(),
            max_days: self.max_days.clone(),
            ..RawStats::default()
        }
    }
}

/// `[[deliver]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDelivery {
    /// `email`, `upload`, `dir` or `chat`.
    pub kind: Spanned<String>,
    /// Recipients (`email`).
    #[serde(default)]
    pub to: Vec<String>,
    /// Destination URL (`upload`): `s3://bucket/prefix`, `gs://…`, `az://…`, `file:///…`.
    pub url: Option<Spanned<String>>,
    /// Destination folder (`dir`), relative to the job file's folder.
    pub path: Option<Spanned<String>>,
    /// `email`: one digest message for the whole job instead of one message per experiment.
    /// Default false.
    pub digest: Option<Spanned<bool>>,
    /// `email`: the exports are attached while their total stays at or below this many bytes;
    /// larger ones are linked instead. Default 10000000 (10 MB).
    pub attach_max_bytes: Option<Spanned<i64>>,
    /// `email`: base URL under which the uploaded copies can be opened
    /// (`<link_base_url>/<job>/<report_date>/<experiment>/<file>`), for exports too large to attach.
    /// `chat`: the same base, for the link to each experiment's `report.html`.
    pub link_base_url: Option<Spanned<String>>,
    /// `chat`: the environment variable holding the incoming-webhook URL (a secret, so never in
    /// the job file). Default `ABREPORT_CHAT_WEBHOOK`.
    pub webhook_env: Option<Spanned<String>>,
}
