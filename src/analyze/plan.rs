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
    // Shares, not the weights as written: `{ a = 1, b = 1 }` is the same design as 0.5/0.5.
    let total: f64 = experiment.variants.iter().map(|v| v.weight).sum();
    let variants: Vec<_> =
        experiment.variants.iter().map(|v| serde_json::json!([v.name, format!("{:.9}", v.weight / total)])).collect();
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::test_support::{checked_job, experiment_text, job_text, nov};

    /// A 50/50 experiment on conversion with a margin guardrail, started 2026-11-01; each test
    /// edits the experiment's lines.
    fn job_file() -> String {
        let latency = "[[metrics]]\nname = \"latency_breach\"\nkind = \"proportion\"\nevent = \"slow_page\"\nhigher_is_better = false\n";
        let experiment = experiment_text("x", "2026-11-01")
            + "guardrails = [{ metric = \"latency_breach\", margin = 0.02 }]\nmde = 0.05\ndescription = \"checkout redesign\"\n";
        job_text("t", "file:///data", &(latency.to_string() + &experiment))
    }

    /// [`job_file`] with each `(from, to)` edit made.
    fn job(edits: &[(&str, &str)]) -> Job {
        let mut text = job_file();
        for (from, to) in edits {
            assert!(text.contains(from), "{from:?} is not in the job");
            text = text.replace(from, to);
        }
        checked_job(&text, Path::new("t.toml"))
    }

    /// Conversion 10% and latency breaches 5% in every variant, over `n` units each: the
    /// variance of a proportion p is p(1 - p).
    fn pairs(job: &Job, n: u64) -> Vec<Vec<Option<(Summary, Summary)>>> {
        let experiment = &job.experiments[0];
        experiment
            .metrics
            .iter()
            .map(|m| {
                let p = if job.metrics[m.metric].name == "conversion" { 0.10 } else { 0.05 };
                let summary = Summary { n, mean: p, variance: p * (1.0 - p) };
                vec![Some((summary, summary)); experiment.variants.len() - 1]
            })
            .collect()
    }

    /// `per_day[v]` new units of variant `v` on every day from the start to `report_date`.
    fn steady(job: &Job, report_date: NaiveDate, per_day: &[u64]) -> AllocationCounts {
        let start = job.experiments[0].start;
        let days = (report_date - start).num_days() as u64 + 1;
        AllocationCounts {
            units: per_day.iter().map(|n| n * days).collect(),
            by_day: (0..days).map(|d| (start + Days::new(d), per_day.to_vec())).collect(),
            ..AllocationCounts::default()
        }
    }

    /// One run as `analyze` plans it: the needs, the tuning (from the kept design when its
    /// fingerprint is the job's), and the plan with the design to keep.
    struct Look {
        needs: Vec<Vec<Need>>,
        tuning: Vec<f64>,
        tuning_source: TuningSource,
        plan: Plan,
        new_design: Option<Design>,
    }

    fn look(
        job: &Job,
        report_date: NaiveDate,
        counts: &AllocationCounts,
        pairs: &[Vec<Option<(Summary, Summary)>>],
        kept: Option<&Design>,
    ) -> Look {
        let experiment = &job.experiments[0];
        let needs = needs(job, experiment, pairs);
        let fingerprint = fingerprint(job, experiment);
        let (tuning, tuning_source) = tuning(experiment, &needs, kept.filter(|d| d.fingerprint == fingerprint));
        let names: Vec<String> = experiment.variants.iter().map(|v| v.name.clone()).collect();
        let (plan, new_design) =
            plan(experiment, &fingerprint, report_date, counts, &needs, (&tuning, tuning_source), kept, &names);
        Look { needs, tuning, tuning_source, plan, new_design }
    }

    /// A design an earlier run kept.
    fn kept(job: &Job, tuning: f64, quoted: Option<NaiveDate>) -> Design {
        Design {
            experiment: "x".into(),
            fingerprint: fingerprint(job, &job.experiments[0]),
            designed_on: nov(3),
            tuning_source: TuningSource::Design,
            tuning: vec![tuning],
            expected_verdict_date: quoted.map(|_| nov(28)),
            quoted_on: quoted,
        }
    }

    // fingerprint

    /// Whether replacing `from` by `to` in the job changes the experiment's fingerprint.
    #[track_caller]
    fn check(from: &str, to: &str, changes: bool) {
        let (base, edited) = (job(&[]), job(&[(from, to)]));
        let (a, b) = (fingerprint(&base, &base.experiments[0]), fingerprint(&edited, &edited.experiments[0]));
        assert_eq!(a != b, changes, "{from:?} -> {to:?}: {a} vs {b}");
    }

    #[test]
    fn fingerprint_follows_the_settings_a_design_depends_on() {
        check("mde = 0.05", "mde = 0.06", true);
        check("mde = 0.05", "mde = 0.05\nalpha = 0.01", true);
        check("mde = 0.05", "mde = 0.05\npower = 0.9", true);
        check("control = 0.5, treatment = 0.5", "control = 0.9, treatment = 0.1", true);
        check("control = 0.5, treatment = 0.5", "control = 0.5, treatment = 0.25, b = 0.25", true);
        check("margin = 0.02", "margin = 0.03", true);
        check("start = 2026-11-01", "start = 2026-11-02", true);
        check("mde = 0.05", "mde = 0.05\nplanned_units = 40000", true);
    }

    #[test]
    fn fingerprint_ignores_what_a_design_does_not_depend_on() {
        check("description = \"checkout redesign\"", "description = \"new checkout\"", false);
        check("name = \"t\"", "name = \"daily\"", false);
        check("mde = 0.05", "mde = 0.05\nmax_days = 28", false);
        check("mde = 0.05", "mde = 0.05\ncorrection = \"bh\"", false);
    }

    // tuning

    #[test]
    fn tuning_keeps_the_kept_designs() {
        let job = job(&[]);
        let l = look(
            &job,
            nov(10),
            &steady(&job, nov(10), &[500, 500]),
            &pairs(&job, 5000),
            Some(&kept(&job, 1234.0, None)),
        );
        assert_eq!((l.tuning, l.tuning_source), (vec![1234.0], TuningSource::Design));
    }

    #[test]
    fn tuning_splits_planned_units_by_the_weights() {
        // 40,000 planned units; a pair's tuning is its share: 40,000 × (w_c + w_v) / Σw, with
        // Σw = 2 + 1.5 + 0.5 = 4: a 40,000 × 3.5/4 = 35,000, b 40,000 × 2.5/4 = 25,000.
        let job = job(&[(
            "variants = { control = 0.5, treatment = 0.5 }",
            "variants = { control = 2, a = 1.5, b = 0.5 }\nplanned_units = 40000",
        )]);
        let l = look(&job, nov(10), &steady(&job, nov(10), &[400, 300, 100]), &pairs(&job, 5000), None);
        assert_eq!((l.tuning, l.tuning_source), (vec![35_000.0, 25_000.0], TuningSource::PlannedUnits));
    }

    #[test]
    fn tuning_is_the_sample_it_plans() {
        // The fixed point: at N = tuning units of the pair, the always-valid interval tuned to
        // N has exactly the planned power against the MDE (α/k = 0.05; 1 - 0.2/2 = 0.9 with
        // one margin guardrail), on the test that needs the most units.
        let job = job(&[]);
        let l = look(&job, nov(10), &steady(&job, nov(10), &[500, 500]), &pairs(&job, 5000), None);
        assert_eq!(l.tuning_source, TuningSource::Design);
        let tuning = l.tuning[0];
        let n_control = tuning / 2.0;
        let method = Method::AlwaysValid { tuning };
        let power = l.needs[0]
            .iter()
            .map(|need| stats::power(need.contrast.as_ref().expect("sized"), n_control, 0.05, method))
            .fold(f64::INFINITY, f64::min);
        assert!((power - 0.9).abs() < 0.002, "power {power} at tuning {tuning}");
    }

    #[test]
    fn tuning_is_the_default_until_the_data_sizes_the_tests() {
        let job = job(&[]);
        let no_data = vec![vec![None]; 2];
        let l = look(&job, nov(2), &steady(&job, nov(2), &[500, 500]), &no_data, None);
        assert_eq!((l.tuning, l.tuning_source), (vec![stats::DEFAULT_TUNING], TuningSource::Default));
        assert_eq!(l.plan.required_units, vec![None, None]);
        assert_eq!((l.plan.expected_verdict_date, l.new_design), (None, None));
    }

    #[test]
    fn no_tuning_for_fixed_horizon_inference() {
        let job = job(&[("[[experiments]]", "[stats]\nsequential = false\n\n[[experiments]]")]);
        let l = look(&job, nov(10), &steady(&job, nov(10), &[500, 500]), &pairs(&job, 5000), None);
        assert_eq!((l.tuning, l.tuning_source), (vec![], TuningSource::None));
    }

    // plan

    #[test]
    fn required_units_follow_the_real_allocation_ratio() {
        // 90/10 with no guardrail: the treatment gets 1/9 of the control's units, so a test
        // needs n_c in the control and n_c/9 in the treatment.
        let job = job(&[
            ("control = 0.5, treatment = 0.5", "control = 0.9, treatment = 0.1"),
            ("guardrails = [{ metric = \"latency_breach\", margin = 0.02 }]\n", ""),
        ]);
        let l = look(&job, nov(10), &steady(&job, nov(10), &[900, 100]), &pairs(&job, 5000), None);
        let ratio = 0.1 / 0.9;
        // Contrast::relative: mean 0.1, variances 0.1 × 0.9, true effect = distance = MDE.
        let contrast = Contrast::relative(0.1, 0.1 * 0.9, 0.1 * 0.9, 0.05, 0.05, ratio).expect("a contrast");
        assert_eq!(l.needs[0][0].contrast, Some(contrast));
        let n_c = stats::required_control_units(&contrast, 0.05, 0.8, Method::AlwaysValid { tuning: l.tuning[0] })
            .expect("sized");
        let expected = [n_c.ceil() as u64, (n_c * ratio).ceil() as u64];
        assert_eq!(l.plan.tests[0].required_units, expected);
        assert_eq!(l.plan.required_units, vec![Some(expected[0]), Some(expected[1])]);
        assert!(expected[0] > 8 * expected[1] && expected[0] <= 9 * expected[1], "{expected:?}");
    }

    #[test]
    fn each_test_has_the_level_and_power_of_the_rule() {
        // Three variants (k = 2) and one margin guardrail (g = 1): level α/k = 0.025 and power
        // 1 - β/(1 + g) = 1 - 0.2/2 = 0.9, for every one of the 2 × 2 tests.
        let job = job(&[("control = 0.5, treatment = 0.5", "control = 0.34, a = 0.33, b = 0.33")]);
        let l = look(&job, nov(10), &steady(&job, nov(10), &[340, 330, 330]), &pairs(&job, 3000), None);
        let tests: Vec<_> =
            l.plan.tests.iter().map(|t| (t.metric.as_str(), t.variant.as_str(), t.test, t.alpha, t.power)).collect();
        assert_eq!(
            tests,
            vec![
                ("conversion", "a", PlannedTestKind::Success, 0.025, 0.9),
                ("latency_breach", "a", PlannedTestKind::NonInferiority, 0.025, 0.9),
                ("conversion", "b", PlannedTestKind::Success, 0.025, 0.9),
                ("latency_breach", "b", PlannedTestKind::NonInferiority, 0.025, 0.9),
            ]
        );
    }

    #[test]
    fn the_verdict_waits_for_the_slowest_variant() {
        // 90/10 configured, but the treatment gets 80 a day against 900: its missing units at
        // its own inflow take longest. Ten days of data (Nov 1-10) and an inflow over the last 7.
        let job = job(&[("control = 0.5, treatment = 0.5", "control = 0.9, treatment = 0.1")]);
        let counts = steady(&job, nov(10), &[900, 80]);
        let l = look(&job, nov(10), &counts, &pairs(&job, 5000), None);
        assert_eq!((l.plan.inflow_per_day.clone(), l.plan.inflow_days), (vec![900.0, 80.0], 7));
        let need = |v: usize| l.plan.required_units[v].expect("sized");
        let days = [(need(0) - 9000) as f64 / 900.0, (need(1) - 800) as f64 / 80.0];
        assert!(days[1] > days[0], "{days:?}");
        assert_eq!(l.plan.days_to_decision, Some(days[1]));
        assert_eq!(l.plan.expected_verdict_date, Some(nov(10) + Days::new(days[1].ceil() as u64)));
        assert!(!l.plan.sample_reached);
    }

    #[test]
    fn a_sample_in_is_reached_today() {
        let job = job(&[]);
        let l = look(&job, nov(20), &steady(&job, nov(20), &[100_000, 100_000]), &pairs(&job, 5000), None);
        assert!(l.plan.sample_reached);
        assert_eq!((l.plan.days_to_decision, l.plan.expected_verdict_date), (Some(0.0), Some(nov(20))));
        assert!(!l.plan.estimate_is_provisional);
    }

    #[test]
    fn the_first_quote_waits_for_a_week_of_data() {
        // Day 6 of data (Nov 1-6): a design is fixed, its date is provisional and not quoted.
        let job = job(&[]);
        let l = look(&job, nov(6), &steady(&job, nov(6), &[500, 500]), &pairs(&job, 3000), None);
        let design = l.new_design.expect("a design once the tests are sized");
        assert_eq!((design.designed_on, design.quoted_on, design.expected_verdict_date), (nov(6), None, None));
        assert!(l.plan.estimate_is_provisional);
        assert!(l.plan.expected_verdict_date.is_some());
        assert_eq!(l.plan.first_expected_verdict_date, None);
        // Day 7 (QUOTE_AFTER_DAYS): the kept design quotes today's date and keeps its tuning.
        let l = look(&job, nov(7), &steady(&job, nov(7), &[500, 500]), &pairs(&job, 3500), Some(&design));
        let quoted = l.new_design.expect("the design, now quoted");
        assert_eq!((quoted.designed_on, quoted.quoted_on), (nov(6), Some(nov(7))));
        assert_eq!(quoted.expected_verdict_date, l.plan.expected_verdict_date);
        assert_eq!(quoted.tuning, design.tuning);
        assert!(!l.plan.estimate_is_provisional);
        assert_eq!(l.plan.first_expected_verdict_date, l.plan.expected_verdict_date);
    }

    #[test]
    fn a_quoted_design_is_kept() {
        let job = job(&[]);
        let design = kept(&job, 60_000.0, Some(nov(7)));
        let l = look(&job, nov(12), &steady(&job, nov(12), &[500, 500]), &pairs(&job, 6000), Some(&design));
        assert_eq!(l.new_design, None);
        assert_eq!((l.tuning, l.tuning_source), (vec![60_000.0], TuningSource::Design));
        assert_eq!((l.plan.designed_on, l.plan.first_expected_verdict_date), (Some(nov(3)), Some(nov(28))));
    }

    #[test]
    fn a_design_for_other_settings_is_replaced() {
        let job = job(&[]);
        let mut design = kept(&job, 60_000.0, Some(nov(7)));
        design.fingerprint = "0000000000000000".into();
        let l = look(&job, nov(12), &steady(&job, nov(12), &[500, 500]), &pairs(&job, 6000), Some(&design));
        let new = l.new_design.expect("a new design");
        assert_eq!(
            (new.fingerprint.as_str(), new.designed_on),
            (fingerprint(&job, &job.experiments[0]).as_str(), nov(12))
        );
        assert_ne!(new.tuning, vec![60_000.0]);
        assert_eq!(new.quoted_on, Some(nov(12)));
        assert_eq!(l.plan.designed_on, Some(nov(12)));
    }
}
