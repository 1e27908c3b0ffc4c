//! One function per subcommand, and the exit codes.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{NaiveDate, Utc};

use crate::cli::{Cli, Command, DemoArgs, GenerateArgs, LogFormat, RunArgs, ValidateArgs};
use crate::config::{self, Job};
use crate::deliver;
use crate::export;
use crate::generate::{self, GenExperiment, GenSpec};
use crate::pipeline::{self, RunError, RunOutput, RunRequest};
use crate::render::bytes;
use crate::runlog::{Deadline, RunLog};
use crate::source::{ColumnSpec, Dataset, Expect, Source};

/// Prints a line on stdout. Unlike `println!`, a closed stdout (`abreport … | head`) is not a
/// panic: the line is dropped and the run goes on to its real exit code.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Environment variable with a `tracing` filter for the log on stderr (default `warn`, or
/// `info` with `--log-format json`).
pub const ENV_LOG: &str = "ABREPORT_LOG";

/// Process exit codes. Documented in the README; one place maps outcomes to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Everything was analysed and delivered.
    Ok = 0,
    /// A bug or an unexpected local failure.
    Internal = 1,
    /// Bad command line or job file.
    Config = 2,
    /// The data source could not be read: unreachable, access denied, or a file that is
    /// corrupt or lacks the expected columns.
    SourceUnavailable = 3,
    /// At least one experiment had no analyzable data (the others were still published).
    NoAnalyzableData = 4,
    /// Writing the outputs or a delivery failed.
    DeliveryFailed = 5,
    /// The run did not finish within `sla_seconds`; nothing was published.
    SlaExceeded = 6,
}

pub fn init_logging(format: LogFormat) {
    let default = if format == LogFormat::Json { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env(ENV_LOG)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.with_target(false).try_init(),
    };
}

/// Runs a parsed command line.
pub fn main(cli: Cli) -> Exit {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::Internal;
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Run(args) => run(args).await,
            Command::Validate(args) => validate(args).await,
            Command::Demo(args) => demo(args).await,
            Command::Generate(args) => generate_command(args),
        }
    })
}

/// Yesterday in `tz`: the default report date.
pub fn default_report_date(tz: chrono_tz::Tz) -> NaiveDate {
    Utc::now().with_timezone(&tz).date_naive().pred_opt().unwrap_or(NaiveDate::MIN)
}

fn exit_for(error: &RunError) -> Exit {
    match error {
        RunError::UnknownExperiment { .. } => Exit::Config,
        RunError::Source(_) => Exit::SourceUnavailable,
        RunError::Sla(_) => Exit::SlaExceeded,
        RunError::Render(_) | RunError::Export(_) | RunError::Incomplete { .. } => Exit::Internal,
    }
}

fn load_job(path: &Path) -> Result<Job, Exit> {
    config::load(path).map_err(|e| {
        eprintln!("error: {e}");
        Exit::Config
    })
}

/// Where a run's outputs went, and how the run ends.
struct Published {
    dirs: Vec<PathBuf>,
    exit: Exit,
}

