//! `abreport serve` and the run ledger, end to end: the built binary on a schedule of a few
//! seconds, data in moto's S3-protocol server on loopback, and a proxy in front of it that
//! fails, slows down or stops like a real store does.
//!
//! Report dates follow the real clock (the day before today, UTC), so each test generates its
//! data for that date.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::servers::{Proxy, S3Server, ServeProcess, wait_until};
use crate::support::*;

const JOB: &str = "generated";

/// A dataset for yesterday (UTC) and room for jobs, outputs and the ledger.
struct Setup {
    dir: tempfile::TempDir,
    report_date: String,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
        let report_date = (chrono::Utc::now().date_naive() - chrono::Days::new(1)).to_string();
        let gen_dir = dir.path().join("gen");
        let gen_out = gen_dir.to_str().expect("utf-8").to_string();
        abreport(
            dir.path(),
            &["generate", "--out", &gen_out, "--end-date", &report_date, "--units", "600", "--days", "2"],
        )
        .assert_code(0);
        std::fs::create_dir_all(dir.path().join("jobs")).expect("jobs folder");
        Self { dir, report_date }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn data(&self) -> PathBuf {
        self.path().join("gen/data")
    }

    fn delivered(&self) -> PathBuf {
        self.path().join("delivered").join(JOB).join(&self.report_date).join("exp-1")
    }

    /// Writes `jobs/daily.toml`: the generated job with this source, schedule and SLA, and a
    /// `dir` delivery to `delivered/`.
    fn write_job(&self, source_url: &str, schedule: &str, sla_seconds: f64) {
        let generated = std::fs::read_to_string(self.path().join("gen/job.toml")).expect("generated job");
        let job = generated
            .replace("url = \"data\"", &format!("url = \"{source_url}\""))
            .replace("schedule = \"0 0 6 * * *\"", &format!("schedule = \"{schedule}\""))
            .replace("sla_seconds = 60", &format!("sla_seconds = {sla_seconds}"));
        let delivered = self.path().join("delivered");
        let job = format!("{job}\n[[deliver]]\nkind = \"dir\"\npath = \"{}\"\n", delivered.display());
        std::fs::write(self.path().join("jobs/daily.toml"), job).expect("job written");
    }

    fn local_source(&self) -> String {
        format!("file://{}", self.data().display())
    }

    fn record(&self) -> Option<Value> {
        try_ledger_record(self.path(), JOB, &self.report_date)
    }

    /// Waits until the ledger record satisfies `condition`; panics with the log otherwise.
    fn wait_for_record(
        &self,
        service: &ServeProcess,
        timeout: Duration,
        what: &str,
        condition: impl Fn(&Value) -> bool,
    ) -> Value {
        let mut last = None;
        let found = wait_until(timeout, || {
            last = self.record();
            last.as_ref().is_some_and(&condition)
        });
        assert!(found, "no ledger record {what} within {timeout:?}; last record: {last:#?}\nlog:\n{}", service.log());
        last.expect("a record")
    }
}

fn s3_env(port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ENDPOINT", format!("http://127.0.0.1:{port}")),
        ("AWS_ALLOW_HTTP", "true".into()),
    ]
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("binds").local_addr().expect("bound").port()
}

fn http_get(port: u16, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connects");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("sends");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("reads");
    response
}

fn assert_delivered(dir: &Path) {
    assert!(dir.join("manifest.json").is_file(), "a complete set at {}", dir.display());
    assert!(dir.join("report.html").is_file());
}

