//! The engines proved equal: the SQL of `abreport sql` (and the per-unit queries), run on a
//! real engine, gives the same report as the embedded engine, on scenarios that exercise every
//! rule of the attribution — proportions, means (sum, count, max), ratios, CUPED with its
//! lookback, absolute and percentile caps, three variants, an SRM, dirty data (units, variants,
//! timestamps and values missing or invalid, unknown and multiple variants, rows after the
//! report date, events before the exposure, missing partitions), integer unit ids, remapped
//! columns, dimensions, several experiments with different starts, and names that need quoting.
//!
//! DuckDB runs the SQL here, in one session for all the queries (tests/reference/run_sql.py).
//! Spark runs it through the whole engine path, `abreport run --engine spark` against the
//! tests' Spark Connect server, on these same scenarios (tests/it/spark_engine.rs).
//!
//! For each scenario: `abreport run` (embedded), then the query on the engine, its table
//! written as `<data>/sufficient_stats/date=D/part-0.parquet`, then the same job with
//! `[source] kind = "sufficient_stats"`; the two `results.json` must agree ([`compare_results`]).
//! The per-unit queries' rows must be the embedded `allocation.parquet` and `units.parquet`.
//!
//! The scenarios and the comparisons are `pub(crate)`, for the Spark engine's test: it builds
//! [`scenarios`], runs each with that engine and compares with [`run_embedded`]'s.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit};
use serde_json::Value;

use crate::support::*;

/// One dataset and job of the proof.
pub(crate) struct EngineScenario {
    pub name: &'static str,
    pub dir: Scenario,
    /// The experiments whose outputs are compared (those started by the report date).
    pub experiments: Vec<String>,
    /// Checks the data must trip (warn or fail) in the embedded run, so that the proof covers
    /// what the scenario is for.
    pub tripped: Vec<&'static str>,
    /// Counters of the table (docs/sufficient-stats.md) that must not be 0, for the same reason.
    pub counted: Vec<&'static str>,
}

