//! Bad input gets an error naming the file, column, line or experiment, and a distinct exit
//! code — never a panic, never a silent zero.

use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray, TimestampMicrosecondArray};

use crate::support::*;

const CONFIG: i32 = 2;
const SOURCE: i32 = 3;
const NO_DATA: i32 = 4;

fn small() -> Scenario {
    Scenario::generate(&["--units", "500", "--days", "3", "--files-per-day", "1", "--experiment", "exp"])
}

/// The 1-based line of the first line of the job file containing `text`.
fn line_of(s: &Scenario, text: &str) -> usize {
    let job = std::fs::read_to_string(s.job()).expect("job");
    job.lines().position(|l| l.contains(text)).expect("text in job file") + 1
}

fn no_panic(run: &Run) {
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

#[test]
fn truncated_parquet_names_the_file() {
    let s = small();
    let file = s.path().join("data/events/date=2026-11-19/part-000.parquet");
    let bytes = std::fs::read(&file).expect("file");
    std::fs::write(&file, &bytes[..bytes.len() / 2]).expect("truncate");
    let run = s.run(&[]);
    run.assert_code(SOURCE);
    no_panic(&run);
    assert!(run.stderr.contains("events/date=2026-11-19/part-000.parquet"), "{}", run.stderr);
    assert!(run.stderr.contains("not a readable Parquet file"), "{}", run.stderr);
    assert!(!s.out("exp").join("manifest.json").exists(), "nothing is published");
}

#[test]
fn a_file_that_is_not_parquet_at_all_names_the_file() {
    let s = small();
    std::fs::write(s.path().join("data/exposures/date=2026-11-20/part-000.parquet"), b"not parquet").expect("write");
    let run = s.run(&[]);
    run.assert_code(SOURCE);
    assert!(run.stderr.contains("exposures/date=2026-11-20/part-000.parquet"), "{}", run.stderr);
}

#[test]
fn a_missing_column_names_the_file_and_the_column() {
    let s = small();
    write_parquet(
        &s.path().join("data/exposures/date=2026-11-20/part-000.parquet"),
        vec![
            ("experiment_id", Arc::new(StringArray::from(vec!["exp"])) as ArrayRef),
            ("unit_id", Arc::new(StringArray::from(vec!["u1"])) as ArrayRef),
            ("ts", Arc::new(TimestampMicrosecondArray::from(vec![0i64])) as ArrayRef),
        ],
    );
    let run = s.run(&[]);
    run.assert_code(SOURCE);
    assert!(
        run.stderr.contains("exposures/date=2026-11-20/part-000.parquet` has no column `variant`"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("[source.columns]"), "the message says how to fix it: {}", run.stderr);
}

#[test]
fn a_mistyped_column_names_the_file_column_and_types() {
    let s = small();
    write_parquet(
        &s.path().join("data/events/date=2026-11-20/part-000.parquet"),
        vec![
            ("unit_id", Arc::new(StringArray::from(vec!["u1"])) as ArrayRef),
            ("event", Arc::new(StringArray::from(vec!["purchase"])) as ArrayRef),
            ("value", Arc::new(StringArray::from(vec!["12.5"])) as ArrayRef),
            ("ts", Arc::new(TimestampMicrosecondArray::from(vec![0i64])) as ArrayRef),
        ],
    );
    let run = s.run(&[]);
    run.assert_code(SOURCE);
    assert!(
        run.stderr.contains("events/date=2026-11-20/part-000.parquet`: column `value` is Utf8, expected Float64"),
        "{}",
        run.stderr
    );
}

#[test]
fn remapped_columns_are_read_by_their_file_names() {
    let s = small();
    s.edit_job(|job| job.replace("url = \"data\"", "url = \"data\"\ncolumns = { event_ts = \"event_time\" }"));
    let run = s.run(&[]);
    run.assert_code(SOURCE);
    assert!(run.stderr.contains("has no column `event_time`"), "{}", run.stderr);
}

#[test]
fn bad_toml_names_the_file_and_line() {
    let s = small();
    s.edit_job(|job| job.replace("[source]", "[source"));
    let run = s.run(&[]);
    run.assert_code(CONFIG);
    no_panic(&run);
    let line = line_of(&s, "[source");
    assert!(run.stderr.contains(&format!("job.toml:{line}: unclosed table")), "line {line}: {}", run.stderr);
}

#[test]
fn an_unknown_metric_names_the_experiment_metric_and_line() {
    let s = small();
    s.edit_job(|job| job.replace("primary = \"conversion\"", "primary = \"conversions\""));
    let run = s.run(&[]);
    run.assert_code(CONFIG);
    assert!(run.stderr.contains("experiment `exp` uses unknown metric `conversions`"), "{}", run.stderr);
    let line = line_of(&s, "primary = \"conversions\"");
    assert!(run.stderr.contains(&format!("job.toml:{line}:")), "line {line}: {}", run.stderr);
}

#[test]
fn a_window_with_no_data_fails_the_experiment_by_name_and_window() {
    let s = small();
    s.edit_job(|job| job.replace("start = 2026-11-18", "start = 2026-12-01"));
    let run = abreport(s.path(), &["run", "--job", "job.toml", "--date", "2026-12-05", "--out", "out"]);
    run.assert_code(NO_DATA);
    assert!(
        run.stdout.contains("experiment `exp` has no exposures in its window 2026-12-01 to 2026-12-05"),
        "{}",
        run.stdout
    );
    let result = s.result("exp");
    assert_eq!(result["status"], "failed");
    assert!(result["error"].as_str().expect("error").contains("no exposures"));
    assert_eq!(recommendation(&result), "inconclusive");
    assert_eq!(
        result["checks"].as_array().expect("checks").len(),
        8,
        "the six, then future_exposures and incomplete_rows"
    );
    assert!(check(&result, "missing_partitions")["detail"].as_str().expect("detail").contains("exposures 2026-12-01"));
}

#[test]
fn days_without_data_at_the_end_of_the_window_are_reported_not_fatal() {
    let s = small();
    let run = abreport(s.path(), &["run", "--job", "job.toml", "--date", "2026-11-22", "--out", "out"]);
    run.assert_code(0);
    let result = s.result("exp");
    let missing = check(&result, "missing_partitions");
    assert_eq!(missing["status"], "warn");
    assert!(missing["detail"].as_str().expect("detail").contains("events 2026-11-22"));
}

#[test]
fn an_experiment_that_starts_after_the_report_date_is_failed_not_crashed() {
    let s = small();
    let run = abreport(s.path(), &["run", "--job", "job.toml", "--date", "2026-11-10", "--out", "out"]);
    run.assert_code(NO_DATA);
    assert!(run.stdout.contains("starts on 2026-11-18, after the report date 2026-11-10"), "{}", run.stdout);
}

#[test]
fn an_unknown_experiment_on_the_command_line_lists_the_known_ones() {
    let s = small();
    let run = s.run(&["--experiment", "nope"]);
    run.assert_code(CONFIG);
    assert!(run.stderr.contains("job `generated` has no experiment `nope` (experiments: exp)"), "{}", run.stderr);
}

#[test]
fn a_missing_source_folder_is_a_source_error() {
    let s = small();
    std::fs::rename(s.path().join("data"), s.path().join("moved")).expect("move");
    let run = s.run(&[]);
    run.assert_code(SOURCE);
    assert!(run.stderr.contains("does not exist"), "{}", run.stderr);
}

#[test]
fn a_missing_job_file_is_a_config_error() {
    let s = Scenario::empty();
    let run = abreport(s.path(), &["run", "--job", "nope.toml"]);
    run.assert_code(CONFIG);
    assert!(run.stderr.contains("cannot read job file `nope.toml`"), "{}", run.stderr);
}

#[test]
fn validate_reports_every_job_and_fails_on_the_bad_one() {
    let s = small();
    let jobs = s.path().join("jobs");
    std::fs::create_dir(&jobs).expect("jobs");
    let good = std::fs::read_to_string(s.job()).expect("job").replace("url = \"data\"", "url = \"../data\"");
    std::fs::write(jobs.join("a-good.toml"), &good).expect("good");
    std::fs::write(jobs.join("b-bad.toml"), good.replace("kind = \"ratio\"", "kind = \"median\"")).expect("bad");
    let run = abreport(s.path(), &["validate", "jobs", "--date", REPORT_DATE]);
    run.assert_code(CONFIG);
    assert!(
        run.stdout.contains("a-good.toml: ok — 1 experiment(s), window 2026-11-18 to 2026-11-20 (3 days): 6 files"),
        "{}",
        run.stdout
    );
    assert!(run.stderr.contains("b-bad.toml:") && run.stderr.contains("unknown kind `median`"), "{}", run.stderr);
    assert!(!s.path().join("out").exists(), "validate has no side effects");
}

/// The `N files` of `validate`'s line for the job, and of `run`'s summary line.
fn files_in(line_holder: &str, marker: &str) -> u64 {
    let line = line_holder.lines().find(|l| l.contains(marker)).unwrap_or_else(|| panic!("{marker}: {line_holder}"));
    let before = line.split(" files").next().expect("a file count");
    before.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{line}"))
}

#[test]
fn validate_lists_the_cuped_history_a_run_reads() {
    // Three days of event history before the window: the job's CUPED lookback reads them.
    let s = Scenario::generate(&[
        "--units",
        "500",
        "--days",
        "3",
        "--files-per-day",
        "1",
        "--history-days",
        "3",
        "--experiment",
        "exp",
    ]);
    let validate = abreport(s.path(), &["validate", "job.toml", "--date", REPORT_DATE]);
    validate.assert_code(0);
    assert!(validate.stdout.contains("events from 2026-11-15 (CUPED lookback)"), "{}", validate.stdout);
    let run = s.run(&["--no-deliver"]);
    run.assert_code(0);
    let (validated, read) = (files_in(&validate.stdout, "job.toml: ok"), files_in(&run.stdout, "files /"));
    assert_eq!(validated, read, "validate: {}\nrun: {}", validate.stdout, run.stdout);
    assert_eq!(read, 9, "3 days of exposures, 3 + 3 days of events");
}

#[test]
fn validate_checks_the_dimension_columns_a_run_reads() {
    let s = small();
    s.edit_job(|job| job.replacen("dimensions = [", "dimensions = [\"device\", ", 1));
    let validate = abreport(s.path(), &["validate", "job.toml", "--date", REPORT_DATE]);
    validate.assert_code(SOURCE);
    assert!(validate.stderr.contains("has no column `device`"), "{}", validate.stderr);
    s.run(&[]).assert_code(SOURCE);
}
