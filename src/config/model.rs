//! The checked job: [`Job`] and everything it holds (source, metrics, experiments, statistical
//! settings, deliveries), and the errors of reading one. Plain data; [`super::job`] builds it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::NaiveDate;
use chrono_tz::Tz;

use crate::results;
/// A metric's role and the multiple-comparison correction are the result model's words.
pub use crate::results::{Correction, Role};

/// A checked job: everything a run needs to know from the job file.
#[derive(Debug, Clone)]
pub struct Job {
    /// Job name from the file.
    pub name: String,
    /// The file it came from.
    pub file: PathBuf,
    /// Cron expression with seconds, when the job is scheduled.
    pub schedule: Option<String>,
    /// Time zone of the schedule and of the default report date.
    pub timezone: Tz,
    /// Deadline for one whole run.
    pub sla: Duration,
    /// Where the data is.
    pub source: SourceConfig,
    /// Every metric defined in the file, in file order.
    pub metrics: Vec<Metric>,
    /// Every experiment of the job, in file order.
    pub experiments: Vec<Experiment>,
    /// Where outputs go.
    pub deliveries: Vec<Delivery>,
    /// Exposure-log columns to break the primary metric down by (exploratory).
    pub dimensions: Vec<String>,
    /// Who receives a short notice when a delivery or a run fails.
    pub admin: Option<String>,
    /// The `KEY=value` file with SMTP settings and credentials, when the job names one.
    pub secrets_file: Option<PathBuf>,
    /// Where a run's outputs wait for destinations that failed (`outbox/` next to the job file
    /// unless the job says otherwise).
    pub outbox: PathBuf,
}

/// The datasets under a source root: the contract's two, or the sufficient-statistics table
/// (a `kind = "sufficient_stats"` source).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dataset {
    Exposures,
    Events,
    SufficientStats,
}

impl Dataset {
    pub fn folder(self) -> &'static str {
        match self {
            Dataset::Exposures => "exposures",
            Dataset::Events => "events",
            Dataset::SufficientStats => "sufficient_stats",
        }
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.folder())
    }
}

/// `[source]`, resolved.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Absolute URL of the dataset root (relative paths resolved against the job file's folder).
    pub url: String,
    /// Column names in the files.
    pub columns: ColumnNames,
    /// What the URL holds.
    pub kind: SourceKind,
    /// What computes the statistics.
    pub engine: Engine,
}

/// Engine settings from outside the job file: the command line (`--engine`,
/// `--spark-remote`) and the environment (`ABREPORT_ENGINE`, `ABREPORT_SPARK_REMOTE`). Each
/// wins over the job file; the command line wins over the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineOverride {
    pub engine: Option<String>,
    pub spark_remote: Option<String>,
    pub spark_output: Option<String>,
}

impl EngineOverride {
    /// The environment's settings (empty values count as unset).
    pub fn from_environment() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Self {
            engine: var(crate::env::ENGINE),
            spark_remote: var(crate::env::SPARK_REMOTE),
            spark_output: var(crate::env::SPARK_OUTPUT),
        }
    }

    /// `self`, with `other`'s settings where it has them.
    pub fn or(self, other: EngineOverride) -> Self {
        Self {
            engine: other.engine.or(self.engine),
            spark_remote: other.spark_remote.or(self.spark_remote),
            spark_output: other.spark_output.or(self.spark_output),
        }
    }
}

impl SourceConfig {
    /// Applies `overrides` and checks the engine is complete: a Spark engine needs its remote.
    /// The error says where each setting can come from, never the remote itself (it may carry
    /// a token).
    pub fn apply(&mut self, overrides: &EngineOverride) -> Result<(), String> {
        let remote = overrides.spark_remote.clone().or(match &self.engine {
            Engine::Spark { remote, .. } if !remote.is_empty() => Some(remote.clone()),
            _ => None,
        });
        let output = overrides
            .spark_output
            .as_deref()
            .map(|o| absolute_url(o, Path::new("")).map_err(|e| format!("the Spark output {e}")))
            .transpose()?
            .or(match &self.engine {
                Engine::Spark { output, .. } => output.clone(),
                Engine::Embedded => None,
            });
        if let Some(r) = &remote
            && !r.starts_with("sc://")
        {
            return Err("the Spark remote must be a Spark Connect URL, `sc://host:port`".into());
        }
        let engine = match overrides.engine.as_deref() {
            None => self.engine.name(),
            Some(e @ ("embedded" | "spark")) => e,
            Some(other) => return Err(format!("the engine must be `embedded` or `spark`, got `{other}`")),
        };
        self.engine = match engine {
            "spark" => {
                if self.kind == SourceKind::SufficientStats {
                    return Err("a `sufficient_stats` source already holds the statistics: it takes no engine".into());
                }
                let remote = remote.ok_or_else(|| {
                    format!(
                        "the spark engine needs a Spark Connect URL: set `[source] spark_remote`, `--spark-remote` or {}",
                        crate::env::SPARK_REMOTE
                    )
                })?;
                Engine::Spark { remote, output }
            }
            _ => Engine::Embedded,
        };
        Ok(())
    }
}

