//! Each recommendation, from generated data with known true effects: one test per rule of the
//! decision (`src/decide.rs` numbers them in its module doc), each pinning the recommendation,
//! the variant and the reason codes. `reference::every_rule_matches_the_documented_rule` checks
//! the same runs against the rule re-derived in Python.

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

/// The experiments of [`rules`] whose decision the module doc and the code agree on, with the
/// rule each one pins.
pub(crate) const RULE_EXPERIMENTS: [&str; 12] = [
    "win",               // 5: promote
    "lose",              // 6: rollback on the primary
    "harmful-guardrail", // 6: rollback on a guardrail without a margin
    "beyond-margin",     // 6: rollback on a guardrail worse beyond its margin
    "secondary-loss",    // 7: trade-off with a secondary
    "within-margin",     // 7: trade-off with a guardrail worse within its margin
    "last-day",          // 9: horizon, max_days
    "sample-in",         // 9: horizon, the planned sample
    "no-effect",         // 8: no effect
    "keep",              // 10: continue
    "three",             // 5 with three variants
    "split",             // 5 with a 90/10 split
];

/// Experiments of [`rules`] on which the rule as documented and the code part ways (see
/// `reference::the_documented_rule_and_the_code_agree_on_its_edge_cases`).
pub(crate) const EDGE_EXPERIMENTS: [&str; 2] = ["pending-trade-off", "untestable-guardrail"];

/// One dataset with an experiment per rule (12,000 units over 5 days, a second proportion
/// guardrail `bounce_rate`), each experiment's guardrails and settings edited in its own table.
/// The seed is one on which every outcome holds with some room (checked by the tests below,
/// which name the margins).
pub(crate) fn rules() -> &'static Scenario {
    static SCENARIO: OnceLock<Scenario> = OnceLock::new();
    SCENARIO.get_or_init(|| {
        let mut args = vec!["--units", "12000", "--days", "5", "--seed", "6", "--bounce-rate", "0.3"];
        for spec in [
            "win,effect=0.4",
            "lose,effect=-0.4",
            "harmful-guardrail,error_effect=1.5",
            "beyond-margin,bounce_effect=0.5",
            "secondary-loss,effect=0.4,revenue_effect=-0.6",
            "within-margin,effect=0.4,bounce_effect=0.15",
            "last-day,coverage=0.1",
            "sample-in,effect=0.12",
            "no-effect",
            "keep,effect=0.2,coverage=0.15",
            "three,weights=1/1/1,effects=0/0.4",
            "split,weights=90/10,effect=0.4",
            "pending-trade-off,effect=0.4,revenue_effect=-0.6",
            "untestable-guardrail,effect=0.4",
        ] {
            args.extend(["--experiment", spec]);
        }
        let s = Scenario::generate(&args);
        let generated = "guardrails = [{ metric = \"error_rate\", margin = 0.2 }]";
        let guardrails = |id: &str, to: &str, extra: &str| {
            s.edit_experiment(id, |table| format!("{}\n{extra}", table.replace(generated, &format!("guardrails = {to}"))));
        };
        let named = r#"["error_rate"]"#;
        let bounce = |margin: f64| format!(r#"["error_rate", {{ metric = "bounce_rate", margin = {margin} }}]"#);
        guardrails("win", &bounce(0.25), "");
        guardrails("lose", named, "");
        guardrails("harmful-guardrail", named, "");
        guardrails("beyond-margin", &bounce(0.1), "");
        guardrails("secondary-loss", named, "");
        guardrails("within-margin", &bounce(0.5), "");
        guardrails("last-day", named, "max_days = 5");
        guardrails("sample-in", named, "mde = 0.2");
        guardrails("no-effect", named, "mde = 0.3");
        guardrails("keep", named, "mde = 0.3");
        guardrails("three", &bounce(0.25), "");
        guardrails("split", named, "");
        // pending-trade-off keeps the generated guardrail: error_rate within 20%, not yet shown.
        guardrails("untestable-guardrail", r#"["error_rate", "refunds"]"#, "");
        // A guardrail whose event never happens: it cannot be tested.
        s.edit_job(|job| {
            job.replacen(
                "[[experiments]]",
                "[[metrics]]\nname = \"refunds\"\nkind = \"proportion\"\nevent = \"refund\"\nhigher_is_better = false\n\n[[experiments]]",
                1,
            )
        });
        s.run(&[]).assert_code(0);
        s
    })
}

/// A first day without any purchase yet (the primary's event): `first-day` as configured,
/// `first-and-last-day` with `max_days = 1`.
pub(crate) fn first_day() -> &'static Scenario {
    static SCENARIO: OnceLock<Scenario> = OnceLock::new();
    SCENARIO.get_or_init(|| {
        let s = Scenario::generate(&[
            "--units",
            "2000",
            "--days",
            "1",
            "--purchase-lag-days",
            "1",
            "--experiment",
            "first-day",
            "--experiment",
            "first-and-last-day",
        ]);
        s.edit_experiment("first-and-last-day", |table| format!("{table}\nmax_days = 1"));
        s.run(&[]).assert_code(0);
        s
    })
}

