//! The contract's attribution rules on a small hand-made dataset whose every per-unit value is
//! known, written in each string encoding and timestamp unit the contract allows. All
//! encodings must give the same numbers.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, DictionaryArray, Float64Array, Int64Array, LargeStringArray, StringArray, StringViewArray,
};
use arrow::array::{
    TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray,
};
use arrow::datatypes::Int32Type;
use chrono::NaiveDateTime;

use crate::support::*;

#[derive(Clone, Copy, Debug)]
enum Encoding {
    /// Utf8 strings, naive microsecond timestamps.
    Plain,
    /// LargeUtf8, millisecond timestamps tagged UTC.
    Large,
    /// Utf8View, nanosecond timestamps in another time zone (the same instants).
    View,
    /// Dictionary strings, integer unit ids, second timestamps.
    Dictionary,
}

fn micros(text: &str) -> i64 {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").expect("timestamp").and_utc().timestamp_micros()
}

fn text(values: &[&str], encoding: Encoding) -> ArrayRef {
    match encoding {
        Encoding::Plain => Arc::new(StringArray::from(values.to_vec())),
        Encoding::Large => Arc::new(LargeStringArray::from(values.to_vec())),
        Encoding::View => Arc::new(StringViewArray::from(values.to_vec())),
        Encoding::Dictionary => Arc::new(values.iter().copied().collect::<DictionaryArray<Int32Type>>()),
    }
}

fn unit_ids(values: &[&str], encoding: Encoding) -> ArrayRef {
    match encoding {
        Encoding::Dictionary => {
            Arc::new(Int64Array::from_iter_values(values.iter().map(|u| u[1..].parse::<i64>().expect("u<n>"))))
        }
        other => text(values, other),
    }
}

fn timestamps(values: &[&str], encoding: Encoding) -> ArrayRef {
    let us: Vec<i64> = values.iter().map(|v| micros(v)).collect();
    match encoding {
        Encoding::Plain => Arc::new(TimestampMicrosecondArray::from(us)),
        Encoding::Large => Arc::new(
            TimestampMillisecondArray::from(us.iter().map(|u| u / 1000).collect::<Vec<_>>()).with_timezone("UTC"),
        ),
        Encoding::View => Arc::new(
            TimestampNanosecondArray::from(us.iter().map(|u| u * 1000).collect::<Vec<_>>())
                .with_timezone("Asia/Bangkok"),
        ),
        Encoding::Dictionary => {
            Arc::new(TimestampSecondArray::from(us.iter().map(|u| u / 1_000_000).collect::<Vec<_>>()))
        }
    }
}

type Exposure = (&'static str, &'static str, &'static str, &'static str);
type Event = (&'static str, &'static str, Option<f64>, &'static str);

/// (partition date, rows). Exposures: experiment, variant, unit, ts.
const EXPOSURES: &[(&str, &[Exposure])] = &[
    // Before the experiment's start: never read.
    ("2026-11-17", &[("hand", "control", "u1", "2026-11-17 10:00"), ("hand", "treatment", "u9", "2026-11-17 10:00")]),
    (
        "2026-11-18",
        &[
            ("hand", "control", "u1", "2026-11-18 10:00"),
            ("hand", "treatment", "u2", "2026-11-18 11:00"),
            ("hand", "control", "u3", "2026-11-18 12:00"),
            ("hand", "treatment", "u4", "2026-11-18 09:00"),
            ("other", "treatment", "u1", "2026-11-18 09:00"),
        ],
    ),
    (
        "2026-11-19",
        &[
            ("hand", "control", "u1", "2026-11-19 08:00"),
            ("hand", "control", "u5", "2026-11-19 10:00"),
            ("hand", "treatment", "u5", "2026-11-19 11:00"),
            ("hand", "ghost", "u6", "2026-11-19 10:00"),
            ("hand", "treatment", "u7", "2026-11-19 13:00"),
        ],
    ),
    ("2026-11-20", &[("hand", "control", "u8", "2026-11-20 23:00")]),
];

/// Events: unit, event, value, ts.
const EVENTS: &[(&str, &[Event])] = &[
    (
        "2026-11-18",
        &[
            ("u1", "purchase", Some(10.0), "2026-11-18 09:00"), // before u1's exposure: not counted
            ("u1", "purchase", Some(20.0), "2026-11-18 11:00"),
            ("u2", "purchase", Some(f64::NAN), "2026-11-18 12:00"), // counts, adds nothing, invalid
            ("u3", "purchase", None, "2026-11-18 13:00"),           // counts, adds nothing
            ("u4", "page_view", None, "2026-11-18 08:00"),          // before exposure
        ],
    ),
    (
        "2026-11-19",
        &[
            ("u1", "purchase", Some(5.0), "2026-11-19 09:00"),
            ("u2", "purchase", Some(7.5), "2026-11-19 10:00"),
            ("u5", "purchase", Some(100.0), "2026-11-19 12:00"), // multi-variant unit: excluded
            ("u6", "purchase", Some(50.0), "2026-11-19 12:00"),  // unknown variant: excluded
            ("u7", "purchase", Some(3.0), "2026-11-19 12:00"),   // before u7's exposure at 13:00
        ],
    ),
    (
        "2026-11-20",
        &[
            ("u8", "purchase", Some(4.0), "2026-11-20 23:30"),
            ("u4", "purchase", Some(9.0), "2026-11-21 00:30"), // after the report date ends
        ],
    ),
    // After the report date: never read.
    ("2026-11-21", &[("u3", "purchase", Some(1000.0), "2026-11-21 10:00")]),
];

const JOB: &str = r#"
name = "hand-made"
[source]
url = "data"

[[metrics]]
name = "conversion"
kind = "proportion"
event = "purchase"

[[metrics]]
name = "revenue"
kind = "mean"
event = "purchase"

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

[[metrics]]
name = "page_views"
kind = "mean"
event = "page_view"
aggregate = "count"

[[experiments]]
id = "hand"
control = "control"
variants = { control = 0.5, treatment = 0.5 }
start = 2026-11-18
primary = "conversion"
secondary = ["revenue", "order_value", "largest_order", "page_views"]
"#;

fn write_dataset(root: &std::path::Path, encoding: Encoding) {
    for (date, rows) in EXPOSURES {
        let column = |f: fn(&Exposure) -> &str| rows.iter().map(f).collect::<Vec<&str>>();
        write_parquet(
            &root.join(format!("data/exposures/date={date}/part-0.parquet")),
            vec![
                ("experiment_id", text(&column(|r| r.0), encoding)),
                ("variant", text(&column(|r| r.1), encoding)),
                ("unit_id", unit_ids(&column(|r| r.2), encoding)),
                ("ts", timestamps(&column(|r| r.3), encoding)),
            ],
        );
    }
    for (date, rows) in EVENTS {
        write_parquet(
            &root.join(format!("data/events/date={date}/part-0.parquet")),
            vec![
                ("unit_id", unit_ids(&rows.iter().map(|r| r.0).collect::<Vec<_>>(), encoding)),
                ("event", text(&rows.iter().map(|r| r.1).collect::<Vec<_>>(), encoding)),
                ("value", Arc::new(Float64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())) as ArrayRef),
                ("ts", timestamps(&rows.iter().map(|r| r.3).collect::<Vec<_>>(), encoding)),
            ],
        );
    }
    std::fs::write(root.join("job.toml"), JOB).expect("job file");
}