/// What a source URL holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceKind {
    /// The contract's two datasets, `exposures/` and `events/`.
    #[default]
    Parquet,
    /// The sufficient-statistics table (docs/sufficient-stats.md), one `date=` folder per report
    /// date, computed by a warehouse from `abreport sql`.
    SufficientStats,
}

impl SourceKind {
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Parquet => "parquet",
            SourceKind::SufficientStats => "sufficient_stats",
        }
    }
}

/// What computes a run's statistics from the datasets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Engine {
    /// This process reads and folds every byte (the default: fast, no services).
    #[default]
    Embedded,
    /// A Spark cluster computes the sufficient statistics through Spark Connect; `remote` is
    /// its `sc://` URL (it may carry a token: never print it whole). `output` is where Spark
    /// writes the per-unit exports (an absolute URL); without it they are not made.
    Spark { remote: String, output: Option<String> },
}

impl Engine {
    /// The engine's name, as reports and the run log say it.
    pub fn name(&self) -> &'static str {
        match self {
            Engine::Embedded => "embedded",
            Engine::Spark { .. } => "spark",
        }
    }
}

/// The physical column names of both datasets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnNames {
    pub experiment_id: String,
    pub variant: String,
    pub unit_id: String,
    pub exposure_ts: String,
    pub event: String,
    pub value: String,
    pub event_ts: String,
}

impl Default for ColumnNames {
    fn default() -> Self {
        Self {
            experiment_id: "experiment_id".into(),
            variant: "variant".into(),
            unit_id: "unit_id".into(),
            exposure_ts: "ts".into(),
            event: "event".into(),
            value: "value".into(),
            event_ts: "ts".into(),
        }
    }
}

/// A metric definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub name: String,
    pub kind: MetricKind,
    pub higher_is_better: bool,
    pub description: Option<String>,
    /// Use the metric's own pre-exposure value as a CUPED covariate.
    pub cuped: bool,
    /// Outlier capping of per-unit values.
    pub cap: Option<Cap>,
}

/// Outlier capping of a metric's per-unit values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cap {
    /// Values above this are set to it.
    Absolute(f64),
    /// Values above this quantile of the experiment's units are set to it.
    Percentile(f64),
}

/// How a metric's per-unit value is made from events.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricKind {
    /// 1 when the unit has at least one matching event, else 0.
    Proportion { event: String },
    /// Per-unit aggregate of `value`; units without events count as 0.
    Mean(EventAggregate),
    /// Sum of per-unit numerators over sum of per-unit denominators (delta method).
    Ratio { numerator: EventAggregate, denominator: EventAggregate },
}

impl MetricKind {
    /// The kind as the results name it: `proportion`, `mean` or `ratio`.
    pub fn kind(&self) -> results::MetricKind {
        match self {
            MetricKind::Proportion { .. } => results::MetricKind::Proportion,
            MetricKind::Mean(_) => results::MetricKind::Mean,
            MetricKind::Ratio { .. } => results::MetricKind::Ratio,
        }
    }

    pub fn name(&self) -> &'static str {
        self.kind().name()
    }
}

/// One event's per-unit aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventAggregate {
    pub event: String,
    pub aggregate: Aggregate,
}

/// Per-unit aggregate of event values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Aggregate {
    /// Sum of finite values.
    Sum,
    /// Number of events (missing values included).
    Count,
    /// Largest finite value; 0 when there is none.
    Max,
}

impl Aggregate {
    pub fn name(self) -> &'static str {
        match self {
            Aggregate::Sum => "sum",
            Aggregate::Count => "count",
            Aggregate::Max => "max",
        }
    }
}

/// Statistical settings of one experiment (job defaults with its overrides applied).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatsSettings {
    pub alpha: f64,
    pub power: f64,
    pub correction: Correction,
    pub srm_p_value: f64,
    /// Minimum detectable effect, relative.
    pub mde: f64,
    /// Always-valid inference (and decisions from it). On unless the job turns it off.
    pub sequential: bool,
    /// Days of pre-exposure events that form CUPED covariates.
    pub cuped_lookback_days: u32,
    /// Proper normal prior N(0, sd²) on the relative effect; `None` is a flat prior.
    pub prior_stddev: Option<f64>,
    /// Smallest relative deviation from the expected split that fails the SRM check.
    pub srm_min_deviation: f64,
    /// Non-inferiority margin of guardrails given by name only; `None`: they only block on
    /// significant harm.
    pub guardrail_margin: Option<f64>,
    /// From this many days after its start, an experiment without a verdict is told to stop.
    pub max_days: u32,
}

/// Default of `[stats] max_days`: six weeks.
pub const DEFAULT_MAX_DAYS: u32 = 42;