impl EngineScenario {
    fn tripping(mut self, checks: &[&'static str]) -> Self {
        self.tripped = checks.to_vec();
        self
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Microseconds of `hour`:00 UTC on 2026-11-`day`.
fn at(day: u32, hour: i64) -> i64 {
    let date = chrono::NaiveDate::from_ymd_opt(2026, 11, day).expect("a November date");
    date.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp_micros() + hour * 3_600_000_000
}

fn texts(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

/// Microseconds as milliseconds, with a UTC zone (the contract takes any unit, zoned or naive).
fn times_utc_millis(values: &[Option<i64>]) -> ArrayRef {
    let millis: Vec<Option<i64>> = values.iter().map(|v| v.map(|us| us / 1000)).collect();
    Arc::new(arrow::array::TimestampMillisecondArray::from(millis).with_timezone("UTC"))
}

/// Microseconds as naive milliseconds. (Not nanoseconds: Spark cannot read a Parquet
/// TIMESTAMP(NANOS); see docs/sufficient-stats.md.)
fn times_naive_millis(values: &[Option<i64>]) -> ArrayRef {
    let millis: Vec<Option<i64>> = values.iter().map(|v| v.map(|us| us / 1000)).collect();
    Arc::new(arrow::array::TimestampMillisecondArray::from(millis))
}

/// A generated scenario: `abreport generate <args>`, then `edit` on its job file.
fn generated(
    name: &'static str,
    args: &[&str],
    edit: impl FnOnce(String) -> String,
    experiments: &[&str],
) -> EngineScenario {
    let dir = Scenario::generate(args);
    dir.edit_job(edit);
    EngineScenario {
        name,
        dir,
        experiments: experiments.iter().map(ToString::to_string).collect(),
        tripped: Vec::new(),
        counted: Vec::new(),
    }
}

/// A mean metric of the largest purchase, capped at an absolute value, added to every
/// experiment's secondary metrics.
fn with_max_metric(job: &str) -> String {
    let job = job.replace(
        "secondary = [\"revenue\", \"order_value\", \"page_views\"]",
        "secondary = [\"revenue\", \"order_value\", \"page_views\", \"largest_purchase\"]",
    );
    format!(
        "{job}\n[[metrics]]\nname = \"largest_purchase\"\nkind = \"mean\"\nevent = \"purchase\"\naggregate = \"max\"\ncap = {{ absolute = 40.0 }}\n"
    )
}

/// Every scenario of the proof, generated under cargo's target/tmp.
pub(crate) fn scenarios() -> Vec<EngineScenario> {
    let days = ["--days", "5"];
    vec![
        // Proportions, means (sum, count, max), a ratio, a percentile cap (revenue) and an
        // absolute one, dimensions with more than 20 values (`(other)` slices).
        generated(
            "metrics_caps_dimensions",
            &[&days[..], &["--units", "3000", "--effect", "0.2", "--seed", "3"]].concat(),
            |job| with_max_metric(&job),
            &["exp-1"],
        ),
        // CUPED: history before the window, a lookback shorter than the history.
        generated(
            "cuped_lookback",
            &[&days[..], &["--units", "2000", "--history-days", "5", "--seed", "4"]].concat(),
            |job| {
                with_max_metric(&job.replace("cuped_lookback_days = 5", "cuped_lookback_days = 3")).replace(
                    "aggregate = \"max\"\ncap = { absolute = 40.0 }",
                    "aggregate = \"max\"\ncuped = true\ncap = { percentile = 0.9 }",
                )
            },
            &["exp-1"],
        ),
        // Three variants with an SRM.
        generated(
            "three_variants_srm",
            &[&days[..], &["--units", "3000", "--experiment", "x,weights=1/1/1,treatment_share=0.8", "--seed", "5"]]
                .concat(),
            |job| job,
            &["x"],
        )
        .tripping(&["srm"]),
        dirty_data(),
        remapped(generated(
            "integer_unit_ids_remapped_columns",
            &[&days[..], &["--units", "1500", "--unit-ids", "int", "--nan-rate", "0.02", "--seed", "6"]].concat(),
            |job| with_max_metric(&job),
            &["exp-1"],
        )),
        several_experiments(),
    ]
}

/// A text column in another of the encodings the contract accepts: experiment ids and event
/// names dictionary-encoded, variants and dimensions as large strings.
fn reencoded(name: &str, column: &ArrayRef) -> ArrayRef {
    let to = match name {
        "experiment_id" | "event" => DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
        "variant" | "country" | "platform" => DataType::LargeUtf8,
        _ => return column.clone(),
    };
    arrow::compute::cast(column, &to).expect("a text column")
}

/// Column names in the files that need quoting, as `[source.columns]` maps them, and text
/// columns in other encodings: every column of `scenario`'s files renamed, and the job told.
fn remapped(scenario: EngineScenario) -> EngineScenario {
    let exposures =
        [("experiment_id", "exp id"), ("variant", "arm's"), ("unit_id", "user \"id\""), ("ts", "exposed at")];
    let events = [("unit_id", "user \"id\""), ("event", "event name"), ("value", "amount`"), ("ts", "at")];
    for (dataset, renames) in [("exposures", exposures), ("events", events)] {
        let root = scenario.path().join("data").join(dataset);
        for partition in std::fs::read_dir(&root).expect("partitions").filter_map(Result::ok) {
            for file in std::fs::read_dir(partition.path()).expect("files").filter_map(Result::ok) {
                let batch = read_parquet(&file.path());
                let schema = batch.schema();
                let columns: Vec<(&str, ArrayRef)> = schema
                    .fields()
                    .iter()
                    .zip(batch.columns())
                    .map(|(field, column)| {
                        let renamed = renames.iter().find(|(from, _)| from == field.name()).map(|(_, to)| *to);
                        (renamed.unwrap_or(field.name().as_str()), reencoded(field.name(), column))
                    })
                    .collect();
                write_parquet(&file.path(), columns);
            }
        }
    }
    scenario.dir.edit_job(|job| {
        job.replacen(
            "url = \"data\"\n",
            "url = \"data\"\n\n[source.columns]\nexperiment_id = \"exp id\"\nvariant = \"arm's\"\nunit_id = 'user \"id\"'\nexposure_ts = \"exposed at\"\nevent = \"event name\"\nvalue = \"amount`\"\nevent_ts = \"at\"\n",
            1,
        )
    });
    scenario
}

/// Several experiments with different starts (one not started by the report date), a ratio
/// primary metric, and an experiment id and a metric name that need quoting in SQL.
fn several_experiments() -> EngineScenario {
    let quoted = "it's \"quoted\" `x`";
    let dir = Scenario::generate(&[
        "--days",
        "6",
        "--units",
        "2500",
        "--experiment",
        "early",
        "--experiment",
        "late,weights=1/1/1",
        "--experiment",
        quoted,
        "--experiment",
        "future",
        "--seed",
        "7",
    ]);
    // Both dimensions: the ratio primary's small `country` slices can have one unit with
    // purchases, a delta-method variance that is 0 in exact arithmetic and rounding noise in
    // each engine's sums, which `RatioSummary::to_summary` takes for the zero it is.
    dir.edit_job(|job| {
        job.replace("name = \"page_views\"", "name = \"page views 'per' \\\"unit\\\"\"")
            .replace("\"order_value\", \"page_views\"]", "\"order_value\", \"page views 'per' \\\"unit\\\"\"]")
    });
    dir.edit_experiment("late", |text| {
        text.replace("start = 2026-11-15", "start = 2026-11-18")
            .replace("primary = \"conversion\"", "primary = \"order_value\"")
            .replace("secondary = [\"revenue\", \"order_value\",", "secondary = [\"revenue\", \"conversion\",")
    });
    dir.edit_experiment("future", |text| text.replace("start = 2026-11-15", "start = 2026-11-25"));
    // Started, but without a row in the data: "failed", the others go on.
    dir.append_to_job(
        "[[experiments]]\nid = \"nodata\"\ncontrol = \"control\"\nvariants = { control = 0.5, treatment = 0.5 }\nstart = 2026-11-18\nprimary = \"conversion\"",
    );
    EngineScenario {
        name: "several_experiments",
        dir,
        experiments: vec!["early".into(), "late".into(), quoted.into(), "nodata".into()],
        tripped: Vec::new(),
        counted: Vec::new(),
    }
}

/// A hand-made exposure row: experiment, variant, unit, timestamp, country, platform.
type ExposureRow<'a> =
    (Option<&'a str>, Option<&'a str>, Option<&'a str>, Option<i64>, Option<&'a str>, Option<&'a str>);
/// A hand-made event row: unit, event, value, timestamp.
type EventRow<'a> = (Option<&'a str>, Option<&'a str>, Option<f64>, Option<i64>);

/// A generated experiment with NaN values, multi-variant units and a missing events partition,
/// plus hand-made rows of every other kind the attribution must handle.
fn dirty_data() -> EngineScenario {
    let dir = Scenario::generate(&[
        "--days",
        "5",
        "--units",
        "2000",
        "--experiment",
        "d,multi_variant_rate=0.03",
        "--nan-rate",
        "0.05",
        "--missing-partition",
        "events:2026-11-18",
        "--seed",
        "8",
    ]);
    dir.edit_job(|job| with_max_metric(&job));
    let data = dir.path().join("data");
    // A missing exposures partition too (its units are exposed on other days, or not at all).
    std::fs::remove_dir_all(data.join("exposures/date=2026-11-17")).expect("the partition existed");
    let exposures = |date: &str, rows: &[ExposureRow<'_>]| {
        write_parquet(
            &data.join(format!("exposures/date={date}/part-dirty.parquet")),
            vec![
                ("experiment_id", texts(&rows.iter().map(|r| r.0).collect::<Vec<_>>())),
                ("variant", texts(&rows.iter().map(|r| r.1).collect::<Vec<_>>())),
                ("unit_id", texts(&rows.iter().map(|r| r.2).collect::<Vec<_>>())),
                ("ts", times_utc_millis(&rows.iter().map(|r| r.3).collect::<Vec<_>>())),
                ("country", texts(&rows.iter().map(|r| r.4).collect::<Vec<_>>())),
                ("platform", texts(&rows.iter().map(|r| r.5).collect::<Vec<_>>())),
            ],
        );
    };
    let d = Some("d");
    let (c, t, ghost) = (Some("control"), Some("treatment"), Some("ghost"));
    exposures(
        "2026-11-19",
        &[
            (d, c, None, Some(at(19, 1)), Some("US"), Some("ios")), // no unit
            (d, None, Some("dirty-a"), Some(at(19, 1)), Some("US"), Some("ios")), // no variant
            (d, c, Some("dirty-a"), None, Some("US"), Some("ios")), // no timestamp
            (d, ghost, Some("dirty-g1"), Some(at(19, 2)), Some("DE"), Some("web")), // unknown variant
            (d, ghost, Some("dirty-g2"), Some(at(19, 3)), Some("DE"), Some("web")),
            (d, ghost, Some("dirty-g2"), Some(at(19, 5)), Some("DE"), Some("web")),
            (d, c, Some("dirty-m"), Some(at(19, 2)), Some("US"), Some("ios")), // three variants
            (d, ghost, Some("dirty-m"), Some(at(19, 4)), Some("US"), Some("ios")),
            (d, t, Some("dirty-m"), Some(at(19, 6)), Some("US"), Some("ios")),
            (d, c, Some("dirty-a"), Some(at(19, 8)), Some("FR"), None), // null dimension
            (d, c, Some("dirty-a"), Some(at(19, 10)), Some("FR"), Some("ios")),
            (d, t, Some("dirty-b"), Some(at(19, 9)), None, Some("web")),
            (Some("other"), c, Some("dirty-z"), Some(at(19, 1)), Some("US"), Some("ios")), // not in the job
            (None, c, Some("dirty-y"), Some(at(19, 1)), Some("US"), Some("ios")),          // no experiment
        ],
    );
    exposures(
        "2026-11-20",
        &[
            (d, t, Some("dirty-b"), Some(at(21, 1)), Some("US"), Some("web")), // after the report date
            (d, c, Some("dirty-f"), Some(at(21, 2)), Some("US"), Some("web")), // only after it
            (d, Some("ghost2"), Some("dirty-f2"), Some(at(21, 3)), Some("US"), Some("web")),
        ],
    );
    // Before the window: never read (it would make dirty-a a multi-variant unit).
    exposures("2026-11-15", &[(d, t, Some("dirty-a"), Some(at(15, 1)), Some("US"), Some("ios"))]);
    let events = |date: &str, rows: &[EventRow<'_>]| {
        write_parquet(
            &data.join(format!("events/date={date}/part-dirty.parquet")),
            vec![
                ("unit_id", texts(&rows.iter().map(|r| r.0).collect::<Vec<_>>())),
                ("event", texts(&rows.iter().map(|r| r.1).collect::<Vec<_>>())),
                ("value", Arc::new(Float64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())) as ArrayRef),
                ("ts", times_naive_millis(&rows.iter().map(|r| r.3).collect::<Vec<_>>())),
            ],
        );
    };
    let (a, b, purchase, view) = (Some("dirty-a"), Some("dirty-b"), Some("purchase"), Some("page_view"));
    events(
        "2026-11-20",
        &[
            (a, purchase, Some(5.0), Some(at(20, 1))),
            (a, purchase, Some(f64::NAN), Some(at(20, 2))),
            (a, purchase, Some(f64::INFINITY), Some(at(20, 3))),
            (a, purchase, None, Some(at(20, 4))),
            (b, purchase, Some(f64::NEG_INFINITY), Some(at(20, 5))),
            (b, purchase, Some(-3.0), Some(at(20, 6))),
            (b, purchase, Some(7.5), Some(at(19, 8))), // before dirty-b's first exposure
            (a, purchase, Some(3.0), Some(at(21, 1))), // after the report date
            (None, purchase, Some(1.0), Some(at(20, 1))),
            (a, purchase, Some(1.0), None),
            (None, Some("unused"), Some(1.0), Some(at(20, 1))),
            (None, None, Some(1.0), Some(at(20, 1))),
            (Some("dirty-g1"), purchase, Some(2.0), Some(at(20, 1))),
            (Some("dirty-m"), view, None, Some(at(20, 1))),
            (a, view, None, Some(at(20, 6))),
            (Some("never-exposed"), purchase, Some(9.0), Some(at(20, 7))),
        ],
    );
    // Before the window and without CUPED: never read.
    events("2026-11-15", &[(None, purchase, Some(1.0), Some(at(15, 1)))]);
    EngineScenario {
        name: "dirty_data",
        dir,
        experiments: vec!["d".into()],
        tripped: vec!["multi_variant_units", "invalid_values", "unknown_variant", "missing_partitions"],
        counted: vec![
            "multi_variant_units",
            "unknown_variant_units",
            "invalid_values",
            "pre_exposure_events",
            "future_exposure_rows",
            "future_exposure_units",
            "future_only_units",
            "exposures_without_unit",
            "exposures_without_variant_or_ts",
            "events_without_unit",
            "events_without_ts",
        ],
    }
}

/// `abreport run` with the embedded engine into `<scenario>/embedded`; its exit code.
pub(crate) fn run_embedded(scenario: &EngineScenario) -> i32 {
    let args = ["run", "--job", "job.toml", "--date", REPORT_DATE, "--out", "embedded", "--no-deliver"];
    let run = abreport(scenario.path(), &args);
    assert!(matches!(run.code, 0 | 3 | 4), "{}: embedded run\n{}\n{}", scenario.name, run.stdout, run.stderr);
    run.code
}

/// `out/<experiment>/results.json` of a run, parsed.
pub(crate) fn results_json(out: &Path, experiment: &str) -> Value {
    let dir = std::fs::read_dir(out)
        .unwrap_or_else(|e| panic!("{}: {e}", out.display()))
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| {
            std::fs::read_to_string(path.join("results.json"))
                .ok()
                .and_then(|text| serde_json::from_str::<Value>(&text).ok())
                .is_some_and(|json| json["experiments"][0]["id"] == experiment)
        })
        .unwrap_or_else(|| panic!("no results.json of experiment `{experiment}` under {}", out.display()));
    serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).expect("results.json"))
        .expect("results.json parses")
}

/// Fields that legitimately differ between two runs of one job: when the file was written.
/// (results.json names no engine and lists no per-unit files; nothing else is left out.)
const NOT_COMPARED: [&str; 1] = ["generated_at"];

/// Asserts two `results.json` agree: the same keys, strings, booleans and integers, and floats
/// within 1e-9 relative (1e-12 absolute near 0). Returns the differences' paths, for a message
/// that names them all.
pub(crate) fn compare_results(expected: &Value, actual: &Value) -> Vec<String> {
    let mut differences = Vec::new();
    walk(expected, actual, "", &mut differences);
    differences
}

fn walk(expected: &Value, actual: &Value, path: &str, differences: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(a), Value::Object(b)) => {
            for key in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
                if NOT_COMPARED.contains(&key.as_str()) {
                    continue;
                }
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => walk(x, y, &format!("{path}/{key}"), differences),
                    (x, y) => differences.push(format!("{path}/{key}: {x:?} vs {y:?}")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            if a.len() != b.len() {
                differences.push(format!("{path}: {} vs {} elements", a.len(), b.len()));
            }
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                walk(x, y, &format!("{path}[{i}]"), differences);
            }
        }
        (Value::Number(a), Value::Number(b)) if a.is_f64() || b.is_f64() => {
            let (x, y) = (a.as_f64().unwrap_or(f64::NAN), b.as_f64().unwrap_or(f64::NAN));
            if !close(x, y) {
                differences.push(format!("{path}: {x} vs {y}"));
            }
        }
        (a, b) if a != b => differences.push(format!("{path}: {a} vs {b}")),
        _ => {}
    }
}

