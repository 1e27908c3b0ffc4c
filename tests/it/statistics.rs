//! Issue 3's statistics through the binary: always-valid inference, CUPED, the Bayesian view,
//! guardrail non-inferiority, the SRM practical gate and localisation, caps and breakdowns.
//! Numbers are checked against gbstats by `reference::reference_check`.

use crate::reference::reference_check;
use crate::support::*;

fn comparison<'a>(result: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    &metric(result, name)["comparisons"][0]
}

#[test]
fn cuped_reduces_variance_and_matches_gbstats() {
    let s = Scenario::generate(&[
        "--units",
        "8000",
        "--days",
        "4",
        "--history-days",
        "7",
        "--seed",
        "9",
        "--experiment",
        "cuped,effect=0.1",
    ]);
    s.run(&[]).assert_code(0);
    let result = s.result("cuped");
    let page_views = metric(&result, "page_views");
    let reduction = page_views["cuped"]["variance_reduction"].as_f64().expect("reduction");
    assert!(reduction > 0.2, "engagement carries over, so the covariate explains a lot: {reduction}");
    assert_eq!(page_views["cuped"]["lookback_days"], 7);
    let c = comparison(&result, "page_views");
    assert!(c["unadjusted"]["p_value"].is_f64(), "the unadjusted numbers are kept");
    let width = |ci: &serde_json::Value| ci[1].as_f64().expect("hi") - ci[0].as_f64().expect("lo");
    assert!(width(&c["ci_absolute"]) < width(&c["unadjusted"]["ci_absolute"]), "CUPED narrows the interval");
    reference_check(&s, &["cuped"]);
}

#[test]
fn a_proper_prior_shrinks_the_bayesian_view_and_matches_gbstats() {
    let s = Scenario::generate(&["--units", "3000", "--days", "3", "--seed", "4", "--experiment", "prior,effect=0.3"]);
    s.edit_job(|job| job.replace("srm_p_value = 0.001", "srm_p_value = 0.001\nprior_stddev = 0.05"));
    s.run(&[]).assert_code(0);
    let result = s.result("prior");
    let c = comparison(&result, "conversion");
    let relative = c["relative_effect"].as_f64().expect("effect");
    let ci = &c["bayesian"]["ci_relative"];
    let centre = (ci[0].as_f64().expect("lo") + ci[1].as_f64().expect("hi")) / 2.0;
    assert!(centre.abs() < relative.abs(), "a N(0, 5%²) prior pulls the lift toward 0: {centre} vs {relative}");
    let chance = c["bayesian"]["chance_to_win"].as_f64().expect("chance");
    assert!((0.0..=1.0).contains(&chance));
    reference_check(&s, &["prior"]);
}

/// Always-valid inference is the default for every job now, scheduled or not: a report read
/// twice is a peek whoever reads it. (It used to be off for jobs without a schedule.)
#[test]
fn sequential_is_the_default_for_every_job() {
    let s = Scenario::generate(&["--units", "2000", "--days", "3", "--experiment", "adhoc,effect=0.2"]);
    s.edit_job(|job| job.replace("schedule = \"0 0 6 * * *\"\n", ""));
    s.run(&[]).assert_code(0);
    let result = s.result("adhoc");
    assert_eq!(result["settings"]["sequential"], true);
    let c = comparison(&result, "conversion");
    assert_eq!(c["inference"]["method"], "always_valid", "{c}");
    assert!(c["inference"]["tuning"].as_f64().expect("tuning") > 0.0);
    assert!(c["sequential"]["p_value"].is_f64());
    let report = std::fs::read_to_string(s.out("adhoc").join("report.md")).expect("report");
    assert!(report.contains("safe to read daily"), "the report says how to read it");
    s.edit_job(|job| job.replace("srm_p_value = 0.001", "srm_p_value = 0.001\nsequential = false"));
    s.run(&[]).assert_code(0);
    let result = s.result("adhoc");
    assert_eq!(result["settings"]["sequential"], false);
    let c = comparison(&result, "conversion");
    assert!(c.get("sequential").is_none());
    assert_eq!(c["inference"]["method"], "fixed_horizon", "{c}");
    assert!(c["inference"]["tuning"].is_null());
    assert_eq!(result["plan"]["tuning_source"], "none");
    let report = std::fs::read_to_string(s.out("adhoc").join("report.md")).expect("report");
    assert!(report.contains("valid only when read once"), "the report warns that it is not safe to read daily");
    reference_check(&s, &["adhoc"]);
}

