//! The sample a recommendation needs: every test the rule must pass (the primary's success
//! test and each margin guardrail's non-inferiority test, per treatment variant), the units
//! each needs at the real allocation ratio, when each variant's own inflow brings them, and the
//! always-valid tuning fixed by the first run that could compute it.
//!
//! Levels and power follow the rule in [`crate::decide`]: every test reads the interval at
//! `1 - alpha/k` (k treatment variants); the rule's power `1 - β` is split over the tests one
//! variant must all pass, `1 - β/(1 + g)` each with `g` margin guardrails (Schultzberg,
//! Ankargren & Frånberg 2024, "Risk-aware product decisions in A/B tests with multiple
//! metrics", arXiv:2402.11609, §4: the decision needs every test to reject, so their type II
//! errors add up). Pure: no IO.

use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::aggregate::AllocationCounts;
use crate::config::{Cap, Experiment, Job, MetricKind, Role};
use crate::results::{Plan, PlannedTest, PlannedTestKind, TuningSource};
use crate::stats::{self, Contrast, Method, Summary};

/// Days of first exposures that the inflow of new units is averaged over.
pub const INFLOW_DAYS: u32 = 7;
/// Days of data before a verdict date is quoted as the plan's: a full weekly cycle of traffic,
/// and units old enough that their metrics have mostly arrived (early looks see too few events
/// per unit, which overstates the sample needed). Earlier dates are shown as provisional.
pub const QUOTE_AFTER_DAYS: u32 = 7;
/// Fixed-point rounds for a tuning that equals the sample it plans (it changes by < 1% after
/// three or four).
const TUNING_ROUNDS: usize = 8;

/// What a first run fixes and later runs keep: the always-valid tuning (a confidence sequence
/// is valid for any tuning fixed in advance, not for one that moves with the data) and the
/// verdict date first quoted. The run ledger stores it beside its records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Design {
    pub experiment: String,
    /// Digest of the settings the design depends on ([`fingerprint`]); a design whose digest
    /// is not the job's is made again.
    pub fingerprint: String,
    pub designed_on: NaiveDate,
    pub tuning_source: TuningSource,
    /// Per treatment variant, in variant order: the tuning of its comparisons (total units of
    /// the control and that variant); empty for fixed-horizon inference.
    pub tuning: Vec<f64>,
    /// The verdict date quoted first, once the experiment had [`QUOTE_AFTER_DAYS`] days of
    /// data (or its whole sample earlier), and the report date that quoted it.
    pub expected_verdict_date: Option<NaiveDate>,
    pub quoted_on: Option<NaiveDate>,
}