/// Equal within 1e-9 relative, or 1e-12 absolute near 0.
fn close(x: f64, y: f64) -> bool {
    x == y || (x - y).abs() <= 1e-12 || (x - y).abs() <= 1e-9 * x.abs().max(y.abs())
}

/// The job and spec of a scenario's run, as `abreport run` makes them.
fn job_and_spec(scenario: &EngineScenario) -> (abreport::config::Job, abreport::aggregate::Spec) {
    let job = abreport::config::load(&scenario.path().join("job.toml")).expect("the job loads");
    let date = chrono::NaiveDate::parse_from_str(REPORT_DATE, "%Y-%m-%d").expect("date");
    let all: Vec<&abreport::config::Experiment> = job.experiments.iter().collect();
    let spec = abreport::aggregate::Spec::new(&job, &abreport::pipeline::started(&all, date), date);
    (job, spec)
}

/// One query for an engine to run: its text is in `sql`, its result goes to `out` as Parquet.
pub(crate) struct SqlRun {
    pub sql: PathBuf,
    pub out: PathBuf,
}

/// A per-unit export to compare: experiment, file name, the embedded file, the query's result.
type PerUnitCheck = (String, &'static str, PathBuf, PathBuf);

/// The proof for one engine. For every scenario: the embedded run and the queries — `abreport
/// sql --dialect <dialect>`, whose result is the scenario's table
/// (`<data>/sufficient_stats/date=D/part-0.parquet`), and the per-unit queries of each
/// experiment. Then `execute` runs all the queries at once (an engine that takes seconds to
/// start starts once), and each scenario's `sufficient_stats` run must give the embedded
/// results, its per-unit rows the embedded `allocation.parquet` and `units.parquet`.
pub(crate) fn prove_scenarios(dialect: &str, execute: impl Fn(&[SqlRun])) {
    let sql_dialect = match dialect {
        "duckdb" => abreport::sql::Dialect::DuckDb,
        "spark" => abreport::sql::Dialect::Spark,
        other => panic!("no test engine for dialect {other}"),
    };
    let write = |sql: &str, out: PathBuf| -> SqlRun {
        let file = out.with_extension("sql");
        std::fs::create_dir_all(file.parent().expect("a folder")).expect("folder");
        std::fs::write(&file, sql).expect("sql written");
        SqlRun { sql: file, out }
    };
    let scenarios = scenarios();
    let mut runs = Vec::new();
    // Per scenario: the embedded run's exit code; per experiment and export, the embedded file
    // and the query's result.
    let mut expected: Vec<(i32, Vec<PerUnitCheck>)> = Vec::new();
    for scenario in &scenarios {
        let embedded_code = run_embedded(scenario);
        let sql = abreport(scenario.path(), &["sql", "--job", "job.toml", "--date", REPORT_DATE, "--dialect", dialect]);
        sql.assert_code(0);
        let table = scenario.path().join(format!("data/sufficient_stats/date={REPORT_DATE}/part-0.parquet"));
        runs.push(write(&sql.stdout, table));
        let (job, spec) = job_and_spec(scenario);
        let source = abreport::sql::SqlSource::Files { root: scenario.path().join("data").display().to_string() };
        let mut per_unit = Vec::new();
        for (index, experiment) in spec.experiments.iter().enumerate() {
            let embedded_dir = experiment_dir(&scenario.path().join("embedded"), &experiment.id);
            for (table, file) in [
                (abreport::sql::PerUnitTable::Allocation, "allocation.parquet"),
                (abreport::sql::PerUnitTable::Units, "units.parquet"),
            ] {
                let sql = abreport::sql::per_unit_sql(&job, &spec, index, table, &source, sql_dialect).expect("sql");
                let out = scenario.path().join(format!("per-unit/{index}-{file}"));
                runs.push(write(&sql, out.clone()));
                per_unit.push((experiment.id.clone(), file, embedded_dir.join(file), out));
            }
        }
        expected.push((embedded_code, per_unit));
    }

    execute(&runs);

    let mut failures = Vec::new();
    for (scenario, (embedded_code, per_unit)) in scenarios.iter().zip(expected) {
        let table = scenario.path().join(format!("data/sufficient_stats/date={REPORT_DATE}/part-0.parquet"));
        let counters = read_parquet(&table);
        for name in &scenario.counted {
            assert!(counter(&counters, name) > 0, "{}: counter {name} is 0", scenario.name);
        }
        let job = std::fs::read_to_string(scenario.dir.job()).expect("job");
        let computed = job.replacen("url = \"data\"\n", "url = \"data\"\nkind = \"sufficient_stats\"\n", 1);
        assert_ne!(job, computed, "{}: the job's source is `url = \"data\"`", scenario.name);
        std::fs::write(scenario.path().join("job-sql.toml"), computed).expect("job written");
        let run = abreport(
            scenario.path(),
            &["run", "--job", "job-sql.toml", "--date", REPORT_DATE, "--out", "computed", "--no-deliver"],
        );
        assert_eq!(run.code, embedded_code, "{}: exit codes\n{}\n{}", scenario.name, run.stdout, run.stderr);
        for experiment in &scenario.experiments {
            let expected = results_json(&scenario.path().join("embedded"), experiment);
            let status = if experiment == "nodata" { "failed" } else { "ok" };
            assert_eq!(expected["experiments"][0]["status"], status, "{} / {experiment}", scenario.name);
            for name in &scenario.tripped {
                let status = &check(&expected["experiments"][0], name)["status"];
                assert!(status == "warn" || status == "fail", "{}: check {name} is {status}", scenario.name);
            }
            let actual = results_json(&scenario.path().join("computed"), experiment);
            for difference in compare_results(&expected, &actual) {
                failures.push(format!("{} / {experiment}: results.json{difference}", scenario.name));
            }
        }
        for (experiment, file, embedded, out) in per_unit {
            for difference in compare_rows(&read_table(&embedded), &read_table(&out)) {
                failures.push(format!("{} / {experiment} / {file}: {difference}", scenario.name));
            }
        }
    }
    assert!(failures.is_empty(), "the engines differ:\n{}", failures.join("\n"));
}

/// Every row of a Parquet file, as one batch (none for a file without rows).
fn read_table(path: &Path) -> RecordBatch {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).expect("parquet");
    let schema = builder.schema().clone();
    let batches: Vec<RecordBatch> = builder.build().expect("reader").collect::<Result<_, _>>().expect("batches");
    arrow::compute::concat_batches(&schema, &batches).expect("one batch")
}

