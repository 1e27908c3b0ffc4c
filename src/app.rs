//! One function per subcommand, and the exit codes.

use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, Utc};

use crate::cli::{
    Cli, Command, DeliverArgs, DemoArgs, GenerateArgs, LogFormat, RunArgs, ScanArgs, ServeArgs, SimulateArgs, SqlArgs,
    StatusArgs, ValidateArgs,
};
use crate::config::{self, EngineOverride, Job};
use crate::deliver::{self, outbox};
use crate::generate::{self, GenExperiment, GenSpec};
use crate::ledger::{Ledger, RunRecord, Trigger};
use crate::outcome::{Exit, exit_for};
use crate::pipeline;
use crate::recorded::{Ran, RunSettings, notify, print_failures, retry_outbox_recorded, run_recorded};
use crate::render::bytes;
use crate::schedule::{self, service::ServeSettings};
use crate::source::{Dataset, Source};

/// Environment variable with a `tracing` filter for the log on stderr (default `warn`, or
/// `info` with `--log-format json` and for `serve`).
pub use crate::env::LOG as ENV_LOG;

/// Sets up the `tracing` subscriber on stderr in `format`. A service (`serve`) and JSON logs
/// default to `info`; a command at a terminal to `warn`.
pub fn init_logging(format: LogFormat, service: bool) {
    // tokio-cron-scheduler logs its internals at info; keep them out of the service's log.
    let default = if format == LogFormat::Json || service { "info,tokio_cron_scheduler=warn" } else { "warn" };
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
    if let Err(e) = crate::threads::configured() {
        eprintln!("error: {e}");
        return Exit::Config;
    }
    let threads = crate::threads::count();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::Internal;
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Run(args) => run(args).await,
            Command::Serve(args) => serve(args).await,
            Command::Status(args) => status(args).await,
            Command::Validate(args) => validate(args).await,
            Command::Demo(args) => demo(args).await,
            Command::Generate(args) => generate_command(&args),
            Command::Simulate(args) => simulate_command(&args),
            Command::Deliver(args) => deliver_command(args).await,
            Command::Sql(args) => sql_command(&args),
            Command::Scan(args) => scan(&args).await,
        }
    })
}

/// Yesterday in `tz`: the default report date (in the job's time zone) and the default last
/// day of data (in UTC).
pub fn yesterday(tz: chrono_tz::Tz) -> NaiveDate {
    Utc::now().with_timezone(&tz).date_naive().pred_opt().unwrap_or(NaiveDate::MIN)
}

fn load_job(path: &Path) -> Result<Job, Exit> {
    config::load(path).map_err(|e| {
        eprintln!("error: {e}");
        Exit::Config
    })
}

fn ledger_location(ledger: Option<&str>, out: &Path) -> String {
    ledger.map_or_else(|| out.join("ledger").to_string_lossy().into_owned(), str::to_string)
}

async fn run(args: RunArgs) -> Exit {
    let command_line = EngineOverride {
        engine: args.engine.clone(),
        spark_remote: args.spark_remote.clone(),
        spark_output: args.spark_output.clone(),
    };
    let job = match config::load_with(&args.job, &command_line) {
        Ok(job) => job,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Config;
        }
    };
    let report_date = args.date.unwrap_or_else(|| yesterday(job.timezone));
    let ledger = match Ledger::open(&ledger_location(args.ledger.as_deref(), &args.out)) {
        Ok(ledger) => ledger,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::DeliveryFailed;
        }
    };
    let settings = RunSettings {
        experiment: args.experiment.as_deref(),
        out: &args.out,
        deliver: !args.no_deliver,
        force: args.force,
        ledger: Some(&ledger),
        trigger: Trigger::Manual,
        fire_time: None,
        progress: std::io::stderr().is_terminal(),
        print_summary: true,
        notify: !args.no_deliver,
        full: args.full,
    };
    match run_recorded(&job, report_date, &settings).await {
        Ran::AlreadyDelivered(previous) => {
            say!(
                "abreport: job `{}`, report date {report_date}: already delivered (status {}, finished {}; ledger {}). \
                 Nothing was run or sent; `--force` runs and sends it again.",
                job.name,
                previous.status.name(),
                previous.finished_at.map_or_else(|| "?".to_string(), |t| t.to_rfc3339()),
                ledger.location()
            );
            Exit::Ok
        }
        Ran::Finished { exit, errors, .. } => {
            for error in errors {
                eprintln!("error: {error}");
            }
            exit
        }
    }
}

