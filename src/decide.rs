//! Results and checks -> one recommendation per experiment, with reasons in plain words that
//! quote the numbers and the threshold of the test that fired, machine-readable reason codes,
//! and the rule that fired.
//!
//! Every test reads a comparison's [`Inference`]: always-valid by default (safe however often
//! the report is read), on the relative scale (the scale of the MDE and the margins, and of the
//! interval every screen shows), at level `1 - α/k` for `k` treatment variants. The rule is
//! risk-aware in the sense of Schultzberg, Ankargren & Frånberg (2024), "Risk-aware product
//! decisions in A/B tests with multiple metrics" (arXiv:2402.11609). The first of these that
//! applies decides, and each is one function below, in this order:
//!
//! 1. [`missing_variant`]: a configured variant has no units: `inconclusive`.
//! 2. [`broken_allocation`]: a failed SRM or multi-variant check: `pause`.
//! 3. [`no_primary`]: no primary metric: `inconclusive`.
//! 4. [`too_early`]: the primary cannot be tested yet (no events, no variance): `continue` —
//!    or, on or after the experiment's last day, `inconclusive` (stop: there is no data to
//!    decide on).
//! 5. [`promote`]: a variant whose primary is significantly better (its interval excludes 0 on
//!    the good side: α/k, Bonferroni over the variants), every guardrail with a margin shown
//!    non-inferior (the interval's worse end within the margin; an intersection–union test
//!    needs no correction across guardrails), no guardrail and no secondary significantly
//!    worse: `promote` (the largest such effect). A guardrail without a margin that cannot be
//!    tested shows no harm when the variant's mean is not worse than the control's (neither has
//!    events) and is named; otherwise, and always for a guardrail with a margin (which must be
//!    shown non-inferior), it holds the verdict back.
//! 6. [`rollback`]: a variant whose primary, or a guardrail, is harmed: its harm p-value (of 0,
//!    or of a guardrail's margin on its worse side) below α shared by every harm test —
//!    α / (k·(1 + guardrails)), Bonferroni — so that a false ROLLBACK has probability ≤ α in
//!    all: `rollback`.
//! 7. [`trade_off`]: a variant that wins on the primary while a secondary, or a guardrail within
//!    its margin, is significantly worse, and no guardrail is still pending: `inconclusive` —
//!    the owners must weigh it, and more data will not decide it for them. (With a guardrail
//!    pending, more data still could: rule 10.)
//! 8. [`no_effect`]: every variant's interval rules out the MDE (its favourable end is below
//!    it): `inconclusive`, stop and keep the control.
//! 9. [`horizon`]: the planned sample is in (and the verdict date first quoted has come), or
//!    the experiment's last day (`max_days`) has come, without a verdict: `inconclusive`, stop.
//! 10. [`keep_running`]: otherwise `continue`, with what is pending, the units still needed,
//!     the date they are expected, and the advice to hold the rollout until then.
//!
//! Warnings from the data-quality checks become caveats. Before any rule, [`decide`] fails an
//! experiment that has nothing to analyse ([`missing_data`]: not started, or no exposures) with
//! [`no_data`]. Pure: no IO, not async.

use chrono::NaiveDate;

use crate::numbers::{compact, count, level, percent, percent_interval, pvalue, signed_percent, threshold, value};
use crate::results::*;

/// How the rule spends α in this experiment.
#[derive(Debug, Clone, Copy)]
struct Levels {
    /// Treatment variants.
    k: usize,
    /// The level every interval is read at: α/k.
    alpha_k: f64,
    /// Tests of harm: the primary and every guardrail, per treatment variant.
    harm_tests: usize,
    /// α / harm_tests.
    harm_alpha: f64,
    alpha: f64,
}

/// A metric's comparison of one variant, with its test.
type Read<'a> = (&'a MetricResult, &'a ComparisonResult);

/// One treatment variant, read through the rule.
struct Reading<'a> {
    variant: &'a str,
    primary: &'a ComparisonResult,
    wins: bool,
    harmed: bool,
    /// Guardrails harmed: worse beyond 0 or their margin, at the harm level.
    guardrails_harmed: Vec<Read<'a>>,
    /// Guardrails that hold a win back until more data: not yet shown non-inferior, or worse
    /// at the interval's level without margin and not (yet) at the harm level.
    guardrails_pending: Vec<Read<'a>>,
    /// Guardrails that pass: non-inferior, or without a margin and not significantly worse.
    guardrails_clear: Vec<Read<'a>>,
    /// Significantly worse secondaries, and guardrails worse but within their margin.
    losses: Vec<Read<'a>>,
    /// The primary's interval rules out the MDE.
    no_effect: bool,
}

fn comparison_of<'a>(metric: &'a MetricResult, variant: &str) -> Option<&'a ComparisonResult> {
    metric.comparisons.iter().find(|c| c.variant == variant)
}

/// The result of an analysed experiment: failed with [`no_data`] when `no_data` says why it has
/// nothing to analyse (see [`missing_data`]), otherwise with the [`recommend`]ation.
pub fn decide(analyzed: Analyzed, no_data_reason: Option<String>) -> ExperimentResult {
    match no_data_reason {
        Some(reason) => analyzed.with_decision(no_data(&reason), Some(reason)),
        None => {
            let decision = recommend(&analyzed);
            analyzed.with_decision(decision, None)
        }
    }
}

/// Why an experiment has nothing to analyse, when it has not: it starts after the report date,
/// or no unit was exposed in its window (read from `source`, shown without credentials).
pub fn missing_data(
    id: &str,
    start: NaiveDate,
    report_date: NaiveDate,
    exposed_units: usize,
    source: &str,
) -> Option<String> {
    if start > report_date {
        Some(format!(
            "experiment `{id}` starts on {start}, after the report date {report_date}: nothing to analyse yet"
        ))
    } else if exposed_units == 0 {
        Some(format!("experiment `{id}` has no exposures in its window {start} to {report_date} under {source}"))
    } else {
        None
    }
}

/// The decision on an experiment without analyzable data: `inconclusive`, `NO_DATA`, `reason`.
pub fn no_data(reason: &str) -> Decision {
    Decision {
        recommendation: Recommendation::Inconclusive,
        variant: None,
        reasons: vec![reason.to_string()],
        reason_codes: vec![ReasonCode::NoData],
        rule: "the experiment has no analyzable data".into(),
        expected_verdict_date: None,
    }
}

/// The recommendation for an analysed experiment.
pub fn recommend(result: &Analyzed) -> Decision {
    let mut decision = missing_variant(result)
        .or_else(|| broken_allocation(result))
        .or_else(|| no_primary(result))
        .unwrap_or_else(|| on_the_metrics(result));
    for check in &result.checks {
        if check.status == CheckStatus::Warn {
            decision.reasons.push(format!("Caveat ({}): {}.", check.name, check.detail));
            decision.reason_codes.push(ReasonCode::CheckWarning(check.name));
        }
    }
    decision
}

fn on_the_metrics(result: &Analyzed) -> Decision {
    let primary = result.metrics.iter().find(|m| m.role == Role::Primary).expect("checked by no_primary");
    if let Some(decision) = too_early(result, primary) {
        return decision;
    }
    let guardrails = result.metrics.iter().filter(|m| m.role == Role::Guardrail).count();
    let k = primary.comparisons.len().max(1);
    let levels = Levels {
        k,
        alpha_k: result.settings.alpha / k as f64,
        harm_tests: k * (1 + guardrails),
        harm_alpha: result.settings.alpha / (k * (1 + guardrails)) as f64,
        alpha: result.settings.alpha,
    };
    let readings: Vec<Reading<'_>> =
        primary.comparisons.iter().map(|c| read(result, primary, c, result.settings.mde, &levels)).collect();
    promote(primary, &readings, &levels)
        .or_else(|| rollback(primary, &readings, &levels))
        .or_else(|| trade_off(primary, &readings))
        .or_else(|| no_effect(result, primary, &readings))
        .or_else(|| horizon(result, primary, &readings))
        .unwrap_or_else(|| keep_running(result, primary, &readings, &levels))
}

/// The variant's mean is on the metric's worse side of the control's, tested or not.
fn raw_worse(metric: &MetricResult, c: &ComparisonResult) -> bool {
    c.absolute_effect.is_some_and(|d| d != 0.0 && (d > 0.0) != metric.higher_is_better)
}

/// The comparison's harm test fired: estimate on the worse side of the harm bound, and its
/// p-value below the harm level.
fn harmed(metric: &MetricResult, c: &ComparisonResult, levels: &Levels) -> bool {
    let Some(i) = &c.inference else { return false };
    let bound = match (metric.margin, i.scale) {
        (Some(margin), InferenceScale::Relative) if metric.role == Role::Guardrail => {
            if metric.higher_is_better {
                -margin
            } else {
                margin
            }
        }
        _ => 0.0,
    };
    let worse_than_bound = i.estimate != bound && (i.estimate > bound) != metric.higher_is_better;
    worse_than_bound && i.harm_p_value.is_some_and(|p| p < levels.harm_alpha)
}

