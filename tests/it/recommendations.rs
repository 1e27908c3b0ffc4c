//! Each recommendation, from generated data with known true effects.

use std::sync::OnceLock;

use serde_json::Value;

use crate::support::*;

/// One dataset, one run, five experiments with different truths. Units take part in all of
/// them; assignment is independent, so one experiment's effect does not bias another's.
fn five_truths() -> &'static Scenario {
    static SCENARIO: OnceLock<Scenario> = OnceLock::new();
    SCENARIO.get_or_init(|| {
        let scenario = Scenario::generate(&[
            "--units",
            "20000",
            "--days",
            "7",
            "--seed",
            "7",
            "--experiment",
            "win,effect=0.3",
            "--experiment",
            "lose,effect=-0.3",
            "--experiment",
            "guard,error_effect=1.5",
            "--experiment",
            "flat,coverage=0.05",
            "--experiment",
            "srm,treatment_share=0.56",
        ]);
        scenario.run(&[]).assert_code(0);
        scenario
    })
}

fn primary(result: &Value, variant: &str) -> Value {
    let comparisons = metric(result, "conversion")["comparisons"].as_array().expect("comparisons").clone();
    comparisons.into_iter().find(|c| c["variant"] == variant).unwrap_or_else(|| panic!("no comparison for {variant}"))
}

#[test]
fn a_clear_primary_win_is_promoted_with_its_numbers() {
    let s = five_truths();
    let result = s.result("win");
    assert_eq!(recommendation(&result), "promote");
    assert_eq!(result["decision"]["variant"], "treatment");
    let reason = result["decision"]["reasons"][0].as_str().expect("reason");
    // Every job decides on always-valid (sequential) inference.
    assert!(reason.contains("`conversion` is +") && reason.contains("always-valid 95% CI"), "{reason}");
    assert_eq!(result["settings"]["sequential"], true);
    assert_eq!(reason_codes(&result), ["PRIMARY_SIGNIFICANT_WIN", "GUARDRAIL_NON_INFERIOR:error_rate"]);
    let comparison = &metric(&result, "conversion")["comparisons"][0];
    assert_eq!(comparison["significant"], true);
    assert_eq!(comparison["sequential"]["significant"], true);
    let inference = &comparison["inference"];
    assert_eq!(
        (&inference["method"], &inference["scale"], &inference["level"]),
        (&"always_valid".into(), &"relative".into(), &0.95.into())
    );
    assert_eq!(inference["direction"], "better");
    // The always-valid interval is wider than the fixed-horizon one: the price of daily looks.
    let width = |ci: &Value| ci[1].as_f64().expect("hi") - ci[0].as_f64().expect("lo");
    assert!(width(&comparison["sequential"]["ci_relative"]) > width(&comparison["ci_relative"]));
    let relative = comparison["relative_effect"].as_f64().expect("number");
    assert!((0.15..0.45).contains(&relative), "true effect 0.3, estimated {relative}");
}

#[test]
fn a_primary_loss_is_rolled_back() {
    let result = five_truths().result("lose");
    assert_eq!(recommendation(&result), "rollback");
    assert_eq!(result["decision"]["variant"], "treatment");
    assert_eq!(reason_codes(&result), ["PRIMARY_SIGNIFICANT_LOSS"]);
    assert!(result["decision"]["reasons"].to_string().contains("Roll `treatment` back to `control`"));
}

#[test]
fn a_guardrail_worse_beyond_its_margin_is_rolled_back_even_without_a_primary_effect() {
    let result = five_truths().result("guard");
    assert_eq!(recommendation(&result), "rollback");
    assert_eq!(reason_codes(&result), ["GUARDRAIL_SIGNIFICANT_LOSS:error_rate"]);
    let reasons = result["decision"]["reasons"].to_string();
    assert!(
        reasons.contains("Guardrail `error_rate`") && reasons.contains("worse by more than its 20.0% margin"),
        "{reasons}"
    );
    assert_eq!(metric(&result, "error_rate")["comparisons"][0]["direction"], "worse");
    assert_eq!(primary(&result, "treatment")["inference"]["significant"], false);
}

