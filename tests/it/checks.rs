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
fn all_six_checks_are_always_present_then_the_extensions() {
    let result = abnormal().result("few-switchers");
    let names: Vec<&str> =
        result["checks"].as_array().expect("checks").iter().map(|c| c["name"].as_str().expect("name")).collect();
    assert_eq!(
        names,
        [
            "srm",
            "multi_variant_units",
            "invalid_values",
            "unknown_variant",
            "missing_variant",
            "missing_partitions",
            "future_exposures",
            "incomplete_rows"
        ]
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
    assert!(units > 0);
    // units.parquet holds exactly the allocation's `ok` rows, in its order, with their ids,
    // variants and first exposures.
    let allocation = read_parquet(&s.out("few-switchers").join("allocation.parquet"));
    let per_unit = read_parquet(&s.out("few-switchers").join("units.parquet"));
    let text = |batch: &arrow::record_batch::RecordBatch, column: &str, row: usize| {
        use arrow::array::AsArray;
        let column = batch.column_by_name(column).expect("column");
        match column.as_primitive_opt::<arrow::datatypes::TimestampMicrosecondType>() {
            Some(micros) => micros.value(row).to_string(),
            None => arrow::util::display::array_value_to_string(column, row).expect("a value"),
        }
    };
    let ok: Vec<usize> = (0..allocation.num_rows()).filter(|&row| text(&allocation, "status", row) == "ok").collect();
    assert_eq!(allocation.num_rows() - ok.len(), excluded as usize, "the excluded units are the allocation's others");
    assert_eq!(per_unit.num_rows(), ok.len());
    assert_eq!(per_unit.num_rows() as u64, units);
    for (row, &kept) in ok.iter().enumerate() {
        for column in ["unit_id", "variant", "first_exposure_ts"] {
            assert_eq!(text(&per_unit, column, row), text(&allocation, column, kept), "{column} of row {row}");
        }
    }
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

/// Exposures of experiment `dq` and purchase events, written on the report date's partitions
/// as given (`None` is a null), and a job naming `control` and `treatment`.
fn write_data_quality_case(
    s: &Scenario,
    exposures: &[(Option<&str>, Option<&str>, &str)],
    events: &[(Option<&str>, &str)],
) {
    use arrow::array::{ArrayRef, Float64Array, StringArray, TimestampMicrosecondArray};
    use std::sync::Arc;
    let micros = |text: &str| {
        chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").expect("timestamp").and_utc().timestamp_micros()
    };
    let dir = s.path().join("data");
    write_parquet(
        &dir.join(format!("exposures/date={REPORT_DATE}/part-0.parquet")),
        vec![
            ("experiment_id", Arc::new(StringArray::from(vec!["dq"; exposures.len()])) as ArrayRef),
            ("variant", Arc::new(StringArray::from(exposures.iter().map(|e| e.0).collect::<Vec<_>>()))),
            ("unit_id", Arc::new(StringArray::from(exposures.iter().map(|e| e.1).collect::<Vec<_>>()))),
            ("ts", Arc::new(TimestampMicrosecondArray::from_iter_values(exposures.iter().map(|e| micros(e.2))))),
        ],
    );
    write_parquet(
        &dir.join(format!("events/date={REPORT_DATE}/part-0.parquet")),
        vec![
            ("unit_id", Arc::new(StringArray::from(events.iter().map(|e| e.0).collect::<Vec<_>>())) as ArrayRef),
            ("event", Arc::new(StringArray::from(vec!["purchase"; events.len()]))),
            ("value", Arc::new(Float64Array::from(vec![1.0; events.len()]))),
            ("ts", Arc::new(TimestampMicrosecondArray::from_iter_values(events.iter().map(|e| micros(e.1))))),
        ],
    );
    std::fs::write(
        s.job(),
        format!(
            "name = \"dq\"\n[source]\nurl = \"data\"\n\n[[metrics]]\nname = \"conversion\"\nkind = \"proportion\"\nevent = \"purchase\"\n\n\
             [[experiments]]\nid = \"dq\"\ncontrol = \"control\"\nvariants = {{ control = 0.5, treatment = 0.5 }}\nstart = {REPORT_DATE}\nprimary = \"conversion\"\n"
        ),
    )
    .expect("job file");
}

#[test]
fn exposures_after_the_report_date_do_not_make_units_and_are_reported() {
    let s = Scenario::empty();
    let day = |time: &str| format!("{REPORT_DATE} {time}");
    let (c1, t1, f2) = (day("08:00"), day("09:00"), day("10:00"));
    write_data_quality_case(
        &s,
        &[
            (Some("control"), Some("c1"), &c1),
            (Some("control"), Some("c2"), &c1),
            (Some("treatment"), Some("t1"), &t1),
            (Some("treatment"), Some("t2"), &t1),
            // Only exposed tomorrow (a clock off, or a late file): not a unit of the report date.
            (Some("treatment"), Some("f1"), "2026-11-21 09:00"),
            (Some("ghost"), Some("f3"), "2026-11-21 09:00"),
            // In control today, then in treatment tomorrow: a control unit, not a switcher.
            (Some("control"), Some("f2"), &f2),
            (Some("treatment"), Some("f2"), "2026-11-21 09:00"),
        ],
        &[(Some("c1"), &day("12:00")), (Some("t1"), &day("12:00")), (Some("f2"), &day("12:00"))],
    );
    s.run(&[]).assert_code(0);
    let result = s.result("dq");
    let units: Vec<u64> =
        result["variants"].as_array().expect("variants").iter().map(|v| v["units"].as_u64().expect("n")).collect();
    assert_eq!(units, [3, 2], "f1 is no unit; f2 is a control unit");
    assert_eq!(check(&result, "multi_variant_units")["status"], "pass");
    let future = check(&result, "future_exposures");
    assert_eq!(future["status"], "warn");
    assert_eq!(
        future["detail"],
        "3 exposure rows of 3 units are timestamped at or after 2026-11-21 00:00 UTC, after the end of the report date: they are outside the window and not counted; 2 of these units have no exposure in the window and are left out"
    );
    assert_eq!(check(&result, "unknown_variant")["status"], "pass", "a variant seen only tomorrow is not one yet");
    assert!(reason_codes(&result).contains(&"CHECK_WARNING:future_exposures"));
    let conversion = &metric(&result, "conversion")["variants"];
    assert_eq!(conversion[0]["mean"].as_f64(), Some(2.0 / 3.0), "c1 and f2 of c1, c2, f2 converted");
    assert_eq!(conversion[1]["mean"].as_f64(), Some(0.5), "t1 of t1, t2: f1 does not drag it down");

    let allocation = read_parquet(&s.out("dq").join("allocation.parquet"));
    let rows: Vec<(String, String, String)> = strings(&allocation, "unit_id")
        .into_iter()
        .zip(strings(&allocation, "variant"))
        .zip(strings(&allocation, "status"))
        .map(|((u, v), st)| (u, v, st))
        .collect();
    assert!(!rows.iter().any(|r| r.0 == "f1"), "{rows:?}");
    assert!(rows.contains(&("f2".into(), "control".into(), "ok".into())), "{rows:?}");
    let report = std::fs::read_to_string(s.out("dq").join("report.html")).expect("report");
    assert!(
        report.contains("<th scope=\"row\">future_exposures</th><td class=\"warn\">"),
        "the report shows the check"
    );
}

#[test]
fn rows_without_a_unit_id_are_reported_not_only_logged() {
    let s = Scenario::empty();
    let at = format!("{REPORT_DATE} 08:00");
    let later = format!("{REPORT_DATE} 12:00");
    write_data_quality_case(
        &s,
        &[
            (Some("control"), Some("c1"), &at),
            (Some("control"), Some("c2"), &at),
            (Some("treatment"), Some("t1"), &at),
            (Some("treatment"), Some("t2"), &at),
            (Some("treatment"), None, &at),
            (Some("control"), None, &at),
            (None, Some("t3"), &at),
        ],
        &[(Some("c1"), &later), (None, &later), (None, &later), (None, &later)],
    );
    s.run(&[]).assert_code(0);
    let result = s.result("dq");
    let incomplete = check(&result, "incomplete_rows");
    assert_eq!(incomplete["status"], "warn");
    assert_eq!(
        incomplete["detail"],
        "2 exposure rows without a `unit_id`, 1 exposure rows without a `variant` or `ts`, 3 rows of its events without a `unit_id` in the window cannot be attributed and are left out"
    );
    assert!(reason_codes(&result).contains(&"CHECK_WARNING:incomplete_rows"));
    assert_eq!(check(&result, "future_exposures")["status"], "pass");
}
