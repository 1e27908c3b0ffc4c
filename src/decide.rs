//! Results and checks -> one recommendation per experiment, with reasons in plain words that
//! quote the numbers, machine-readable reason codes, and the rule that fired.
//!
//! The rule is risk-aware in the sense of Schultzberg, Ankargren & Frånberg (2024), "Risk-aware
//! product decisions in A/B tests with multiple metrics" (arXiv:2402.11609):
//!
//! 1. a configured variant without units: `inconclusive` (nothing to compare);
//! 2. a failed SRM or multi-variant check: `pause` (the allocation is broken);
//! 3. a variant whose primary (success) metric is significantly better — alpha corrected
//!    (Bonferroni) across the success comparisons only — with every guardrail shown
//!    non-inferior (one-sided, at alpha: all must pass, so no correction) and no secondary
//!    metric significantly worse: `promote`;
//! 4. the primary metric or a guardrail significantly worse: `rollback`;
//! 5. otherwise `continue`, with the units and days still needed — or `inconclusive` when the
//!    sample already suffices and found no effect as large as the MDE.
//!
//! With `[stats] sequential` on, every test above uses the always-valid results, so the daily
//! look cannot inflate false positives. Warnings from the other checks become caveats.
//!
//! Pure: no IO, not async.

use crate::numbers::{compact, count, days, percent, percent_interval, pvalue, signed_percent, value};
use crate::results::*;

fn comparison_of<'a>(metric: &'a MetricResult, variant: &str) -> Option<&'a ComparisonResult> {
    metric.comparisons.iter().find(|c| c.variant == variant)
}

/// How one treatment variant fared under the rule.
struct Verdict<'a> {
    variant: &'a str,
    primary: &'a ComparisonResult,
    success: bool,
    primary_worse: bool,
    guardrails_worse: Vec<&'a MetricResult>,
    guardrails_not_yet: Vec<(&'a MetricResult, &'a ComparisonResult)>,
    guardrails_non_inferior: Vec<&'a MetricResult>,
    secondaries_worse: Vec<(&'a MetricResult, &'a ComparisonResult)>,
}

/// The recommendation for an analysed experiment.
pub fn recommend(result: &ExperimentResult) -> Decision {
    let mut decision = core(result);
    for check in &result.checks {
        if check.status == CheckStatus::Warn {
            decision.reasons.push(format!("Caveat ({}): {}.", check.name, check.detail));
            decision.reason_codes.push(format!("CHECK_WARNING:{}", check.name));
        }
    }
    decision
}

fn decision(
    recommendation: Recommendation,
    variant: Option<&str>,
    reasons: Vec<String>,
    codes: Vec<String>,
    rule: &str,
) -> Decision {
    Decision {
        recommendation,
        variant: variant.map(str::to_string),
        reasons,
        reason_codes: codes,
        rule: rule.to_string(),
    }
}

/// The p-value the decision tests with: the always-valid one when sequential is on.
fn decision_p(c: &ComparisonResult, sequential: bool) -> Option<f64> {
    if sequential { c.sequential.as_ref().and_then(|s| s.p_value) } else { c.p_value }
}

/// Whether the effect points the good way for the metric.
fn improves(c: &ComparisonResult, higher_is_better: bool) -> bool {
    c.absolute_effect.is_some_and(|d| d != 0.0 && (d > 0.0) == higher_is_better)
}

fn significantly(c: &ComparisonResult, metric: &MetricResult, alpha: f64, sequential: bool, better: bool) -> bool {
    let Some(p) = decision_p(c, sequential) else { return false };
    let moved = c.absolute_effect.is_some_and(|d| d != 0.0);
    p < alpha && moved && improves(c, metric.higher_is_better) == better
}

