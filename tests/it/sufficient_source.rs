//! A `kind = "sufficient_stats"` source: a hand-made table of known sums, run through the built
//! binary. The numbers the report shows must be the table's (means, variances from sums, units,
//! checks), the per-unit exports must be absent, and a bad table must be refused with an error
//! that names the folder, the file, the column or the experiment.
//! (The table computed from data, by the embedded engine and by SQL engines, is compared in
//! tests/it/engines.rs.)

use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, Float64Array, Int32Array, Int64Array, StringArray};
use serde_json::Value;

use crate::support::*;

const JOB: &str = r#"name = "warehouse"

[source]
url = "data"
kind = "sufficient_stats"

[[metrics]]
name = "conversion"
kind = "proportion"
event = "purchase"

[[metrics]]
name = "revenue"
kind = "mean"
event = "purchase"
aggregate = "sum"

[[experiments]]
id = "exp"
control = "control"
variants = { control = 0.5, treatment = 0.5 }
start = 2026-11-18
primary = "conversion"
secondary = ["revenue"]
"#;

/// One row of the table: section, name, variant, day, n, sums (y, yy, x, xx, xy), cap.
#[derive(Clone, Default)]
struct Row {
    section: &'static str,
    name: Option<&'static str>,
    variant: Option<&'static str>,
    day: Option<&'static str>,
    n: i64,
    sums: [Option<f64>; 5],
}

fn days_since_epoch(date: &str) -> i32 {
    let date = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").expect("date");
    (date - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32
}

/// The rows of a healthy experiment: 1,000 units per variant, 10% and 13% converting, revenue
/// sums chosen so that the variances are known.
fn healthy() -> Vec<Row> {
    let mut rows = Vec::new();
    let counters = [
        ("all_units", 2010),
        ("multi_variant_units", 10),
        ("unknown_variant_units", 0),
        ("exposure_rows", 5000),
        ("counted_events", 420),
        ("invalid_values", 0),
        ("pre_exposure_events", 0),
        ("future_exposure_rows", 0),
        ("future_exposure_units", 0),
        ("future_only_units", 0),
        ("exposures_without_unit", 0),
        ("exposures_without_variant_or_ts", 0),
        ("events_without_unit", 0),
        ("events_without_ts", 0),
    ];
    for (name, n) in counters {
        rows.push(Row { section: "counter", name: Some(name), n, ..Row::default() });
    }
    for variant in ["control", "treatment"] {
        rows.push(Row { section: "variant", variant: Some(variant), n: 1000, ..Row::default() });
        for day in ["2026-11-18", "2026-11-19", "2026-11-20"] {
            let n = if day == "2026-11-20" { 334 } else { 333 };
            rows.push(Row { section: "day", variant: Some(variant), day: Some(day), n, ..Row::default() });
        }
    }
    let (c, t) = (Some("control"), Some("treatment"));
    let conversion = Some("conversion");
    rows.push(Row {
        section: "metric",
        name: conversion,
        variant: c,
        n: 1000,
        sums: sums(100.0, 100.0),
        ..Row::default()
    });
    rows.push(Row {
        section: "metric",
        name: conversion,
        variant: t,
        n: 1000,
        sums: sums(130.0, 130.0),
        ..Row::default()
    });
    // Revenue: Σy = 2000, Σy² = 50000 over 1000 units -> mean 2, variance (50000 - 4000)/999.
    rows.push(Row {
        section: "metric",
        name: Some("revenue"),
        variant: c,
        n: 1000,
        sums: sums(2000.0, 50000.0),
        ..Row::default()
    });
    rows.push(Row {
        section: "metric",
        name: Some("revenue"),
        variant: t,
        n: 1000,
        sums: sums(2300.0, 56000.0),
        ..Row::default()
    });
    for dataset in ["exposures", "events"] {
        for day in ["2026-11-18", "2026-11-20"] {
            rows.push(Row { section: "partition", name: Some(dataset), day: Some(day), n: 500, ..Row::default() });
        }
    }
    rows
}

fn sums(y: f64, yy: f64) -> [Option<f64>; 5] {
    [Some(y), Some(yy), None, None, None]
}

/// Writes `rows` as the table of the report date, with `version` as its schema version.
fn write_table(dir: &std::path::Path, rows: &[Row], version: i32, without: Option<&str>) {
    let n = rows.len();
    let text = |f: &dyn Fn(&Row) -> Option<&'static str>| -> ArrayRef {
        Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    let number =
        |k: usize| -> ArrayRef { Arc::new(Float64Array::from(rows.iter().map(|r| r.sums[k]).collect::<Vec<_>>())) };
    let report_date = days_since_epoch(REPORT_DATE);
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("schema_version", Arc::new(Int32Array::from(vec![version; n]))),
        ("report_date", Arc::new(Date32Array::from(vec![report_date; n]))),
        ("experiment_id", Arc::new(StringArray::from(vec!["exp"; n]))),
        ("section", text(&|r| Some(r.section))),
        ("name", text(&|r| r.name)),
        ("variant", text(&|r| r.variant)),
        ("day", Arc::new(Date32Array::from(rows.iter().map(|r| r.day.map(days_since_epoch)).collect::<Vec<_>>()))),
        ("dimension", text(&|_| None)),
        ("dimension_value", text(&|_| None)),
        ("n", Arc::new(Int64Array::from(rows.iter().map(|r| r.n).collect::<Vec<_>>()))),
        ("sum_y", number(0)),
        ("sum_yy", number(1)),
        ("sum_x", number(2)),
        ("sum_xx", number(3)),
        ("sum_xy", number(4)),
        ("cap_value", Arc::new(Float64Array::from(vec![None::<f64>; n]))),
    ];
    let columns = columns.into_iter().filter(|(name, _)| Some(*name) != without).collect();
    let path = dir.join(format!("data/sufficient_stats/date={REPORT_DATE}/part-0.parquet"));
    write_parquet(&path, columns);
}

