//! Experiments with many variants: every variant's units are counted as its own, whether the
//! job configures 33 or 50 variants or the data shows them unannounced (a unit's exposure
//! state once kept its variants in a 32-bit mask that wrapped past the 32nd).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, StringArray, TimestampMicrosecondArray};
use serde_json::Value;

use crate::support::*;

/// A generated experiment `id` with `n` equally weighted variants (control, a, b, …, z, aa, …),
/// and a few units that also saw the control later.
fn many_variants(id: &str, n: usize) -> Scenario {
    let weights = vec!["1"; n].join("/");
    Scenario::generate(&[
        "--units",
        &(200 * n).to_string(),
        "--days",
        "2",
        "--seed",
        "5",
        "--experiment",
        &format!("{id},weights={weights},multi_variant_rate=0.005"),
    ])
}

/// Units per (variant, status) in `allocation.parquet`.
fn allocation_counts(s: &Scenario, id: &str) -> BTreeMap<(String, String), u64> {
    let batch = read_parquet(&s.out(id).join("allocation.parquet"));
    let mut counts = BTreeMap::new();
    for (variant, status) in strings(&batch, "variant").into_iter().zip(strings(&batch, "status")) {
        *counts.entry((variant, status)).or_default() += 1;
    }
    counts
}

/// `results.json`'s units per variant, in its order.
fn units_per_variant(result: &Value) -> Vec<(String, u64)> {
    result["variants"]
        .as_array()
        .expect("variants")
        .iter()
        .map(|v| (v["name"].as_str().expect("name").to_string(), v["units"].as_u64().expect("units")))
        .collect()
}

/// Each configured variant's units agree between results.json and allocation.parquet, are not
/// zero, and the pandas reference (tests/reference/check_run.py) derives the same statuses,
/// counts and statistics from the raw Parquet.
fn assert_every_variant_counted(s: &Scenario, id: &str, configured: usize) {
    let result = s.result(id);
    let units = units_per_variant(&result);
    assert_eq!(units.len(), configured);
    let allocation = allocation_counts(s, id);
    for (name, n) in &units {
        assert!(*n > 20, "variant {name} has {n} units: {units:?}");
        assert_eq!(allocation.get(&(name.clone(), "ok".into())), Some(n), "{name}: {allocation:?}");
    }
    assert_eq!(check(&result, "missing_variant")["status"], "pass");
    crate::reference::reference_check(s, &[id]);
}

#[test]
fn thirty_three_configured_variants_each_count_their_own_units() {
    let s = many_variants("wide", 33);
    s.run(&[]).assert_code(0);
    assert_every_variant_counted(&s, "wide", 33);
    assert_eq!(check(&s.result("wide"), "unknown_variant")["status"], "pass");
}

#[test]
fn fifty_configured_variants_each_count_their_own_units() {
    let s = many_variants("wider", 50);
    s.run(&[]).assert_code(0);
    assert_every_variant_counted(&s, "wider", 50);
}

#[test]
fn variants_past_the_32nd_that_the_job_does_not_name_are_unknown_not_another_variant() {
    // The data has 50 variants; the job names the first 32, a full 32-bit mask's worth.
    let s = many_variants("partial", 50);
    s.edit_job(|job| {
        let line = job.lines().find(|l| l.starts_with("variants = {")).expect("variants line").to_string();
        let kept: Vec<&str> = line.trim_start_matches("variants = { ").split(", ").take(32).collect();
        job.replace(&line, &format!("variants = {{ {} }}", kept.join(", ")))
    });
    s.run(&[]).assert_code(0);
    assert_every_variant_counted(&s, "partial", 32);
    let result = s.result("partial");
    let unknown = check(&result, "unknown_variant");
    assert_eq!(unknown["status"], "warn");
    let detail = unknown["detail"].as_str().expect("detail");
    // af..aw: the 33rd to the 50th variant, each named.
    for name in ["af", "ag", "av", "aw"] {
        assert!(detail.contains(&format!("`{name}`")), "{detail}");
    }
    let allocation = allocation_counts(&s, "partial");
    let unknown_units: u64 =
        allocation.iter().filter(|((_, status), _)| status == "unknown_variant").map(|(_, n)| n).sum();
    let thousands = format!("{},{:03}", unknown_units / 1000, unknown_units % 1000);
    assert!(detail.contains(&format!("; {thousands} units only in them are excluded")), "{detail}");
    assert!(allocation.contains_key(&("aw".into(), "unknown_variant".into())), "{allocation:?}");
}