fn core(result: &ExperimentResult) -> Decision {
    if let Some(check) = result.check("missing_variant").filter(|c| c.status == CheckStatus::Fail) {
        return decision(
            Recommendation::Inconclusive,
            None,
            vec![format!(
                "Nothing can be compared: {}. Check the assignment service and the variant names in the job file.",
                check.detail
            )],
            vec!["MISSING_VARIANT".into()],
            "a configured variant has no units",
        );
    }
    for name in ["srm", "multi_variant_units"] {
        if let Some(check) = result.check(name).filter(|c| c.status == CheckStatus::Fail) {
            let what = if name == "srm" { "Sample ratio mismatch" } else { "Units in several variants" };
            return decision(
                Recommendation::Pause,
                None,
                vec![
                    format!("{what}: {}.", check.detail),
                    "The allocation is broken, so no metric can be trusted: hold the rollout where it is until allocation is fixed, then restart the analysis.".into(),
                ],
                vec![format!("DATA_QUALITY_FAILED:{name}")],
                "a data-quality check failed",
            );
        }
    }
    let settings = &result.settings;
    let sequential = settings.sequential;
    let level = percent(1.0 - settings.alpha, 0);
    let Some(primary) = result.metrics.iter().find(|m| m.role == "primary") else {
        return decision(
            Recommendation::Inconclusive,
            None,
            vec!["The experiment has no primary metric.".into()],
            vec!["NO_PRIMARY_METRIC".into()],
            "no primary metric",
        );
    };
    if primary.comparisons.iter().all(|c| decision_p(c, sequential).is_none()) {
        let notes: Vec<&str> = primary.comparisons.iter().flat_map(|c| c.notes.iter().map(String::as_str)).collect();
        return decision(
            Recommendation::Inconclusive,
            None,
            vec![format!("The primary metric `{}` cannot be tested: {}.", primary.name, notes.join("; "))],
            vec!["PRIMARY_NOT_TESTABLE".into()],
            "the primary metric cannot be tested",
        );
    }

    // Alpha for the success metric, corrected across its comparisons only.
    let success_alpha = settings.alpha / primary.comparisons.len().max(1) as f64;
    let verdicts: Vec<Verdict<'_>> = primary
        .comparisons
        .iter()
        .map(|c| {
            let variant = c.variant.as_str();
            let mut verdict = Verdict {
                variant,
                primary: c,
                success: significantly(c, primary, success_alpha, sequential, true),
                primary_worse: significantly(c, primary, settings.alpha, sequential, false),
                guardrails_worse: Vec::new(),
                guardrails_not_yet: Vec::new(),
                guardrails_non_inferior: Vec::new(),
                secondaries_worse: Vec::new(),
            };
            for metric in &result.metrics {
                let Some(g) = comparison_of(metric, variant) else { continue };
                match metric.role.as_str() {
                    "guardrail" if significantly(g, metric, settings.alpha, sequential, false) => {
                        verdict.guardrails_worse.push(metric)
                    }
                    "guardrail" if g.non_inferiority.as_ref().is_some_and(|n| n.non_inferior) => {
                        verdict.guardrails_non_inferior.push(metric)
                    }
                    "guardrail" => verdict.guardrails_not_yet.push((metric, g)),
                    "secondary" if significantly(g, metric, settings.alpha, sequential, false) => {
                        verdict.secondaries_worse.push((metric, g))
                    }
                    _ => {}
                }
            }
            verdict
        })
        .collect();

    let effect_size = |c: &ComparisonResult| c.relative_effect.or(c.absolute_effect).unwrap_or(0.0);
    let mut winners: Vec<&Verdict<'_>> = verdicts
        .iter()
        .filter(|v| {
            v.success
                && v.guardrails_worse.is_empty()
                && v.guardrails_not_yet.is_empty()
                && v.secondaries_worse.is_empty()
        })
        .collect();
    winners.sort_by(|a, b| effect_size(b.primary).total_cmp(&effect_size(a.primary)));
    if let Some(best) = winners.first() {
        let mut reasons = vec![format!(
            "{} The data-quality checks pass.",
            effect_sentence(primary, best.primary, &level, sequential)
        )];
        let mut codes = vec!["PRIMARY_SIGNIFICANT_WIN".to_string()];
        for guardrail in &best.guardrails_non_inferior {
            if let Some(c) = comparison_of(guardrail, best.variant) {
                reasons.push(format!("Guardrail `{}` is non-inferior ({}).", guardrail.name, non_inferiority_text(c)));
            }
            codes.push(format!("GUARDRAIL_NON_INFERIOR:{}", guardrail.name));
        }
        return decision(
            Recommendation::Promote,
            Some(best.variant),
            reasons,
            codes,
            "the success metric is significantly better and every guardrail is non-inferior",
        );
    }

    let mut losers: Vec<&Verdict<'_>> =
        verdicts.iter().filter(|v| v.primary_worse || !v.guardrails_worse.is_empty()).collect();
    losers.sort_by(|a, b| effect_size(a.primary).total_cmp(&effect_size(b.primary)));
    if let Some(worst) = losers.first() {
        let mut reasons = Vec::new();
        let mut codes = Vec::new();
        if worst.primary_worse {
            reasons.push(effect_sentence(primary, worst.primary, &level, sequential));
            codes.push("PRIMARY_SIGNIFICANT_LOSS".to_string());
        }
        for guardrail in &worst.guardrails_worse {
            if let Some(c) = comparison_of(guardrail, worst.variant) {
                reasons.push(format!("{} This is a guardrail.", effect_sentence(guardrail, c, &level, sequential)));
            }
            codes.push(format!("GUARDRAIL_SIGNIFICANT_LOSS:{}", guardrail.name));
        }
        reasons.push(format!("Roll `{}` back to `{}`.", worst.variant, worst.primary.baseline));
        return decision(
            Recommendation::Rollback,
            Some(worst.variant),
            reasons,
            codes,
            "the primary metric or a guardrail is significantly worse",
        );
    }

    // A win held back by a guardrail not yet shown non-inferior, or by a secondary loss.
    if let Some(held) = verdicts.iter().find(|v| v.success) {
        let mut reasons = vec![effect_sentence(primary, held.primary, &level, sequential)];
        let mut codes = vec!["PRIMARY_SIGNIFICANT_WIN".to_string()];
        for (guardrail, c) in &held.guardrails_not_yet {
            let plan = match &c.power {
                Some(p) if p.additional_units > 0 => {
                    format!(
                        " Showing it needs {}",
                        lowercase_first(&more_units_sentence(p, result.traffic.units_per_variant_per_day))
                    )
                }
                // Enough units to show non-inferiority of an unchanged metric: what is observed
                // is a real (if small) deterioration, or noise the next days will settle.
                Some(_) => format!(
                    " The sample would suffice if `{}` were unchanged; the observed change keeps the bound too close.",
                    guardrail.name
                ),
                None => String::new(),
            };
            reasons.push(format!(
                "But guardrail `{}` is not yet shown non-inferior ({}).{plan}",
                guardrail.name,
                non_inferiority_text(c)
            ));
            codes.push(format!("GUARDRAIL_NOT_YET_NON_INFERIOR:{}", guardrail.name));
        }
        for (metric, c) in &held.secondaries_worse {
            reasons.push(format!("But {}", lowercase_first(&effect_sentence(metric, c, &level, sequential))));
            codes.push(format!("SECONDARY_SIGNIFICANT_LOSS:{}", metric.name));
        }
        if !held.secondaries_worse.is_empty() {
            reasons.push("This is a trade-off between metrics, not a clear win: keep the experiment running while the owners weigh it.".into());
        }
        return decision(
            Recommendation::Continue,
            None,
            reasons,
            codes,
            "the success metric wins but not every condition to ship holds yet",
        );
    }

    // Not significant: how much longer?
    let mut reasons = Vec::new();
    let mut enough_everywhere = true;
    for v in &verdicts {
        let c = v.primary;
        reasons.push(format!("{} Not significant yet.", effect_sentence(primary, c, &level, sequential)));
        match &c.power {
            Some(p) if p.additional_units == 0 => reasons.push(format!(
                "`{}` already has the {} units per variant needed to detect a {} change with {} power, and found none that large.",
                c.variant,
                count(p.required_units),
                percent(p.mde, 1),
                percent(p.target_power, 0)
            )),
            Some(p) => {
                enough_everywhere = false;
                reasons.push(format!(
                    "To detect a {} change in `{}` with {} power{} the test needs about {} units per variant; `{}` has {}. {}",
                    percent(p.mde, 1),
                    primary.name,
                    percent(p.target_power, 0),
                    if sequential { " under daily looks" } else { "" },
                    count(p.required_units),
                    c.variant,
                    count(p.required_units - p.additional_units),
                    more_units_sentence(p, result.traffic.units_per_variant_per_day)
                ));
            }
            None => enough_everywhere = false,
        }
    }
    if enough_everywhere {
        reasons.push("Any true effect is likely smaller than the minimum detectable effect: stop the test and keep the control unless the change is wanted for other reasons.".into());
        return decision(
            Recommendation::Inconclusive,
            None,
            reasons,
            vec!["PRIMARY_POWERED_NO_EFFECT".into()],
            "enough units and no effect as large as the MDE",
        );
    }
    decision(
        Recommendation::Continue,
        None,
        reasons,
        vec!["PRIMARY_NOT_SIGNIFICANT".into()],
        "the success metric is not significant yet",
    )
}