fn read<'a>(
    result: &'a Analyzed,
    primary: &'a MetricResult,
    c: &'a ComparisonResult,
    mde: f64,
    levels: &Levels,
) -> Reading<'a> {
    let variant = c.variant.as_str();
    let inference = c.inference.as_ref();
    let mut reading = Reading {
        variant,
        primary: c,
        wins: inference.is_some_and(|i| i.direction == Direction::Better),
        harmed: harmed(primary, c, levels),
        guardrails_harmed: Vec::new(),
        guardrails_pending: Vec::new(),
        guardrails_clear: Vec::new(),
        losses: Vec::new(),
        no_effect: inference.is_some_and(|i| {
            i.scale == InferenceScale::Relative && if primary.higher_is_better { i.ci[1] < mde } else { i.ci[0] > -mde }
        }),
    };
    for metric in &result.metrics {
        let Some(g) = comparison_of(metric, variant) else { continue };
        let worse = g.inference.as_ref().is_some_and(|i| i.direction == Direction::Worse);
        match metric.role {
            Role::Guardrail if harmed(metric, g, levels) => reading.guardrails_harmed.push((metric, g)),
            Role::Guardrail => match &g.non_inferiority {
                Some(ni) if ni.non_inferior && worse => reading.losses.push((metric, g)),
                Some(ni) if ni.non_inferior => reading.guardrails_clear.push((metric, g)),
                Some(_) => reading.guardrails_pending.push((metric, g)),
                // A margin must be shown; a comparison that cannot be made cannot show it.
                None if metric.margin.is_some() => reading.guardrails_pending.push((metric, g)),
                None if worse => reading.guardrails_pending.push((metric, g)),
                // Untestable (no variance in a variant): no harm only when the variant is not
                // worse at all, as when neither variant has events; errors the treatment has
                // and the control never had hold the verdict back.
                None if g.inference.is_none() && raw_worse(metric, g) => reading.guardrails_pending.push((metric, g)),
                None => reading.guardrails_clear.push((metric, g)),
            },
            Role::Secondary if worse => reading.losses.push((metric, g)),
            Role::Primary | Role::Secondary => {}
        }
    }
    reading
}

fn decision(
    recommendation: Recommendation,
    variant: Option<&str>,
    reasons: Vec<String>,
    codes: Vec<ReasonCode>,
    rule: &str,
) -> Decision {
    Decision {
        recommendation,
        variant: variant.map(str::to_string),
        reasons,
        reason_codes: codes,
        rule: rule.to_string(),
        expected_verdict_date: None,
    }
}

/// Rule 1.
fn missing_variant(result: &Analyzed) -> Option<Decision> {
    let check = result.check(CheckName::MissingVariant).filter(|c| c.status == CheckStatus::Fail)?;
    Some(decision(
        Recommendation::Inconclusive,
        None,
        vec![format!(
            "Nothing can be compared: {}. Check the assignment service and the variant names in the job file.",
            check.detail
        )],
        vec![ReasonCode::MissingVariant],
        "a configured variant has no units",
    ))
}

/// Rule 2.
fn broken_allocation(result: &Analyzed) -> Option<Decision> {
    [CheckName::Srm, CheckName::MultiVariantUnits].into_iter().find_map(|name| {
        let check = result.check(name).filter(|c| c.status == CheckStatus::Fail)?;
        let what = if name == CheckName::Srm { "Sample ratio mismatch" } else { "Units in several variants" };
        Some(decision(
            Recommendation::Pause,
            None,
            vec![
                format!("{what}: {}.", check.detail),
                "The allocation is broken, so no metric can be trusted: hold the rollout where it is until allocation is fixed, then restart the analysis.".into(),
            ],
            vec![ReasonCode::DataQualityFailed(name)],
            "a data-quality check failed",
        ))
    })
}

/// Rule 3.
fn no_primary(result: &Analyzed) -> Option<Decision> {
    result.metrics.iter().all(|m| m.role != Role::Primary).then(|| {
        decision(
            Recommendation::Inconclusive,
            None,
            vec!["The experiment has no primary metric.".into()],
            vec![ReasonCode::NoPrimaryMetric],
            "no primary metric",
        )
    })
}

/// Rule 4: nothing to test yet is a reason to wait, not a verdict — unless the experiment has
/// reached its last day.
fn too_early(result: &Analyzed, primary: &MetricResult) -> Option<Decision> {
    if primary.comparisons.iter().any(|c| c.inference.is_some()) {
        return None;
    }
    let notes: Vec<&str> = primary.comparisons.iter().flat_map(|c| c.notes.iter().map(String::as_str)).collect();
    let why = format!("The primary metric `{}` cannot be tested yet: {}.", primary.name, dedup(&notes).join("; "));
    if let Some(plan) = result.plan.as_ref().filter(|p| result.window.end >= p.last_day) {
        return Some(decision(
            Recommendation::Inconclusive,
            None,
            vec![
                why,
                format!(
                    "The experiment has reached its last day ({}, `max_days` = {}) without data to decide on: stop it and check that its events are logged.",
                    plan.last_day, result.settings.max_days
                ),
            ],
            vec![ReasonCode::PrimaryNotTestable, ReasonCode::HorizonReached(Horizon::MaxDays)],
            "the primary metric cannot be tested and the experiment reached its last day",
        ));
    }
    let mut d = decision(
        Recommendation::Continue,
        None,
        vec![
            why,
            "It is too early for a verdict: keep the experiment running and hold the rollout at its current exposure (do not expand it) until there is data to decide on.".into(),
        ],
        vec![ReasonCode::TooEarly, ReasonCode::HoldRollout],
        "too early: the primary metric cannot be tested yet",
    );
    d.expected_verdict_date = result.plan.as_ref().and_then(|p| p.expected_verdict_date);
    Some(d)
}

fn dedup<'a>(notes: &[&'a str]) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for note in notes {
        if !out.contains(note) {
            out.push(note);
        }
    }
    out
}

