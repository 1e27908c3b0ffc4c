//! Incremental daily runs: a run that goes on from the last run's checkpoint gives the full
//! run's results, and every change that could make it wrong makes it read everything.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, StringArray, TimestampMicrosecondArray};
use serde_json::Value;

use crate::support::*;

/// `abreport run --job job.toml --date <date> --out <out> --no-deliver <extra>` in `dir`,
/// which publishes.
fn run_on(dir: &Path, date: &str, out: &str, extra: &[&str]) -> Run {
    let mut args = vec!["run", "--job", "job.toml", "--date", date, "--out", out, "--no-deliver"];
    args.extend_from_slice(extra);
    let run = abreport(dir, &args);
    // 4: an experiment not started yet has no data; the others are published.
    assert!(matches!(run.code, 0 | 4), "exit code {}\nstdout:\n{}\nstderr:\n{}", run.code, run.stdout, run.stderr);
    run
}

/// How the run read its data, from an experiment's run log: `("incremental", …)` or
/// `("full", reason)`.
fn read_mode(dir: &Path, out: &str, experiment: &str) -> (String, String) {
    let log = std::fs::read_to_string(dir.join(out).join(experiment).join("run.log.jsonl")).expect("run log");
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|entry| entry["stage"] == "checkpoint")
        .find_map(|entry| {
            let mode = entry["fields"]["mode"].as_str()?.to_string();
            Some((mode, entry["fields"]["reason"].as_str().unwrap_or_default().to_string()))
        })
        .unwrap_or_else(|| panic!("no checkpoint entry in {experiment}'s run log:\n{log}"))
}

/// The regating counts of an incremental run's log: `(touched_pairs, excluded_pairs,
/// old event partitions read again for the touched pairs)`.
fn regated(dir: &Path, out: &str, experiment: &str) -> (u64, u64, u64) {
    let log = std::fs::read_to_string(dir.join(out).join(experiment).join("run.log.jsonl")).expect("run log");
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|entry| entry["stage"] == "checkpoint" && entry["fields"]["touched_pairs"].is_u64())
        .map_or((0, 0, 0), |entry| {
            let count = |key: &str| entry["fields"][key].as_u64().unwrap_or_default();
            let reread = entry["fields"]["reread_partition_dates"].as_array().map_or(0, Vec::len) as u64;
            (count("touched_pairs"), count("excluded_pairs"), reread)
        })
}