/// `abreport sql`: prints the query computing the sufficient statistics of the job's
/// experiments (or one) that have started by the report date.
fn sql_command(args: &SqlArgs) -> Exit {
    let job = match load_job(&args.job) {
        Ok(job) => job,
        Err(exit) => return exit,
    };
    let report_date = args.date.unwrap_or_else(|| yesterday(job.timezone));
    let selected: Vec<&config::Experiment> = match &args.experiment {
        Some(id) => match job.experiments.iter().find(|e| &e.id == id) {
            Some(experiment) => vec![experiment],
            None => {
                eprintln!("error: job `{}` has no experiment `{id}`", job.name);
                return Exit::Config;
            }
        },
        None => job.experiments.iter().collect(),
    };
    let spec = crate::aggregate::Spec::new(&job, &pipeline::started(&selected, report_date), report_date);
    let tables = args.exposures_table.clone().zip(args.events_table.clone());
    let sql = crate::sql::SqlSource::for_dialect(args.dialect, &job.source.url, tables)
        .and_then(|source| crate::sql::sufficient_stats_sql(&job, &spec, &source, args.dialect));
    match sql {
        Ok(sql) => {
            say!("{sql}");
            Exit::Ok
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Config
        }
    }
}

/// `abreport scan`: the decode floor of a run (`pipeline::decode_floor`), one line per dataset
/// and the total (which includes the listing).
async fn scan(args: &ScanArgs) -> Exit {
    let job = match load_job(&args.job) {
        Ok(job) => job,
        Err(exit) => return exit,
    };
    if job.source.kind == config::SourceKind::SufficientStats {
        eprintln!(
            "error: job `{}` reads a sufficient-statistics table (kind = \"sufficient_stats\"): `abreport scan` measures \
             the reads of exposures and events",
            job.name
        );
        return Exit::Config;
    }
    let report_date = args.date.unwrap_or_else(|| yesterday(job.timezone));
    let log = crate::runlog::RunLog::default();
    let floor = match pipeline::decode_floor(&job, report_date, std::io::stderr().is_terminal(), &log).await {
        Ok(floor) => floor,
        Err(e) => {
            eprintln!("error: {e}");
            return exit_for(&e);
        }
    };
    let line = |name: &str, read: crate::source::ScanStats, took: Duration| {
        format!(
            "{name:<10} {:>3} files  {:>9}  {:>14} rows  {:.2} s",
            read.files,
            bytes(read.bytes),
            crate::numbers::count(read.rows),
            took.as_secs_f64()
        )
    };
    for scanned in &floor.datasets {
        say!("{}", line(&scanned.dataset.to_string(), scanned.read, scanned.took));
    }
    say!("{}  (listing {:.2} s)", line("total", floor.read(), floor.took), floor.listed.as_secs_f64());
    Exit::Ok
}

async fn status(args: StatusArgs) -> Exit {
    let location = ledger_location(args.ledger.as_deref(), &args.out);
    if args.ledger.is_none() && !Path::new(&location).exists() {
        say!("no runs recorded: `{location}` does not exist (see --ledger, --out)");
        return Exit::Ok;
    }
    let ledger = match Ledger::open(&location) {
        Ok(ledger) => ledger,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::DeliveryFailed;
        }
    };
    let jobs = match ledger.recent(args.job.as_deref(), args.last).await {
        Ok(jobs) => jobs,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::DeliveryFailed;
        }
    };
    if jobs.is_empty() {
        say!("no runs recorded in {}", ledger.location());
        return Exit::Ok;
    }
    for (job, records) in jobs {
        say!("{job}");
        for record in records {
            say!("  {}", status_line(&record));
        }
    }
    Exit::Ok
}

