//! Each data-quality check, from generated data with the abnormal case switched on.

use std::sync::OnceLock;

use crate::support::*;

/// NaN values, a missing partition and units exposed to both variants, in one dataset.
fn abnormal() -> &'static Scenario {
    static SCENARIO: OnceLock<Scenario> = OnceLock::new();
    SCENARIO.get_or_init(|| {
        let scenario = Scenario::generate(&[
            "--units",
            "8000",
            "--days",
            "5",
            "--seed",
            "11",
            "--nan-rate",
            "0.05",
            "--missing-partition",
            "events:2026-11-18",
            "--experiment",
            "few-switchers,multi_variant_rate=0.002",
            "--experiment",
            "many-switchers,multi_variant_rate=0.05",
        ]);
        scenario.run(&[]).assert_code(0);
        scenario
    })
}

#[test]
fn all_six_checks_are_always_present() {
    let result = abnormal().result("few-switchers");
    let names: Vec<&str> =
        result["checks"].as_array().expect("checks").iter().map(|c| c["name"].as_str().expect("name")).collect();
    assert_eq!(
        names,
        ["srm", "multi_variant_units", "invalid_values", "unknown_variant", "missing_variant", "missing_partitions"]
    );
}

#[test]
fn nan_and_infinite_values_are_counted_and_warned_about() {
    let result = abnormal().result("few-switchers");
    let invalid = check(&result, "invalid_values");
    assert_eq!(invalid["status"], "warn");
    assert!(invalid["detail"].as_str().expect("detail").contains("NaN or infinite"));
    // They are missing values, not zeros that drag revenue down, and never NaN in the output.
    let revenue = metric(&result, "revenue");
    assert!(revenue["variants"][0]["mean"].as_f64().expect("finite mean") > 0.0);
}

#[test]
fn a_missing_partition_is_reported_with_its_date() {
    let result = abnormal().result("few-switchers");
    let missing = check(&result, "missing_partitions");
    assert_eq!(missing["status"], "warn");
    assert!(missing["detail"].as_str().expect("detail").contains("events 2026-11-18"));
    assert!(result["decision"]["reasons"].to_string().contains("Caveat (missing_partitions)"));
}

#[test]
fn a_few_multi_variant_units_warn_and_are_excluded() {
    let s = abnormal();
    let result = s.result("few-switchers");
    let multi = check(&result, "multi_variant_units");
    assert_eq!(multi["status"], "warn");
    let excluded = result["traffic"]["excluded_units"].as_u64().expect("count");
    assert!(excluded > 0);
    let units: u64 =
        result["variants"].as_array().expect("variants").iter().map(|v| v["units"].as_u64().expect("n")).sum();
    let allocation = std::fs::metadata(s.out("few-switchers").join("allocation.parquet")).expect("allocation export");
    assert!(allocation.len() > 0);
    assert!(units > 0);
}

#[test]
fn many_multi_variant_units_fail_the_check_and_pause() {
    let result = abnormal().result("many-switchers");
    assert_eq!(check(&result, "multi_variant_units")["status"], "fail");
    assert_eq!(recommendation(&result), "pause");
    assert_eq!(reason_codes(&result)[0], "DATA_QUALITY_FAILED:multi_variant_units");
}

#[test]
fn a_variant_missing_from_the_job_is_an_unknown_variant() {
    let s = Scenario::generate(&["--units", "3000", "--days", "3", "--experiment", "renamed"]);
    s.edit_job(|job| {
        job.replace("variants = { control = 0.5, treatment = 0.5 }", "variants = { control = 0.5, treatment_v2 = 0.5 }")
    });
    s.run(&[]).assert_code(0);
    let result = s.result("renamed");
    let unknown = check(&result, "unknown_variant");
    assert_eq!(unknown["status"], "warn");
    assert!(unknown["detail"].as_str().expect("detail").contains("`treatment`"));
    assert_eq!(check(&result, "missing_variant")["status"], "fail");
    assert_eq!(recommendation(&result), "inconclusive");
    let output = crate::reference::reference_check(&s, &["renamed"]);
    assert!(output.contains("unknown_variant warn") && output.contains("missing_variant fail"), "{output}");
    assert!(output.contains("decision: inconclusive  ['MISSING_VARIANT'"), "{output}");
}

#[test]
fn clean_data_passes_every_check() {
    let s = Scenario::generate(&["--units", "3000", "--days", "3", "--experiment", "clean"]);
    s.run(&[]).assert_code(0);
    let result = s.result("clean");
    for c in result["checks"].as_array().expect("checks") {
        assert_eq!(c["status"], "pass", "{c}");
    }
}

#[test]
fn every_check_status_and_the_pause_match_the_reference() {
    let output = crate::reference::reference_check(abnormal(), &["few-switchers", "many-switchers"]);
    for derived in
        ["invalid_values warn", "missing_partitions warn", "multi_variant_units warn", "multi_variant_units fail"]
    {
        assert!(output.contains(derived), "the reference derived no `{derived}`:\n{output}");
    }
    assert!(output.contains("decision: pause  ['DATA_QUALITY_FAILED:multi_variant_units'"), "{output}");
}
