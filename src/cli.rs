//! Command-line types. Their doc comments are `--help`.

use std::net::SocketAddr;
use std::path::PathBuf;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::generate::UnitIdStyle;
use crate::schedule::service::Overlap;

/// Daily A/B experiment reports: reads exposure and event Parquet partitions, computes
/// per-variant KPIs and significance, and recommends promote, roll back, keep running, pause
/// or inconclusive — with reasons.
#[derive(Debug, Parser)]
#[command(name = "abreport", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = crate::env::LOG_FORMAT)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one job now (an ad hoc run) and write its reports and exports.
    Run(RunArgs),
    /// Run every job of a folder on its cron schedule, as a long-lived service.
    Serve(ServeArgs),
    /// Print the last runs of each job from the run ledger.
    Status(StatusArgs),
    /// Check job files and their data sources without side effects.
    Validate(ValidateArgs),
    /// Make a sample dataset and report on it: local files, no services.
    Demo(DemoArgs),
    /// Generate a synthetic dataset and a matching job file.
    Generate(GenerateArgs),
    /// Measure the recommendation's error rates: synthetic A/A and A/B experiments, each read
    /// every day through the real analysis and decision code.
    Simulate(SimulateArgs),
    /// Print the SQL that computes a run's sufficient statistics (docs/sufficient-stats.md)
    /// where the data lives: Spark, DuckDB, Trino or BigQuery. Write its result under
    /// `<url>/sufficient_stats/date=D/` and run a `kind = "sufficient_stats"` job on it.
    Sql(SqlArgs),
    /// Measure the decode floor of a run: list the window's partitions and read and decode the
    /// exposure and event files `run` reads (the same columns, reader and concurrency), without
    /// folding them. Prints each dataset's files, bytes, rows and seconds, and the total.
    Scan(ScanArgs),
    /// Show, or with --retry send, the outputs waiting in a job's outbox after a failed
    /// delivery. Each destination and message is sent at most once.
    Deliver(DeliverArgs),
}

#[derive(Debug, Args)]
pub struct DeliverArgs {
    /// A job file, or a folder of them.
    #[arg(long)]
    pub job: PathBuf,
    /// Send what waits in the outbox to the destinations still owed (without it: only list).
    #[arg(long)]
    pub retry: bool,
    /// The run ledger to record late deliveries in (a folder or an object-store URL), as
    /// given to `abreport run --ledger`; default `out/ledger`, `run`'s default.
    #[arg(long)]
    pub ledger: Option<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The job file.
    #[arg(long)]
    pub job: PathBuf,
    /// Report date (UTC partition date); default: yesterday in the job's time zone.
    #[arg(long)]
    pub date: Option<NaiveDate>,
    /// Only this experiment of the job.
    #[arg(long)]
    pub experiment: Option<String>,
    /// Write the outputs under this folder (`<out>/<experiment>/…`).
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Do not deliver to the job's destinations (email, upload, dir).
    #[arg(long)]
    pub no_deliver: bool,
    /// Run and deliver even when the run ledger says this job and date were delivered.
    #[arg(long)]
    pub force: bool,
    /// The run ledger: a folder or an object-store URL; default `<out>/ledger`.
    #[arg(long, value_name = "DIR_OR_URL")]
    pub ledger: Option<String>,
    /// Read the whole window, ignoring the job's checkpoint (`<ledger>/.checkpoints/<job>/`),
    /// and write a fresh one. Without it a run of all the job's experiments goes on from the
    /// last run's checkpoint and reads only the partitions after its date.
    #[arg(long)]
    pub full: bool,
    /// What computes the statistics: `embedded` (this process) or `spark` (Spark Connect);
    /// over the job file's `[source] engine` and ABREPORT_ENGINE.
    #[arg(long, value_name = "ENGINE", value_parser = ["embedded", "spark"])]
    pub engine: Option<String>,
    /// The Spark Connect URL, `sc://host:15002`; over `[source] spark_remote` and
    /// ABREPORT_SPARK_REMOTE.
    #[arg(long, value_name = "URL")]
    pub spark_remote: Option<String>,
    /// Where Spark writes the per-unit exports (part files under
    /// `<URL>/<job>/<date>/<experiment>/`); over `[source] spark_output` and
    /// ABREPORT_SPARK_OUTPUT.
    #[arg(long, value_name = "URL")]
    pub spark_output: Option<String>,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// The job file.
    #[arg(long)]
    pub job: PathBuf,
    /// Report date (UTC partition date); default: yesterday in the job's time zone.
    #[arg(long)]
    pub date: Option<NaiveDate>,
}