/// One run in `abreport status`: date, status, trigger, attempt, when, how long, and why.
fn status_line(record: &RunRecord) -> String {
    let duration = record.duration_seconds.map_or_else(|| "-".to_string(), |s| format!("{s:.1}s"));
    let delivered = record.deliveries.iter().filter(|d| d.ok).count();
    let mut line = format!(
        "{}  {:<18} {:<9} attempt {:<2} started {}  {:>7}  delivered {delivered}/{}",
        record.report_date,
        record.status.name(),
        match record.trigger {
            Trigger::Manual => "manual",
            Trigger::Schedule => "schedule",
            Trigger::CatchUp => "catch-up",
        },
        record.attempt,
        record.started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        duration,
        record.deliveries.len()
    );
    if let Some(stage) = &record.sla_missed_stage {
        line.push_str(&format!("  SLA missed during `{stage}`"));
    }
    if let Some(error) = &record.error {
        let short: String = error.chars().take(200).collect();
        line.push_str(&format!("  error: {short}"));
    }
    line
}

async fn serve(args: ServeArgs) -> Exit {
    let ledger = match Ledger::open(&ledger_location(args.ledger.as_deref(), &args.out)) {
        Ok(ledger) => ledger,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Config;
        }
    };
    let settings = ServeSettings {
        jobs: args.jobs,
        out: args.out,
        ledger,
        catch_up_days: args.catch_up_days,
        metrics_addr: args.metrics_addr,
        grace: Duration::from_secs_f64(args.grace_seconds.max(0.0)),
        overlap: args.overlap,
    };
    match schedule::service::serve(settings).await {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("error: {e:#}");
            Exit::Config
        }
    }
}

/// Every job file of a folder (or the one file): the valid jobs, and `Exit::Config` when any
/// file was invalid (each is reported on stderr); `None` when the folder cannot be read.
fn load_jobs(path: &Path) -> Option<(Vec<(std::path::PathBuf, Job)>, Exit)> {
    let entries = match config::load_all(path) {
        Ok(entries) => entries,
        Err(e) => {
            eprintln!("error: {e}");
            return None;
        }
    };
    let mut exit = Exit::Ok;
    let mut jobs = Vec::new();
    for (file, job) in entries {
        match job {
            Ok(job) => jobs.push((file, job)),
            Err(e) => {
                eprintln!("error: {e}");
                exit = Exit::Config;
            }
        }
    }
    Some((jobs, exit))
}

/// `abreport deliver`: lists, or with `--retry` sends, what waits in each job's outbox.
async fn deliver_command(args: DeliverArgs) -> Exit {
    let Some((jobs, mut exit)) = load_jobs(&args.job) else { return Exit::Config };
    for (_, job) in jobs {
        if !args.retry {
            match outbox::list(&job) {
                Ok(waiting) if waiting.is_empty() => println!("{}", outbox::nothing_waiting(&job)),
                Ok(waiting) => {
                    for entry in waiting {
                        let owed: Vec<&str> = entry
                            .state
                            .destinations
                            .iter()
                            .filter(|d| !d.done)
                            .map(|d| d.destination.as_str())
                            .collect();
                        println!(
                            "{}: {} waits in `{}` for: {}",
                            job.name,
                            entry.state.report_date,
                            entry.dir.display(),
                            owed.join("; ")
                        );
                    }
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    exit = Exit::DeliveryFailed;
                }
            }
            continue;
        }
        let ledger = match Ledger::open(&ledger_location(args.ledger.as_deref(), Path::new("out"))) {
            Ok(ledger) => ledger,
            Err(e) => {
                eprintln!("error: {e}");
                exit = Exit::DeliveryFailed;
                continue;
            }
        };
        let reports = retry_outbox_recorded(&job, Some(&ledger)).await;
        if reports.is_empty() {
            println!("{}", outbox::nothing_waiting(&job));
        }
        for report in reports.iter().filter(|r| r.ok) {
            println!("{}: delivered to {}", job.name, report.destination);
        }
        if print_failures(&job, &reports) {
            if exit == Exit::Ok {
                exit = Exit::DeliveryFailed;
            }
            let subject = format!("[abreport] {}: retrying the outbox failed", job.name);
            let mut body =
                format!("abreport could not send everything waiting in the outbox of job `{}`.\n\n", job.name);
            for report in reports.iter().filter(|r| !r.ok) {
                body.push_str(&format!(
                    "- {}: {}\n",
                    report.destination,
                    report.error.as_deref().unwrap_or("unknown error")
                ));
            }
            notify(&job, &subject, &body).await;
        }
    }
    exit
}