#[test]
fn an_underpowered_test_continues_with_units_and_days_needed() {
    let result = five_truths().result("flat");
    assert_eq!(recommendation(&result), "continue");
    // 5% coverage: the sample a verdict needs is years away, after the last day (max_days 42).
    assert_eq!(
        reason_codes(&result),
        [
            "PRIMARY_NOT_SIGNIFICANT",
            "GUARDRAIL_NOT_YET_NON_INFERIOR:error_rate",
            "HOLD_ROLLOUT",
            "NOT_FEASIBLE_BY_LAST_DAY"
        ]
    );
    let sample = &metric(&result, "conversion")["comparisons"][0]["power"];
    assert!(sample["additional_units"].as_u64().expect("additional units") > 0);
    assert!(sample["additional_days"].as_f64().expect("days") > 0.0);
    let expected = result["decision"]["expected_verdict_date"].as_str().expect("a date");
    assert!(expected > result["plan"]["last_day"].as_str().expect("last day"), "{expected}");
    let reasons = result["decision"]["reasons"].to_string();
    assert!(
        reasons.contains("A verdict needs about") && reasons.contains(&format!("expected by {expected}")),
        "{reasons}"
    );
    // A preliminary summary is shown when nothing is significant.
    let report = std::fs::read_to_string(five_truths().out("flat").join("report.md")).expect("report");
    assert!(report.contains("## Preliminary summary"));
}

#[test]
fn a_sample_ratio_mismatch_pauses_the_rollout() {
    let result = five_truths().result("srm");
    assert_eq!(recommendation(&result), "pause");
    assert_eq!(reason_codes(&result), ["DATA_QUALITY_FAILED:srm"]);
    let srm = check(&result, "srm");
    assert_eq!(srm["status"], "fail");
    assert!(srm["p_value"].as_f64().expect("p") < 0.001);
    assert!(result["decision"]["reasons"].to_string().contains("hold the rollout"));
}

#[test]
fn balanced_experiments_pass_the_srm_check() {
    let result = five_truths().result("win");
    assert_eq!(check(&result, "srm")["status"], "pass");
}

#[test]
fn a_configured_variant_without_units_is_inconclusive() {
    let s = Scenario::generate(&["--units", "3000", "--days", "3", "--experiment", "three-way"]);
    s.edit_job(|job| {
        job.replace(
            "variants = { control = 0.5, treatment = 0.5 }",
            "variants = { control = 0.4, treatment = 0.3, treatment_b = 0.3 }",
        )
    });
    s.run(&[]).assert_code(0);
    let result = s.result("three-way");
    assert_eq!(recommendation(&result), "inconclusive");
    assert_eq!(reason_codes(&result)[0], "MISSING_VARIANT");
    let missing = check(&result, "missing_variant");
    assert_eq!(missing["status"], "fail");
    assert!(missing["detail"].as_str().expect("detail").contains("`treatment_b`"));
    // No NaN anywhere: the empty variant's mean is null and its comparison has notes.
    let conversion = metric(&result, "conversion");
    let empty = conversion["variants"]
        .as_array()
        .expect("variants")
        .iter()
        .find(|v| v["variant"] == "treatment_b")
        .expect("row");
    assert_eq!(empty["units"], 0);
    assert!(empty["mean"].is_null());
    // Where a number exists it is a number (JSON has no NaN: a NaN would come out as null).
    for m in result["metrics"].as_array().expect("metrics") {
        for v in m["variants"].as_array().expect("rows").iter().filter(|v| v["units"].as_u64() > Some(0)) {
            assert!(v["mean"].is_f64() && v["variance"].is_f64(), "{m}");
        }
        let to_b = m["comparisons"]
            .as_array()
            .expect("comparisons")
            .iter()
            .find(|c| c["variant"] == "treatment_b")
            .expect("b");
        assert!(to_b["absolute_effect"].is_null() && to_b["notes"].to_string().contains("no units"), "{to_b}");
    }
}
