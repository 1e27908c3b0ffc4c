//! The same job on the same data gives the same bytes, whatever the number of threads: every
//! output except the time-stamped parts docs/exports.md lists ("Reproducible outputs").

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, StringArray, TimestampMicrosecondArray};
use serde_json::Value;

use crate::support::*;

const DAYS: [&str; 3] = ["2026-11-18", "2026-11-19", "2026-11-20"];
const FILES_PER_DAY: usize = 4;
const UNITS: usize = 2400;
const COUNTRIES: usize = 26;

const JOB: &str = r#"
name = "reproducible"
dimensions = ["country"]

[source]
url = "data"

[stats]
cuped_lookback_days = 1

[[metrics]]
name = "conversion"
kind = "proportion"
event = "purchase"

[[metrics]]
name = "revenue"
kind = "mean"
event = "purchase"
aggregate = "sum"
cuped = true

[[metrics]]
name = "order_value"
kind = "ratio"
numerator = { event = "purchase", aggregate = "sum" }
denominator = { event = "purchase", aggregate = "count" }

[[metrics]]
name = "largest_order"
kind = "mean"
event = "purchase"
aggregate = "max"

[[experiments]]
id = "checkout"
control = "control"
variants = { control = 0.5, treatment = 0.5 }
start = 2026-11-18
primary = "conversion"
secondary = ["revenue", "order_value", "largest_order"]
"#;

/// xorshift64: the same data on every machine.
struct Draws(u64);

impl Draws {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A value whose magnitude spans eight decades, so that the rounding of a running f64 sum
    /// depends on the order of the additions; some negative, some -0.0.
    fn value(&mut self) -> f64 {
        let r = self.next();
        if r.is_multiple_of(50) {
            return -0.0;
        }
        let magnitude = 10f64.powi((r % 8) as i32 - 3);
        let sign = if r.is_multiple_of(7) { -1.0 } else { 1.0 };
        sign * magnitude * ((r >> 11) as f64 / (1u64 << 53) as f64)
    }
}

fn micros(date: &str, seconds: i64) -> i64 {
    let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").expect("date");
    day.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp_micros() + seconds * 1_000_000
}

fn strings(values: Vec<String>) -> ArrayRef {
    Arc::new(StringArray::from(values))
}

/// Events of every unit in every file, so that files read at the same time feed the same units;
/// exposures spread over the days and files, with units in both variants, in variants the job
/// does not configure, and an allocation broken in two countries (SRM localisation). Returns,
/// per unit, its event values in file order.
fn write_dataset(root: &Path) -> Vec<Vec<f64>> {
    let mut draws = Draws(0x9E37_79B9_7F4A_7C15);
    let unit = |i: usize| format!("u{i:05}");
    let country = |i: usize| format!("{}{}", (b'A' + (i % COUNTRIES) as u8) as char, (b'A' + (i % 3) as u8) as char);
    let mut values = vec![Vec::new(); UNITS];
    for (d, date) in DAYS.iter().enumerate() {
        for f in 0..FILES_PER_DAY {
            let (mut experiment, mut variant, mut unit_id, mut ts, mut dimension) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            let mut expose = |i: usize, name: &str, seconds: i64| {
                experiment.push("checkout".to_string());
                variant.push(name.to_string());
                unit_id.push(unit(i));
                ts.push(micros(date, seconds));
                dimension.push(country(i));
            };
            for i in (0..UNITS).filter(|i| i % DAYS.len() == d && (i / DAYS.len()) % FILES_PER_DAY == f) {
                // Countries `A?` and `B?` only ever see the treatment: an SRM, localised to
                // six dimension values.
                let name = match i {
                    _ if i % 97 == 5 => ["zeta", "alpha", "mu"][i % 3],
                    _ if i % COUNTRIES < 2 => "treatment",
                    _ if (i / COUNTRIES).is_multiple_of(2) => "control",
                    _ => "treatment",
                };
                expose(i, name, 3600 + (i as i64 % 600));
                if i % 89 == 3 {
                    expose(i, if name == "control" { "treatment" } else { "control" }, 7200);
                }
                if i % 97 == 5 && i % 2 == 0 {
                    expose(i, "omega", 7300);
                }
            }
            write_parquet(
                &root.join(format!("data/exposures/date={date}/part-{f}.parquet")),
                vec![
                    ("experiment_id", strings(experiment)),
                    ("variant", strings(variant)),
                    ("unit_id", strings(unit_id)),
                    ("ts", Arc::new(TimestampMicrosecondArray::from(ts)) as ArrayRef),
                    ("country", strings(dimension)),
                ],
            );

            let (mut unit_id, mut event, mut value, mut ts) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (i, unit_values) in values.iter_mut().enumerate() {
                for _ in 0..1 + draws.below(3) {
                    let v = draws.value();
                    unit_id.push(unit(i));
                    event.push("purchase".to_string());
                    value.push(v);
                    // Spread over the day: some before the unit's exposure (CUPED's lookback).
                    ts.push(micros(date, draws.below(86_000) as i64));
                    unit_values.push(v);
                }
            }
            write_parquet(
                &root.join(format!("data/events/date={date}/part-{f}.parquet")),
                vec![
                    ("unit_id", strings(unit_id)),
                    ("event", strings(event)),
                    ("value", Arc::new(Float64Array::from(value)) as ArrayRef),
                    ("ts", Arc::new(TimestampMicrosecondArray::from(ts)) as ArrayRef),
                ],
            );
        }
    }
    std::fs::write(root.join("job.toml"), JOB).expect("job file");
    values
}