/// `abreport validate`: every job file is checked, then for each valid job what it needs from
/// the machine (the environment: mail settings, writable folders) and its source. Nothing is
/// written or sent. Exits with the worst outcome: 2 (a job file), 3 (a source), 7 (the
/// environment), else 0.
async fn validate(args: ValidateArgs) -> Exit {
    let Some((jobs, mut exit)) = load_jobs(&args.path) else { return Exit::Config };
    for (file, job) in jobs {
        let problems = environment_problems(&job);
        for problem in &problems {
            eprintln!("error: {}: environment: {problem}", file.display());
        }
        if !problems.is_empty() {
            exit = exit.or_worse(Exit::Environment);
        }
        let report_date = args.date.unwrap_or_else(|| yesterday(job.timezone));
        match check_source(&job, report_date).await {
            Ok(summary) if problems.is_empty() => say!("{}: ok — {summary}", file.display()),
            Ok(summary) => say!("{}: source ok — {summary}", file.display()),
            Err(message) => {
                eprintln!("error: {}: {message}", file.display());
                exit = exit.or_worse(Exit::SourceUnavailable);
            }
        }
    }
    exit
}

/// What `job` needs from the machine and does not find, each in a sentence: mail settings
/// (checked without connecting: a missing sender, an unreadable secrets file or CA file), the
/// chat webhooks' variables (set, holding a web URL; nothing is posted), and the folders it
/// writes (outbox, `dir` destinations).
fn environment_problems(job: &Job) -> Vec<String> {
    let mut problems = Vec::new();
    let mails = job.admin.is_some() || job.deliveries.iter().any(|d| matches!(d, config::Delivery::Email { .. }));
    if mails
        && let Err(e) = deliver::smtp::SmtpSettings::load(job.secrets_file.as_deref())
            .and_then(|settings| deliver::smtp::Mailer::new(&settings))
    {
        problems.push(e.to_string());
    }
    for delivery in &job.deliveries {
        if let config::Delivery::Chat { webhook_env, .. } = delivery
            && let Err(e) = deliver::chat::Webhook::from_env(webhook_env)
        {
            problems.push(e.to_string());
        }
    }
    problems.extend(deliver::unwritable_folders(job));
    problems
}

/// Lists the job's window and reads the footer of one file per dataset; a `sufficient_stats`
/// source, the report date's table; with the Spark engine, also asks the cluster for `SELECT 1`.
async fn check_source(job: &Job, report_date: NaiveDate) -> Result<String, String> {
    let source = Source::open(&job.source.url).map_err(|e| e.to_string())?;
    if job.source.kind == config::SourceKind::SufficientStats {
        return check_sufficient_stats(job, &source, report_date).await;
    }
    let engine = match &job.source.engine {
        config::Engine::Embedded => String::new(),
        config::Engine::Spark { remote, .. } => format!("; {}", check_spark(remote).await?),
    };
    check_datasets(job, &source, report_date).await.map(|summary| summary + &engine)
}

