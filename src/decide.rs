//! Results and checks -> one recommendation per experiment, with reasons in plain words that
//! quote the numbers.
//!
//! The rule, in order: a configured variant without units makes the experiment
//! `inconclusive`; a failed SRM or multi-variant check means `pause` (the allocation itself is
//! broken, so no metric can be trusted); a variant that wins on the primary metric without
//! hurting any guardrail or secondary metric is `promote`d; a primary or guardrail metric that
//! is significantly worse means `rollback`; otherwise `continue`, with the extra units and days
//! the primary metric needs — or `inconclusive` when the sample already suffices and shows no
//! effect as large as the MDE. Warnings from the other checks are appended as caveats.
//!
//! Pure: no IO, not async.

use crate::numbers::{count, days, percent, percent_interval, pvalue, signed_percent, value};
use crate::results::*;

/// The recommendation for an analysed experiment.
pub fn recommend(result: &ExperimentResult) -> Decision {
    let mut decision = core(result);
    for check in &result.checks {
        if check.status == CheckStatus::Warn {
            decision.reasons.push(format!("Caveat ({}): {}.", check.name, check.detail));
        }
    }
    decision
}

fn decision(recommendation: Recommendation, variant: Option<&str>, reasons: Vec<String>) -> Decision {
    Decision { recommendation, variant: variant.map(str::to_string), reasons }
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
            );
        }
    }
    let level = percent(1.0 - result.settings.alpha, 0);
    let level = level.as_str();
    let Some(primary) = result.metrics.iter().find(|m| m.role == "primary") else {
        return decision(Recommendation::Inconclusive, None, vec!["The experiment has no primary metric.".into()]);
    };
    if primary.comparisons.iter().all(|c| c.p_value.is_none()) {
        let notes: Vec<&str> = primary.comparisons.iter().flat_map(|c| c.notes.iter().map(String::as_str)).collect();
        return decision(
            Recommendation::Inconclusive,
            None,
            vec![format!("The primary metric `{}` cannot be tested: {}.", primary.name, notes.join("; "))],
        );
    }

    let worse_in = |variant: &str, roles: &[&str]| -> Vec<(&MetricResult, &ComparisonResult)> {
        result
            .metrics
            .iter()
            .filter(|m| roles.contains(&m.role.as_str()))
            .flat_map(|m| m.comparisons.iter().map(move |c| (m, c)))
            .filter(|(_, c)| c.variant == variant && c.direction == Direction::Worse)
            .collect()
    };

    // Clean winners: better on the primary metric, worse on nothing that matters.
    let mut winners: Vec<&ComparisonResult> = primary
        .comparisons
        .iter()
        .filter(|c| c.direction == Direction::Better && worse_in(&c.variant, &["guardrail", "secondary"]).is_empty())
        .collect();
    winners.sort_by(|a, b| effect_size(b).total_cmp(&effect_size(a)));
    if let Some(best) = winners.first() {
        let mut reasons = vec![format!("{} The data quality checks pass.", effect_sentence(primary, best, level))];
        for guardrail in result.metrics.iter().filter(|m| m.role == "guardrail") {
            if let Some(c) = guardrail.comparisons.iter().find(|c| c.variant == best.variant) {
                reasons.push(format!(
                    "Guardrail `{}` is not significantly worse ({}).",
                    guardrail.name,
                    short_effect(c)
                ));
            }
        }
        return decision(Recommendation::Promote, Some(&best.variant), reasons);
    }

    // Losers: worse on the primary or on a guardrail.
    let mut losers: Vec<(&MetricResult, &ComparisonResult)> =
        primary.comparisons.iter().flat_map(|c| worse_in(&c.variant, &["primary", "guardrail"])).collect();
    losers.sort_by(|a, b| effect_size(a.1).total_cmp(&effect_size(b.1)));
    if let Some((_, worst)) = losers.first() {
        let variant = worst.variant.clone();
        let reasons = losers
            .iter()
            .filter(|(_, c)| c.variant == variant)
            .map(|(m, c)| {
                format!(
                    "{} {}",
                    effect_sentence(m, c, level),
                    if m.role == "guardrail" { "This is a guardrail." } else { "" }
                )
                .trim_end()
                .to_string()
            })
            .chain(std::iter::once(format!("Roll `{variant}` back to `{}`.", worst.baseline)))
            .collect();
        return decision(Recommendation::Rollback, Some(&variant), reasons);
    }

    // A primary win that costs a secondary metric is a trade-off for people to weigh.
    let tradeoffs: Vec<String> = primary
        .comparisons
        .iter()
        .filter(|c| c.direction == Direction::Better)
        .flat_map(|c| {
            let win = effect_sentence(primary, c, level);
            worse_in(&c.variant, &["secondary"])
                .into_iter()
                .map(move |(m, w)| format!("{win} But {}", lowercase_first(&effect_sentence(m, w, level))))
        })
        .collect();
    if !tradeoffs.is_empty() {
        let mut reasons = tradeoffs;
        reasons.push("This is a trade-off between metrics, not a clear win: keep the experiment running while the owners weigh it.".into());
        return decision(Recommendation::Continue, None, reasons);
    }

    // Not significant: how much longer?
    let mut reasons = Vec::new();
    let mut enough_everywhere = true;
    for c in &primary.comparisons {
        reasons.push(format!("{} Not significant yet.", effect_sentence(primary, c, level)));
        match &c.sample_size {
            Some(s) if s.additional_units == 0 => reasons.push(format!(
                "`{}` already has the {} units per variant needed to detect a {} change with {} power, and found none that large.",
                c.variant,
                count(s.required_units),
                percent(s.mde, 1),
                percent(result.settings.power, 0)
            )),
            Some(s) => {
                enough_everywhere = false;
                let pace = match (s.additional_days, result.traffic.units_per_variant_per_day) {
                    (Some(d), Some(per_day)) => {
                        format!(", {} at the current {} new units per variant per day", days(d), count(per_day.round() as u64))
                    }
                    _ => String::new(),
                };
                reasons.push(format!(
                    "To detect a {} change in `{}` with {} power the test needs about {} units per variant; `{}` has {}, so about {} more{}.",
                    percent(s.mde, 1),
                    primary.name,
                    percent(result.settings.power, 0),
                    count(s.required_units),
                    c.variant,
                    count(s.required_units - s.additional_units),
                    count(s.additional_units),
                    pace
                ));
            }
            None => enough_everywhere = false,
        }
    }
    if enough_everywhere {
        reasons.push("Any true effect is likely smaller than the minimum detectable effect: stop the test and keep the control unless the change is wanted for other reasons.".into());
        return decision(Recommendation::Inconclusive, None, reasons);
    }
    decision(Recommendation::Continue, None, reasons)
}