/// `abreport run` with `ABREPORT_THREADS=threads` into `out-<threads>`; the sha256 of each
/// output with its time stamps taken out.
fn run_with_threads(s: &Scenario, threads: usize) -> BTreeMap<String, String> {
    let out = format!("out-{threads}");
    let args = ["run", "--job", "job.toml", "--date", REPORT_DATE, "--out", &out];
    abreport_with_env(s.path(), &args, &[("ABREPORT_THREADS", &threads.to_string())]).assert_code(0);
    output_hashes(&s.path().join(&out).join("checkout"))
}

#[test]
fn one_two_and_four_threads_give_byte_identical_outputs_apart_from_the_time_stamps() {
    let s = Scenario::empty();
    let values = write_dataset(s.path());
    // The data can tell: summed in f64, most units' values give another last bit when the
    // files are taken in another order, as reader threads may.
    let order_sensitive =
        values.iter().filter(|v| v.iter().sum::<f64>().to_bits() != v.iter().rev().sum::<f64>().to_bits()).count();
    assert!(order_sensitive > UNITS / 4, "{order_sensitive} of {UNITS} units");

    let one = run_with_threads(&s, 1);
    let expected = [
        "allocation.parquet",
        "manifest.json",
        "report.html",
        "report.md",
        "results.csv",
        "results.json",
        "results.parquet",
        "units.parquet",
    ];
    assert_eq!(one.keys().map(String::as_str).collect::<Vec<_>>(), expected);
    for threads in [2, 4] {
        assert_eq!(run_with_threads(&s, threads), one, "{threads} threads against 1");
    }

    // The run exercised what used to depend on timing: unknown variants (named in order),
    // units in two variants, an SRM localised to two countries.
    let result = s_result(&s, "out-1");
    let unknown = check(&result, "unknown_variant")["detail"].as_str().expect("detail").to_string();
    assert!(unknown.contains("`alpha`, `mu`, `omega`, `zeta`"), "{unknown}");
    assert_eq!(check(&result, "multi_variant_units")["status"], "fail");
    let srm = check(&result, "srm")["detail"].as_str().expect("detail").to_string();
    assert!(
        srm.ends_with("; broken in country=AA, country=AB, country=AC, country=BA, country=BB, country=BC"),
        "{srm}"
    );
}

fn s_result(s: &Scenario, out: &str) -> Value {
    let path = s.path().join(out).join("checkout/results.json");
    let json: Value = serde_json::from_slice(&std::fs::read(path).expect("results.json")).expect("parses");
    json["experiments"][0].clone()
}

#[test]
fn an_invalid_thread_count_is_a_usage_error() {
    let s = Scenario::empty();
    let run = abreport_with_env(s.path(), &["validate", "."], &[("ABREPORT_THREADS", "0")]);
    run.assert_code(2);
    assert!(run.stderr.contains("ABREPORT_THREADS must be a whole number of threads from 1 to 1024, not `0`"));
}
