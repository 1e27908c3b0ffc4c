//! Property test of the whole read path on hostile input: small record batches of every
//! accepted encoding (and some that are not accepted), with nulls, NaN and infinite values,
//! extreme timestamps, empty and huge strings, are written as real Parquet files and run
//! through [`run`] — the real source, fold, analysis, rendering and exports. Whatever the
//! files hold, the run returns: a result, or an error that names the file or column; never a
//! panic (in the test thread, a reader task or an experiment worker).

use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, DictionaryArray, Float32Array, Float64Array, Int64Array, LargeStringArray, RecordBatch, StringArray,
    StringViewArray, TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray,
    TimestampSecondArray,
};
use arrow::datatypes::{Field, Int32Type, Schema};
use chrono::NaiveDate;
use proptest::prelude::*;

use crate::test_support::run_job;

const REPORT_DATE: &str = "2026-11-20";

/// How a text column is stored; `Int` is not accepted for text (an error naming the column),
/// but is for unit ids.
#[derive(Debug, Clone, Copy)]
enum TextKind {
    Utf8,
    Large,
    View,
    Dictionary,
    Int,
}

#[derive(Debug, Clone, Copy)]
enum TimeKind {
    Seconds,
    Millis,
    Micros,
    Nanos,
    /// Not a timestamp at all: an error naming the column.
    Int,
}

#[derive(Debug, Clone, Copy)]
enum NumberKind {
    Float64,
    Float32,
    Int64,
    /// Not a number: an error naming the column.
    Text,
}

/// One column's cells before encoding.
#[derive(Debug, Clone)]
enum Cells {
    Text(TextKind, Vec<Option<String>>),
    Time(TimeKind, Option<&'static str>, Vec<Option<i64>>),
    Number(NumberKind, Vec<Option<f64>>),
}

/// A text cell: mostly one of `common` (so rows match the job), else anything odd.
fn text_cell(common: &'static [&'static str]) -> impl Strategy<Value = Option<String>> {
    prop::option::weighted(
        0.9,
        prop_oneof![
            6 => prop::sample::select(common).prop_map(str::to_string),
            1 => "[a-z0-9]{0,3}",
            1 => Just(String::new()),
            1 => Just("é✓ 😀".to_string()),
            1 => Just("x".repeat(70_000)),
        ],
    )
}

fn int_cell() -> impl Strategy<Value = Option<String>> {
    prop::option::weighted(
        0.9,
        prop_oneof![4 => (0i64..40).prop_map(|n| n.to_string()), 1 => any::<i64>().prop_map(|n| n.to_string())],
    )
}

fn text_column(kinds: Vec<TextKind>, common: &'static [&'static str], rows: usize) -> impl Strategy<Value = Cells> {
    prop::sample::select(kinds).prop_flat_map(move |kind| {
        let cell = if matches!(kind, TextKind::Int) { int_cell().boxed() } else { text_cell(common).boxed() };
        prop::collection::vec(cell, rows).prop_map(move |cells| Cells::Text(kind, cells))
    })
}

fn time_column(rows: usize) -> impl Strategy<Value = Cells> {
    let report_day = NaiveDate::from_ymd_opt(2026, 11, 20)
        .and_then(|d| d.and_hms_opt(12, 0, 0))
        .map_or(0, |t| t.and_utc().timestamp_micros());
    let kind = prop::sample::select(vec![TimeKind::Seconds, TimeKind::Millis, TimeKind::Micros, TimeKind::Nanos]);
    let zone = prop::sample::select(vec![None, Some("UTC"), Some("Asia/Bangkok"), Some("+05:30")]);
    // Microseconds near the report date (either side of its end), or anything at all.
    let cell = prop::option::weighted(
        0.9,
        prop_oneof![
            6 => (-36 * 3_600_000_000i64..14 * 3_600_000_000).prop_map(move |d| report_day + d),
            1 => any::<i64>(),
            1 => prop::sample::select(vec![i64::MIN, i64::MAX, 0, -1]),
        ],
    );
    (kind, zone, prop::collection::vec(cell, rows)).prop_map(|(kind, zone, cells)| Cells::Time(kind, zone, cells))
}

fn number_column(rows: usize) -> impl Strategy<Value = Cells> {
    let kind =
        prop::sample::select(vec![NumberKind::Float64, NumberKind::Float64, NumberKind::Float32, NumberKind::Int64]);
    let cell = prop::option::weighted(
        0.85,
        prop_oneof![
            any::<f64>(),
            -10.0..100.0f64,
            prop::sample::select(vec![f64::NAN, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, f64::MAX, -0.0])
        ],
    );
    (kind, prop::collection::vec(cell, rows)).prop_map(|(kind, cells)| Cells::Number(kind, cells))
}