#[test]
fn a_job_on_a_schedule_of_seconds_fires_and_delivers_and_the_service_reports_it() {
    let started = Instant::now();
    let setup = Setup::new();
    let s3 = S3Server::start("data", &setup.data(), "xp");
    setup.write_job("s3://data/xp", "*/2 * * * * *", 30.0);
    std::fs::write(setup.path().join("jobs/broken.toml"), "name = \"broken\"\n").expect("a bad job file");
    let metrics_port = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let mut service = ServeProcess::start(
        setup.path(),
        &["--jobs", "jobs", "--catch-up-days", "0", "--metrics-addr", &metrics_addr],
        &s3_env(s3.port),
    );

    let record = setup.wait_for_record(&service, Duration::from_secs(15), "ok", |r| r["status"] == "ok");
    assert_eq!(record["trigger"], "schedule");
    let fire_time: chrono::DateTime<chrono::Utc> =
        record["fire_time"].as_str().expect("a fire time").parse().expect("RFC 3339");
    assert_eq!(fire_time.timestamp() % 2, 0, "fired on an even second: {fire_time}");
    assert_eq!(record["deliveries"][0]["ok"], true, "{record:#}");
    assert!(record["stages"].as_array().expect("stages").iter().any(|s| s["stage"] == "read events"));
    assert_delivered(&setup.delivered());
    assert_delivered(&setup.path().join("out").join(JOB).join(&setup.report_date).join("exp-1"));

    // The bad job file was reported and skipped; the good one ran anyway.
    let skipped = service.logged("invalid job file skipped");
    assert_eq!(skipped.len(), 1, "{}", service.log());
    assert!(skipped[0]["fields"]["file"].as_str().expect("file").ends_with("broken.toml"));

    // Later fires of the same date are skipped, not sent again.
    assert!(
        wait_until(Duration::from_secs(6), || !service.logged("already delivered").is_empty()),
        "a later fire skips the delivered date; log:\n{}",
        service.log()
    );
    assert_eq!(setup.record().expect("record")["attempt"], 1);

    let health = http_get(metrics_port, "/healthz");
    assert!(health.starts_with("HTTP/1.1 200") && health.ends_with("ok\n"), "{health}");
    let metrics = http_get(metrics_port, "/metrics");
    assert!(metrics.contains(&format!("abreport_runs_total{{job=\"{JOB}\",status=\"ok\"}} 1\n")), "{metrics}");
    assert!(metrics.contains(&format!("abreport_last_success_timestamp_seconds{{job=\"{JOB}\"}} ")), "{metrics}");
    assert!(metrics.contains(&format!("abreport_run_duration_seconds_count{{job=\"{JOB}\"}} 1\n")), "{metrics}");

    let status = abreport(setup.path(), &["status"]);
    status.assert_code(0);
    assert!(status.stdout.contains(&format!("{}  ok ", setup.report_date)), "{}", status.stdout);
    assert!(status.stdout.contains("schedule") && status.stdout.contains("delivered 1/1"), "{}", status.stdout);

    let exit = service.terminate(Duration::from_secs(5));
    assert!(exit.success(), "SIGTERM ends the service cleanly: {exit:?}\n{}", service.log());
    assert!(!service.logged("stopped").is_empty(), "{}", service.log());
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
}

#[test]
fn a_restart_catches_up_a_missed_run_once_and_only_once() {
    let setup = Setup::new();
    // Midnight UTC: today's fire has passed, so yesterday's report is due, and no fire comes
    // during the test.
    setup.write_job(&setup.local_source(), "0 0 0 * * *", 30.0);
    let args = ["--jobs", "jobs", "--catch-up-days", "1"];

    let mut first = ServeProcess::start(setup.path(), &args, &[]);
    let record = setup.wait_for_record(&first, Duration::from_secs(10), "ok", |r| r["status"] == "ok");
    assert_eq!(record["trigger"], "catch_up");
    assert_eq!(record["attempt"], 1);
    let midnight = chrono::Utc::now().date_naive().and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    assert_eq!(
        record["fire_time"].as_str().expect("fire time").parse::<chrono::DateTime<chrono::Utc>>().ok(),
        Some(midnight)
    );
    assert_delivered(&setup.delivered());
    let manifest = std::fs::read(setup.delivered().join("manifest.json")).expect("manifest");
    assert!(first.terminate(Duration::from_secs(5)).success());

    // The second start finds the date delivered: nothing runs, nothing is sent again.
    let mut second = ServeProcess::start(setup.path(), &args, &[]);
    assert!(
        wait_until(Duration::from_secs(10), || !second.logged("catch-up: no missed run").is_empty()),
        "the second start sees nothing to catch up; log:\n{}",
        second.log()
    );
    assert!(second.terminate(Duration::from_secs(5)).success());
    let after = setup.record().expect("record");
    assert_eq!(after["attempt"], 1, "ran once: {after:#}");
    assert_eq!(after["started_at"], record["started_at"]);
    assert_eq!(std::fs::read(setup.delivered().join("manifest.json")).expect("manifest"), manifest);
    assert!(second.logged("run finished").is_empty(), "{}", second.log());
}