/// How long `validate` waits for a Spark Connect server's answer to `SELECT 1`.
const SPARK_PROBE_SECONDS: u64 = 30;

/// Connects to the Spark Connect server and runs `SELECT 1`.
async fn check_spark(remote: &str) -> Result<String, String> {
    use crate::source::spark::SparkSession;
    let deadline = Instant::now() + Duration::from_secs(SPARK_PROBE_SECONDS);
    let session = SparkSession::connect(remote, deadline).await.map_err(|e| e.to_string())?;
    session.sql("SELECT 1", deadline).await.map_err(|e| e.to_string())?;
    Ok(format!("Spark at {} answers", session.remote().display_addr()))
}

/// The report date's folder of a `sufficient_stats` source: present, and its table's columns.
async fn check_sufficient_stats(job: &Job, source: &Source, report_date: NaiveDate) -> Result<String, String> {
    let plan = source.plan(&[(Dataset::SufficientStats, vec![report_date])]).await.map_err(|e| e.to_string())?;
    let columns = crate::source::read_columns(job, Dataset::SufficientStats);
    match plan.files_of(Dataset::SufficientStats).next() {
        Some(file) => source.probe(file, &columns).await.map_err(|e| e.to_string())?,
        None => {
            return Err(format!(
                "no sufficient statistics under {}/{}/date={report_date}: the `abreport sql` result of that date is not there",
                crate::store::display_url(source.url()).trim_end_matches('/'),
                Dataset::SufficientStats.folder()
            ));
        }
    }
    Ok(format!("sufficient statistics for {report_date}: {} files, {}", plan.files.len(), bytes(plan.bytes())))
}