/// `a` and `b` agree: every count and string exactly, every other number within 1e-12
/// relative (`generated_at` aside).
fn assert_close(a: &Value, b: &Value, path: &str) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().expect("f64"), y.as_f64().expect("f64"));
            let scale = x.abs().max(y.abs());
            assert!((x - y).abs() <= 1e-12 * scale, "{path}: {x} vs {y}");
        }
        (Value::Object(x), Value::Object(y)) => {
            let keys = |o: &serde_json::Map<String, Value>| o.keys().cloned().collect::<Vec<_>>();
            assert_eq!(keys(x), keys(y), "{path}: keys");
            for (key, value) in x {
                if key != "generated_at" {
                    assert_close(value, &y[key], &format!("{path}.{key}"));
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{path}: length");
            for (i, (x, y)) in x.iter().zip(y).enumerate() {
                assert_close(x, y, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(a, b, "{path}"),
    }
}

/// Every experiment's results.json agree (see [`assert_close`]) and its per-unit exports
/// (units.parquet, allocation.parquet) hold the same rows.
fn assert_same_outputs(dir: &Path, out_a: &str, out_b: &str, date: &str) {
    let experiments: Vec<String> = std::fs::read_dir(dir.join(out_a))
        .expect("outputs")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with("exp-"))
        .collect();
    assert!(!experiments.is_empty());
    for experiment in experiments {
        let read = |out: &str, file: &str| std::fs::read(dir.join(out).join(&experiment).join(file)).ok();
        let json = |out: &str| -> Value {
            serde_json::from_slice(&read(out, "results.json").expect("results")).expect("json")
        };
        assert_close(&json(out_a), &json(out_b), &format!("{date} {experiment}"));
        for file in ["units.parquet", "allocation.parquet"] {
            let (a, b) = (read(out_a, file), read(out_b, file));
            assert_eq!(a.is_some(), b.is_some(), "{date} {experiment} {file}");
            if let (Some(a), Some(b)) = (a, b) {
                let batch = |bytes: Vec<u8>| {
                    let path = dir.join("compare.parquet");
                    std::fs::write(&path, bytes).expect("written");
                    read_parquet(&path)
                };
                assert!(batch(a) == batch(b), "{date} {experiment} {file}: rows differ");
            }
        }
    }
}

#[test]
fn fourteen_daily_runs_from_checkpoints_give_the_full_runs_results() {
    // 16 days of data with 3 days of history (CUPED), three experiments: exp-3 starts on day 6
    // of the chain (the fold changes: one full read), and units of exp-1 and exp-2 see a
    // second variant on a later day (they leave the analysis).
    let scenario = Scenario::generate(&[
        "--units",
        "3000",
        "--days",
        "16",
        "--history-days",
        "3",
        "--experiment",
        "exp-1,multi_variant_rate=0.05",
        "--experiment",
        "exp-2,weights=1/1/1,multi_variant_rate=0.03",
        "--experiment",
        "exp-3,effect=0.2",
    ]);
    scenario.edit_experiment("exp-3", |table| table.replace("start = 2026-11-05", "start = 2026-11-12"));
    let dir = scenario.path();
    let first = chrono::NaiveDate::from_ymd_opt(2026, 11, 7).expect("date");
    let (mut touched, mut excluded, mut reread) = (0, 0, 0);
    for day in 0..14 {
        let date = (first + chrono::Days::new(day)).to_string();
        run_on(dir, &date, "full", &["--full"]);
        run_on(dir, &date, "chain", &[]);
        assert_same_outputs(dir, "full", "chain", &date);
        let (mode, reason) = read_mode(dir, "chain", "exp-1");
        let expected = match date.as_str() {
            // The first run has no checkpoint; exp-3 starts on 2026-11-12.
            "2026-11-07" | "2026-11-12" => "full",
            _ => "incremental",
        };
        assert_eq!(mode, expected, "{date}: {reason}");
        match date.as_str() {
            "2026-11-07" => assert_eq!(reason, "no checkpoint"),
            "2026-11-12" => assert!(reason.contains("fold changed"), "{reason}"),
            _ => {}
        }
        assert_eq!(read_mode(dir, "full", "exp-1"), ("full".to_string(), "--full".to_string()));
        let (t, e, r) = regated(dir, "chain", "exp-1");
        touched += t;
        excluded += e;
        reread += r;
    }
    // The chain met new units (their rows started afresh, and the old partitions their CUPED
    // lookback reaches were read again for them) and units that became multi-variant.
    assert!(touched > 0 && excluded > 0 && reread > 0, "touched {touched}, excluded {excluded}, re-read {reread}");
}

/// An events file of hand-made rows: `(unit, event, value, ts)`.
fn write_events(path: &Path, rows: &[(&str, &str, f64, i64)]) {
    let text = |values: Vec<&str>| -> ArrayRef { Arc::new(StringArray::from_iter_values(values)) };
    write_parquet(
        path,
        vec![
            ("unit_id", text(rows.iter().map(|r| r.0).collect())),
            ("event", text(rows.iter().map(|r| r.1).collect())),
            ("value", Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.2))) as ArrayRef),
            (
                "ts",
                Arc::new(TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.3)).with_timezone("UTC")),
            ),
        ],
    );
}

fn micros(date: &str, hour: i64) -> i64 {
    let date: chrono::NaiveDate = date.parse().expect("date");
    date.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp_micros() + hour * 3_600_000_000
}