/// Writes `output` under `out`, then delivers, under the deadline; returns the exit code.
async fn publish(
    job: &Job,
    report_date: NaiveDate,
    output: &RunOutput,
    out: &Path,
    deliver: bool,
    deadline: &Deadline,
) -> Published {
    if let Err(e) = deadline.check("publish") {
        eprintln!("error: {e}");
        return Published { dirs: vec![], exit: Exit::SlaExceeded };
    }
    let mut dirs = Vec::new();
    let mut exit = Exit::Ok;
    for outputs in &output.outputs {
        match export::write_dir(out, outputs) {
            Ok(dir) => dirs.push(dir),
            Err(e) => {
                eprintln!("error: {e}");
                exit = Exit::DeliveryFailed;
            }
        }
    }
    if deliver && !job.deliveries.is_empty() {
        match deadline.within("deliver", deliver::deliver_all(job, report_date, &output.outputs)).await {
            Ok(reports) => {
                for report in reports.iter().filter(|r| !r.ok) {
                    eprintln!(
                        "error: delivery to {} failed: {}",
                        report.destination,
                        report.error.as_deref().unwrap_or("unknown error")
                    );
                    exit = Exit::DeliveryFailed;
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                return Published { dirs, exit: Exit::SlaExceeded };
            }
        }
    }
    if exit == Exit::Ok && output.failed().next().is_some() {
        exit = Exit::NoAnalyzableData;
    }
    Published { dirs, exit }
}

fn print_summary(job: &Job, report_date: NaiveDate, output: &RunOutput, dirs: &[PathBuf]) {
    say!(
        "abreport: job `{}`, report date {report_date}: {} experiment(s) in {:.2} s (SLA {:.0} s), {} files / {} read",
        job.name,
        output.results.len(),
        output.facts.elapsed_seconds,
        job.sla.as_secs_f64(),
        output.facts.files_read,
        bytes(output.facts.bytes_read)
    );
    for (result, dir) in output.results.iter().zip(dirs.iter().map(Some).chain(std::iter::repeat(None))) {
        let decision = &result.decision;
        let verdict = match &decision.variant {
            Some(v) => format!("{} {v}", decision.recommendation.name().to_uppercase()),
            None => decision.recommendation.name().to_uppercase(),
        };
        let place = dir.map(|d| d.join("report.html").display().to_string()).unwrap_or_default();
        say!("  {:<28} {:<24} {place}", result.id, verdict);
        if let Some(error) = &result.error {
            say!("  {:<28} error: {error}", "");
        }
    }
}

async fn run(args: RunArgs) -> Exit {
    let started = Instant::now();
    let job = match load_job(&args.job) {
        Ok(job) => job,
        Err(exit) => return exit,
    };
    let report_date = args.date.unwrap_or_else(|| default_report_date(job.timezone));
    run_job(&job, report_date, args.experiment.as_deref(), &args.out, !args.no_deliver, started).await
}

async fn run_job(
    job: &Job,
    report_date: NaiveDate,
    experiment: Option<&str>,
    out: &Path,
    deliver: bool,
    started: Instant,
) -> Exit {
    let log = RunLog::new(started);
    let request = RunRequest { job, report_date, experiment, started, progress: std::io::stderr().is_terminal() };
    let output = match pipeline::run(&request, &log).await {
        Ok(output) => output,
        Err(e) => {
            eprintln!("error: {e}");
            return exit_for(&e);
        }
    };
    let deadline = Deadline::new(started, job.sla);
    let published = publish(job, report_date, &output, out, deliver, &deadline).await;
    if published.exit != Exit::SlaExceeded {
        print_summary(job, report_date, &output, &published.dirs);
    }
    published.exit
}

async fn validate(args: ValidateArgs) -> Exit {
    let entries = match config::load_all(&args.path) {
        Ok(entries) => entries,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Config;
        }
    };
    let mut exit = Exit::Ok;
    for (file, job) in entries {
        let job = match job {
            Ok(job) => job,
            Err(e) => {
                eprintln!("error: {e}");
                exit = Exit::Config;
                continue;
            }
        };
        let report_date = args.date.unwrap_or_else(|| default_report_date(job.timezone));
        match check_source(&job, report_date).await {
            Ok(summary) => say!("{}: ok — {summary}", file.display()),
            Err(message) => {
                eprintln!("error: {}: {message}", file.display());
                if exit == Exit::Ok {
                    exit = Exit::SourceUnavailable;
                }
            }
        }
    }
    exit
}

/// Lists the job's window and reads the footer of one file per dataset.
async fn check_source(job: &Job, report_date: NaiveDate) -> Result<String, String> {
    let source = Source::open(&job.source.url).map_err(|e| e.to_string())?;
    let Some(first) = job.experiments.iter().map(|e| e.start).min() else {
        return Ok("no experiments".into());
    };
    let dates: Vec<NaiveDate> = first.iter_days().take_while(|d| *d <= report_date).collect();
    let plan = source
        .plan(&[(Dataset::Exposures, dates.clone()), (Dataset::Events, dates.clone())])
        .await
        .map_err(|e| e.to_string())?;
    let c = &job.source.columns;
    let spec = |cols: &[(&String, Expect)]| {
        cols.iter().map(|(n, e)| ColumnSpec { name: n.to_string(), expect: *e }).collect::<Vec<_>>()
    };
    let checks = [
        (
            Dataset::Exposures,
            spec(&[
                (&c.experiment_id, Expect::Text),
                (&c.variant, Expect::Text),
                (&c.unit_id, Expect::UnitId),
                (&c.exposure_ts, Expect::Timestamp),
            ]),
        ),
        (
            Dataset::Events,
            spec(&[
                (&c.unit_id, Expect::UnitId),
                (&c.event, Expect::Text),
                (&c.value, Expect::Number),
                (&c.event_ts, Expect::Timestamp),
            ]),
        ),
    ];
    for (dataset, columns) in &checks {
        match plan.files_of(*dataset).next() {
            Some(file) => source.probe(file, columns).await.map_err(|e| e.to_string())?,
            None => {
                return Err(format!(
                    "no {dataset} files under {} for {first} to {report_date}",
                    pipeline::display_url(source.url())
                ));
            }
        }
    }
    let missing = if plan.missing.is_empty() {
        String::new()
    } else {
        format!(
            "; missing partitions: {}",
            plan.missing.iter().map(|(d, date)| format!("{d} {date}")).collect::<Vec<_>>().join(", ")
        )
    };
    Ok(format!(
        "{} experiment(s), window {first} to {report_date} ({} days): {} files, {}{missing}",
        job.experiments.len(),
        dates.len(),
        plan.files.len(),
        bytes(plan.bytes())
    ))
}