/// A counter of a sufficient-statistics table, summed over its experiments.
fn counter(table: &RecordBatch, name: &str) -> i64 {
    let column = |c: &str| cells(table.column_by_name(c).unwrap_or_else(|| panic!("no column {c}")));
    let (sections, names, n) = (column("section"), column("name"), column("n"));
    let text = |s: &str| Cell::Text(s.to_string());
    (0..table.num_rows())
        .filter(|&r| sections[r] == text("counter") && names[r] == text(name))
        .map(|r| if let Cell::Int(n) = n[r] { n } else { 0 })
        .sum()
}

/// The folder of an experiment's outputs under `out`.
pub(crate) fn experiment_dir(out: &Path, experiment: &str) -> PathBuf {
    results_json(out, experiment);
    std::fs::read_dir(out)
        .expect("out")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|path| {
            std::fs::read_to_string(path.join("results.json")).ok().is_some_and(|text| {
                serde_json::from_str::<Value>(&text).is_ok_and(|j| j["experiments"][0]["id"] == experiment)
            })
        })
        .expect("the experiment's folder")
}

/// One cell of a per-unit table, its type normalised: text, integers (timestamps as
/// microseconds), floats.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum Cell {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
}

fn cells(array: &ArrayRef) -> Vec<Cell> {
    match array.data_type() {
        DataType::Float32 | DataType::Float64 => {
            let floats = arrow::compute::cast(array, &DataType::Float64).expect("float");
            let floats = floats.as_primitive::<Float64Type>();
            (0..floats.len())
                .map(|i| if floats.is_null(i) { Cell::Null } else { Cell::Float(floats.value(i)) })
                .collect()
        }
        DataType::Timestamp(_, _)
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => {
            let micros = match array.data_type() {
                DataType::Timestamp(_, _) => {
                    arrow::compute::cast(array, &DataType::Timestamp(TimeUnit::Microsecond, None)).expect("micros")
                }
                _ => array.clone(),
            };
            let ints = arrow::compute::cast(&micros, &DataType::Int64).expect("int");
            let ints: &Int64Array = ints.as_primitive::<Int64Type>();
            (0..ints.len()).map(|i| if ints.is_null(i) { Cell::Null } else { Cell::Int(ints.value(i)) }).collect()
        }
        _ => {
            let text = arrow::compute::cast(array, &DataType::Utf8).expect("text");
            let text = text.as_string::<i32>();
            (0..text.len())
                .map(|i| if text.is_null(i) { Cell::Null } else { Cell::Text(text.value(i).to_string()) })
                .collect()
        }
    }
}