#[test]
fn a_source_answering_503_for_a_while_is_retried_within_the_sla() {
    let setup = Setup::new();
    let s3 = S3Server::start("data", &setup.data(), "xp");
    let proxy = Proxy::start(s3.port);
    proxy.fail_next(5);
    setup.write_job("s3://data/xp", "0 0 6 * * *", 20.0);

    let run = abreport_env(
        setup.path(),
        &["run", "--job", "jobs/daily.toml", "--date", &setup.report_date],
        &s3_env(proxy.port),
    );
    run.assert_code(0);
    assert_eq!(proxy.failed(), 5, "every 503 was answered");
    let record = setup.record().expect("record");
    assert_eq!(record["status"], "ok");
    assert_eq!(record["source_retries"], 5, "each 503 was retried once: {record:#}");
    assert_delivered(&setup.delivered());
    assert!(run.stderr.contains("transient error from the data source; retrying"), "{}", run.stderr);
}

#[test]
fn a_very_slow_source_ends_within_the_sla_as_source_unavailable() {
    let setup = Setup::new();
    let s3 = S3Server::start("data", &setup.data(), "xp");
    let proxy = Proxy::start(s3.port);
    proxy.delay(Duration::from_secs(30));
    setup.write_job("s3://data/xp", "0 0 6 * * *", 2.0);

    let started = Instant::now();
    let run = abreport_env(
        setup.path(),
        &["run", "--job", "jobs/daily.toml", "--date", &setup.report_date],
        &s3_env(proxy.port),
    );
    let took = started.elapsed();
    run.assert_code(3);
    assert!(took < Duration::from_secs(5), "a 2 s SLA ended the run after {took:?}, not 30 s per answer");
    let record = setup.record().expect("record");
    assert_eq!(record["status"], "source_unavailable");
    let error = record["error"].as_str().expect("error");
    assert!(error.contains("s3://data/xp") && error.contains("no answer within"), "{error}");
    assert!(run.stderr.contains("admin notice"), "the admin is told: {}", run.stderr);
    assert!(!setup.delivered().exists(), "nothing was delivered");
}

#[test]
fn a_source_stopped_mid_run_ends_source_unavailable_and_a_later_fire_succeeds() {
    let setup = Setup::new();
    let s3 = S3Server::start("data", &setup.data(), "xp");
    let proxy = Proxy::start(s3.port);
    // Slow enough that the run is still going when the source goes away.
    proxy.delay(Duration::from_millis(300));
    // Fires every 3 s, runs give up after 1.5 s: the failed record stays in the ledger until
    // the next fire (fires during a run are skipped, so none starts right after a failure).
    setup.write_job("s3://data/xp", "*/3 * * * * *", 1.5);
    let mut service = ServeProcess::start(
        setup.path(),
        &["--jobs", "jobs", "--catch-up-days", "0", "--overlap", "skip"],
        &s3_env(proxy.port),
    );

    assert!(wait_until(Duration::from_secs(10), || proxy.connections() > 0), "a run reached the source");
    proxy.stop();
    let failed = setup.wait_for_record(&service, Duration::from_secs(10), "source_unavailable", |r| {
        r["status"] == "source_unavailable"
    });
    let error = failed["error"].as_str().expect("error");
    assert!(error.contains("s3://data/xp"), "names the source: {error}");
    assert!(error.contains("Connection refused") || error.contains("connection"), "names the cause: {error}");
    // The notice follows the ledger record.
    assert!(
        wait_until(Duration::from_secs(5), || service
            .logged("admin notice")
            .iter()
            .any(|n| n["fields"]["status"] == "source_unavailable")),
        "the admin is told; log:\n{}",
        service.log()
    );

    // The source comes back: a later fire of the schedule tries again and delivers.
    proxy.delay(Duration::ZERO);
    proxy.restart();
    let ok = setup.wait_for_record(&service, Duration::from_secs(15), "ok", |r| r["status"] == "ok");
    assert!(ok["attempt"].as_u64().expect("attempt") >= 2, "{ok:#}");
    assert_delivered(&setup.delivered());
    assert!(service.terminate(Duration::from_secs(5)).success());
}