#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The job file.
    #[arg(long)]
    pub job: PathBuf,
    /// Report date (UTC partition date); default: yesterday in the job's time zone.
    #[arg(long)]
    pub date: Option<NaiveDate>,
    /// Only this experiment of the job.
    #[arg(long)]
    pub experiment: Option<String>,
    /// The SQL dialect.
    #[arg(long, value_enum)]
    pub dialect: crate::sql::Dialect,
    /// The exposures table (with a `date` partition column); without it the query reads the
    /// job's `[source] url` as Parquet files (Spark, DuckDB).
    #[arg(long, requires = "events_table", value_name = "TABLE")]
    pub exposures_table: Option<String>,
    /// The events table (with a `date` partition column).
    #[arg(long, requires = "exposures_table", value_name = "TABLE")]
    pub events_table: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Folder of job files (`*.toml`); each job with a `schedule` is run on it.
    #[arg(long)]
    pub jobs: PathBuf,
    /// Local copy of every run's outputs: `<out>/<job>/<report_date>/<experiment>/…`.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// The run ledger: a folder or an object-store URL; default `<out>/ledger`.
    #[arg(long, value_name = "DIR_OR_URL")]
    pub ledger: Option<String>,
    /// On start, run each job's fires of the last N days (at most 366) whose report date was
    /// not delivered.
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=366))]
    pub catch_up_days: u32,
    /// Serve `GET /healthz` and Prometheus `GET /metrics` on this address (off when absent).
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// After SIGTERM or SIGINT, how long running runs may take to finish before the service
    /// exits anyway (0 to 86400).
    #[arg(long, default_value_t = 90.0, value_name = "SECONDS", value_parser = grace_seconds)]
    pub grace_seconds: f64,
    /// What a fire does while the job's previous run is still going: wait for it (at most one
    /// fire waits), or skip.
    #[arg(long, value_enum, default_value_t = Overlap::Wait)]
    pub overlap: Overlap,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Output folder of the runs (the ledger is `<out>/ledger` unless `--ledger` is given).
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// The run ledger: a folder or an object-store URL.
    #[arg(long, value_name = "DIR_OR_URL")]
    pub ledger: Option<String>,
    /// Only this job.
    #[arg(long)]
    pub job: Option<String>,
    /// Runs per job, newest report date first.
    #[arg(long, default_value_t = 7)]
    pub last: usize,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// A job file, or a folder of them.
    pub path: PathBuf,
    /// Report date whose window to check; default: yesterday in each job's time zone.
    #[arg(long)]
    pub date: Option<NaiveDate>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder for the sample data, job file and reports.
    #[arg(long, default_value = "abreport-demo")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Experiments per scenario (8 scenarios: four designs, each A/A and A/B).
    #[arg(long, default_value_t = 500)]
    pub experiments: u32,
    /// Daily looks per experiment.
    #[arg(long, default_value_t = 28)]
    pub days: u32,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Worker threads; default: `ABREPORT_THREADS`, or every core.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print the measured rates as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Only the scenarios whose design name contains this text.
    #[arg(long, value_name = "TEXT")]
    pub only: Option<String>,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Output folder: `<out>/data/{exposures,events}/date=…/part-NNN.parquet` and `<out>/job.toml`.
    #[arg(long)]
    pub out: PathBuf,
    /// Number of units (users).
    #[arg(long, default_value_t = 20_000)]
    pub units: u64,
    /// Number of days of data.
    #[arg(long, default_value_t = 7)]
    pub days: u32,
    /// Last day of data; default: yesterday (UTC).
    #[arg(long)]
    pub end_date: Option<NaiveDate>,
    /// Parquet files per day and dataset.
    #[arg(long, default_value_t = 2)]
    pub files_per_day: u32,
    /// Number of experiments (`exp-1` … `exp-N`), when no `--experiment` is given.
    #[arg(long, default_value_t = 1)]
    pub experiments: usize,
    /// True relative effect on conversion of every generated experiment's treatment.
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    pub effect: f64,
    /// An experiment as `id[,key=value…]`, keys: coverage, weights (the configured split,
    /// control first, `/`-separated: `90/10`, `1/1/1`; variants `control` and
    /// `treatment`, or `control`, `a`, `b`, … with three or more), effect (on conversion, every
    /// treatment variant), effects (one per treatment variant: `0/0.3`), revenue_effect
    /// (purchase amounts: secondary metrics only), error_effect, bounce_effect (needs
    /// --bounce-rate), treatment_share (the treatment variants' actual joint share: an SRM when
    /// not the configured one), srm_from_day (the SRM starts on this day of the window),
    /// srm_country (the SRM only affects this country), multi_variant_rate. Repeatable.
    #[arg(long = "experiment", value_name = "SPEC")]
    pub experiment_specs: Vec<String>,
    /// Share of purchase values written as NaN or infinity.
    #[arg(long, default_value_t = 0.0)]
    pub nan_rate: f64,
    /// Leave out a partition: `exposures:YYYY-MM-DD` or `events:YYYY-MM-DD`.
    #[arg(long)]
    pub missing_partition: Option<String>,
    /// Days of event history before the window (for CUPED covariates; the generated job then
    /// uses CUPED).
    #[arg(long, default_value_t = 0)]
    pub history_days: u32,
    /// Mean page views per active day (scales the event volume).
    #[arg(long, default_value_t = 4.0)]
    pub page_views_per_day: f64,
    /// Chance of a bounce per active day: writes `bounce` events and adds a `bounce_rate`
    /// proportion metric (lower is better) to the job, for use as a second guardrail.
    #[arg(long, default_value_t = 0.0)]
    pub bounce_rate: f64,
    /// Days at the start of the window without any purchase, as when a new experiment's
    /// first day has no conversions yet.
    #[arg(long, default_value_t = 0)]
    pub purchase_lag_days: u32,
    /// Unit id type.
    #[arg(long, value_enum, default_value_t = UnitIdStyle::String)]
    pub unit_ids: UnitIdStyle,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// `--grace-seconds`: a number of seconds from 0 to a day (a larger one overflowed the clock).
fn grace_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if (0.0..=86_400.0).contains(&seconds) => Ok(seconds),
        _ => Err(format!("`{text}` is not a number of seconds from 0 to 86400")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// Tidy: what commands write by default in the working folder (a clone of the repository,
    /// for a new user) is ignored by git.
    #[test]
    fn default_output_folders_are_ignored_by_git() {
        let gitignore =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.gitignore")).expect(".gitignore");
        let ignored = |dir: &std::path::Path| {
            let line = format!("/{}/", dir.display());
            assert!(gitignore.lines().any(|l| l.trim() == line), "{line} is not in .gitignore");
        };
        let Command::Demo(demo) = Cli::parse_from(["abreport", "demo"]).command else { panic!("demo") };
        ignored(&demo.out);
        let Command::Run(run) = Cli::parse_from(["abreport", "run", "--job", "j.toml"]).command else { panic!("run") };
        ignored(&run.out);
    }
}