fn effect_size(c: &ComparisonResult) -> f64 {
    c.relative_effect.or(c.absolute_effect).unwrap_or(0.0)
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `+4.1% (95% CI [+1.2%, +7.0%], adjusted p = 0.006)` or, without a relative effect, the
/// absolute difference.
fn short_effect(c: &ComparisonResult) -> String {
    let p = c.p_value_adjusted.map(|p| format!(", adjusted p = {}", pvalue(p))).unwrap_or_default();
    match (c.relative_effect, c.ci_relative, c.absolute_effect) {
        (Some(r), Some(ci), _) => {
            format!("{} [{}]{p}", signed_percent(r, 1), percent_interval(ci, 1).trim_matches(['[', ']']))
        }
        (Some(r), None, _) => format!("{}{p}", signed_percent(r, 1)),
        (None, _, Some(d)) => format!("{} absolute{p}", value(d)),
        _ => "not computable".into(),
    }
}

/// `` `conversion` is +4.1% for `treatment` vs `control` (95% CI [+1.2%, +7.0%], adjusted p = 0.006; 0.1023 vs 0.0983). ``
fn effect_sentence(metric: &MetricResult, c: &ComparisonResult, level: &str) -> String {
    let means = |name: &str| metric.variants.iter().find(|v| v.variant == name).and_then(|v| v.mean);
    let means_text = match (means(&c.variant), means(&c.baseline)) {
        (Some(t), Some(b)) => format!("; {} vs {}", value(t), value(b)),
        _ => String::new(),
    };
    let p = c.p_value_adjusted.map(|p| format!(", adjusted p = {}", pvalue(p))).unwrap_or_default();
    match (c.relative_effect, c.ci_relative) {
        (Some(r), Some(ci)) => format!(
            "`{}` is {} for `{}` vs `{}` ({level} CI {}{p}{means_text}).",
            metric.name,
            signed_percent(r, 1),
            c.variant,
            c.baseline,
            percent_interval(ci, 1)
        ),
        _ => match (c.absolute_effect, c.ci_absolute) {
            (Some(d), Some(ci)) => format!(
                "`{}` differs by {} for `{}` vs `{}` ({level} CI [{}, {}]{p}{means_text}).",
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

    fn comparison(
        relative: f64,
        p_adjusted: f64,
        direction: Direction,
        sample: Option<SampleSizeResult>,
    ) -> ComparisonResult {
        ComparisonResult {
            variant: "treatment".into(),
            baseline: "control".into(),
            absolute_effect: Some(relative * 0.1),
            relative_effect: Some(relative),
            ci_absolute: Some([relative * 0.1 - 0.01, relative * 0.1 + 0.01]),
            ci_relative: Some([relative - 0.02, relative + 0.02]),
            p_value: Some(p_adjusted / 2.0),
            p_value_adjusted: Some(p_adjusted),
            significant: direction != Direction::Neutral,
            direction,
            standard_error: Some(0.005),
            df: Some(1000.0),
            notes: vec![],
            sample_size: sample,
        }
    }

    fn metric(name: &str, role: &str, c: ComparisonResult) -> MetricResult {
        MetricResult {
            name: name.into(),
            kind: "proportion".into(),
            role: role.into(),
            higher_is_better: true,
            variants: vec![],
            comparisons: vec![c],
        }
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
            decision: Decision { recommendation: Recommendation::Inconclusive, variant: None, reasons: vec![] },
            checks,
            variants: vec![],
            metrics,
            window: Window { start: date, end: date, days: 1 },
            settings: Settings { alpha: 0.05, power: 0.8, correction: "holm".into(), srm_p_value: 0.001, mde: 0.05 },
            traffic: Traffic { units_per_variant_per_day: Some(1000.0), ..Traffic::default() },
        }
    }

    fn passing() -> Vec<Check> {
        ["srm", "multi_variant_units", "invalid_values", "unknown_variant", "missing_variant", "missing_partitions"]
            .into_iter()
            .map(|n| check(n, CheckStatus::Pass))
            .collect()
    }

    #[test]
    fn significant_primary_win_promotes_with_numbers() {
        let r =
            result(vec![metric("conversion", "primary", comparison(0.041, 0.006, Direction::Better, None))], passing());
        let d = recommend(&r);
        assert_eq!(d.recommendation, Recommendation::Promote);
        assert_eq!(d.variant.as_deref(), Some("treatment"));
        assert!(d.reasons[0].contains("+4.1%") && d.reasons[0].contains("adjusted p = 0.0060"), "{:?}", d.reasons);
    }

    #[test]
    fn guardrail_worse_rolls_back_even_with_a_primary_win() {
        let r = result(
            vec![
                metric("conversion", "primary", comparison(0.041, 0.006, Direction::Better, None)),
                metric("errors", "guardrail", comparison(0.2, 0.001, Direction::Worse, None)),
            ],
            passing(),
        );
        let d = recommend(&r);
        assert_eq!(d.recommendation, Recommendation::Rollback);
        assert!(d.reasons.iter().any(|r| r.contains("`errors`") && r.contains("guardrail")), "{:?}", d.reasons);
    }

    #[test]
    fn srm_failure_pauses_before_anything_else() {
        let mut checks = passing();
        checks[0].status = CheckStatus::Fail;
        let r =
            result(vec![metric("conversion", "primary", comparison(0.041, 0.006, Direction::Better, None))], checks);
        assert_eq!(recommend(&r).recommendation, Recommendation::Pause);
    }

    #[test]
    fn missing_variant_is_inconclusive() {
        let mut checks = passing();
        checks[4].status = CheckStatus::Fail;
        checks[0].status = CheckStatus::Fail;
        let r = result(vec![metric("conversion", "primary", comparison(0.0, 1.0, Direction::Neutral, None))], checks);
        assert_eq!(recommend(&r).recommendation, Recommendation::Inconclusive);
    }

    #[test]
    fn not_significant_continues_with_units_and_days() {
        let sample = SampleSizeResult {
            mde: 0.05,
            mde_absolute: 0.005,
            power_at_current_n: 0.3,
            required_units: 56_512,
            additional_units: 6_512,
            additional_days: Some(6.512),
        };
        let r = result(
            vec![metric("conversion", "primary", comparison(0.01, 0.4, Direction::Neutral, Some(sample)))],
            passing(),
        );
        let d = recommend(&r);
        assert_eq!(d.recommendation, Recommendation::Continue);
        let plan = &d.reasons[1];
        assert!(plan.contains("56,512") && plan.contains("6,512 more") && plan.contains("about 7 days"), "{plan}");
    }

    #[test]
    fn warnings_become_caveats() {
        let mut checks = passing();
        checks[2].status = CheckStatus::Warn;
        let r =
            result(vec![metric("conversion", "primary", comparison(0.041, 0.006, Direction::Better, None))], checks);
        let d = recommend(&r);
        assert!(d.reasons.last().is_some_and(|r| r.starts_with("Caveat (invalid_values)")));
    }
}