/// Unit ids of the text cases (integer cases draw 0..40 alike).
const UNITS: &[&str] = &[
    "u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8", "u9", "u10", "u11", "u12", "u13", "u14", "u15", "u16", "u17",
    "u18", "u19", "u20", "u21", "u22", "u23", "u24", "u25", "u26", "u27", "u28", "u29", "u30", "u31", "u32", "u33",
    "u34", "u35", "u36", "u37", "u38", "u39",
];
const TEXT: [TextKind; 4] = [TextKind::Utf8, TextKind::Large, TextKind::View, TextKind::Dictionary];

/// The unit id encodings of one case: integers, or any text encoding (one kind per run, as
/// the contract asks; mixing them is one of the broken cases).
fn unit_kinds(int_ids: bool) -> Vec<TextKind> {
    if int_ids { vec![TextKind::Int] } else { TEXT.to_vec() }
}

/// An exposures batch: experiment_id, variant, unit_id, ts, country.
fn exposures(int_ids: bool) -> impl Strategy<Value = Vec<Cells>> {
    (1usize..30).prop_flat_map(move |rows| {
        (
            text_column(TEXT.to_vec(), &["exp", "other"], rows),
            text_column(TEXT.to_vec(), &["control", "treatment", "control", "treatment", "ghost"], rows),
            text_column(unit_kinds(int_ids), UNITS, rows),
            time_column(rows),
            text_column(TEXT.to_vec(), &["DE", "FR"], rows),
        )
            .prop_map(|(a, b, c, d, e)| vec![a, b, c, d, e])
    })
}

/// An events batch: unit_id, event, value, ts.
fn events(int_ids: bool) -> impl Strategy<Value = Vec<Cells>> {
    (0usize..40).prop_flat_map(move |rows| {
        (
            text_column(unit_kinds(int_ids), UNITS, rows),
            text_column(TEXT.to_vec(), &["purchase", "purchase", "page_view"], rows),
            number_column(rows),
            time_column(rows),
        )
            .prop_map(|(a, b, c, d)| vec![a, b, c, d])
    })
}

/// One column stored with a type the contract does not accept (text as integers, a
/// timestamp as plain integers, a value as text), or unit ids of the other kind.
fn break_column(column: &mut Cells) {
    *column = match column.clone() {
        Cells::Text(TextKind::Int, cells) => Cells::Text(TextKind::Utf8, cells),
        Cells::Text(_, cells) => Cells::Text(TextKind::Int, cells),
        Cells::Time(_, zone, cells) => Cells::Time(TimeKind::Int, zone, cells),
        Cells::Number(_, cells) => Cells::Number(NumberKind::Text, cells),
    };
}

/// A case: the files of both datasets, and maybe one broken column (file, column).
fn files() -> impl Strategy<Value = (Vec<Vec<Cells>>, Vec<Vec<Cells>>)> {
    any::<bool>()
        .prop_flat_map(|int_ids| {
            (
                prop::collection::vec(exposures(int_ids), 1..3),
                prop::collection::vec(events(int_ids), 1..3),
                prop::option::weighted(0.2, (any::<bool>(), 0usize..3, 0usize..5)),
            )
        })
        .prop_map(|(mut exposures, mut events, broken)| {
            if let Some((in_exposures, file, column)) = broken {
                let files = if in_exposures { &mut exposures } else { &mut events };
                let n_files = files.len();
                let file = &mut files[file % n_files];
                let n = file.len();
                break_column(&mut file[column % n]);
            }
            (exposures, events)
        })
}