impl Default for StatsSettings {
    fn default() -> Self {
        Self {
            alpha: 0.05,
            power: 0.8,
            correction: Correction::Holm,
            srm_p_value: 0.001,
            mde: 0.05,
            sequential: true,
            cuped_lookback_days: 14,
            prior_stddev: None,
            srm_min_deviation: 0.005,
            guardrail_margin: None,
            max_days: DEFAULT_MAX_DAYS,
        }
    }
}

/// A metric as used by one experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentMetric {
    /// Index into [`Job::metrics`].
    pub metric: usize,
    pub role: Role,
    /// Guardrails: the relative non-inferiority margin.
    pub margin: Option<f64>,
}

/// A checked experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    pub id: String,
    /// A file-system- and URL-safe name for the experiment's output folder.
    pub output_dir: String,
    pub description: Option<String>,
    /// Configured variants with their expected weights, control first.
    pub variants: Vec<VariantSpec>,
    pub start: NaiveDate,
    /// Primary first, then secondary, then guardrail metrics.
    pub metrics: Vec<ExperimentMetric>,
    pub stats: StatsSettings,
    /// Planned total units, when known (tunes the sequential intervals).
    pub planned_units: Option<u64>,
}

impl Experiment {
    /// The control variant (always first).
    pub fn control(&self) -> &VariantSpec {
        &self.variants[0]
    }
}

/// A configured variant and its expected share of units.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantSpec {
    pub name: String,
    pub weight: f64,
}

/// Default of `attach_max_bytes`: 10 MB of exports per message.
pub const DEFAULT_ATTACH_MAX_BYTES: u64 = 10_000_000;

/// A `[[deliver]]` entry. Serializable because the outbox records the destinations it still
/// owes, so a retry does not depend on the job file staying the same.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Delivery {
    /// Mail the reports (HTML with inline PNG charts, plain text) and attach the exports.
    Email {
        /// Recipients.
        to: Vec<String>,
        /// One message for all experiments instead of one per experiment.
        digest: bool,
        /// Exports are attached while their total stays within this many bytes.
        attach_max_bytes: u64,
        /// Where the uploaded copies can be opened, for exports too large to attach.
        link_base_url: Option<String>,
    },
    /// Every output file under an object-store URL.
    Upload {
        /// `s3://…`, `gs://…`, `az://…` or `file:///…`.
        url: String,
    },
    /// Every output file under a local folder.
    Dir {
        /// Absolute, or relative to the working directory (resolved against the job file's folder).
        path: PathBuf,
    },
    /// A short summary per experiment posted to a Slack-compatible incoming webhook.
    Chat {
        /// The environment variable holding the webhook URL: the URL is a secret, so only its
        /// variable's name is kept (here, in the outbox and in the ledger's key).
        webhook_env: String,
        /// Where the uploaded copies can be opened, for the link to each report.
        link_base_url: Option<String>,
    },
}

/// Why a job file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read job file `{}`: {source}", file.display())]
    Read { file: PathBuf, source: std::io::Error },
    #[error("{}", Problems(file, problems))]
    Invalid { file: PathBuf, problems: Vec<Problem> },
    #[error("job folder `{}` holds no *.toml job files", dir.display())]
    NoJobs { dir: PathBuf },
}

/// One problem in a job file, with the line it is on (1-based) when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: Option<usize>,
    pub message: String,
}

struct Problems<'a>(&'a Path, &'a [Problem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.0.display().to_string();
        match self.1 {
            [one] => write_problem(f, &file, one),
            many => {
                write!(f, "{file}: {} problems", many.len())?;
                for problem in many {
                    write!(f, "\n  ")?;
                    write_problem(f, &file, problem)?;
                }
                Ok(())
            }
        }
    }
}

fn write_problem(f: &mut fmt::Formatter<'_>, file: impl fmt::Display, problem: &Problem) -> fmt::Result {
    match problem.line {
        Some(line) => write!(f, "{file}:{line}: {}", problem.message),
        None => write!(f, "{file}: {}", problem.message),
    }
}

/// A location as an absolute URL: URLs as given, paths resolved against `base_dir` (and the
/// working directory when that is relative). The error completes "`key` ...".
pub(crate) fn absolute_url(text: &str, base_dir: &Path) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("must not be empty".into());
    }
    if text.contains("://") {
        return url::Url::parse(text)
            .map(|url| url.to_string())
            .map_err(|e| format!("`{text}` is not a valid URL: {e}"));
    }
    let path = base_dir.join(text);
    let absolute =
        if path.is_absolute() { path } else { std::env::current_dir().map(|cwd| cwd.join(&path)).unwrap_or(path) };
    url::Url::from_directory_path(normalize(&absolute))
        .map(|url| url.to_string())
        .map_err(|()| format!("`{text}` is not a usable path"))
}

/// Removes `.` and `..` components without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}