#[test]
fn an_srm_below_the_practical_gate_warns_instead_of_failing() {
    let s = Scenario::generate(&[
        "--units",
        "60000",
        "--days",
        "2",
        "--files-per-day",
        "1",
        "--seed",
        "2",
        "--experiment",
        "skew,treatment_share=0.508",
    ]);
    s.run(&[]).assert_code(0);
    let strict = check(&s.result("skew"), "srm").clone();
    assert_eq!(strict["status"], "fail", "{strict}");
    s.edit_job(|job| job.replace("srm_p_value = 0.001", "srm_p_value = 0.001\nsrm_min_deviation = 0.05"));
    s.run(&[]).assert_code(0);
    let result = s.result("skew");
    let gated = check(&result, "srm").clone();
    // A mismatch below the practical gate is still a mismatch: it warns (it used to pass).
    assert_eq!(gated["status"], "warn", "{gated}");
    assert!(gated["p_value"].as_f64().expect("p") < 0.001, "still statistically detectable");
    assert!(gated["detail"].as_str().expect("detail").contains("smaller than the practical threshold"), "{gated}");
    assert_ne!(recommendation(&result), "pause", "only a failed SRM check pauses");
    assert!(reason_codes(&result).contains(&"CHECK_WARNING:srm"), "{}", result["decision"]);
    let output = reference_check(&s, &["skew"]);
    assert!(output.contains("checks: srm warn"), "the reference derives the warning too:\n{output}");
}

