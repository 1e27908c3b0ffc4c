//! `abreport serve` keeps its other jobs when a job file turns bad while it runs: a number
//! that once panicked the checker (`sla_seconds = 1e300`) is reported and skipped at reload,
//! the bad job's last good version stays scheduled, and the other jobs go on firing.

use std::path::Path;
use std::time::Duration;

use crate::servers::{ServeProcess, wait_until};
use crate::support::*;

/// Writes `jobs/<name>.toml`: the generated job (data in `gen/data`), named `name`, on
/// `schedule`, with `sla_seconds = <sla>`.
fn write_job(dir: &Path, name: &str, schedule: &str, sla: &str) {
    let generated = std::fs::read_to_string(dir.join("gen/job.toml")).expect("generated job");
    let job = generated
        .replace("name = \"generated\"", &format!("name = \"{name}\""))
        .replace("url = \"data\"", &format!("url = \"file://{}\"", dir.join("gen/data").display()))
        .replace("schedule = \"0 0 6 * * *\"", &format!("schedule = \"{schedule}\""))
        .replace("sla_seconds = 60", &format!("sla_seconds = {sla}"));
    std::fs::write(dir.join("jobs").join(format!("{name}.toml")), job).expect("job written");
}

/// Whether `job` has a ledger record for `date`.
fn ran(dir: &Path, job: &str, date: &str) -> bool {
    try_ledger_record(dir, job, date).is_some()
}

#[test]
fn a_job_file_with_a_huge_number_at_reload_does_not_stop_the_other_jobs() {
    let s = Scenario::empty();
    let dir = s.path();
    let report_date = (chrono::Utc::now().date_naive() - chrono::Days::new(1)).to_string();
    let gen_dir = dir.join("gen").to_str().expect("utf-8").to_string();
    abreport(dir, &["generate", "--out", &gen_dir, "--end-date", &report_date, "--units", "300", "--days", "2"])
        .assert_code(0);
    std::fs::create_dir_all(dir.join("jobs")).expect("jobs folder");
    // `alpha` runs every two seconds (no deliveries: each fire runs); `beta` at midnight.
    write_job(dir, "alpha", "*/2 * * * * *", "30");
    write_job(dir, "beta", "0 0 0 * * *", "30");
    let mut service = ServeProcess::start(dir, &["--jobs", "jobs", "--catch-up-days", "0"], &[]);
    assert!(
        wait_until(Duration::from_secs(15), || ran(dir, "alpha", &report_date)),
        "alpha ran; log:\n{}",
        service.log()
    );

    // beta's file turns bad while the service runs.
    write_job(dir, "beta", "0 0 0 * * *", "1e300");
    assert!(
        wait_until(Duration::from_secs(10), || !service.logged("invalid job file skipped").is_empty()),
        "the reload reports the bad file; log:\n{}",
        service.log()
    );
    let skipped = service.logged("invalid job file skipped");
    let error = skipped[0]["fields"]["error"].as_str().expect("error");
    assert!(error.contains("beta.toml") && error.contains("`sla_seconds`"), "{error}");
    assert!(!service.logged("the previous version of this job stays scheduled").is_empty(), "{}", service.log());

    // alpha fires again after the reload (each fire arms the next one; its date is already in
    // the ledger, so the fire is logged as skipped rather than run again).
    let fires = |service: &ServeProcess| {
        service.logged("next run scheduled").iter().filter(|entry| entry["fields"]["job"] == "alpha").count()
    };
    let before = fires(&service);
    assert!(
        wait_until(Duration::from_secs(10), || fires(&service) >= before + 2),
        "alpha fires on after the bad reload; log:\n{}",
        service.log()
    );
    let exit = service.terminate(Duration::from_secs(30));
    assert!(exit.success(), "the service was alive and stops cleanly: {exit:?}\n{}", service.log());
}

#[test]
fn out_of_range_serve_flags_are_usage_errors_not_panics() {
    let s = Scenario::empty();
    std::fs::create_dir_all(s.path().join("jobs")).expect("jobs folder");
    for (flag, value) in [("--grace-seconds", "1e300"), ("--grace-seconds", "inf"), ("--catch-up-days", "4000000000")] {
        let run = abreport(s.path(), &["serve", "--jobs", "jobs", flag, value]);
        run.assert_code(2);
        assert!(run.stderr.contains(&format!("invalid value '{value}' for '{flag}")), "{}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
}