/// Writes exposures (experiment `many`, variant, unit, ts) on the report date, one purchase per
/// unit, and a job naming `control` and `treatment` only.
fn hand_made(s: &Scenario, exposures: &[(String, String)]) {
    let ts = chrono::NaiveDate::from_ymd_opt(2026, 11, 20)
        .expect("date")
        .and_hms_opt(10, 0, 0)
        .expect("time")
        .and_utc()
        .timestamp_micros();
    let dir = s.path().join("data");
    let n = exposures.len();
    write_parquet(
        &dir.join(format!("exposures/date={REPORT_DATE}/part-0.parquet")),
        vec![
            ("experiment_id", Arc::new(StringArray::from(vec!["many"; n])) as ArrayRef),
            ("variant", Arc::new(StringArray::from_iter_values(exposures.iter().map(|e| e.0.as_str())))),
            ("unit_id", Arc::new(StringArray::from_iter_values(exposures.iter().map(|e| e.1.as_str())))),
            ("ts", Arc::new(TimestampMicrosecondArray::from(vec![ts; n]))),
        ],
    );
    write_parquet(
        &dir.join(format!("events/date={REPORT_DATE}/part-0.parquet")),
        vec![
            ("unit_id", Arc::new(StringArray::from_iter_values(exposures.iter().map(|e| e.1.as_str()))) as ArrayRef),
            ("event", Arc::new(StringArray::from(vec!["purchase"; n]))),
            ("value", Arc::new(Float64Array::from(vec![1.0; n]))),
            ("ts", Arc::new(TimestampMicrosecondArray::from(vec![ts + 60_000_000; n]))),
        ],
    );
    std::fs::write(
        s.job(),
        format!(
            "name = \"many\"\n[source]\nurl = \"data\"\n\n[[metrics]]\nname = \"conversion\"\nkind = \"proportion\"\nevent = \"purchase\"\n\n\
             [[experiments]]\nid = \"many\"\ncontrol = \"control\"\nvariants = {{ control = 0.5, treatment = 0.5 }}\nstart = {REPORT_DATE}\nprimary = \"conversion\"\n"
        ),
    )
    .expect("job file");
}

#[test]
fn a_unit_seen_in_two_unknown_variants_past_the_32nd_is_multi_variant() {
    let s = Scenario::empty();
    let mut exposures: Vec<(String, String)> = Vec::new();
    for i in 0..10 {
        exposures.push(("control".into(), format!("c{i}")));
        exposures.push(("treatment".into(), format!("t{i}")));
    }
    // 48 unknown variants x02..x49 with two units each.
    for v in 2..50 {
        for i in 0..2 {
            exposures.push((format!("x{v:02}"), format!("x{v:02}-{i}")));
        }
    }
    // Two units in two variants each: both past the 32nd; a configured one and one past it.
    exposures.extend(
        [("x40", "both"), ("x45", "both"), ("treatment", "mixed"), ("x47", "mixed")]
            .map(|(v, u)| (v.to_string(), u.to_string())),
    );
    hand_made(&s, &exposures);
    s.run(&[]).assert_code(0);

    let result = s.result("many");
    assert_eq!(units_per_variant(&result), [("control".to_string(), 10), ("treatment".to_string(), 10)]);
    assert!(check(&result, "multi_variant_units")["detail"].as_str().expect("detail").starts_with("2 of 118 units"));
    let unknown = check(&result, "unknown_variant")["detail"].as_str().expect("detail").to_string();
    assert!(unknown.contains("`x02`, `x03`") && unknown.contains("and 28 more"), "{unknown}");
    assert!(unknown.contains("96 units only in them are excluded"), "{unknown}");

    let batch = read_parquet(&s.out("many").join("allocation.parquet"));
    let rows: HashMap<String, (String, String)> = strings(&batch, "unit_id")
        .into_iter()
        .zip(strings(&batch, "variant").into_iter().zip(strings(&batch, "status")))
        .collect();
    assert_eq!(rows["both"], ("x40|x45".to_string(), "multi_variant".to_string()));
    assert_eq!(rows["mixed"], ("treatment|x47".to_string(), "multi_variant".to_string()));
    assert_eq!(rows["x49-1"], ("x49".to_string(), "unknown_variant".to_string()));
    assert_eq!(rows["t9"], ("treatment".to_string(), "ok".to_string()));
}