/// Digest of everything a design depends on, from a stable serialization.
pub fn fingerprint(job: &Job, experiment: &Experiment) -> String {
    let s = &experiment.stats;
    let metrics: Vec<_> = experiment
        .metrics
        .iter()
        .map(|m| {
            let metric = &job.metrics[m.metric];
            let event = |e: &crate::config::EventAggregate| format!("{}:{}", e.event, e.aggregate.name());
            let definition = match &metric.kind {
                MetricKind::Proportion { event } => vec![event.clone()],
                MetricKind::Mean(e) => vec![event(e)],
                MetricKind::Ratio { numerator, denominator } => vec![event(numerator), event(denominator)],
            };
            let cap = metric.cap.map(|cap| match cap {
                Cap::Absolute(x) => format!("absolute:{x}"),
                Cap::Percentile(q) => format!("percentile:{q}"),
            });
            serde_json::json!({
                "name": metric.name, "kind": metric.kind.name(), "definition": definition, "cap": cap,
                "role": m.role.name(), "margin": m.margin, "higher_is_better": metric.higher_is_better,
                "cuped": metric.cuped,
            })
        })
        .collect();
    let variants: Vec<_> = experiment.variants.iter().map(|v| serde_json::json!([v.name, v.weight])).collect();
    let settings = serde_json::json!({
        "variants": variants, "start": experiment.start.to_string(), "metrics": metrics,
        "alpha": s.alpha, "power": s.power, "mde": s.mde, "sequential": s.sequential,
        "planned_units": experiment.planned_units,
    });
    let digest = Sha256::digest(settings.to_string().as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// One test the rule needs for one treatment variant.
#[derive(Debug, Clone)]
pub struct Need {
    pub metric: String,
    pub test: PlannedTestKind,
    /// The MDE or margin.
    pub effect: f64,
    /// `None` when the data cannot size it yet (no variance, a control mean of 0).
    pub contrast: Option<Contrast>,
}

/// The tests of every treatment variant (index 0 is the first treatment), from the summaries
/// the tests run on: `pairs[m][v]` is metric `m`'s (control, treatment `v + 1`).
pub fn needs(job: &Job, experiment: &Experiment, pairs: &[Vec<Option<(Summary, Summary)>>]) -> Vec<Vec<Need>> {
    let weights: Vec<f64> = experiment.variants.iter().map(|v| v.weight).collect();
    (1..experiment.variants.len())
        .map(|v| {
            let ratio = weights[v] / weights[0];
            experiment
                .metrics
                .iter()
                .zip(pairs)
                .filter_map(|(m, pairs)| {
                    let (test, effect, true_effect) = match (m.role, m.margin) {
                        (Role::Primary, _) => (PlannedTestKind::Success, experiment.stats.mde, experiment.stats.mde),
                        (Role::Guardrail, Some(margin)) if margin > 0.0 => {
                            (PlannedTestKind::NonInferiority, margin, 0.0)
                        }
                        _ => return None,
                    };
                    let contrast = pairs[v - 1].and_then(|(c, t)| {
                        Contrast::relative(c.mean, c.variance, t.variance, true_effect, effect, ratio)
                    });
                    Some(Need { metric: job.metrics[m.metric].name.clone(), test, effect, contrast })
                })
                .collect()
        })
        .collect()
}

/// Level and power of each planned test.
fn levels(experiment: &Experiment, needs: &[Vec<Need>]) -> (f64, f64) {
    let k = needs.len().max(1) as f64;
    let guardrails =
        needs.first().map_or(0, |n| n.iter().filter(|n| n.test == PlannedTestKind::NonInferiority).count());
    let s = &experiment.stats;
    (s.alpha / k, 1.0 - (1.0 - s.power) / (1 + guardrails) as f64)
}

/// Control units one variant's tests need under `method`: the most any of them needs.
fn control_units(needs: &[Need], alpha: f64, power: f64, method: Method) -> Option<f64> {
    let mut most: Option<f64> = None;
    for need in needs {
        let n = stats::required_control_units(need.contrast.as_ref()?, alpha, power, method)?;
        most = Some(most.map_or(n, |m| m.max(n)));
    }
    most
}

/// The always-valid tuning of each treatment variant's comparisons, where it comes from, and
/// whether this run may fix a design: the kept design's; else `planned_units` split by the
/// configured weights; else the planned sample of the tests as the data size them now (the
/// total units of the pair at which the interval reaches the planned power, found as a fixed
/// point); else gbstats' default until the data can size the tests.
pub fn tuning(experiment: &Experiment, needs: &[Vec<Need>], kept: Option<&Design>) -> (Vec<f64>, TuningSource) {
    if !experiment.stats.sequential {
        return (Vec::new(), TuningSource::None);
    }
    if let Some(design) = kept.filter(|d| d.tuning.len() == needs.len()) {
        return (design.tuning.clone(), design.tuning_source);
    }
    let weights: Vec<f64> = experiment.variants.iter().map(|v| v.weight).collect();
    let total_weight: f64 = weights.iter().sum();
    if let Some(planned) = experiment.planned_units {
        let tuning = (1..weights.len()).map(|v| planned as f64 * (weights[0] + weights[v]) / total_weight).collect();
        return (tuning, TuningSource::PlannedUnits);
    }
    let (alpha, power) = levels(experiment, needs);
    let designed: Option<Vec<f64>> = needs
        .iter()
        .enumerate()
        .map(|(i, needs)| {
            let ratio = weights[i + 1] / weights[0];
            let fixed = control_units(needs, alpha, power, Method::FixedHorizon)?;
            let mut tuning = 1.5 * fixed * (1.0 + ratio);
            for _ in 0..TUNING_ROUNDS {
                let next = control_units(needs, alpha, power, Method::AlwaysValid { tuning })? * (1.0 + ratio);
                let settled = (next - tuning).abs() <= 0.001 * tuning;
                tuning = next;
                if settled {
                    break;
                }
            }
            Some(tuning.max(2.0))
        })
        .collect();
    match designed {
        Some(tuning) if !tuning.is_empty() => (tuning, TuningSource::Design),
        _ => (vec![stats::DEFAULT_TUNING; needs.len()], TuningSource::Default),
    }
}

/// The method of one treatment variant's comparisons.
pub fn method(tuning: &[f64], variant: usize) -> Method {
    match tuning.get(variant) {
        Some(&tuning) => Method::AlwaysValid { tuning },
        None => Method::FixedHorizon,
    }
}

/// Where the experiment stands on `report_date`, and the design to keep when this run makes
/// one (none was kept, or the kept one no longer fits the job).
#[expect(clippy::too_many_arguments, reason = "one call site; the analysis's own inputs")]
pub fn plan(
    experiment: &Experiment,
    fingerprint: &str,
    report_date: NaiveDate,
    counts: &AllocationCounts,
    needs: &[Vec<Need>],
    (tuning, tuning_source): (&[f64], TuningSource),
    kept: Option<&Design>,
    variant_names: &[String],
) -> (Plan, Option<Design>) {
    let (alpha, power) = levels(experiment, needs);
    let n_variants = experiment.variants.len();
    let units = |v: usize| counts.units.get(v).copied().unwrap_or(0);
    let weights: Vec<f64> = experiment.variants.iter().map(|v| v.weight).collect();
    let mut tests = Vec::new();
    let mut required: Vec<Option<u64>> = vec![Some(0); n_variants];
    for (i, needs) in needs.iter().enumerate() {
        let v = i + 1;
        let ratio = weights[v] / weights[0];
        let method = method(tuning, i);
        for need in needs {
            let sized = need.contrast.as_ref().and_then(|contrast| {
                let n_c = stats::required_control_units(contrast, alpha, power, method)?;
                let now = stats::power(contrast, units(0).min((units(v) as f64 / ratio) as u64) as f64, alpha, method);
                Some(([n_c.ceil() as u64, (n_c * ratio).ceil() as u64], now))
            });
            match sized {
                Some((units_needed, power_now)) => {
                    for (slot, n) in [(0, units_needed[0]), (v, units_needed[1])] {
                        required[slot] = required[slot].map(|r| r.max(n));
                    }
                    tests.push(PlannedTest {
                        metric: need.metric.clone(),
                        variant: variant_names[v].clone(),
                        test: need.test,
                        effect: need.effect,
                        alpha,
                        power,
                        required_units: units_needed,
                        power_at_current_n: power_now,
                    });
                }
                None => {
                    required[0] = None;
                    required[v] = None;
                }
            }
        }
    }
    if tests.is_empty() {
        required = vec![None; n_variants];
    }

    let (inflow_per_day, inflow_days) = counts.inflow(report_date, INFLOW_DAYS, experiment.start);
    let days_to_decision = required.iter().enumerate().try_fold(0.0f64, |most, (v, need)| {
        let missing = need.map(|n| n.saturating_sub(units(v)))?;
        if missing == 0 {
            return Some(most);
        }
        let per_day = inflow_per_day.get(v).copied().filter(|x| *x > 0.0)?;
        Some(most.max(missing as f64 / per_day))
    });
    let sample_reached = required.iter().enumerate().all(|(v, need)| need.is_some_and(|n| units(v) >= n));
    let expected_verdict_date =
        days_to_decision.and_then(|d| report_date.checked_add_days(Days::new(d.ceil().min(1e6) as u64)));
    let last_day = experiment
        .start
        .checked_add_days(Days::new(u64::from(experiment.stats.max_days.max(1)) - 1))
        .unwrap_or(experiment.start);
    let feasible_mde = expected_verdict_date
        .is_none_or(|date| date > last_day)
        .then(|| feasible_mde(experiment, needs, counts, report_date, last_day, &inflow_per_day, tuning, alpha, power))
        .flatten();

    let units_to_settle = units_to_settle(experiment, needs, tuning, alpha);

    let window_days = (report_date - experiment.start).num_days() + 1;
    let quotable = (expected_verdict_date.is_some() && window_days >= i64::from(QUOTE_AFTER_DAYS)) || sample_reached;
    let kept = kept.filter(|d| d.fingerprint == fingerprint && d.tuning.len() == tuning.len());
    let quote = |design: &mut Design| {
        if design.quoted_on.is_none() && quotable {
            design.expected_verdict_date = expected_verdict_date.or(Some(report_date));
            design.quoted_on = Some(report_date);
        }
    };
    let new_design = match kept {
        // Kept, and quoted already or still not quotable: nothing to keep anew.
        Some(d) if d.quoted_on.is_some() || !quotable => None,
        Some(d) => {
            let mut design = d.clone();
            quote(&mut design);
            Some(design)
        }
        // A design is fixed once the data can size every test.
        None if expected_verdict_date.is_some() || sample_reached => {
            let mut design = Design {
                experiment: experiment.id.clone(),
                fingerprint: fingerprint.to_string(),
                designed_on: report_date,
                tuning_source,
                tuning: tuning.to_vec(),
                expected_verdict_date: None,
                quoted_on: None,
            };
            quote(&mut design);
            Some(design)
        }
        None => None,
    };
    let design = new_design.as_ref().or(kept);
    let plan = Plan {
        tuning_source,
        designed_on: design.map(|d| d.designed_on),
        first_expected_verdict_date: design.and_then(|d| d.expected_verdict_date),
        estimate_is_provisional: window_days < i64::from(QUOTE_AFTER_DAYS) && !sample_reached,
        tests,
        required_units: required,
        inflow_per_day,
        inflow_days,
        days_to_decision,
        expected_verdict_date,
        sample_reached,
        last_day,
        feasible_mde,
        units_to_settle,
    };
    (plan, new_design)
}

/// Units per variant at which every primary interval is at most the MDE wide (half-width
/// MDE/2), from the success tests' variance terms.
fn units_to_settle(experiment: &Experiment, needs: &[Vec<Need>], tuning: &[f64], alpha: f64) -> Vec<Option<u64>> {
    let weights: Vec<f64> = experiment.variants.iter().map(|v| v.weight).collect();
    let mut units: Vec<Option<u64>> = vec![Some(0); weights.len()];
    for (i, needs) in needs.iter().enumerate() {
        let ratio = weights[i + 1] / weights[0];
        let n_control = needs.iter().find(|n| n.test == PlannedTestKind::Success).and_then(|need| {
            let contrast = need.contrast.as_ref()?;
            stats::control_units_for_half_width(contrast, contrast.distance / 2.0, alpha, method(tuning, i))
        });
        match n_control {
            Some(n) => {
                units[0] = units[0].map(|u| u.max(n.ceil() as u64));
                units[i + 1] = units[i + 1].map(|u| u.max((n * ratio).ceil() as u64));
            }
            None => {
                units[0] = None;
                units[i + 1] = None;
            }
        }
    }
    units
}

/// The smallest relative effect on the primary that the units reachable by `last_day` detect
/// with the planned power, over every treatment variant.
#[expect(clippy::too_many_arguments, reason = "one call site; the plan's own inputs")]
fn feasible_mde(
    experiment: &Experiment,
    needs: &[Vec<Need>],
    counts: &AllocationCounts,
    report_date: NaiveDate,
    last_day: NaiveDate,
    inflow_per_day: &[f64],
    tuning: &[f64],
    alpha: f64,
    power: f64,
) -> Option<f64> {
    let days_left = (last_day - report_date).num_days().max(0) as f64;
    let reachable = |v: usize| {
        counts.units.get(v).copied().unwrap_or(0) as f64 + days_left * inflow_per_day.get(v).copied().unwrap_or(0.0)
    };
    let weights: Vec<f64> = experiment.variants.iter().map(|v| v.weight).collect();
    let mut most: Option<f64> = None;
    for (i, needs) in needs.iter().enumerate() {
        let ratio = weights[i + 1] / weights[0];
        let n_control = reachable(0).min(reachable(i + 1) / ratio);
        let need = needs.iter().find(|n| n.test == PlannedTestKind::Success)?;
        let distance = stats::detectable_distance(need.contrast.as_ref()?, n_control, alpha, power, method(tuning, i))?;
        most = Some(most.map_or(distance, |m| m.max(distance)));
    }
    most
}