async fn demo(args: DemoArgs) -> Exit {
    let started = Instant::now();
    let end_date = Utc::now().date_naive().pred_opt().unwrap_or(NaiveDate::MIN);
    let spec = generate::demo_spec(end_date);
    let generated = match generate::generate(&spec, &args.out) {
        Ok(generated) => generated,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Internal;
        }
    };
    say!(
        "abreport demo: generated {} units, {} exposure rows and {} events over {} days in {}",
        spec.units,
        generated.exposure_rows,
        generated.event_rows,
        spec.days,
        generated.data_dir.display()
    );
    let job = match load_job(&generated.job_file) {
        Ok(job) => job,
        Err(exit) => return exit,
    };
    let exit = run_job(&job, end_date, None, &args.out.join("reports"), false, started).await;
    say!(
        "job file: {}  (re-run with: abreport run --job {} --date {end_date})",
        generated.job_file.display(),
        generated.job_file.display()
    );
    exit
}

/// `id[,key=value…]` -> an experiment of a generated dataset.
fn parse_experiment(text: &str, effect: f64) -> Result<GenExperiment, String> {
    let mut parts = text.split(',');
    let id = parts.next().filter(|s| !s.is_empty()).ok_or_else(|| format!("`{text}`: the experiment needs an id"))?;
    let mut experiment = GenExperiment { conversion_effect: effect, ..GenExperiment::new(id) };
    for part in parts {
        let (key, text_value) = part.split_once('=').ok_or_else(|| format!("`{part}` is not key=value"))?;
        if key == "srm_country" {
            experiment.srm_country = Some(text_value.to_string());
            continue;
        }
        let value: f64 = text_value.parse().map_err(|_| format!("`{part}`: `{text_value}` is not a number"))?;
        match key {
            "srm_from_day" if value >= 0.0 => experiment.srm_from_day = Some(value as u32),
            "coverage" => experiment.coverage = value,
            "effect" => experiment.conversion_effect = value,
            "revenue_effect" => experiment.revenue_effect = value,
            "error_effect" => experiment.error_effect = value,
            "treatment_share" => experiment.treatment_share = value,
            "multi_variant_rate" => experiment.multi_variant_rate = value,
            other => return Err(format!("unknown experiment key `{other}`")),
        }
    }
    Ok(experiment)
}

fn generate_command(args: GenerateArgs) -> Exit {
    let experiments: Result<Vec<GenExperiment>, String> = if args.experiment_specs.is_empty() {
        Ok((1..=args.experiments)
            .map(|i| GenExperiment { conversion_effect: args.effect, ..GenExperiment::new(&format!("exp-{i}")) })
            .collect())
    } else {
        args.experiment_specs.iter().map(|s| parse_experiment(s, args.effect)).collect()
    };
    let missing_partition = match args.missing_partition.as_deref().map(|m| {
        let (dataset, date) = m.split_once(':').ok_or("expected dataset:YYYY-MM-DD")?;
        let dataset = match dataset {
            "exposures" => Dataset::Exposures,
            "events" => Dataset::Events,
            _ => return Err("the dataset is `exposures` or `events`"),
        };
        let date = date.parse::<NaiveDate>().map_err(|_| "the date is YYYY-MM-DD")?;
        Ok((dataset, date))
    }) {
        None => None,
        Some(Ok(m)) => Some(m),
        Some(Err(e)) => {
            eprintln!("error: --missing-partition: {e}");
            return Exit::Config;
        }
    };
    let experiments = match experiments {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: --experiment: {e}");
            return Exit::Config;
        }
    };
    let spec = GenSpec {
        units: args.units,
        days: args.days,
        end_date: args.end_date.unwrap_or_else(|| Utc::now().date_naive().pred_opt().unwrap_or(NaiveDate::MIN)),
        files_per_day: args.files_per_day,
        seed: args.seed,
        unit_ids: args.unit_ids,
        page_views_per_day: args.page_views_per_day,
        nan_rate: args.nan_rate,
        missing_partition,
        history_days: args.history_days,
        experiments,
    };
    match generate::generate(&spec, &args.out) {
        Ok(g) => {
            say!(
                "generated {} exposure rows and {} events in {} files ({}) under {}; job file {}; report date {}",
                g.exposure_rows,
                g.event_rows,
                g.files,
                bytes(g.bytes),
                g.data_dir.display(),
                g.job_file.display(),
                spec.end_date
            );
            Exit::Ok
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Config
        }
    }
}