fn scenario(rows: &[Row], version: i32, without: Option<&str>) -> Scenario {
    let s = Scenario::empty();
    std::fs::write(s.job(), JOB).expect("job file");
    write_table(s.path(), rows, version, without);
    s
}

/// `a` equals `b` to 1e-12 relative.
#[track_caller]
fn close(a: f64, b: f64) {
    assert!((a - b).abs() <= 1e-12 * b.abs().max(1e-300), "{a} != {b}");
}

fn variant<'a>(metric: &'a Value, name: &str) -> &'a Value {
    metric["variants"].as_array().expect("variants").iter().find(|v| v["variant"] == name).expect("variant")
}

#[test]
fn a_table_of_known_sums_gives_its_means_variances_units_and_checks_and_no_per_unit_exports() {
    let s = scenario(&healthy(), 1, None);
    s.run(&["--no-deliver"]).assert_code(0);
    let result = s.result("exp");
    let conversion = metric(&result, "conversion");
    assert_eq!(variant(conversion, "control")["units"], 1000);
    close(variant(conversion, "control")["mean"].as_f64().expect("mean"), 0.1);
    close(variant(conversion, "treatment")["mean"].as_f64().expect("mean"), 0.13);
    // p(1 - p) n / (n - 1) for a proportion: (100 - 100²/1000) / 999.
    close(variant(conversion, "control")["variance"].as_f64().expect("variance"), 90.0 / 999.0);
    let revenue = metric(&result, "revenue");
    close(variant(revenue, "control")["mean"].as_f64().expect("mean"), 2.0);
    close(variant(revenue, "control")["variance"].as_f64().expect("variance"), 46000.0 / 999.0);
    close(variant(revenue, "treatment")["variance"].as_f64().expect("variance"), (56000.0 - 2300.0 * 2.3) / 999.0);
    // Checks read the counters and the partitions the table lists.
    assert_eq!(check(&result, "srm")["status"], "pass");
    let multi = check(&result, "multi_variant_units");
    assert!(multi["detail"].as_str().expect("detail").contains("10"), "the counter is read: {multi}");
    let missing = check(&result, "missing_partitions");
    assert_eq!(missing["status"], "warn");
    assert!(missing["detail"].as_str().expect("detail").contains("2026-11-19"), "{missing}");
    let files: Vec<String> = std::fs::read_dir(s.out("exp"))
        .expect("outputs")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(files.contains(&"report.html".to_string()) && files.contains(&"manifest.json".to_string()), "{files:?}");
    assert!(!files.iter().any(|f| f == "allocation.parquet" || f == "units.parquet"), "{files:?}");
    let report = std::fs::read_to_string(s.out("exp").join("report.md")).expect("report");
    assert!(
        report.contains("Computed by: sufficient statistics computed elsewhere"),
        "the report says what computed it"
    );
}