#[test]
fn an_srm_is_localised_to_its_first_day_and_its_country() {
    let s = Scenario::generate(&[
        "--units",
        "30000",
        "--days",
        "5",
        "--seed",
        "8",
        "--experiment",
        "late,treatment_share=0.6,srm_from_day=3",
        "--experiment",
        "brazil,treatment_share=0.75,srm_country=BR",
    ]);
    s.run(&[]).assert_code(0);
    let late = s.result("late");
    assert_eq!(recommendation(&late), "pause");
    // The window starts on 2026-11-16; the mismatch starts on its fourth day.
    assert_eq!(late["srm"]["first_broken_day"], "2026-11-19");
    let days = late["srm"]["by_day"].as_array().expect("days");
    assert!(days.iter().filter(|d| d["slice"].as_str() < Some("2026-11-19")).all(|d| d["broken"] == false));
    assert!(check(&late, "srm")["detail"].as_str().expect("detail").contains("first broken day: 2026-11-19"));
    let brazil = s.result("brazil");
    let broken: Vec<&str> = brazil["srm"]["broken_dimension_values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|v| v["slice"].as_str().expect("slice"))
        .collect();
    assert!(broken.contains(&"country=BR"), "{broken:?}");
    assert!(!broken.contains(&"country=US"), "{broken:?}");
    let report = std::fs::read_to_string(s.out("late").join("report.md")).expect("report");
    assert!(report.contains("## Allocation by day") && report.contains("| 2026-11-19 |"));
}

#[test]
fn caps_are_applied_and_reported() {
    let s = Scenario::generate(&["--units", "4000", "--days", "3", "--experiment", "capped"]);
    s.edit_job(|job| job.replace("cap = { percentile = 0.999 }", "cap = { absolute = 60.0 }"));
    s.run(&[]).assert_code(0);
    let result = s.result("capped");
    let cap = &metric(&result, "revenue")["cap"];
    assert_eq!(cap["kind"], "absolute");
    assert_eq!(cap["value"], 60.0);
    assert!(cap["capped_units"].as_u64().expect("count") > 0);
    let file = std::fs::File::open(s.out("capped").join("units.parquet")).expect("units");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet")
        .build()
        .expect("reader");
    for batch in reader {
        let batch = batch.expect("batch");
        let revenue = batch.column_by_name("revenue").expect("column");
        let max = arrow::compute::max(revenue.as_any().downcast_ref::<arrow::array::Float64Array>().expect("f64"));
        assert!(max.expect("values") <= 60.0);
    }
}

#[test]
fn breakdowns_are_exploratory_with_the_top_20_values_and_other() {
    let s = Scenario::generate(&["--units", "6000", "--days", "3", "--experiment", "sliced,effect=0.2"]);
    s.run(&[]).assert_code(0);
    let result = s.result("sliced");
    let breakdowns = result["breakdowns"].as_array().expect("breakdowns");
    let country = breakdowns.iter().find(|b| b["dimension"] == "country").expect("country");
    assert_eq!(country["exploratory"], true);
    assert_eq!(country["metric"], "conversion");
    let slices = country["slices"].as_array().expect("slices");
    assert_eq!(slices.len(), 21, "24 countries: the top 20 and (other)");
    assert_eq!(slices[0]["value"], "US", "largest first");
    assert_eq!(slices[20]["value"], "(other)");
    let total: u64 = slices.iter().map(|s| s["units"].as_u64().expect("n")).sum();
    let units: u64 =
        result["variants"].as_array().expect("variants").iter().map(|v| v["units"].as_u64().expect("n")).sum();
    assert_eq!(total, units, "slices partition the analyzable units");
    let report = std::fs::read_to_string(s.out("sliced").join("report.html")).expect("report");
    assert!(report.contains("Exploratory breakdowns") && report.contains("Not used for the recommendation"));
}

/// A guardrail listed by name has no margin: it is not a non-inferiority test (which the old
/// default 5% margin made it, holding every win back until the guardrail was shown within 5%)
/// but a harm test, which blocks only on significant harm.
#[test]
fn guardrails_named_only_have_no_margin_and_only_block_on_harm() {
    let s = Scenario::generate(&["--units", "2000", "--days", "2", "--experiment", "plain"]);
    s.edit_job(|job| {
        job.replace("guardrails = [{ metric = \"error_rate\", margin = 0.2 }]", "guardrails = [\"error_rate\"]")
    });
    s.run(&[]).assert_code(0);
    let result = s.result("plain");
    assert!(
        metric(&result, "error_rate").get("margin").is_none_or(serde_json::Value::is_null),
        "{}",
        metric(&result, "error_rate")
    );
    let c = comparison(&result, "error_rate");
    assert!(c.get("non_inferiority").is_none_or(serde_json::Value::is_null), "{c}");
    assert!(c["inference"]["harm_p_value"].is_f64(), "the harm test of 0: {c}");
    let planned: Vec<&str> =
        result["plan"]["tests"].as_array().expect("tests").iter().map(|t| t["test"].as_str().expect("kind")).collect();
    assert_eq!(planned, ["success"], "no non-inferiority test is planned for it");
}

#[test]
fn bad_statistics_settings_name_the_line() {
    let s = Scenario::generate(&["--units", "500", "--days", "2", "--experiment", "bad"]);
    s.edit_job(|job| {
        job.replace(
            "guardrails = [{ metric = \"error_rate\", margin = 0.2 }]",
            "guardrails = [{ metric = \"error_rate\", margin = 2.0 }]",
        )
        .replace("cap = { percentile = 0.999 }", "cap = { percentile = 99.9 }")
    });
    let run = s.run(&[]);
    run.assert_code(2);
    assert!(run.stderr.contains("2 problems"), "{}", run.stderr);
    assert!(run.stderr.contains("`cap` takes one of"), "{}", run.stderr);
    assert!(
        run.stderr.contains("guardrail `error_rate`: `margin` must be a relative amount from 0 to below 1, got 2.0"),
        "{}",
        run.stderr
    );
}

/// The always-valid tuning is fixed by the first run that can size the tests and kept in the
/// run ledger: a later run reads it back instead of tuning to its own data (a tuning that moves
/// with the data would void the intervals' guarantee); a job change that alters the design
/// makes a new one.
#[test]
fn the_design_of_the_first_run_is_kept_by_the_next() {
    let s = Scenario::generate(&["--units", "3000", "--days", "8", "--experiment", "kept,effect=0.1"]);
    // Without `planned_units`, the data size the tests and the first run fixes the tuning.
    s.edit_job(|job| job.lines().filter(|l| !l.starts_with("planned_units")).collect::<Vec<_>>().join("\n"));
    let run_on = |date: &str| {
        abreport(s.path(), &["run", "--job", "job.toml", "--date", date, "--out", "out"]).assert_code(0);
        s.result("kept")
    };
    let tuning = |result: &serde_json::Value| comparison(result, "conversion")["inference"]["tuning"].as_f64();
    let first = run_on("2026-11-16");
    assert_eq!(first["plan"]["tuning_source"], "design", "{}", first["plan"]);
    assert_eq!(first["plan"]["designed_on"], "2026-11-16");
    // Fewer than 7 days of data: the date is a first estimate, not yet the design's quote.
    assert_eq!(first["plan"]["estimate_is_provisional"], true);
    let designs = s.path().join("out/ledger/.designs/generated");
    assert!(designs.join("kept.json").is_file(), "the design is kept in the ledger");

    let later = run_on(REPORT_DATE);
    assert_eq!(later["plan"]["designed_on"], "2026-11-16", "the kept design, not a new one");
    assert_eq!(tuning(&later), tuning(&first), "the same tuning on every look");
    assert_eq!(later["plan"]["estimate_is_provisional"], false);
    let quoted = later["plan"]["first_expected_verdict_date"].as_str().expect("quoted after a week of data");
    assert!(quoted >= REPORT_DATE, "{quoted}");

    // A new MDE is a new design: made again from this run's data.
    s.edit_job(|job| job.replace("srm_p_value = 0.001", "srm_p_value = 0.001\nmde = 0.2"));
    let redesigned = run_on(REPORT_DATE);
    assert_eq!(redesigned["plan"]["designed_on"], REPORT_DATE);
    assert_ne!(tuning(&redesigned), tuning(&first));
}