/// Rule 5.
fn promote(primary: &MetricResult, readings: &[Reading<'_>], levels: &Levels) -> Option<Decision> {
    let estimate = |r: &Reading<'_>| r.primary.inference.as_ref().map_or(0.0, |i| i.estimate);
    let best = readings
        .iter()
        .filter(|r| r.wins && r.guardrails_harmed.is_empty() && r.guardrails_pending.is_empty() && r.losses.is_empty())
        .max_by(|a, b| {
            let (a, b) = (estimate(a), estimate(b));
            if primary.higher_is_better { a.total_cmp(&b) } else { b.total_cmp(&a) }
        })?;
    let mut reasons = vec![format!(
        "{}: significantly better ({}). The data-quality checks pass.",
        effect_text(primary, best.primary),
        significance_text(best.primary, levels.alpha_k, levels)
    )];
    let mut codes = vec![ReasonCode::PrimarySignificantWin];
    for (guardrail, c) in &best.guardrails_clear {
        match &c.non_inferiority {
            Some(_) => {
                reasons.push(format!("Guardrail `{}` is non-inferior: {}.", guardrail.name, non_inferiority_text(c)));
                codes.push(ReasonCode::GuardrailNonInferior(guardrail.name.clone()));
            }
            None if c.inference.is_none() => {
                reasons.push(format!(
                    "Guardrail `{}` could not be tested ({}), so it shows no harm.",
                    guardrail.name,
                    c.notes.join("; ")
                ));
                codes.push(ReasonCode::GuardrailNotTestable(guardrail.name.clone()));
            }
            None => {
                reasons.push(format!(
                    "Guardrail `{}` shows no significant harm ({}).",
                    guardrail.name,
                    interval_text(c)
                ));
                codes.push(ReasonCode::GuardrailNoHarm(guardrail.name.clone()));
            }
        }
    }
    for other in readings.iter().filter(|r| r.variant != best.variant && (r.harmed || !r.guardrails_harmed.is_empty()))
    {
        reasons.push(format!("`{}` is harmful: do not ship it.", other.variant));
        codes.push(ReasonCode::OtherVariantHarmful(other.variant.into()));
    }
    Some(decision(
        Recommendation::Promote,
        Some(best.variant),
        reasons,
        codes,
        "the primary metric is significantly better and no guardrail or secondary metric stands in the way",
    ))
}

/// Rule 6.
fn rollback(primary: &MetricResult, readings: &[Reading<'_>], levels: &Levels) -> Option<Decision> {
    let estimate = |r: &Reading<'_>| r.primary.inference.as_ref().map_or(0.0, |i| i.estimate);
    let worst = readings.iter().filter(|r| r.harmed || !r.guardrails_harmed.is_empty()).min_by(|a, b| {
        let (a, b) = (estimate(a), estimate(b));
        if primary.higher_is_better { a.total_cmp(&b) } else { b.total_cmp(&a) }
    })?;
    let mut reasons = Vec::new();
    let mut codes = Vec::new();
    if worst.harmed {
        reasons.push(format!(
            "{}: significantly worse ({}).",
            effect_text(primary, worst.primary),
            harm_text(primary, worst.primary, levels)
        ));
        codes.push(ReasonCode::PrimarySignificantLoss);
    }
    for (guardrail, c) in &worst.guardrails_harmed {
        let beyond = match guardrail.margin {
            Some(margin) => format!("worse by more than its {} margin", percent(margin, 1)),
            None => "significantly worse".to_string(),
        };
        reasons.push(format!(
            "Guardrail {}: {beyond} ({}).",
            lowercase_first(&effect_text(guardrail, c)),
            harm_text(guardrail, c, levels)
        ));
        codes.push(ReasonCode::GuardrailSignificantLoss(guardrail.name.clone()));
    }
    reasons.push(format!("Roll `{}` back to `{}`.", worst.variant, worst.primary.baseline));
    Some(decision(
        Recommendation::Rollback,
        Some(worst.variant),
        reasons,
        codes,
        "the primary metric or a guardrail is significantly harmed",
    ))
}

/// Rule 7.
fn trade_off(primary: &MetricResult, readings: &[Reading<'_>]) -> Option<Decision> {
    let held = readings.iter().find(|r| r.wins && !r.losses.is_empty() && r.guardrails_pending.is_empty())?;
    let mut reasons = vec![format!("{}: significantly better.", effect_text(primary, held.primary))];
    let mut codes = vec![ReasonCode::PrimarySignificantWin];
    for (metric, c) in &held.losses {
        match metric.role {
            Role::Guardrail => {
                reasons.push(format!(
                    "But guardrail {}: significantly worse, though within its margin ({}).",
                    lowercase_first(&effect_text(metric, c)),
                    non_inferiority_text(c)
                ));
                codes.push(ReasonCode::GuardrailWithinMarginLoss(metric.name.clone()));
            }
            _ => {
                reasons.push(format!("But {}: significantly worse.", lowercase_first(&effect_text(metric, c))));
                codes.push(ReasonCode::SecondarySignificantLoss(metric.name.clone()));
            }
        }
    }
    reasons.push(format!(
        "This is a trade-off, not a clear win: running longer will not settle it. The owners of these metrics must decide whether `{}` is worth it; until then keep the rollout where it is.",
        held.variant
    ));
    codes.push(ReasonCode::TradeOff);
    Some(decision(
        Recommendation::Inconclusive,
        Some(held.variant),
        reasons,
        codes,
        "a trade-off: the primary metric wins while another metric is significantly worse",
    ))
}

/// Rule 8.
fn no_effect(result: &Analyzed, primary: &MetricResult, readings: &[Reading<'_>]) -> Option<Decision> {
    if readings.is_empty() || !readings.iter().all(|r| r.no_effect) {
        return None;
    }
    let mde = result.settings.mde;
    let mut reasons: Vec<String> = readings
        .iter()
        .map(|r| match r.primary.inference.as_ref().map(|i| i.direction) {
            Some(Direction::Worse) => {
                format!("{}: worse, though not beyond the harm threshold.", effect_text(primary, r.primary))
            }
            _ => format!("{}.", effect_text(primary, r.primary)),
        })
        .collect();
    reasons.push(format!(
        "The interval rules out an effect as large as the {} MDE for every variant: any true effect is smaller. Stop the test and keep the control, unless the change is wanted for other reasons.",
        percent(mde, 1)
    ));
    Some(decision(
        Recommendation::Inconclusive,
        None,
        reasons,
        vec![ReasonCode::PrimaryNoEffect],
        "the interval rules out the MDE",
    ))
}

/// Rule 9.
fn horizon(result: &Analyzed, primary: &MetricResult, readings: &[Reading<'_>]) -> Option<Decision> {
    let plan = result.plan.as_ref()?;
    let last_day_reached = result.window.end >= plan.last_day;
    // The planned sample ends the test, but never before the verdict date the report quoted:
    // a report does not go back on its own promise (and those looks are the power it promised).
    let sample_in =
        plan.sample_reached && plan.first_expected_verdict_date.is_none_or(|quoted| result.window.end >= quoted);
    if !sample_in && !last_day_reached {
        return None;
    }
    let mut reasons: Vec<String> =
        readings.iter().map(|r| format!("{}: not significant.", effect_text(primary, r.primary))).collect();
    let (why, horizon) = if sample_in {
        ("The planned sample is in", Horizon::Sample)
    } else {
        ("The experiment has reached its last day", Horizon::MaxDays)
    };
    reasons.push(format!(
        "{why} without a verdict: stop the test. No effect was detected yet, but the {} MDE is not ruled out either.",
        percent(result.settings.mde, 1)
    ));
    if let Some(text) = settle_text(result, plan) {
        reasons.push(text);
    }
    let mut codes = vec![ReasonCode::HorizonReached(horizon)];
    pending_guardrails(readings, &mut reasons, &mut codes);
    Some(decision(
        Recommendation::Inconclusive,
        None,
        reasons,
        codes,
        "the planned sample or the last day is reached without a verdict",
    ))
}

/// Rule 10.
fn keep_running(result: &Analyzed, primary: &MetricResult, readings: &[Reading<'_>], levels: &Levels) -> Decision {
    let mut reasons = Vec::new();
    let mut codes = Vec::new();
    for r in readings {
        if r.wins {
            reasons.push(format!("{}: significantly better.", effect_text(primary, r.primary)));
            codes.push(ReasonCode::PrimarySignificantWin);
        } else if r.primary.inference.as_ref().is_some_and(|i| i.direction == Direction::Worse) {
            reasons.push(format!(
                "{}: worse, but not beyond the harm threshold yet ({}).",
                effect_text(primary, r.primary),
                harm_text(primary, r.primary, levels)
            ));
            codes.push(ReasonCode::PrimaryWorseNotYetHarmful);
        } else {
            reasons.push(format!("{}: not significant yet.", effect_text(primary, r.primary)));
            codes.push(ReasonCode::PrimaryNotSignificant);
        }
    }
    let mut seen = std::collections::HashSet::new();
    codes.retain(|code| seen.insert(code.clone()));
    pending_guardrails(readings, &mut reasons, &mut codes);
    let plan = result.plan.as_ref();
    if let Some(text) = plan.and_then(|p| sample_text(result, p)) {
        reasons.push(text);
    }
    let expected = plan.and_then(|p| p.expected_verdict_date);
    let provisional = if plan.is_some_and(|p| p.estimate_is_provisional) {
        " (a first estimate: it firms up once the experiment has a week of data)"
    } else {
        ""
    };
    let not_feasible = plan.filter(|p| p.expected_verdict_date.is_some_and(|d| d > p.last_day));
    let hold = match (expected, not_feasible) {
        (Some(date), Some(_)) => format!(
            "While it runs, hold the rollout at its current exposure (do not expand it): the verdict would come by {date}."
        ),
        (Some(date), None) => format!(
            "Hold the rollout at its current exposure (do not expand it) until the verdict, expected by {date}{provisional}."
        ),
        (None, _) => "Hold the rollout at its current exposure (do not expand it) until the verdict.".to_string(),
    };
    if let Some(plan) = not_feasible {
        reasons.push(not_feasible_text(result, plan));
        codes.push(ReasonCode::NotFeasibleByLastDay);
    }
    reasons.push(hold);
    codes.push(ReasonCode::HoldRollout);
    let mut d =
        decision(Recommendation::Continue, None, reasons, codes, "no verdict yet: the sample the rule needs is not in");
    d.expected_verdict_date = expected;
    d
}

/// Names every guardrail that holds a verdict back, with why.
fn pending_guardrails(readings: &[Reading<'_>], reasons: &mut Vec<String>, codes: &mut Vec<ReasonCode>) {
    let mut named: Vec<&str> = Vec::new();
    for r in readings {
        for (guardrail, c) in &r.guardrails_pending {
            let prefix = if readings.len() > 1 { format!("For `{}`: ", r.variant) } else { String::new() };
            let (text, code) = match &c.non_inferiority {
                Some(_) => (
                    format!(
                        "{prefix}guardrail `{}` is not yet shown non-inferior: {}.",
                        guardrail.name,
                        non_inferiority_text(c)
                    ),
                    ReasonCode::GuardrailNotYetNonInferior(guardrail.name.clone()),
                ),
                None if c.inference.is_none() => (
                    format!("{prefix}guardrail `{}` cannot be tested yet: {}.", guardrail.name, c.notes.join("; ")),
                    ReasonCode::GuardrailNotTestable(guardrail.name.clone()),
                ),
                None => (
                    format!(
                        "{prefix}guardrail {}: worse, but not beyond the harm threshold yet.",
                        lowercase_first(&effect_text(guardrail, c))
                    ),
                    ReasonCode::GuardrailWorseNotYetHarmful(guardrail.name.clone()),
                ),
            };
            reasons.push(capitalize(&text));
            if !named.contains(&guardrail.name.as_str()) {
                named.push(&guardrail.name);
                codes.push(code);
            }
        }
    }
}

/// `A verdict needs about 35,210 units in control and 35,210 in treatment (…); they have …`
fn sample_text(result: &Analyzed, plan: &Plan) -> Option<String> {
    if plan.tests.is_empty() || plan.required_units.iter().any(Option::is_none) {
        return None;
    }
    let names: Vec<&str> = result.variants.iter().map(|v| v.name.as_str()).collect();
    let needed: Vec<String> = plan
        .required_units
        .iter()
        .zip(&names)
        .map(|(n, name)| format!("{} in `{name}`", count(n.unwrap_or(0))))
        .collect();
    let have: Vec<String> = result.variants.iter().map(|v| count(v.units)).collect();
    let mut what: Vec<String> = Vec::new();
    for test in &plan.tests {
        let text = match test.test {
            PlannedTestKind::Success => format!("a {} effect on `{}`", percent(test.effect, 1), test.metric),
            PlannedTestKind::NonInferiority => {
                format!("non-inferiority of `{}` within {}", test.metric, percent(test.effect, 1))
            }
        };
        if !what.contains(&text) {
            what.push(text);
        }
    }
    let power = plan.tests.first().map_or(0.0, |t| t.power);
    let mut text = format!(
        "A verdict needs about {} ({} with {} power each); they have {}.",
        needed.join(", "),
        what.join(" and "),
        level(power),
        have.join(", ")
    );
    if let (Some(days), Some(date)) = (plan.days_to_decision, plan.expected_verdict_date) {
        let inflow: Vec<String> = plan.inflow_per_day.iter().map(|x| compact(*x)).collect();
        text.push_str(&format!(
            " At the current {} new units a day, that is {} more: expected by {date}.",
            inflow.join(" / "),
            crate::numbers::days(days).trim_start_matches("about ")
        ));
    }
    Some(text)
}

/// `About 52,000 units in control and 52,000 in treatment would settle it (…).`
fn settle_text(result: &Analyzed, plan: &Plan) -> Option<String> {
    let units: Vec<u64> = plan.units_to_settle.iter().copied().collect::<Option<Vec<u64>>>()?;
    let more: Vec<String> = units
        .iter()
        .zip(&result.variants)
        .map(|(&n, v)| format!("{} in `{}`", count(n.saturating_sub(v.units)), v.name))
        .collect();
    let days = units
        .iter()
        .zip(&result.variants)
        .zip(&plan.inflow_per_day)
        .map(
            |((&n, v), &per_day)| {
                if per_day > 0.0 { n.saturating_sub(v.units) as f64 / per_day } else { f64::INFINITY }
            },
        )
        .fold(0.0, f64::max);
    // Advice nobody can follow ("567 more days") is no advice: past the job's own longest run,
    // say it is not feasible and what the sample in hand can detect instead.
    if !days.is_finite() || days > f64::from(result.settings.max_days) {
        let how_long = if days.is_finite() {
            format!("{} more at the current inflow", crate::numbers::days(days))
        } else {
            "longer than any run, as no new units arrive".to_string()
        };
        let larger = plan
            .feasible_mde
            .filter(|&m| m > result.settings.mde)
            .map(|m| format!(", or accept a larger MDE of {}", percent(m, 1)))
            .unwrap_or_default();
        return Some(format!(
            "Settling an effect of {} is not feasible at this traffic: it would take {how_long}. Stop here{larger}.",
            percent(result.settings.mde, 1),
        ));
    }
    let when = if days.is_finite() {
        format!(" ({} at the current inflow)", crate::numbers::days(days))
    } else {
        String::new()
    };
    Some(format!(
        "If an effect of {} still matters, more units would settle it — about {} more{when}: the interval would then be narrower than the MDE.",
        percent(result.settings.mde, 1),
        more.join(", "),
    ))
}

fn not_feasible_text(result: &Analyzed, plan: &Plan) -> String {
    let larger = plan
        .feasible_mde
        .filter(|&m| m > result.settings.mde)
        .map(|m| format!(", or accept a larger MDE of {}", percent(m, 1)))
        .unwrap_or_default();
    format!(
        "The sample would be in only after the experiment's last day, {} (`max_days` = {}): at this traffic the test cannot detect a {} effect in time. Stop it{larger}.",
        plan.last_day,
        result.settings.max_days,
        percent(result.settings.mde, 1)
    )
}

fn method_name(i: &Inference) -> &'static str {
    match i.method {
        InferenceMethod::AlwaysValid => "always-valid",
        InferenceMethod::FixedHorizon => "fixed-horizon",
    }
}

/// `always-valid 95% CI [+1.2%, +7.0%]`.
fn interval_text(c: &ComparisonResult) -> String {
    match &c.inference {
        Some(i) => {
            let ci = match i.scale {
                InferenceScale::Relative => percent_interval(i.ci, 1),
                InferenceScale::Absolute => format!("[{}, {}]", value(i.ci[0]), value(i.ci[1])),
            };
            format!("{} {} CI {ci}", method_name(i), level(i.level))
        }
        None => "no interval".into(),
    }
}

/// `` `conversion` is +4.1% for `treatment` vs `control` (always-valid 95% CI [+1.2%, +7.0%], p = 0.0060; 0.1023 vs 0.0983) ``
fn effect_text(metric: &MetricResult, c: &ComparisonResult) -> String {
    let means = |name: &str| metric.variants.iter().find(|v| v.variant == name).and_then(|v| v.mean);
    let means_text = match (means(&c.variant), means(&c.baseline)) {
        (Some(t), Some(b)) => format!("; {} vs {}", value(t), value(b)),
        _ => String::new(),
    };
    match &c.inference {
        Some(i) => {
            let effect = match i.scale {
                InferenceScale::Relative => format!("is {}", signed_percent(i.estimate, 1)),
                InferenceScale::Absolute => format!("differs by {}", value(i.estimate)),
            };
            format!(
                "`{}` {effect} for `{}` vs `{}` ({}, p = {}{means_text})",
                metric.name,
                c.variant,
                c.baseline,
                interval_text(c),
                pvalue(i.p_value)
            )
        }
        None => format!("`{}` cannot be compared for `{}`: {}", metric.name, c.variant, c.notes.join("; ")),
    }
}

/// `p = 0.0060 < 0.05` with how α was split when it was.
fn significance_text(c: &ComparisonResult, at: f64, levels: &Levels) -> String {
    let p = c.inference.as_ref().map_or(1.0, |i| i.p_value);
    let split = if levels.k > 1 {
        format!(", α = {} over {} variants", threshold(levels.alpha), levels.k)
    } else {
        String::new()
    };
    format!("p = {} < {}{split}", pvalue(p), threshold(at))
}

/// `harm p = 0.0010 < 0.0125: α = 0.05 shared by 4 harm tests`.
fn harm_text(metric: &MetricResult, c: &ComparisonResult, levels: &Levels) -> String {
    let p = c.inference.as_ref().and_then(|i| i.harm_p_value).unwrap_or(1.0);
    let of = match metric.margin.filter(|_| metric.role == Role::Guardrail) {
        Some(margin) => format!("p of a {} worsening", percent(margin, 1)),
        None => "harm p".to_string(),
    };
    let relation = if p < levels.harm_alpha { "<" } else { "≥" };
    format!(
        "{of} = {} {relation} {}: α = {} shared by {} harm tests",
        pvalue(p),
        threshold(levels.harm_alpha),
        threshold(levels.alpha),
        levels.harm_tests
    )
}

/// `worst plausible change +1.0%, margin 2.0%`.
fn non_inferiority_text(c: &ComparisonResult) -> String {
    match &c.non_inferiority {
        Some(n) => {
            let bound = n
                .bound
                .map_or_else(|| "no bound yet".into(), |b| format!("worst plausible change {}", signed_percent(b, 1)));
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

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::results::sample_result;
    use crate::test_support::nov;
    use crate::test_support::planned_success;

    /// A comparison of `variant` with the control, its relative interval `ci` (the estimate in
    /// the middle). Level, significance and direction are set when it joins a metric.
    fn tested(variant: &str, ci: [f64; 2]) -> ComparisonResult {
        let significant = ci[0] > 0.0 || ci[1] < 0.0;
        ComparisonResult {
            variant: variant.into(),
            notes: vec![],
            inference: Some(Inference {
                method: InferenceMethod::AlwaysValid,
                scale: InferenceScale::Relative,
                level: 0.95,
                estimate: (ci[0] + ci[1]) / 2.0,
                ci,
                p_value: if significant { 0.004 } else { 0.6 },
                harm_p_value: None,
                significant,
                direction: Direction::Neutral,
                tuning: Some(4000.0),
            }),
            ..sample_result().metrics[0].comparisons[0].clone()
        }
    }

    /// [`tested`] with the p-value of its harm bound (0, or a guardrail's margin).
    fn harm(c: ComparisonResult, harm_p_value: f64) -> ComparisonResult {
        let mut c = c;
        c.inference.as_mut().expect("a tested comparison").harm_p_value = Some(harm_p_value);
        c
    }

    /// A comparison that cannot be tested, with why; both variants' means equal (as when
    /// neither has events).
    fn untested(variant: &str, note: &str) -> ComparisonResult {
        ComparisonResult {
            variant: variant.into(),
            notes: vec![note.into()],
            inference: None,
            absolute_effect: Some(0.0),
            relative_effect: None,
            ..tested(variant, [0.0, 0.0])
        }
    }

    /// An experiment of `control` and `treatments` with every check passing, α = 0.05 and an
    /// MDE of 5% (`sample_result`'s settings), reporting on 2026-11-20; metrics are added one
    /// by one.
    struct Experiment(ExperimentResult);

    impl Experiment {
        fn new(treatments: &[&str]) -> Self {
            let mut result = sample_result();
            result.metrics.clear();
            let names: Vec<&str> = std::iter::once("control").chain(treatments.iter().copied()).collect();
            let weight = 1.0 / names.len() as f64;
            result.variants = names
                .iter()
                .map(|v| VariantResult {
                    name: (*v).into(),
                    units: 1000,
                    expected_weight: weight,
                    observed_share: Some(weight),
                })
                .collect();
            Experiment(result)
        }

        /// Adds a metric; its comparisons get the level `1 - α/k`, significance and direction
        /// as `analyze` sets them, and with a margin the non-inferiority of the interval's
        /// worse end (also as `analyze`: not shown when untested).
        fn metric(
            mut self,
            name: &str,
            role: Role,
            higher_is_better: bool,
            margin: Option<f64>,
            comparisons: Vec<ComparisonResult>,
        ) -> Self {
            let k = (self.0.variants.len() - 1) as f64;
            let level = 1.0 - self.0.settings.alpha / k;
            let comparisons = comparisons
                .into_iter()
                .map(|mut c| {
                    if let Some(i) = c.inference.as_mut() {
                        i.level = level;
                        i.direction = match (i.significant, (i.estimate > 0.0) == higher_is_better) {
                            (false, _) => Direction::Neutral,
                            (true, true) => Direction::Better,
                            (true, false) => Direction::Worse,
                        };
                    }
                    c.non_inferiority = margin.map(|margin| {
                        let bound = c.inference.as_ref().map(|i| if higher_is_better { i.ci[0] } else { i.ci[1] });
                        let non_inferior =
                            bound.is_some_and(|b| if higher_is_better { b > -margin } else { b < margin });
                        NonInferiorityResult { margin, p_value: None, bound, non_inferior }
                    });
                    c
                })
                .collect();
            self.0.metrics.push(MetricResult {
                name: name.into(),
                description: None,
                kind: MetricKind::Proportion,
                role,
                higher_is_better,
                variants: vec![],
                comparisons,
                margin,
                cuped: None,
                cap: None,
            });
            self
        }

        /// The primary metric `conversion` (higher is better).
        fn primary(self, comparisons: Vec<ComparisonResult>) -> Self {
            self.metric("conversion", Role::Primary, true, None, comparisons)
        }

        fn data_check(mut self, name: CheckName, status: CheckStatus, detail: &str) -> Self {
            let check = self.0.checks.iter_mut().find(|c| c.name == name).expect("a check of sample_result");
            check.status = status;
            check.detail = detail.into();
            self
        }

        fn plan(mut self, plan: Plan) -> Self {
            self.0.plan = Some(plan);
            self
        }
    }

    /// A plan ending on `last_day`, its verdict expected on `expected`.
    fn plan(last_day: NaiveDate, expected: Option<NaiveDate>, sample_reached: bool) -> Plan {
        Plan {
            tuning_source: TuningSource::Design,
            designed_on: Some(nov(10)),
            first_expected_verdict_date: expected,
            estimate_is_provisional: false,
            tests: vec![],
            required_units: vec![Some(2000), Some(2000)],
            inflow_per_day: vec![100.0, 100.0],
            inflow_days: 7,
            days_to_decision: expected.map(|d| (d - nov(20)).num_days() as f64),
            expected_verdict_date: expected,
            sample_reached,
            last_day,
            feasible_mde: None,
            units_to_settle: vec![],
        }
    }

    /// Recommends on `experiment` and checks the outcome and every reason code (which never
    /// repeat); returns the decision for checks of its reasons.
    #[track_caller]
    fn check(
        experiment: Experiment,
        recommendation: Recommendation,
        variant: Option<&str>,
        codes: &[&str],
    ) -> Decision {
        let d = recommend(&experiment.0.analyzed());
        assert_eq!((d.recommendation, d.variant.as_deref()), (recommendation, variant), "{:#?}", d.reasons);
        let written: Vec<String> = d.reason_codes.iter().map(ToString::to_string).collect();
        assert_eq!(written, codes, "{:#?}", d.reasons);
        let mut seen = std::collections::HashSet::new();
        assert!(d.reason_codes.iter().all(|c| seen.insert(c)), "a reason code repeats: {:?}", d.reason_codes);
        d
    }

    #[track_caller]
    fn says(d: &Decision, text: &str) {
        assert!(d.reasons.iter().any(|r| r.contains(text)), "no reason says {text:?}: {:#?}", d.reasons);
    }

    /// Clearly better: [+1%, +7%] excludes 0 and reaches past the 5% MDE.
    const WIN: [f64; 2] = [0.01, 0.07];
    /// Not significant, the MDE not ruled out: [−2%, +8%].
    const OPEN: [f64; 2] = [-0.02, 0.08];
    /// Significantly worse: [−8%, −2%].
    const LOSS: [f64; 2] = [-0.08, -0.02];

    // Rules 1–3: the data cannot be read.

    #[test]
    fn missing_variant_is_inconclusive_even_before_a_failed_srm() {
        let e = Experiment::new(&["treatment"])
            .primary(vec![tested("treatment", WIN)])
            .data_check(CheckName::MissingVariant, CheckStatus::Fail, "`treatment` has no units")
            .data_check(CheckName::Srm, CheckStatus::Fail, "p = 1.0e-9");
        let d = check(e, Recommendation::Inconclusive, None, &["MISSING_VARIANT"]);
        says(&d, "`treatment` has no units");
    }

    #[test]
    fn failed_srm_pauses_before_a_winning_primary() {
        let e = Experiment::new(&["treatment"]).primary(vec![tested("treatment", WIN)]).data_check(
            CheckName::Srm,
            CheckStatus::Fail,
            "p = 1.0e-9",
        );
        let d = check(e, Recommendation::Pause, None, &["DATA_QUALITY_FAILED:srm"]);
        says(&d, "Sample ratio mismatch: p = 1.0e-9.");
    }

    #[test]
    fn failed_srm_pauses_before_a_harmed_primary() {
        let e = Experiment::new(&["treatment"]).primary(vec![harm(tested("treatment", LOSS), 1e-6)]).data_check(
            CheckName::Srm,
            CheckStatus::Fail,
            "p = 1.0e-9",
        );
        check(e, Recommendation::Pause, None, &["DATA_QUALITY_FAILED:srm"]);
    }

    #[test]
    fn units_in_several_variants_pause() {
        let e = Experiment::new(&["treatment"]).primary(vec![tested("treatment", WIN)]).data_check(
            CheckName::MultiVariantUnits,
            CheckStatus::Fail,
            "3% of units",
        );
        check(e, Recommendation::Pause, None, &["DATA_QUALITY_FAILED:multi_variant_units"]);
    }

    #[test]
    fn no_primary_metric_is_inconclusive() {
        let e = Experiment::new(&["treatment"]).metric(
            "revenue",
            Role::Secondary,
            true,
            None,
            vec![tested("treatment", WIN)],
        );
        check(e, Recommendation::Inconclusive, None, &["NO_PRIMARY_METRIC"]);
    }

    // Rule 4: too early.

    #[test]
    fn too_early_continues_and_holds_the_rollout() {
        let e = Experiment::new(&["treatment"])
            .primary(vec![untested("treatment", "no events in `treatment` yet")])
            .plan(plan(nov(30), Some(nov(25)), false));
        let d = check(e, Recommendation::Continue, None, &["TOO_EARLY", "HOLD_ROLLOUT"]);
        says(&d, "cannot be tested yet: no events in `treatment` yet.");
        assert_eq!(d.expected_verdict_date, Some(nov(25)));
    }

    #[test]
    fn too_early_on_the_last_day_is_inconclusive() {
        let e = Experiment::new(&["treatment"])
            .primary(vec![untested("treatment", "no events in `treatment` yet")])
            .plan(plan(nov(20), None, false));
        let d = check(e, Recommendation::Inconclusive, None, &["PRIMARY_NOT_TESTABLE", "HORIZON_REACHED:max_days"]);
        says(&d, "reached its last day (2026-11-20, `max_days` = 42)");
    }

    #[test]
    fn too_early_after_the_last_day_is_inconclusive() {
        let e = Experiment::new(&["treatment"])
            .primary(vec![untested("treatment", "no events in `treatment` yet")])
            .plan(plan(nov(19), None, false));
        check(e, Recommendation::Inconclusive, None, &["PRIMARY_NOT_TESTABLE", "HORIZON_REACHED:max_days"]);
    }

    // Rule 5: promote.

    #[test]
    fn promote_with_a_harm_only_guardrail_showing_no_harm() {
        let e = Experiment::new(&["treatment"]).primary(vec![tested("treatment", WIN)]).metric(
            "errors",
            Role::Guardrail,
            false,
            None,
            vec![harm(tested("treatment", [-0.02, 0.03]), 0.7)],
        );
        let d = check(
            e,
            Recommendation::Promote,
            Some("treatment"),
            &["PRIMARY_SIGNIFICANT_WIN", "GUARDRAIL_NO_HARM:errors"],
        );
        // One treatment variant: α/k = 0.05, and no split to mention.
        says(&d, "`conversion` is +4.0% for `treatment` vs `control` (always-valid 95% CI [+1.0%, +7.0%], p = 0.0040");
        says(&d, "significantly better (p = 0.0040 < 0.05). The data-quality checks pass.");
        says(&d, "Guardrail `errors` shows no significant harm (always-valid 95% CI [−2.0%, +3.0%]).");
    }

    #[test]
    fn promote_with_a_margin_guardrail_non_inferior() {
        // latency is lower-is-better: the worse end is +1.0%, within the 2% margin.
        let e = Experiment::new(&["treatment"]).primary(vec![tested("treatment", WIN)]).metric(
            "latency",
            Role::Guardrail,
            false,
            Some(0.02),
            vec![harm(tested("treatment", [-0.03, 0.01]), 0.9)],
        );
        let d = check(
            e,
            Recommendation::Promote,
            Some("treatment"),
            &["PRIMARY_SIGNIFICANT_WIN", "GUARDRAIL_NON_INFERIOR:latency"],
        );
        says(&d, "Guardrail `latency` is non-inferior: worst plausible change +1.0%, margin 2.0%.");
    }

    #[test]
    fn promote_with_an_untestable_harm_only_guardrail() {
        let e = Experiment::new(&["treatment"]).primary(vec![tested("treatment", WIN)]).metric(
            "refunds",
            Role::Guardrail,
            false,
            None,
            vec![untested("treatment", "no events in either variant")],
        );
        let d = check(
            e,
            Recommendation::Promote,
            Some("treatment"),
            &["PRIMARY_SIGNIFICANT_WIN", "GUARDRAIL_NOT_TESTABLE:refunds"],
        );
        says(&d, "Guardrail `refunds` could not be tested (no events in either variant), so it shows no harm.");
    }

    #[test]
    fn an_untestable_guardrail_the_variant_is_worse_on_holds_the_promotion_back() {
        // Errors only the treatment has: the control has no variance, so no test, but the
        // treatment's mean is worse (lower is better, +0.02).
        let mut errors = untested("treatment", "the metric does not vary within a variant yet, so it cannot be tested");
        errors.absolute_effect = Some(0.02);
        let e = Experiment::new(&["treatment"]).primary(vec![tested("treatment", WIN)]).metric(
            "errors",
            Role::Guardrail,
            false,
            None,
            vec![errors],
        );
        check(
            e,
            Recommendation::Continue,
            None,
            &["PRIMARY_SIGNIFICANT_WIN", "GUARDRAIL_NOT_TESTABLE:errors", "HOLD_ROLLOUT"],
        );
    }

    #[test]
    fn an_untestable_margin_guardrail_holds_the_promotion_back() {
        // The module doc: one with a margin must be shown non-inferior.
        let e = Experiment::new(&["treatment"]).primary(vec![tested("treatment", WIN)]).metric(
            "refunds",
            Role::Guardrail,
            false,
            Some(0.5),
            vec![untested("treatment", "no events in either variant")],
        );
        let d = check(
            e,
            Recommendation::Continue,
            None,
            &["PRIMARY_SIGNIFICANT_WIN", "GUARDRAIL_NOT_YET_NON_INFERIOR:refunds", "HOLD_ROLLOUT"],
        );
        says(&d, "Guardrail `refunds` is not yet shown non-inferior: no bound yet, margin 50.0%.");
    }

    #[test]
    fn promote_picks_the_largest_of_two_winning_variants() {
        // a: +4%, b: +7%; the intervals are read at α/k = 0.05/2 = 0.025.
        let e = Experiment::new(&["a", "b"]).primary(vec![tested("a", WIN), tested("b", [0.03, 0.11])]);
        let d = check(e, Recommendation::Promote, Some("b"), &["PRIMARY_SIGNIFICANT_WIN"]);
        says(&d, "`conversion` is +7.0% for `b` vs `control` (always-valid 97.5% CI [+3.0%, +11.0%]");
        says(&d, "(p = 0.0040 < 0.025, α = 0.05 over 2 variants)");
    }

    #[test]
    fn promote_picks_the_most_negative_for_a_lower_is_better_primary() {
        // a: −7%, b: −4% on a metric where lower is better: a is the larger improvement.
        let e = Experiment::new(&["a", "b"]).metric(
            "load_time",
            Role::Primary,
            false,
            None,
            vec![tested("a", [-0.11, -0.03]), tested("b", [-0.07, -0.01])],
        );
        check(e, Recommendation::Promote, Some("a"), &["PRIMARY_SIGNIFICANT_WIN"]);
    }

    #[test]
    fn promote_names_another_variant_that_is_harmful() {
        // b's primary is harmed: harm p 0.001 < α/(k(1 + 0)) = 0.05/2 = 0.025.
        let e = Experiment::new(&["a", "b"]).primary(vec![tested("a", WIN), harm(tested("b", LOSS), 0.001)]);
        let d = check(e, Recommendation::Promote, Some("a"), &["PRIMARY_SIGNIFICANT_WIN", "OTHER_VARIANT_HARMFUL:b"]);
        says(&d, "`b` is harmful: do not ship it.");
    }

    // Rule 6: rollback.

    /// The primary `LOSS` for `treatment` with harm p `p`, `OPEN` for the `others`, and harm-only
    /// `guardrails` with no harm.
    fn harmed_primary(p: f64, others: &[&str], guardrails: &[&str]) -> Experiment {
        let names: Vec<&str> = std::iter::once("treatment").chain(others.iter().copied()).collect();
        let mut primary = vec![harm(tested("treatment", LOSS), p)];
        primary.extend(others.iter().map(|v| harm(tested(v, OPEN), 0.9)));
        let mut e = Experiment::new(&names).primary(primary);
        for guardrail in guardrails {
            let no_harm = names.iter().map(|v| harm(tested(v, [-0.02, 0.02]), 0.9)).collect();
            e = e.metric(guardrail, Role::Guardrail, false, None, no_harm);
        }
        e
    }

    /// Three harm-only guardrails.
    const THREE: [&str; 3] = ["errors", "latency_breach", "refunds"];

    #[test]
    fn rollback_on_primary_harm_below_the_shared_harm_level() {
        // One treatment, three guardrails: α/(k(1 + 3)) = 0.05/4 = 0.0125.
        let d = check(
            harmed_primary(0.012, &[], &THREE),
            Recommendation::Rollback,
            Some("treatment"),
            &["PRIMARY_SIGNIFICANT_LOSS"],
        );
        says(&d, "`conversion` is −5.0% for `treatment` vs `control`");
        says(&d, "significantly worse (harm p = 0.0120 < 0.0125: α = 0.05 shared by 4 harm tests)");
        says(&d, "Roll `treatment` back to `control`.");
    }

    #[test]
    fn primary_worse_just_above_the_harm_level_keeps_running() {
        // Two treatments, one guardrail: α/(k(1 + 1)) = 0.05/4 = 0.0125; `treatment` is
        // significantly worse at α/k = 0.025 but its harm p 0.013 is just above: not a
        // rollback, and `b`'s interval still holds the MDE, so the rule waits.
        let d = check(
            harmed_primary(0.013, &["b"], &["errors"]),
            Recommendation::Continue,
            None,
            &["PRIMARY_WORSE_NOT_YET_HARMFUL", "PRIMARY_NOT_SIGNIFICANT", "HOLD_ROLLOUT"],
        );
        says(
            &d,
            "worse, but not beyond the harm threshold yet (harm p = 0.0130 ≥ 0.0125: α = 0.05 shared by 4 harm tests)",
        );
    }

    #[test]
    fn primary_worse_just_above_the_harm_level_alone_rules_out_the_mde() {
        // One treatment, three guardrails: harm p 0.013 ≥ 0.05/4 = 0.0125, no rollback; but a
        // significantly worse interval lies below the MDE, so rule 8 stops the test and keeps
        // the control.
        check(harmed_primary(0.013, &[], &THREE), Recommendation::Inconclusive, None, &["PRIMARY_NO_EFFECT"]);
    }

    #[test]
    fn rollback_on_a_margin_guardrail_worse_beyond_its_margin() {
        // latency (lower is better) +6% [+3%, +9%] against a 2% margin; the p of a 2% worsening
        // 0.001 < α/(k(1 + 1)) = 0.025.
        let e = Experiment::new(&["treatment"]).primary(vec![harm(tested("treatment", [-0.03, 0.03]), 1.0)]).metric(
            "latency",
            Role::Guardrail,
            false,
            Some(0.02),
            vec![harm(tested("treatment", [0.03, 0.09]), 0.001)],
        );
        let d = check(e, Recommendation::Rollback, Some("treatment"), &["GUARDRAIL_SIGNIFICANT_LOSS:latency"]);
        says(
            &d,
            "worse by more than its 2.0% margin (p of a 2.0% worsening = 0.0010 < 0.025: α = 0.05 shared by 2 harm tests)",
        );
    }

    #[test]
    fn a_margin_guardrail_worse_within_its_margin_is_not_harmed() {
        // +1.4% [+1%, +1.8%] is worse than 0 but not than the 2% margin: whatever its p, no
        // rollback (and without a winning primary, no trade-off).
        let e = Experiment::new(&["treatment"]).primary(vec![harm(tested("treatment", OPEN), 1.0)]).metric(
            "latency",
            Role::Guardrail,
            false,
            Some(0.02),
            vec![harm(tested("treatment", [0.01, 0.018]), 0.001)],
        );
        check(e, Recommendation::Continue, None, &["PRIMARY_NOT_SIGNIFICANT", "HOLD_ROLLOUT"]);
    }

    // Rule 7: trade-off.

    #[test]
    fn trade_off_on_a_secondary_loss() {
        let e = Experiment::new(&["treatment"]).primary(vec![tested("treatment", WIN)]).metric(
            "revenue",
            Role::Secondary,
            true,
            None,
            vec![tested("treatment", [-0.06, -0.01])],
        );
        let d = check(
            e,
            Recommendation::Inconclusive,
            Some("treatment"),
            &["PRIMARY_SIGNIFICANT_WIN", "SECONDARY_SIGNIFICANT_LOSS:revenue", "TRADE_OFF"],
        );
        says(&d, "But `revenue` is −3.5% for `treatment` vs `control`");
    }

    #[test]
    fn trade_off_on_a_guardrail_loss_within_its_margin() {
        // latency +1.75% [+0.5%, +3%]: significantly worse, but its worse end is within 5%.
        let e = Experiment::new(&["treatment"]).primary(vec![tested("treatment", WIN)]).metric(
            "latency",
            Role::Guardrail,
            false,
            Some(0.05),
            vec![harm(tested("treatment", [0.005, 0.03]), 0.2)],
        );
        let d = check(
            e,
            Recommendation::Inconclusive,
            Some("treatment"),
            &["PRIMARY_SIGNIFICANT_WIN", "GUARDRAIL_WITHIN_MARGIN_LOSS:latency", "TRADE_OFF"],
        );
        says(&d, "though within its margin (worst plausible change +3.0%, margin 5.0%)");
    }

    #[test]
    fn no_trade_off_while_a_guardrail_is_pending() {
        // A secondary loss, but latency's worse end +4% is not yet within its 2% margin: more
        // data could still settle the guardrail (rule 10).
        let e = Experiment::new(&["treatment"])
            .primary(vec![tested("treatment", WIN)])
            .metric("revenue", Role::Secondary, true, None, vec![tested("treatment", [-0.06, -0.01])])
            .metric("latency", Role::Guardrail, false, Some(0.02), vec![harm(tested("treatment", [-0.01, 0.04]), 0.3)]);
        check(
            e,
            Recommendation::Continue,
            None,
            &["PRIMARY_SIGNIFICANT_WIN", "GUARDRAIL_NOT_YET_NON_INFERIOR:latency", "HOLD_ROLLOUT"],
        );
    }

    #[test]
    fn a_harm_only_guardrail_worse_below_the_harm_level_is_pending_not_a_trade_off() {
        // errors +4% [+1%, +7%] significantly worse at 0.05, harm p 0.03 ≥ 0.05/2 = 0.025.
        let e = Experiment::new(&["treatment"]).primary(vec![tested("treatment", WIN)]).metric(
            "errors",
            Role::Guardrail,
            false,
            None,
            vec![harm(tested("treatment", WIN), 0.03)],
        );
        let d = check(
            e,
            Recommendation::Continue,
            None,
            &["PRIMARY_SIGNIFICANT_WIN", "GUARDRAIL_WORSE_NOT_YET_HARMFUL:errors", "HOLD_ROLLOUT"],
        );
        says(&d, "Guardrail `errors` is +4.0% for `treatment` vs `control`");
    }

    // Rule 8: no effect.

    #[test]
    fn no_effect_when_the_favourable_end_is_below_the_mde() {
        // [−2%, +4%]: +4% < the 5% MDE.
        let e = Experiment::new(&["treatment"]).primary(vec![tested("treatment", [-0.02, 0.04])]);
        let d = check(e, Recommendation::Inconclusive, None, &["PRIMARY_NO_EFFECT"]);
        says(&d, "rules out an effect as large as the 5.0% MDE for every variant");
    }

    #[test]
    fn no_effect_needs_the_favourable_end_strictly_below_the_mde() {
        let e = Experiment::new(&["treatment"]).primary(vec![tested("treatment", [-0.02, 0.05])]);
        check(e, Recommendation::Continue, None, &["PRIMARY_NOT_SIGNIFICANT", "HOLD_ROLLOUT"]);
    }

    #[test]
    fn no_effect_mirrored_for_a_lower_is_better_primary() {
        // Lower is better: the favourable end is the lower one, −4% > −5%.
        let e = Experiment::new(&["treatment"]).metric(
            "latency",
            Role::Primary,
            false,
            None,
            vec![tested("treatment", [-0.04, 0.02])],
        );
        check(e, Recommendation::Inconclusive, None, &["PRIMARY_NO_EFFECT"]);
        // The upper end below the MDE says nothing here: −6% still reaches past −5%.
        let e = Experiment::new(&["treatment"]).metric(
            "latency",
            Role::Primary,
            false,
            None,
            vec![tested("treatment", [-0.06, 0.04])],
        );
        check(e, Recommendation::Continue, None, &["PRIMARY_NOT_SIGNIFICANT", "HOLD_ROLLOUT"]);
    }

    #[test]
    fn no_effect_needs_every_variant() {
        let e = Experiment::new(&["a", "b"]).primary(vec![tested("a", [-0.02, 0.04]), tested("b", OPEN)]);
        check(e, Recommendation::Continue, None, &["PRIMARY_NOT_SIGNIFICANT", "HOLD_ROLLOUT"]);
    }

    // Rule 9: horizon.

    #[test]
    fn horizon_by_sample() {
        let e =
            Experiment::new(&["treatment"]).primary(vec![tested("treatment", OPEN)]).plan(plan(nov(30), None, true));
        let d = check(e, Recommendation::Inconclusive, None, &["HORIZON_REACHED:sample"]);
        says(&d, "The planned sample is in without a verdict: stop the test.");
    }

    #[test]
    fn the_sample_in_before_the_quoted_date_keeps_running_until_then() {
        let mut plan = plan(nov(30), None, true);
        plan.first_expected_verdict_date = Some(nov(22));
        let e = Experiment::new(&["treatment"]).primary(vec![tested("treatment", OPEN)]).plan(plan);
        check(e, Recommendation::Continue, None, &["PRIMARY_NOT_SIGNIFICANT", "HOLD_ROLLOUT"]);
    }

    #[test]
    fn horizon_by_max_days() {
        let e = Experiment::new(&["treatment"]).primary(vec![tested("treatment", OPEN)]).plan(plan(
            nov(20),
            Some(nov(24)),
            false,
        ));
        let d = check(e, Recommendation::Inconclusive, None, &["HORIZON_REACHED:max_days"]);
        says(&d, "The experiment has reached its last day without a verdict");
    }

    #[test]
    fn horizon_advice_is_feasible_or_says_it_is_not() {
        // 1,000 units each now; 2,000 would settle it: 1,000 more at 100 a day, 10 days.
        let mut near = plan(nov(30), None, true);
        near.units_to_settle = vec![Some(2_000), Some(2_000)];
        let e = Experiment::new(&["treatment"]).primary(vec![tested("treatment", OPEN)]).plan(near);
        let d = check(e, Recommendation::Inconclusive, None, &["HORIZON_REACHED:sample"]);
        says(
            &d,
            "more units would settle it — about 1,000 in `control`, 1,000 in `treatment` more (about 10 days at the current inflow)",
        );
        // 100,000 more at 100 a day is 1,000 days, past any run (`max_days` = 42): not advice.
        let mut far = plan(nov(30), None, true);
        far.units_to_settle = vec![Some(101_000), Some(101_000)];
        far.feasible_mde = Some(0.08);
        let e = Experiment::new(&["treatment"]).primary(vec![tested("treatment", OPEN)]).plan(far);
        let d = check(e, Recommendation::Inconclusive, None, &["HORIZON_REACHED:sample"]);
        says(
            &d,
            "Settling an effect of 5.0% is not feasible at this traffic: it would take about 1000 days more at the current inflow. Stop here, or accept a larger MDE of 8.0%.",
        );
        assert!(!d.reasons.iter().any(|r| r.contains("would settle it")), "{:#?}", d.reasons);
    }

    #[test]
    fn horizon_names_pending_guardrails() {
        let e = Experiment::new(&["treatment"])
            .primary(vec![tested("treatment", OPEN)])
            .metric("latency", Role::Guardrail, false, Some(0.02), vec![tested("treatment", [-0.01, 0.04])])
            .plan(plan(nov(20), None, false));
        check(
            e,
            Recommendation::Inconclusive,
            None,
            &["HORIZON_REACHED:max_days", "GUARDRAIL_NOT_YET_NON_INFERIOR:latency"],
        );
    }

    // Rule 10: keep running.

    #[test]
    fn continue_carries_the_plans_expected_date() {
        let e = Experiment::new(&["treatment"]).primary(vec![tested("treatment", OPEN)]).plan(plan(
            nov(30),
            Some(nov(26)),
            false,
        ));
        let d = check(e, Recommendation::Continue, None, &["PRIMARY_NOT_SIGNIFICANT", "HOLD_ROLLOUT"]);
        assert_eq!(d.expected_verdict_date, Some(nov(26)));
        says(
            &d,
            "Hold the rollout at its current exposure (do not expand it) until the verdict, expected by 2026-11-26.",
        );
    }

    #[test]
    fn continue_marks_a_first_week_date_provisional() {
        let mut p = plan(nov(30), Some(nov(26)), false);
        p.estimate_is_provisional = true;
        let e = Experiment::new(&["treatment"]).primary(vec![tested("treatment", OPEN)]).plan(p);
        let d = check(e, Recommendation::Continue, None, &["PRIMARY_NOT_SIGNIFICANT", "HOLD_ROLLOUT"]);
        says(&d, "expected by 2026-11-26 (a first estimate: it firms up once the experiment has a week of data).");
    }

    #[test]
    fn continue_without_a_plan_has_no_date() {
        let e = Experiment::new(&["treatment"]).primary(vec![tested("treatment", OPEN)]);
        let d = check(e, Recommendation::Continue, None, &["PRIMARY_NOT_SIGNIFICANT", "HOLD_ROLLOUT"]);
        assert_eq!(d.expected_verdict_date, None);
    }

    #[test]
    fn a_verdict_expected_on_the_last_day_is_feasible() {
        let e = Experiment::new(&["treatment"]).primary(vec![tested("treatment", OPEN)]).plan(plan(
            nov(30),
            Some(nov(30)),
            false,
        ));
        check(e, Recommendation::Continue, None, &["PRIMARY_NOT_SIGNIFICANT", "HOLD_ROLLOUT"]);
    }

    #[test]
    fn a_verdict_expected_after_the_last_day_is_not_feasible() {
        let mut p = plan(nov(30), Some(nov(30) + chrono::Days::new(1)), false);
        p.feasible_mde = Some(0.08);
        let e = Experiment::new(&["treatment"]).primary(vec![tested("treatment", OPEN)]).plan(p);
        let d = check(
            e,
            Recommendation::Continue,
            None,
            &["PRIMARY_NOT_SIGNIFICANT", "NOT_FEASIBLE_BY_LAST_DAY", "HOLD_ROLLOUT"],
        );
        says(&d, "The sample would be in only after the experiment's last day, 2026-11-30 (`max_days` = 42)");
        says(&d, "Stop it, or accept a larger MDE of 8.0%.");
    }

    #[test]
    fn continue_quotes_the_sample_a_verdict_needs() {
        let mut p = plan(nov(30), Some(nov(30)), false);
        p.tests = vec![planned_success(2000, 0.5)];
        let e = Experiment::new(&["treatment"]).primary(vec![tested("treatment", OPEN)]).plan(p);
        let d = check(e, Recommendation::Continue, None, &["PRIMARY_NOT_SIGNIFICANT", "HOLD_ROLLOUT"]);
        // 1,000 more units at 100 a day: 10 days (the plan's days_to_decision).
        says(
            &d,
            "A verdict needs about 2,000 in `control`, 2,000 in `treatment` (a 5.0% effect on `conversion` with 80% power each); they have 1,000, 1,000. At the current 100 / 100 new units a day, that is 10 days more: expected by 2026-11-30.",
        );
    }

    // Caveats and several variants.

    #[test]
    fn warnings_become_caveats() {
        let e = Experiment::new(&["treatment"]).primary(vec![tested("treatment", WIN)]).data_check(
            CheckName::InvalidValues,
            CheckStatus::Warn,
            "3 NaN values ignored",
        );
        let d = check(
            e,
            Recommendation::Promote,
            Some("treatment"),
            &["PRIMARY_SIGNIFICANT_WIN", "CHECK_WARNING:invalid_values"],
        );
        says(&d, "Caveat (invalid_values): 3 NaN values ignored.");
    }

    #[test]
    fn reason_codes_never_repeat_with_three_variants() {
        // Every variant open on the primary and pending on the same two guardrails.
        let open = |v: &str| harm(tested(v, OPEN), 0.9);
        let pending = |v: &str| harm(tested(v, [-0.01, 0.04]), 0.3);
        let worse = |v: &str| harm(tested(v, WIN), 0.03);
        let variants = ["a", "b", "c"];
        let e = || {
            Experiment::new(&variants)
                .primary(variants.iter().map(|v| open(v)).collect())
                .metric("latency", Role::Guardrail, false, Some(0.02), variants.iter().map(|v| pending(v)).collect())
                .metric("errors", Role::Guardrail, false, None, variants.iter().map(|v| worse(v)).collect())
        };
        let d = check(
            e(),
            Recommendation::Continue,
            None,
            &[
                "PRIMARY_NOT_SIGNIFICANT",
                "GUARDRAIL_NOT_YET_NON_INFERIOR:latency",
                "GUARDRAIL_WORSE_NOT_YET_HARMFUL:errors",
                "HOLD_ROLLOUT",
            ],
        );
        // The reasons name each variant; only the codes are deduplicated.
        says(&d, "For `c`: guardrail `latency` is not yet shown non-inferior");
        check(
            e().plan(plan(nov(20), None, false)),
            Recommendation::Inconclusive,
            None,
            &[
                "HORIZON_REACHED:max_days",
                "GUARDRAIL_NOT_YET_NON_INFERIOR:latency",
                "GUARDRAIL_WORSE_NOT_YET_HARMFUL:errors",
            ],
        );
        // Three winners, each with the same secondary loss: one trade-off, one code per metric.
        let e = Experiment::new(&variants).primary(variants.iter().map(|v| tested(v, WIN)).collect()).metric(
            "revenue",
            Role::Secondary,
            true,
            None,
            variants.iter().map(|v| tested(v, [-0.06, -0.01])).collect(),
        );
        check(
            e,
            Recommendation::Inconclusive,
            Some("a"),
            &["PRIMARY_SIGNIFICANT_WIN", "SECONDARY_SIGNIFICANT_LOSS:revenue", "TRADE_OFF"],
        );
    }
}