#[test]
fn a_changed_old_partition_a_changed_job_a_corrupt_checkpoint_or_dirty_data_make_a_full_read() {
    let scenario =
        Scenario::generate(&["--units", "1500", "--days", "10", "--history-days", "1", "--experiments", "2"]);
    let dir = scenario.path();
    let data = dir.join("data");
    // Each step: the chain's run, then a full run of the same date and data to compare with.
    let step = |date: &str, extra: &[&str]| -> (String, String, Run) {
        let run = run_on(dir, date, "chain", extra);
        run_on(dir, date, "full", &["--full"]);
        assert_same_outputs(dir, "full", "chain", date);
        let (mode, reason) = read_mode(dir, "chain", "exp-1");
        (mode, reason, run)
    };
    let checkpoint = dir.join("chain/ledger/.checkpoints/generated/state.abrckpt");

    assert_eq!(step("2026-11-12", &[]).1, "no checkpoint");
    assert_eq!(step("2026-11-13", &[]).0, "incremental");

    // A corrupt checkpoint: a warning naming the file, and a full read.
    let bytes = std::fs::read(&checkpoint).expect("checkpoint written");
    std::fs::write(&checkpoint, &bytes[..bytes.len() / 2]).expect("truncated");
    let (mode, reason, run) = step("2026-11-14", &[]);
    assert_eq!(mode, "full");
    assert!(reason.contains("state.abrckpt") && reason.contains("cannot be read"), "{reason}");
    assert!(run.stderr.contains("state.abrckpt"), "{}", run.stderr);
    assert_eq!(step("2026-11-15", &[]).0, "incremental", "the full read wrote a fresh checkpoint");

    // A file of an old partition rewritten (same rows, new modification time).
    let old_file = data.join("events/date=2026-11-13/part-000.parquet");
    let content = std::fs::read(&old_file).expect("old file");
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&old_file, content).expect("rewritten");
    let (mode, reason, _) = step("2026-11-16", &[]);
    assert_eq!(mode, "full");
    assert!(reason.contains("events partition of 2026-11-13 changed"), "{reason}");

    // A late file for an old date.
    let late = data.join("exposures/date=2026-11-14/part-late.parquet");
    std::fs::copy(data.join("exposures/date=2026-11-16/part-000.parquet"), &late).expect("copied");
    let (mode, reason, _) = step("2026-11-17", &[]);
    assert_eq!(mode, "full");
    assert!(reason.contains("exposures partition of 2026-11-14 changed"), "{reason}");

    // A metric now reads another aggregate of its event: the fold changed.
    scenario.edit_job(|job| job.replacen("aggregate = \"sum\"", "aggregate = \"max\"", 1));
    let (mode, reason, _) = step("2026-11-18", &[]);
    assert_eq!(mode, "full");
    assert!(reason.contains("fold changed"), "{reason}");
    assert_eq!(step("2026-11-19", &[]).0, "incremental");

    // `--full` reads everything (and writes a checkpoint the next run goes on from).
    let (mode, reason, _) = step("2026-11-20", &["--full"]);
    assert_eq!((mode.as_str(), reason.as_str()), ("full", "--full"));

    // Dirty data: an event of 2026-11-20's partition timestamped the day after. The
    // checkpoint of 2026-11-20 set it aside; the run of 2026-11-21 would count it.
    write_events(
        &data.join("events/date=2026-11-20/part-dirty.parquet"),
        &[("u-1", "purchase", 1.0, micros("2026-11-21", 1))],
    );
    assert_eq!(step("2026-11-20", &[]).1, "the report date 2026-11-20 is not after the checkpoint's, 2026-11-20");
    let (mode, reason, _) = step("2026-11-21", &[]);
    assert_eq!(mode, "full");
    assert!(reason.contains("timestamped after 2026-11-20"), "{reason}");
}