fn primary(result: &Value, variant: &str) -> Value {
    let comparisons = metric(result, "conversion")["comparisons"].as_array().expect("comparisons").clone();
    comparisons.into_iter().find(|c| c["variant"] == variant).unwrap_or_else(|| panic!("no comparison for {variant}"))
}

fn inference(result: &Value, metric_name: &str, variant: &str) -> Value {
    let comparisons = metric(result, metric_name)["comparisons"].as_array().expect("comparisons").clone();
    let c = comparisons.into_iter().find(|c| c["variant"] == variant).expect("comparison");
    assert!(c["inference"].is_object(), "{metric_name}/{variant} has no inference: {c}");
    c["inference"].clone()
}

fn ci(inference: &Value) -> [f64; 2] {
    [inference["ci"][0].as_f64().expect("low"), inference["ci"][1].as_f64().expect("high")]
}

fn number(value: &Value) -> f64 {
    value.as_f64().unwrap_or_else(|| panic!("not a number: {value}"))
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
            "NOT_FEASIBLE_BY_LAST_DAY",
            "HOLD_ROLLOUT"
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
    // The plain-words summary says so when nothing is significant.
    let report = std::fs::read_to_string(five_truths().out("flat").join("report.md")).expect("report");
    assert!(report.contains("## In plain words\n\nNothing is significant yet"), "{report}");
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
    let output = crate::reference::reference_check(&s, &["three-way"]);
    assert!(output.contains("decision: inconclusive  ['MISSING_VARIANT'"), "{output}");
}

// Rule 4.

#[test]
fn a_first_day_without_primary_events_is_too_early_not_inconclusive() {
    let result = first_day().result("first-day");
    assert_eq!(recommendation(&result), "continue", "{}", result["decision"]);
    assert_eq!(reason_codes(&result), ["TOO_EARLY", "HOLD_ROLLOUT"]);
    assert!(result["decision"]["variant"].is_null());
    let conversion = primary(&result, "treatment");
    assert!(conversion["inference"].is_null(), "nothing to test yet: {conversion}");
    assert!(metric(&result, "conversion")["variants"][0]["mean"] == 0.0);
}

// Rule 5.

#[test]
fn a_primary_win_with_every_guardrail_clear_is_promoted() {
    let result = rules().result("win");
    assert_eq!(recommendation(&result), "promote");
    assert_eq!(result["decision"]["variant"], "treatment");
    assert_eq!(
        reason_codes(&result),
        ["PRIMARY_SIGNIFICANT_WIN", "GUARDRAIL_NO_HARM:error_rate", "GUARDRAIL_NON_INFERIOR:bounce_rate"]
    );
    // The primary's interval excludes 0 (by 0.24); bounce_rate's worse end is within its 25%
    // margin (at +7%); error_rate, named only, is not significantly worse.
    assert!(ci(&inference(&result, "conversion", "treatment"))[0] > 0.0);
    let bounce = &metric(&result, "bounce_rate")["comparisons"][0]["non_inferiority"];
    assert_eq!(bounce["non_inferior"], true);
    assert!(number(&bounce["bound"]) < 0.25, "{bounce}");
    assert_eq!(inference(&result, "error_rate", "treatment")["direction"], "neutral");
}

#[test]
fn three_variants_read_every_interval_at_alpha_over_two_and_promote_the_winner() {
    let result = rules().result("three");
    assert_eq!(recommendation(&result), "promote");
    assert_eq!(result["decision"]["variant"], "b", "the variant with the true +40%");
    assert_eq!(
        reason_codes(&result),
        ["PRIMARY_SIGNIFICANT_WIN", "GUARDRAIL_NO_HARM:error_rate", "GUARDRAIL_NON_INFERIOR:bounce_rate"]
    );
    for m in result["metrics"].as_array().expect("metrics") {
        for c in m["comparisons"].as_array().expect("comparisons") {
            assert_eq!(c["inference"]["level"], 0.975, "{}: level 1 - 0.05/2", m["name"]);
        }
    }
    assert_eq!(inference(&result, "conversion", "a")["significant"], false);
    assert!(ci(&inference(&result, "conversion", "b"))[0] > 0.05, "b wins at 97.5%");
    assert!(result["decision"]["reasons"][0].as_str().expect("reason").contains("α = 0.05 over 2 variants"));
}