#[test]
fn a_date_without_a_table_names_its_folder() {
    let s = scenario(&healthy(), 1, None);
    let args = ["run", "--job", "job.toml", "--date", "2026-11-21", "--out", "out", "--no-deliver"];
    let run = abreport(s.path(), &args);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("sufficient_stats/date=2026-11-21") && run.stderr.contains("no sufficient statistics"),
        "{}",
        run.stderr
    );
}

#[test]
fn validate_checks_the_report_dates_table_not_exposures_and_events() {
    let s = scenario(&healthy(), 1, None);
    let ok = abreport(s.path(), &["validate", "job.toml", "--date", REPORT_DATE]);
    ok.assert_code(0);
    assert!(ok.stdout.contains("sufficient statistics for 2026-11-20: 1 files"), "{}", ok.stdout);
    let missing = abreport(s.path(), &["validate", "job.toml", "--date", "2026-11-21"]);
    missing.assert_code(3);
    assert!(missing.stderr.contains("sufficient_stats/date=2026-11-21"), "{}", missing.stderr);
    let s = scenario(&healthy(), 1, Some("sum_yy"));
    let mistyped = abreport(s.path(), &["validate", "job.toml", "--date", REPORT_DATE]);
    assert_ne!(mistyped.code, 0);
    assert!(mistyped.stderr.contains("sum_yy"), "names the missing column: {}", mistyped.stderr);
}

#[test]
fn another_schema_version_is_refused() {
    let run = scenario(&healthy(), 2, None).run(&["--no-deliver"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("schema version 2") && run.stderr.contains("reads version 1"), "{}", run.stderr);
}

#[test]
fn a_missing_column_names_the_file_and_the_column() {
    let run = scenario(&healthy(), 1, Some("sum_yy")).run(&["--no-deliver"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("part-0.parquet") && run.stderr.contains("no column `sum_yy`"), "{}", run.stderr);
}

#[test]
fn a_missing_counter_or_metric_names_the_experiment() {
    let rows: Vec<Row> = healthy().into_iter().filter(|r| r.name != Some("invalid_values")).collect();
    let run = scenario(&rows, 1, None).run(&["--no-deliver"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("no `invalid_values` counter for experiment `exp`"), "{}", run.stderr);
    let rows: Vec<Row> = healthy().into_iter().filter(|r| r.name != Some("revenue")).collect();
    let run = scenario(&rows, 1, None).run(&["--no-deliver"]);
    assert!(run.stderr.contains("no rows for metric `revenue` of experiment `exp`"), "{}", run.stderr);
}

#[test]
fn a_variant_the_job_does_not_configure_is_named() {
    let mut rows = healthy();
    rows.push(Row { section: "variant", variant: Some("treatment-b"), n: 5, ..Row::default() });
    let run = scenario(&rows, 1, None).run(&["--no-deliver"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("`variant` rows of experiment `exp` name `treatment-b`"), "{}", run.stderr);
}