/// The exposures and events of the window: listed, one file of each probed.
async fn check_datasets(job: &Job, source: &Source, report_date: NaiveDate) -> Result<String, String> {
    // The partitions `run` would read on this date, CUPED lookback days included.
    let all: Vec<&config::Experiment> = job.experiments.iter().collect();
    let scan = crate::aggregate::Spec::new(job, &pipeline::started(&all, report_date), report_date);
    let datasets = pipeline::scan_dates(&scan);
    let (Some(first), Some((_, dates)), Some((_, event_dates))) =
        (scan.first_date(), datasets.first(), datasets.iter().find(|(d, _)| *d == Dataset::Events))
    else {
        return Ok(format!("no experiment has started by {report_date}: a run reads nothing"));
    };
    let plan = source.plan(&datasets).await.map_err(|e| e.to_string())?;
    let checks = [Dataset::Exposures, Dataset::Events].map(|d| (d, crate::source::read_columns(job, d)));
    for (dataset, columns) in &checks {
        match plan.files_of(*dataset).next() {
            Some(file) => source.probe(file, columns).await.map_err(|e| e.to_string())?,
            None => {
                return Err(format!(
                    "no {dataset} files under {} for {first} to {report_date}",
                    crate::store::display_url(source.url())
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
    let lookback = match event_dates.first() {
        Some(from) if event_dates.len() > dates.len() => format!(", events from {from} (CUPED lookback)"),
        _ => String::new(),
    };
    Ok(format!(
        "{} experiment(s), window {first} to {report_date} ({} days){lookback}: {} files, {}{missing}",
        scan.experiments.len(),
        dates.len(),
        plan.files.len(),
        bytes(plan.bytes())
    ))
}

async fn demo(args: DemoArgs) -> Exit {
    let end_date = yesterday(chrono_tz::UTC);
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
    let reports = args.out.join("reports");
    // The demo keeps a ledger of its own so its reports tell the story of the generated window:
    // one from an earlier demo is about other data, so it starts afresh.
    let ledger_dir = args.out.join("ledger");
    if let Err(e) = std::fs::remove_dir_all(&ledger_dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        eprintln!("error: cannot clear the demo's ledger {}: {e}", ledger_dir.display());
        return Exit::Internal;
    }
    let ledger = match Ledger::open(&ledger_dir.display().to_string()) {
        Ok(ledger) => ledger,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Internal;
        }
    };
    let settings = RunSettings {
        experiment: None,
        out: &reports,
        deliver: false,
        force: true,
        ledger: Some(&ledger),
        trigger: Trigger::Manual,
        fire_time: None,
        progress: std::io::stderr().is_terminal(),
        print_summary: true,
        notify: false,
        full: false,
    };
    // Every earlier day of the window, in order and quietly, as a daily schedule would have run
    // them: each adds its point to the story, and the checkpoint makes each read one new day.
    let first_day = job.experiments.iter().map(|e| e.start).min().unwrap_or(end_date);
    let quiet = RunSettings { progress: false, print_summary: false, ..settings };
    for day in first_day.iter_days().take_while(|day| *day < end_date) {
        if let Ran::Finished { errors, .. } = run_recorded(&job, day, &quiet).await
            && !errors.is_empty()
        {
            tracing::debug!(%day, errors = %errors.join("; "), "an earlier day of the demo");
        }
    }
    let exit = match run_recorded(&job, end_date, &settings).await {
        Ran::Finished { exit, errors, .. } => {
            for error in errors {
                eprintln!("error: {error}");
            }
            exit
        }
        Ran::AlreadyDelivered(_) => Exit::Ok,
    };
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
        if key == "weights" || key == "effects" {
            let numbers: Result<Vec<f64>, String> = text_value
                .split('/')
                .map(|x| x.parse::<f64>().map_err(|_| format!("`{part}`: `{x}` is not a number")))
                .collect();
            if key == "weights" {
                experiment.weights = numbers?;
            } else {
                experiment.conversion_effects = numbers?;
            }
            continue;
        }
        let value: f64 = text_value.parse().map_err(|_| format!("`{part}`: `{text_value}` is not a number"))?;
        match key {
            "srm_from_day" if value >= 0.0 => experiment.srm_from_day = Some(value as u32),
            "coverage" => experiment.coverage = value,
            "effect" => experiment.conversion_effect = value,
            "revenue_effect" => experiment.revenue_effect = value,
            "error_effect" => experiment.error_effect = value,
            "bounce_effect" => experiment.bounce_effect = value,
            "treatment_share" => experiment.treatment_share = Some(value),
            "multi_variant_rate" => experiment.multi_variant_rate = value,
            other => return Err(format!("unknown experiment key `{other}`")),
        }
    }
    Ok(experiment)
}

fn simulate_command(args: &SimulateArgs) -> Exit {
    let threads = args.threads.unwrap_or_else(crate::threads::count);
    let spec = crate::simulate::SimSpec {
        experiments: args.experiments,
        days: args.days,
        seed: args.seed,
        threads,
        scenarios: crate::simulate::standard_scenarios()
            .into_iter()
            .filter(|s| args.only.as_deref().is_none_or(|only| s.name.contains(only)))
            .collect(),
    };
    let started = Instant::now();
    match crate::simulate::simulate(&spec) {
        Ok(reports) if args.json => {
            say!("{}", serde_json::to_string_pretty(&reports).expect("reports serialize"));
            Exit::Ok
        }
        Ok(reports) => {
            say!(
                "abreport simulate: {} experiments per scenario, {} daily looks each, seed {}, {} threads, {:.1} s\n",
                spec.experiments,
                spec.days,
                spec.seed,
                threads,
                started.elapsed().as_secs_f64()
            );
            say!("{}", crate::simulate::table(&reports));
            Exit::Ok
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Internal
        }
    }
}

fn generate_command(args: &GenerateArgs) -> Exit {
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
        end_date: args.end_date.unwrap_or_else(|| yesterday(chrono_tz::UTC)),
        files_per_day: args.files_per_day,
        seed: args.seed,
        unit_ids: args.unit_ids,
        page_views_per_day: args.page_views_per_day,
        bounce_rate: args.bounce_rate,
        purchase_lag_days: args.purchase_lag_days,
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