#[test]
fn an_unequal_split_is_tested_at_its_own_ratio_and_the_win_promoted() {
    let result = rules().result("split");
    assert_eq!(recommendation(&result), "promote");
    assert_eq!(reason_codes(&result), ["PRIMARY_SIGNIFICANT_WIN", "GUARDRAIL_NO_HARM:error_rate"]);
    let weights: Vec<f64> =
        result["variants"].as_array().expect("variants").iter().map(|v| number(&v["expected_weight"])).collect();
    assert_eq!(weights, [0.9, 0.1]);
    let units: Vec<f64> =
        result["variants"].as_array().expect("variants").iter().map(|v| number(&v["units"])).collect();
    assert!((8.0..10.0).contains(&(units[0] / units[1])), "{units:?}");
    assert_eq!(check(&result, "srm")["status"], "pass", "a 90/10 split as configured is no mismatch");
    // The plan needs nine control units for each treatment unit.
    let required: Vec<f64> = result["plan"]["required_units"].as_array().expect("units").iter().map(number).collect();
    assert!((required[0] / required[1] - 9.0).abs() < 0.01, "{required:?}");
}

// Rule 6.

#[test]
fn a_primary_loss_beyond_the_harm_level_is_rolled_back() {
    let result = rules().result("lose");
    assert_eq!(recommendation(&result), "rollback");
    assert_eq!(result["decision"]["variant"], "treatment");
    assert_eq!(reason_codes(&result), ["PRIMARY_SIGNIFICANT_LOSS"]);
    // Two harm tests (the primary and one guardrail) share alpha: 0.05 / 2.
    assert!(number(&inference(&result, "conversion", "treatment")["harm_p_value"]) < 0.025);
    assert!(result["decision"]["reasons"].to_string().contains("shared by 2 harm tests"));
}

#[test]
fn a_guardrail_named_only_is_rolled_back_on_harm_even_without_a_primary_effect() {
    let result = rules().result("harmful-guardrail");
    assert_eq!(recommendation(&result), "rollback");
    assert_eq!(reason_codes(&result), ["GUARDRAIL_SIGNIFICANT_LOSS:error_rate"]);
    assert!(metric(&result, "error_rate").get("margin").is_none_or(Value::is_null), "named only: no margin");
    assert_eq!(inference(&result, "conversion", "treatment")["significant"], false);
    let error_rate = inference(&result, "error_rate", "treatment");
    assert!(number(&error_rate["harm_p_value"]) < 0.025 && ci(&error_rate)[0] > 0.0, "{error_rate}");
}

#[test]
fn a_margin_guardrail_worse_beyond_its_margin_is_rolled_back() {
    let result = rules().result("beyond-margin");
    assert_eq!(recommendation(&result), "rollback");
    assert_eq!(reason_codes(&result), ["GUARDRAIL_SIGNIFICANT_LOSS:bounce_rate"]);
    // Its harm test is of the 10% margin, not of 0; three harm tests share alpha.
    let bounce = inference(&result, "bounce_rate", "treatment");
    assert!(ci(&bounce)[0] > 0.1 && number(&bounce["harm_p_value"]) < 0.05 / 3.0, "{bounce}");
    assert!(result["decision"]["reasons"].to_string().contains("worse by more than its 10.0% margin"));
}

// Rule 7.

#[test]
fn a_primary_win_with_a_secondary_significantly_worse_is_a_trade_off() {
    let result = rules().result("secondary-loss");
    assert_eq!(recommendation(&result), "inconclusive");
    assert_eq!(result["decision"]["variant"], "treatment");
    assert_eq!(
        reason_codes(&result),
        [
            "PRIMARY_SIGNIFICANT_WIN",
            "SECONDARY_SIGNIFICANT_LOSS:revenue",
            "SECONDARY_SIGNIFICANT_LOSS:order_value",
            "TRADE_OFF"
        ]
    );
    assert_eq!(inference(&result, "order_value", "treatment")["direction"], "worse");
}

#[test]
fn a_primary_win_with_a_guardrail_worse_within_its_margin_is_a_trade_off() {
    let result = rules().result("within-margin");
    assert_eq!(recommendation(&result), "inconclusive");
    assert_eq!(
        reason_codes(&result),
        ["PRIMARY_SIGNIFICANT_WIN", "GUARDRAIL_WITHIN_MARGIN_LOSS:bounce_rate", "TRADE_OFF"]
    );
    // Worse (the interval excludes 0: from +2.7%) but within the 50% margin (to +12.9%).
    let bounce = inference(&result, "bounce_rate", "treatment");
    assert_eq!(bounce["direction"], "worse");
    let [low, high] = ci(&bounce);
    assert!(low > 0.0 && high < 0.5, "{bounce}");
}

// Rule 8.