fn array(cells: &Cells) -> ArrayRef {
    match cells {
        Cells::Text(kind, values) => {
            let strs: Vec<Option<&str>> = values.iter().map(Option::as_deref).collect();
            match kind {
                TextKind::Utf8 => Arc::new(StringArray::from(strs)),
                TextKind::Large => Arc::new(LargeStringArray::from(strs)),
                TextKind::View => Arc::new(StringViewArray::from(strs)),
                TextKind::Dictionary => Arc::new(strs.into_iter().collect::<DictionaryArray<Int32Type>>()),
                TextKind::Int => Arc::new(Int64Array::from(
                    values.iter().map(|v| v.as_deref().and_then(|s| s.parse::<i64>().ok())).collect::<Vec<_>>(),
                )),
            }
        }
        Cells::Time(kind, zone, micros) => {
            let scaled = |f: fn(i64) -> i64| micros.iter().map(|m| m.map(f)).collect::<Vec<_>>();
            let zone = zone.map(Arc::<str>::from);
            match kind {
                TimeKind::Seconds => {
                    Arc::new(TimestampSecondArray::from(scaled(|m| m / 1_000_000)).with_timezone_opt(zone))
                }
                TimeKind::Millis => {
                    Arc::new(TimestampMillisecondArray::from(scaled(|m| m / 1_000)).with_timezone_opt(zone))
                }
                TimeKind::Micros => Arc::new(TimestampMicrosecondArray::from(scaled(|m| m)).with_timezone_opt(zone)),
                TimeKind::Nanos => Arc::new(
                    TimestampNanosecondArray::from(scaled(|m| m.saturating_mul(1_000))).with_timezone_opt(zone),
                ),
                TimeKind::Int => Arc::new(Int64Array::from(scaled(|m| m))),
            }
        }
        Cells::Number(kind, values) => match kind {
            NumberKind::Float64 => Arc::new(Float64Array::from(values.clone())),
            NumberKind::Float32 => {
                Arc::new(Float32Array::from(values.iter().map(|v| v.map(|x| x as f32)).collect::<Vec<_>>()))
            }
            NumberKind::Int64 => {
                Arc::new(Int64Array::from(values.iter().map(|v| v.map(|x| x as i64)).collect::<Vec<_>>()))
            }
            NumberKind::Text => {
                Arc::new(StringArray::from(values.iter().map(|v| v.map(|x| x.to_string())).collect::<Vec<_>>()))
            }
        },
    }
}

fn write(path: &Path, names: &[&str], columns: &[Cells]) {
    std::fs::create_dir_all(path.parent().expect("a partition folder")).expect("partition folder");
    let arrays: Vec<ArrayRef> = columns.iter().map(array).collect();
    let fields: Vec<Field> =
        names.iter().zip(&arrays).map(|(n, a)| Field::new(*n, a.data_type().clone(), true)).collect();
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("a valid batch");
    let file = std::fs::File::create(path).expect("file");
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
}

/// Runs the pipeline on the files in `dir`; the error's text when it fails.
fn run_on(dir: &Path) -> Result<usize, String> {
    let text = format!(
        r#"name = "prop"
dimensions = ["country"]
[source]
url = "{}"
[[metrics]]
name = "conversion"
kind = "proportion"
event = "purchase"
[[metrics]]
name = "revenue"
kind = "mean"
event = "purchase"
cuped = true
cap = {{ percentile = 0.9 }}
[[metrics]]
name = "order_value"
kind = "ratio"
numerator = {{ event = "purchase", aggregate = "sum" }}
denominator = {{ event = "purchase", aggregate = "count" }}
[[metrics]]
name = "largest"
kind = "mean"
event = "purchase"
aggregate = "max"
[[experiments]]
id = "exp"
control = "control"
variants = {{ control = 0.5, treatment = 0.5 }}
start = 2026-11-19
primary = "conversion"
secondary = ["revenue", "order_value", "largest"]
"#,
        dir.join("data").display()
    );
    let job = crate::config::check(&text, &dir.join("job.toml")).map_err(|e| format!("job: {e}"))?;
    let report_date = NaiveDate::parse_from_str(REPORT_DATE, "%Y-%m-%d").expect("a date");
    run_job(&job, report_date).map(|output| output.results.len()).map_err(|e| e.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_small_batches_are_read_folded_and_reported_without_a_panic((exposure_files, event_files) in files()) {
        let dir = tempfile::tempdir().expect("temp dir");
        for (i, columns) in exposure_files.iter().enumerate() {
            let path = dir.path().join(format!("data/exposures/date={REPORT_DATE}/part-{i}.parquet"));
            write(&path, &["experiment_id", "variant", "unit_id", "ts", "country"], columns);
        }
        for (i, columns) in event_files.iter().enumerate() {
            let path = dir.path().join(format!("data/events/date={REPORT_DATE}/part-{i}.parquet"));
            write(&path, &["unit_id", "event", "value", "ts"], columns);
        }
        match run_on(dir.path()) {
            Ok(results) => prop_assert_eq!(results, 1),
            Err(message) => {
                prop_assert!(!message.contains("panicked") && !message.contains("internal error"), "{}", message);
                prop_assert!(message.contains(".parquet`") && message.contains("column `"), "an error that names no file and column: {}", message);
            }
        }
    }
}