/// The differences between two per-unit tables: the same columns in the same order, and the
/// same rows as sets (by unit id), floats within 1e-9 relative.
pub(crate) fn compare_rows(expected: &RecordBatch, actual: &RecordBatch) -> Vec<String> {
    let names = |b: &RecordBatch| b.schema().fields().iter().map(|f| f.name().clone()).collect::<Vec<_>>();
    if names(expected) != names(actual) {
        return vec![format!("columns {:?} vs {:?}", names(expected), names(actual))];
    }
    let rows = |b: &RecordBatch| {
        let columns: Vec<Vec<Cell>> = b.columns().iter().map(cells).collect();
        let mut rows: Vec<Vec<Cell>> =
            (0..b.num_rows()).map(|r| columns.iter().map(|c| c[r].clone()).collect()).collect();
        rows.sort_by(|a, b| a[0].partial_cmp(&b[0]).unwrap_or(std::cmp::Ordering::Equal));
        rows
    };
    let (expected_rows, actual_rows) = (rows(expected), rows(actual));
    if expected_rows.len() != actual_rows.len() {
        return vec![format!("{} vs {} rows", expected_rows.len(), actual_rows.len())];
    }
    let columns = names(expected);
    let mut differences = Vec::new();
    for (e, a) in expected_rows.iter().zip(&actual_rows) {
        for ((x, y), column) in e.iter().zip(a).zip(&columns) {
            let same = match (x, y) {
                (Cell::Float(x), Cell::Float(y)) => close(*x, *y),
                (x, y) => x == y,
            };
            if !same && differences.len() < 20 {
                differences.push(format!("unit {:?}, column `{column}`: {x:?} vs {y:?}", e[0]));
            }
        }
    }
    differences
}