#[test]
fn sigterm_during_a_run_lets_it_finish_then_exits() {
    let setup = Setup::new();
    let s3 = S3Server::start("data", &setup.data(), "xp");
    let proxy = Proxy::start(s3.port);
    proxy.delay(Duration::from_millis(100));
    setup.write_job("s3://data/xp", "*/2 * * * * *", 30.0);
    let mut service =
        ServeProcess::start(setup.path(), &["--jobs", "jobs", "--catch-up-days", "0"], &s3_env(proxy.port));

    setup.wait_for_record(&service, Duration::from_secs(10), "running", |r| r["status"] == "running");
    let exit = service.terminate(Duration::from_secs(20));
    assert!(exit.success(), "{exit:?}\n{}", service.log());
    let record = setup.record().expect("record");
    assert_eq!(record["status"], "ok", "the run in progress finished: {record:#}");
    assert_delivered(&setup.delivered());
    let log = service.log();
    let stopping = log.find("stopping: no new runs").expect("logs the stop");
    let finished = log.find("\"run finished\"").expect("logs the run's end");
    assert!(stopping < finished, "the run finished after SIGTERM:\n{log}");
    assert_eq!(service.logged("run finished").len(), 1, "no new run started after SIGTERM:\n{log}");
}

#[test]
fn a_missing_bucket_is_not_retried() {
    let setup = Setup::new();
    let s3 = S3Server::start("data", &setup.data(), "xp");
    setup.write_job("s3://no-such-bucket/xp", "0 0 6 * * *", 20.0);

    let started = Instant::now();
    let run = abreport_env(
        setup.path(),
        &["run", "--job", "jobs/daily.toml", "--date", &setup.report_date],
        &s3_env(s3.port),
    );
    run.assert_code(3);
    assert!(started.elapsed() < Duration::from_secs(3), "failed at once, took {:?}", started.elapsed());
    let record = setup.record().expect("record");
    assert_eq!(record["status"], "source_unavailable");
    assert_eq!(record["source_retries"], 0, "a permanent error is not retried: {record:#}");
    let error = record["error"].as_str().expect("error");
    assert!(error.contains("s3://no-such-bucket/xp") && error.contains("NoSuchBucket"), "{error}");
    assert!(!run.stderr.contains("retrying"), "{}", run.stderr);
}

#[test]
fn a_changed_job_file_or_sighup_reloads_the_jobs() {
    let setup = Setup::new();
    // Midnight: no fire during the test, and no catch-up.
    setup.write_job(&setup.local_source(), "0 0 0 * * *", 30.0);
    let service = ServeProcess::start(setup.path(), &["--jobs", "jobs", "--catch-up-days", "0"], &[]);
    assert!(wait_until(Duration::from_secs(5), || !service.logged("job scheduled").is_empty()), "{}", service.log());
    assert!(setup.record().is_none(), "nothing ran yet");

    // Editing the file reschedules the job: it now fires every two seconds.
    setup.write_job(&setup.local_source(), "*/2 * * * * *", 30.0);
    let record = setup.wait_for_record(&service, Duration::from_secs(10), "ok", |r| r["status"] == "ok");
    assert_eq!(record["trigger"], "schedule");
    let changed = service.logged("job changed");
    assert_eq!(changed.len(), 1, "{}", service.log());
    assert_eq!(changed[0]["fields"]["reason"], "a job file changed");

    // SIGHUP reloads too; the unchanged job is not rescheduled.
    service.signal("HUP");
    assert!(
        wait_until(Duration::from_secs(5), || service
            .logged("jobs loaded")
            .iter()
            .any(|entry| entry["fields"]["reason"] == "SIGHUP")),
        "{}",
        service.log()
    );
    assert_eq!(service.logged("job changed").len(), 1, "{}", service.log());
}