#[test]
fn no_effect_is_declared_when_the_interval_rules_out_the_mde() {
    let result = rules().result("no-effect");
    assert_eq!(recommendation(&result), "inconclusive");
    assert_eq!(reason_codes(&result), ["PRIMARY_NO_EFFECT"]);
    // Favourable end +11.5%, below the 30% MDE.
    assert!(ci(&inference(&result, "conversion", "treatment"))[1] < 0.3);
}

// Rule 9.

#[test]
fn the_last_day_without_a_verdict_stops_the_experiment() {
    let result = rules().result("last-day");
    assert_eq!(recommendation(&result), "inconclusive");
    assert_eq!(reason_codes(&result), ["HORIZON_REACHED:max_days"]);
    assert_eq!(result["plan"]["last_day"], REPORT_DATE, "max_days = 5 on the fifth day");
    assert_eq!(result["plan"]["sample_reached"], false);
    let [low, high] = ci(&inference(&result, "conversion", "treatment"));
    assert!(low < 0.0 && high > 0.05, "neither significant nor ruling out the 5% MDE: [{low}, {high}]");
}

#[test]
fn the_planned_sample_without_a_verdict_stops_the_experiment_without_claiming_no_effect() {
    let result = rules().result("sample-in");
    assert_eq!(recommendation(&result), "inconclusive");
    assert_eq!(reason_codes(&result), ["HORIZON_REACHED:sample"]);
    assert_eq!(result["plan"]["sample_reached"], true);
    // The interval [-2.8%, +24.4%] still holds the 20% MDE: the report must not say the
    // effect is ruled out (the old PRIMARY_POWERED_NO_EFFECT did once the sample was in).
    let [low, high] = ci(&inference(&result, "conversion", "treatment"));
    assert!(low < 0.0 && high > 0.2, "[{low}, {high}]");
    let reasons = result["decision"]["reasons"].to_string();
    assert!(reasons.contains("MDE is not ruled out") && !reasons.contains("rules out"), "{reasons}");
}

// Rule 10.

#[test]
fn continue_holds_the_rollout_until_an_expected_verdict_date() {
    let result = rules().result("keep");
    assert_eq!(recommendation(&result), "continue");
    assert_eq!(reason_codes(&result), ["PRIMARY_NOT_SIGNIFICANT", "HOLD_ROLLOUT"]);
    let expected = result["decision"]["expected_verdict_date"].as_str().expect("a date");
    assert!(expected > REPORT_DATE, "{expected}");
    assert!(expected <= result["plan"]["last_day"].as_str().expect("last day"), "feasible before the last day");
    assert_eq!(result["plan"]["expected_verdict_date"], expected);
    let reasons = result["decision"]["reasons"].to_string();
    assert!(
        reasons.contains(&format!(
            "Hold the rollout at its current exposure (do not expand it) until the verdict, expected by {expected}"
        )),
        "{reasons}"
    );
    // The interval [-15.6%, +57.2%] holds the 30% MDE: keep going, not "stop, no effect".
    assert!(ci(&inference(&result, "conversion", "treatment"))[1] > 0.3);
}

// Across every rule.

fn all_results() -> Vec<Value> {
    let mut results: Vec<Value> = RULE_EXPERIMENTS.iter().chain(&EDGE_EXPERIMENTS).map(|e| rules().result(e)).collect();
    results.extend(["win", "lose", "guard", "flat", "srm"].iter().map(|e| five_truths().result(e)));
    results.push(first_day().result("first-day"));
    results
}

#[test]
fn no_experiment_is_told_to_stop_for_no_effect_while_its_interval_holds_the_mde() {
    for result in all_results() {
        let mde = number(&result["settings"]["mde"]);
        let favourable_ends: Vec<f64> = metric(&result, "conversion")["comparisons"]
            .as_array()
            .expect("comparisons")
            .iter()
            .filter_map(|c| c["inference"]["ci"][1].as_f64())
            .collect();
        let no_effect = reason_codes(&result).contains(&"PRIMARY_NO_EFFECT");
        let ruled_out = !favourable_ends.is_empty() && favourable_ends.iter().all(|&high| high < mde);
        assert!(
            !no_effect || ruled_out,
            "{}: no effect claimed with intervals up to {favourable_ends:?}, MDE {mde}",
            result["id"]
        );
    }
}

#[test]
fn every_continue_holds_the_rollout_and_any_date_it_names_is_after_the_report() {
    let mut continues = 0;
    for result in all_results().into_iter().filter(|r| recommendation(r) == "continue") {
        continues += 1;
        assert!(reason_codes(&result).contains(&"HOLD_ROLLOUT"), "{}", result["decision"]);
        if let Some(date) = result["decision"]["expected_verdict_date"].as_str() {
            assert!(date > REPORT_DATE, "{}: {date}", result["id"]);
        }
    }
    assert!(continues >= 4, "the scenarios hold continues: {continues}");
}