/// Runs the queries in DuckDB (tests/reference/run_sql.py).
fn duckdb(runs: &[SqlRun]) {
    run_sql(runs, "duckdb");
}

/// tests/reference/run_sql.py on `engine`, with every query of `runs` in one batch file.
fn run_sql(runs: &[SqlRun], engine: &str) {
    let batch: Vec<Value> = runs.iter().map(|r| serde_json::json!({ "sql": r.sql, "out": r.out })).collect();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let file = dir.path().join("batch.json");
    std::fs::write(&file, serde_json::to_string(&batch).expect("json")).expect("batch written");
    let script = repo_root().join("tests/reference/run_sql.py");
    let output = std::process::Command::new(python())
        .arg(script)
        .args(["--engine", engine, "--batch"])
        .arg(&file)
        // Spark leaves a `spark-warehouse` folder where it runs: not in the repository.
        .current_dir(dir.path())
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "{engine} failed on a query of {}:\n{}",
        file.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn duckdb_computes_what_the_embedded_engine_computes() {
    prove_scenarios("duckdb", duckdb);
}

#[test]
fn the_comparison_sees_a_difference_past_the_tolerance() {
    let a: Value = serde_json::json!({ "generated_at": "now", "n": 3, "x": [1.0, 2.0], "s": "ok" });
    let b: Value = serde_json::json!({ "generated_at": "later", "n": 3, "x": [1.0, 2.0 + 1e-12], "s": "ok" });
    assert!(compare_results(&a, &b).is_empty());
    let c: Value = serde_json::json!({ "generated_at": "now", "n": 4, "x": [1.0, 2.000_001], "s": "warn" });
    assert_eq!(compare_results(&a, &c).len(), 3, "{:?}", compare_results(&a, &c));
}

#[test]
fn a_sql_error_names_the_job_and_what_to_do() {
    let scenario = Scenario::generate(&["--days", "2", "--units", "50"]);
    let run = abreport(scenario.path(), &["sql", "--job", "job.toml", "--date", REPORT_DATE, "--dialect", "trino"]);
    run.assert_code(2);
    assert!(run.stderr.contains("--exposures-table"), "{}", run.stderr);
    let run = abreport(
        scenario.path(),
        &["sql", "--job", "job.toml", "--date", REPORT_DATE, "--dialect", "spark", "--experiment", "nope"],
    );
    run.assert_code(2);
    assert!(run.stderr.contains("job `generated` has no experiment `nope`"), "{}", run.stderr);
    let run = abreport(scenario.path(), &["sql", "--job", "job.toml", "--date", "2020-01-01", "--dialect", "duckdb"]);
    run.assert_code(2);
    assert!(run.stderr.contains("no experiment has started by 2020-01-01"), "{}", run.stderr);
    let run = abreport(
        scenario.path(),
        &[
            "sql",
            "--job",
            "job.toml",
            "--date",
            REPORT_DATE,
            "--dialect",
            "trino",
            "--exposures-table",
            "lake.x.exposures",
            "--events-table",
            "lake.x.events",
        ],
    );
    run.assert_code(0);
    assert!(run.stdout.contains("\"lake\".\"x\".\"exposures\""), "{}", run.stdout);
}