#[test]
fn a_run_that_gives_up_on_its_source_records_the_retries_it_made() {
    let setup = Setup::new();
    let s3 = S3Server::start("data", &setup.data(), "xp");
    let proxy = Proxy::start(s3.port);
    proxy.fail_next(u32::MAX);
    setup.write_job("s3://data/xp", "0 0 6 * * *", 2.0);

    let run = abreport_env(
        setup.path(),
        &["run", "--job", "jobs/daily.toml", "--date", &setup.report_date],
        &s3_env(proxy.port),
    );
    run.assert_code(3);
    let record = setup.record().expect("record");
    assert_eq!(record["status"], "source_unavailable");
    let retries = record["source_retries"].as_u64().expect("a count");
    // Each listing request retried until the budget ran out; its last 503 is not a retry.
    assert!(retries >= 4, "the retries of a failed run are recorded: {record:#}");
    assert!(retries < u64::from(proxy.failed()), "{retries} retries, {} answers of 503", proxy.failed());
}

#[test]
fn an_untrusted_certificate_on_the_source_is_not_retried() {
    let setup = Setup::new();
    // A TLS server whose certificate comes from a CA nobody trusts (the SMTP test server
    // speaking implicit TLS): the handshake fails with UnknownIssuer before any HTTP.
    let tls_dir = setup.path().join("tls");
    let store = setup.path().join("smtp-store");
    let server = Server::start(
        "smtp_server.py",
        &["--store", store.to_str().expect("utf-8"), "--tls-dir", tls_dir.to_str().expect("utf-8"), "--implicit-tls"],
        setup.path(),
    );
    setup.write_job("s3://data/xp", "0 0 6 * * *", 20.0);
    let mut env = s3_env(server.port);
    env[3].1 = format!("https://127.0.0.1:{}", server.port);
    env.retain(|(key, _)| *key != "AWS_ALLOW_HTTP");

    let started = Instant::now();
    let run = abreport_env(setup.path(), &["run", "--job", "jobs/daily.toml", "--date", &setup.report_date], &env);
    run.assert_code(3);
    assert!(started.elapsed() < Duration::from_secs(5), "failed at once, took {:?}", started.elapsed());
    let record = setup.record().expect("record");
    assert_eq!(record["status"], "source_unavailable");
    assert_eq!(record["source_retries"], 0, "a certificate does not get trusted by waiting: {record:#}");
    assert!(record["error"].as_str().expect("error").contains("UnknownIssuer"), "{record:#}");
    assert!(!run.stderr.contains("retrying"), "{}", run.stderr);
}

#[test]
fn without_aws_credentials_the_error_says_so() {
    let setup = Setup::new();
    let s3 = S3Server::start("data", &setup.data(), "xp");
    setup.write_job("s3://data/xp", "0 0 6 * * *", 20.0);
    // No keys: object_store asks the instance-metadata service, here a loopback port where
    // nothing listens (never the real 169.254.169.254 from a test).
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_abreport"));
    command
        .args(["run", "--job", "jobs/daily.toml", "--date", &setup.report_date])
        .current_dir(setup.path())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT", format!("http://127.0.0.1:{}", s3.port))
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_METADATA_ENDPOINT", format!("http://127.0.0.1:{}", free_port()));
    for key in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "ABREPORT_LOG",
    ] {
        command.env_remove(key);
    }
    let started = Instant::now();
    let output = command.output().expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(5), "not retried for the budget: {:?}", started.elapsed());
    assert!(stderr.contains("no AWS credentials"), "{stderr}");
    assert!(stderr.contains("AWS_ACCESS_KEY_ID"), "says what to set: {stderr}");
    assert!(!stderr.contains("/latest/api/token"), "not the metadata request: {stderr}");
}

#[test]
fn catch_up_does_not_resend_a_date_after_a_no_deliver_run() {
    let setup = Setup::new();
    setup.write_job(&setup.local_source(), "0 0 0 * * *", 30.0);
    let date = setup.report_date.clone();
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "--job", "jobs/daily.toml", "--date", &date];
        args.extend_from_slice(extra);
        abreport(setup.path(), &args)
    };
    run(&[]).assert_code(0);
    run(&["--no-deliver"]).assert_code(0);
    let before = setup.record().expect("record");
    let service = ServeProcess::start(setup.path(), &["--jobs", "jobs", "--catch-up-days", "1"], &[]);
    assert!(
        wait_until(Duration::from_secs(10), || !service.logged("catch-up: no missed run").is_empty()),
        "a delivered date stays delivered after --no-deliver; log:\n{}",
        service.log()
    );
    assert_eq!(setup.record().expect("record")["attempt"], before["attempt"], "catch-up ran nothing");
}