fn means(result: &serde_json::Value, name: &str) -> Vec<f64> {
    metric(result, name)["variants"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|v| v["mean"].as_f64().expect("mean"))
        .collect()
}

fn check_encoding(encoding: Encoding) {
    let s = Scenario::empty();
    write_dataset(s.path(), encoding);
    s.run(&[]).assert_code(0);
    let result = s.result("hand");
    // control: u1, u3, u8; treatment: u2, u4, u7 (u5 several variants, u6 unknown, u9 outside).
    assert_eq!(result["variants"][0]["units"], 3, "{encoding:?}");
    assert_eq!(result["variants"][1]["units"], 3, "{encoding:?}");
    assert_eq!(means(&result, "conversion"), [1.0, 1.0 / 3.0], "{encoding:?}");
    assert_eq!(means(&result, "revenue"), [29.0 / 3.0, 2.5], "{encoding:?}");
    assert_eq!(means(&result, "order_value"), [29.0 / 4.0, 7.5 / 2.0], "{encoding:?}");
    assert_eq!(means(&result, "largest_order"), [(20.0 + 4.0) / 3.0, 2.5], "{encoding:?}");
    assert_eq!(means(&result, "page_views"), [0.0, 0.0], "{encoding:?}");
    assert!(
        check(&result, "invalid_values")["detail"].as_str().expect("detail").starts_with("1 of 6 counted events"),
        "{encoding:?}"
    );
    assert_eq!(check(&result, "multi_variant_units")["status"], "fail");
    assert!(check(&result, "unknown_variant")["detail"].as_str().expect("detail").contains("`ghost`"));
    assert_eq!(check(&result, "missing_partitions")["status"], "pass");
    // page_views never varies: its comparison says why instead of producing NaN.
    let page_views = &metric(&result, "page_views")["comparisons"][0];
    assert!(page_views["p_value"].is_null());
    assert!(page_views["notes"].to_string().contains("does not vary"));

    let allocation = read_parquet(&s.out("hand").join("allocation.parquet"));
    assert_eq!(allocation.num_rows(), 8, "{encoding:?}");
    let units = read_parquet(&s.out("hand").join("units.parquet"));
    assert_eq!(units.num_rows(), 6);
    let names: Vec<String> = units.schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(
        names,
        [
            "unit_id",
            "variant",
            "first_exposure_ts",
            "conversion",
            "revenue",
            "order_value_numerator",
            "order_value_denominator",
            "largest_order",
            "page_views"
        ]
    );
}

#[test]
fn utf8_strings_and_naive_microsecond_timestamps() {
    check_encoding(Encoding::Plain);
}

#[test]
fn large_utf8_strings_and_millisecond_utc_timestamps() {
    check_encoding(Encoding::Large);
}

#[test]
fn utf8_view_strings_and_nanosecond_timestamps_in_another_zone() {
    check_encoding(Encoding::View);
}

#[test]
fn dictionary_strings_integer_unit_ids_and_second_timestamps() {
    check_encoding(Encoding::Dictionary);
}

#[test]
fn first_exposure_ignores_partitions_before_the_window() {
    let s = Scenario::empty();
    write_dataset(s.path(), Encoding::Plain);
    s.run(&[]).assert_code(0);
    let allocation = read_parquet(&s.out("hand").join("allocation.parquet"));
    let units = allocation.column_by_name("unit_id").expect("unit_id");
    let units = units.as_any().downcast_ref::<StringArray>().expect("strings");
    let first = allocation.column_by_name("first_exposure_ts").expect("ts");
    let first = first.as_any().downcast_ref::<TimestampMicrosecondArray>().expect("micros");
    let exposures = allocation.column_by_name("exposures").expect("exposures");
    let exposures = exposures.as_any().downcast_ref::<arrow::array::UInt32Array>().expect("u32");
    let row = (0..units.len()).find(|&i| units.value(i) == "u1").expect("u1 allocated");
    assert_eq!(first.value(row), micros("2026-11-18 10:00"));
    assert_eq!(exposures.value(row), 2);
    assert!((0..units.len()).all(|i| units.value(i) != "u9"));
}