/// `about 6,512 more units per variant, about 7 more days at the current 12.4k units/day.`
fn more_units_sentence(p: &PowerResult, per_day: Option<f64>) -> String {
    match (p.additional_days, per_day) {
        (Some(d), Some(per_day)) => format!(
            "About {} more units per variant, {} more at the current {} new units/day per variant.",
            count(p.additional_units),
            days(d),
            compact(per_day)
        ),
        _ => format!("About {} more units per variant.", count(p.additional_units)),
    }
}

fn non_inferiority_text(c: &ComparisonResult) -> String {
    match &c.non_inferiority {
        Some(n) => {
            let bound = n
                .bound
                .map(|b| format!("worst plausible change {}", signed_percent(b, 1)))
                .unwrap_or_else(|| "no bound".into());
            format!("{bound}, margin {}", percent(n.margin, 1))
        }
        None => "not tested".into(),
    }
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `` `conversion` is +4.1% for `treatment` vs `control` (95% CI [+1.2%, +7.0%], adjusted p = 0.006; 0.1023 vs 0.0983). ``
/// With sequential on, the interval and p-value quoted are the always-valid ones.
fn effect_sentence(metric: &MetricResult, c: &ComparisonResult, level: &str, sequential: bool) -> String {
    let means = |name: &str| metric.variants.iter().find(|v| v.variant == name).and_then(|v| v.mean);
    let means_text = match (means(&c.variant), means(&c.baseline)) {
        (Some(t), Some(b)) => format!("; {} vs {}", value(t), value(b)),
        _ => String::new(),
    };
    let (ci_relative, ci_absolute, p, label) = match (&c.sequential, sequential) {
        (Some(s), true) => (
            s.ci_relative,
            s.ci_absolute,
            s.p_value.map(|p| format!(", always-valid p = {}", pvalue(p))),
            "always-valid",
        ),
        _ => (c.ci_relative, c.ci_absolute, c.p_value_adjusted.map(|p| format!(", adjusted p = {}", pvalue(p))), ""),
    };
    let p = p.unwrap_or_default();
    let ci_label = if label.is_empty() { format!("{level} CI") } else { format!("{label} {level} CI") };
    match (c.relative_effect, ci_relative) {
        (Some(r), Some(ci)) => format!(
            "`{}` is {} for `{}` vs `{}` ({ci_label} {}{p}{means_text}).",
            metric.name,
            signed_percent(r, 1),
            c.variant,
            c.baseline,
            percent_interval(ci, 1)
        ),
        _ => match (c.absolute_effect, ci_absolute) {
            (Some(d), Some(ci)) => format!(
                "`{}` differs by {} for `{}` vs `{}` ({ci_label} [{}, {}]{p}{means_text}).",
                metric.name,
                value(d),
                c.variant,
                c.baseline,
                value(ci[0]),
                value(ci[1])
            ),
            _ => format!("`{}` cannot be compared for `{}`: {}.", metric.name, c.variant, c.notes.join("; ")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn comparison(relative: f64, p: f64, power: Option<PowerResult>) -> ComparisonResult {
        ComparisonResult {
            variant: "treatment".into(),
            baseline: "control".into(),
            absolute_effect: Some(relative * 0.1),
            relative_effect: Some(relative),
            ci_absolute: Some([relative * 0.1 - 0.01, relative * 0.1 + 0.01]),
            ci_relative: Some([relative - 0.02, relative + 0.02]),
            p_value: Some(p),
            p_value_adjusted: Some(p),
            significant: p < 0.05,
            direction: Direction::Neutral,
            standard_error: Some(0.005),
            df: Some(1000.0),
            notes: vec![],
            power,
            sequential: None,
            bayesian: None,
            unadjusted: None,
            non_inferiority: None,
        }
    }

    fn metric(name: &str, role: &str, higher_is_better: bool, c: ComparisonResult) -> MetricResult {
        MetricResult {
            name: name.into(),
            kind: "proportion".into(),
            role: role.into(),
            higher_is_better,
            variants: vec![],
            comparisons: vec![c],
            margin: None,
            cuped: None,
            cap: None,
        }
    }

    fn guardrail(name: &str, relative: f64, p: f64, non_inferior: bool) -> MetricResult {
        let mut c = comparison(relative, p, None);
        c.non_inferiority =
            Some(NonInferiorityResult { margin: 0.02, p_value: Some(0.01), bound: Some(-0.01), non_inferior });
        let mut m = metric(name, "guardrail", false, c);
        m.margin = Some(0.02);
        m
    }

    fn check(name: &str, status: CheckStatus) -> Check {
        Check { name: name.into(), status, p_value: None, detail: format!("{name} detail") }
    }

    fn result(metrics: Vec<MetricResult>, checks: Vec<Check>) -> ExperimentResult {
        let date = NaiveDate::from_ymd_opt(2026, 11, 1).expect("date");
        ExperimentResult {
            id: "x".into(),
            status: Status::Ok,
            error: None,
            decision: Decision {
                recommendation: Recommendation::Inconclusive,
                variant: None,
                reasons: vec![],
                reason_codes: vec![],
                rule: String::new(),
            },
            checks,
            variants: vec![],
            metrics,
            window: Window { start: date, end: date, days: 1 },
            settings: Settings {
                alpha: 0.05,
                power: 0.8,
                correction: "holm".into(),
                srm_p_value: 0.001,
                mde: 0.05,
                sequential: false,
            },
            traffic: Traffic { units_per_variant_per_day: Some(12_400.0), ..Traffic::default() },
            srm: SrmDetail::default(),
            breakdowns: vec![],
        }
    }

    fn passing() -> Vec<Check> {
        ["srm", "multi_variant_units", "invalid_values", "unknown_variant", "missing_variant", "missing_partitions"]
            .into_iter()
            .map(|n| check(n, CheckStatus::Pass))
            .collect()
    }

    fn win() -> MetricResult {
        metric("conversion", "primary", true, comparison(0.041, 0.006, None))
    }

    #[test]
    fn a_win_with_non_inferior_guardrails_is_promoted_with_codes() {
        let d = recommend(&result(vec![win(), guardrail("latency", 0.001, 0.9, true)], passing()));
        assert_eq!(d.recommendation, Recommendation::Promote);
        assert_eq!(d.variant.as_deref(), Some("treatment"));
        assert_eq!(d.reason_codes, vec!["PRIMARY_SIGNIFICANT_WIN", "GUARDRAIL_NON_INFERIOR:latency"]);
        assert!(d.reasons[0].contains("+4.1%") && d.reasons[0].contains("adjusted p = 0.0060"), "{:?}", d.reasons);
        assert!(d.reasons[1].contains("worst plausible change −1.0%, margin 2.0%"), "{:?}", d.reasons);
    }

    #[test]
    fn a_win_waits_for_a_guardrail_not_yet_shown_non_inferior() {
        let d = recommend(&result(vec![win(), guardrail("latency", 0.001, 0.9, false)], passing()));
        assert_eq!(d.recommendation, Recommendation::Continue);
        assert_eq!(d.reason_codes, vec!["PRIMARY_SIGNIFICANT_WIN", "GUARDRAIL_NOT_YET_NON_INFERIOR:latency"]);
    }

    #[test]
    fn a_guardrail_significantly_worse_rolls_back() {
        // latency is lower-is-better; +20% at p = 0.001 is significantly worse.
        let d = recommend(&result(vec![win(), guardrail("latency", 0.2, 0.001, false)], passing()));
        assert_eq!(d.recommendation, Recommendation::Rollback);
        assert_eq!(d.reason_codes, vec!["GUARDRAIL_SIGNIFICANT_LOSS:latency"]);
    }

    #[test]
    fn the_success_alpha_is_corrected_across_variants() {
        // Two treatment variants: each primary comparison is tested at 0.025.
        let mut primary = win();
        primary.comparisons[0].p_value = Some(0.03);
        let mut second = primary.comparisons[0].clone();
        second.variant = "treatment_b".into();
        primary.comparisons.push(second);
        let d = recommend(&result(vec![primary], passing()));
        assert_ne!(d.recommendation, Recommendation::Promote);
    }

    #[test]
    fn sequential_results_drive_the_decision_when_on() {
        let mut primary = win();
        primary.comparisons[0].sequential = Some(SequentialResult {
            ci_absolute: None,
            ci_relative: Some([-0.01, 0.09]),
            p_value: Some(0.2),
            significant: false,
            tuning: 5000.0,
        });
        let mut r = result(vec![primary], passing());
        r.settings.sequential = true;
        let d = recommend(&r);
        assert_eq!(d.recommendation, Recommendation::Continue);
        assert!(
            d.reasons[0].contains("always-valid 95% CI [−1.0%, +9.0%], always-valid p = 0.2000"),
            "{:?}",
            d.reasons
        );
    }

    #[test]
    fn srm_failure_pauses_before_anything_else() {
        let mut checks = passing();
        checks[0].status = CheckStatus::Fail;
        let d = recommend(&result(vec![win()], checks));
        assert_eq!(d.recommendation, Recommendation::Pause);
        assert_eq!(d.reason_codes, vec!["DATA_QUALITY_FAILED:srm"]);
    }

    #[test]
    fn missing_variant_is_inconclusive() {
        let mut checks = passing();
        checks[4].status = CheckStatus::Fail;
        checks[0].status = CheckStatus::Fail;
        let d = recommend(&result(vec![metric("conversion", "primary", true, comparison(0.0, 1.0, None))], checks));
        assert_eq!(d.recommendation, Recommendation::Inconclusive);
        assert_eq!(d.reason_codes, vec!["MISSING_VARIANT"]);
    }

    #[test]
    fn not_significant_continues_with_units_and_days() {
        let power = PowerResult {
            mde: 0.05,
            mde_absolute: 0.005,
            target_power: 0.8,
            power_at_current_n: 0.3,
            required_units: 56_512,
            additional_units: 6_512,
            additional_days: Some(5.2),
        };
        let d = recommend(&result(
            vec![metric("conversion", "primary", true, comparison(0.01, 0.4, Some(power)))],
            passing(),
        ));
        assert_eq!(d.recommendation, Recommendation::Continue);
        assert_eq!(d.reason_codes, vec!["PRIMARY_NOT_SIGNIFICANT"]);
        let plan = &d.reasons[1];
        assert!(
            plan.contains("56,512")
                && plan.contains("6,512 more")
                && plan.contains("about 6 days more at the current 12.4k"),
            "{plan}"
        );
    }

    #[test]
    fn warnings_become_caveats_with_codes() {
        let mut checks = passing();
        checks[2].status = CheckStatus::Warn;
        let d = recommend(&result(vec![win()], checks));
        assert!(d.reasons.last().is_some_and(|r| r.starts_with("Caveat (invalid_values)")));
        assert!(d.reason_codes.contains(&"CHECK_WARNING:invalid_values".to_string()));
    }
}