#[test]
fn serve_says_at_start_when_a_folder_a_job_writes_cannot_be_written() {
    let setup = Setup::new();
    setup.write_job(&setup.local_source(), "0 0 0 * * *", 30.0);
    // The job's dir destination is `delivered/`: a file there refuses it, as a read-only
    // mount would.
    std::fs::write(setup.path().join("delivered"), "a file, not a folder").expect("file");
    let service = ServeProcess::start(setup.path(), &["--jobs", "jobs", "--catch-up-days", "0"], &[]);
    assert!(
        wait_until(Duration::from_secs(5), || !service.logged("cannot be written").is_empty()),
        "{}",
        service.log()
    );
    let logged = &service.logged("cannot be written")[0];
    assert_eq!(logged["level"], "ERROR");
    assert!(logged["fields"]["problem"].as_str().expect("problem").contains("the dir destination"), "{logged}");
}

#[test]
fn serve_removes_stale_temporary_files_of_killed_runs_at_start() {
    let setup = Setup::new();
    setup.write_job(&setup.local_source(), "0 0 0 * * *", 30.0);
    let stale = setup.path().join(format!("out/{JOB}/2026-01-02/exp-1/.report.html.tmp-4242"));
    std::fs::create_dir_all(stale.parent().expect("parent")).expect("folders");
    std::fs::write(&stale, vec![0u8; 4096]).expect("written");
    let file = std::fs::File::options().write(true).open(&stale).expect("opens");
    file.set_modified(std::time::SystemTime::now() - Duration::from_secs(86_400)).expect("dated");
    let service = ServeProcess::start(setup.path(), &["--jobs", "jobs", "--catch-up-days", "0"], &[]);
    assert!(
        wait_until(Duration::from_secs(5), || !service.logged("removed stale temporary files").is_empty()),
        "{}",
        service.log()
    );
    assert!(!stale.exists());
    assert_eq!(service.logged("removed stale temporary files")[0]["fields"]["bytes"], 4096);
}

#[test]
fn a_job_failing_every_two_seconds_mails_one_notice_not_one_per_run() {
    let setup = Setup::new();
    setup.write_job(&format!("file://{}", setup.path().join("no-such-folder").display()), "*/2 * * * * *", 30.0);
    let job_file = setup.path().join("jobs/daily.toml");
    let job = std::fs::read_to_string(&job_file).expect("job");
    std::fs::write(&job_file, format!("admin = \"ops@example.com\"\n{job}")).expect("job");
    let store = setup.path().join("smtp-store");
    let smtp = Server::start("smtp_server.py", &["--store", store.to_str().expect("utf-8")], setup.path());
    let env = [
        ("ABREPORT_SMTP_HOST", "127.0.0.1".to_string()),
        ("ABREPORT_SMTP_PORT", smtp.port.to_string()),
        ("ABREPORT_SMTP_TLS", "none".to_string()),
        ("ABREPORT_SMTP_FROM", "abreport <reports@example.com>".to_string()),
    ];
    let mut service = ServeProcess::start(setup.path(), &["--jobs", "jobs", "--catch-up-days", "0"], &env);
    assert!(
        wait_until(Duration::from_secs(15), || service.logged("admin notice").len() >= 3),
        "three failed runs; log:\n{}",
        service.log()
    );
    assert!(service.terminate(Duration::from_secs(5)).success());
    let mailed = std::fs::read_dir(&store)
        .map_or(0, |entries| entries.flatten().filter(|e| e.path().extension().is_some_and(|x| x == "eml")).count());
    assert_eq!(mailed, 1, "one notice per job and cause within the hour; log:\n{}", service.log());
    let held: Vec<Value> = service
        .logged("admin notice")
        .into_iter()
        .filter(|n| n["fields"]["message"].as_str().is_some_and(|m| m.contains("held back")))
        .collect();
    assert!(held.len() >= 2, "the others are logged as held back: {held:?}");
}
