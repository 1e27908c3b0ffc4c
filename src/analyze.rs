//! Per-variant statistics and data-quality counts -> an [`ExperimentResult`]: comparisons with
//! corrected p-values, sample sizes, and the six data-quality checks.
//!
//! Pure: no IO, not async. The recommendation is left to [`crate::decide`].

use chrono::NaiveDate;

use crate::aggregate::{EventTotals, ExperimentAllocation, UnitStatus, VariantSummaries};
use crate::config::{Experiment, Job, Role};
use crate::numbers::{count, percent, pvalue};
use crate::results::*;
use crate::source::Dataset;
use crate::stats::{self, Summary};

/// Share of an experiment's units exposed to several variants from which the check fails.
pub const MULTI_VARIANT_FAIL_SHARE: f64 = 0.01;

/// Everything known about one experiment after the scan.
pub struct ExperimentData<'a> {
    pub job: &'a Job,
    pub experiment: &'a Experiment,
    pub report_date: NaiveDate,
    pub allocation: &'a ExperimentAllocation,
    pub totals: &'a EventTotals,
    /// Per metric of the experiment, in its metric order.
    pub summaries: &'a [VariantSummaries],
    /// Window dates without a partition.
    pub missing_partitions: &'a [(Dataset, NaiveDate)],
}

/// The analysis window of an experiment on a report date.
pub fn window(experiment: &Experiment, report_date: NaiveDate) -> Window {
    let days = (report_date - experiment.start).num_days() + 1;
    Window { start: experiment.start, end: report_date, days: days.max(0) as u32 }
}

pub fn settings(experiment: &Experiment) -> Settings {
    let s = experiment.stats;
    Settings {
        alpha: s.alpha,
        power: s.power,
        correction: s.correction.name().into(),
        srm_p_value: s.srm_p_value,
        mde: s.mde,
    }
}

/// Analyses one experiment. The decision is a placeholder until [`crate::decide::recommend`].
pub fn analyze(data: &ExperimentData<'_>) -> ExperimentResult {
    let experiment = data.experiment;
    let stats = experiment.stats;
    let window = window(experiment, data.report_date);
    let units = data.allocation.units_per_variant();
    let total_units: u64 = units.iter().sum();
    let weight_sum: f64 = experiment.variants.iter().map(|v| v.weight).sum();
    let variants: Vec<VariantResult> = experiment
        .variants
        .iter()
        .zip(&units)
        .map(|(v, &n)| VariantResult {
            name: v.name.clone(),
            units: n,
            expected_weight: v.weight / weight_sum,
            observed_share: (total_units > 0).then(|| n as f64 / total_units as f64),
        })
        .collect();
    let per_variant_per_day = (window.days > 0 && total_units > 0)
        .then(|| total_units as f64 / experiment.variants.len() as f64 / window.days as f64);

    let mut metrics: Vec<MetricResult> = experiment
        .metrics
        .iter()
        .zip(data.summaries)
        .map(|(m, summaries)| {
            let metric = &data.job.metrics[m.metric];
            let summary_of = |v: usize| summaries.summary(v);
            let variant_rows = experiment
                .variants
                .iter()
                .enumerate()
                .map(|(v, spec)| {
                    let n = summaries.units(v);
                    let summary = summary_of(v).filter(|_| n > 0);
                    let ratio = match summaries {
                        VariantSummaries::Ratio(r) if n > 0 => Some(r[v]),
                        _ => None,
                    };
                    MetricVariant {
                        variant: spec.name.clone(),
                        units: n,
                        mean: summary.map(|s| s.mean),
                        variance: summary.map(|s| s.variance),
                        numerator_mean: ratio.map(|r| r.mean_numerator),
                        denominator_mean: ratio.map(|r| r.mean_denominator),
                    }
                })
                .collect();
            let comparisons = (1..experiment.variants.len())
                .map(|v| {
                    compare_variant(
                        summary_of(0),
                        summary_of(v),
                        summaries.units(v),
                        &experiment.variants[v].name,
                        &experiment.control().name,
                        m.role,
                        stats,
                        per_variant_per_day,
                    )
                })
                .collect();
            MetricResult {
                name: metric.name.clone(),
                kind: metric.kind.name().into(),
                role: m.role.name().into(),
                higher_is_better: metric.higher_is_better,
                variants: variant_rows,
                comparisons,
            }
        })
        .collect();
    correct(&mut metrics, stats.correction, stats.alpha);

    let checks = checks(data, &units, &variants);
    ExperimentResult {
        id: experiment.id.clone(),
        status: Status::Ok,
        error: None,
        decision: Decision { recommendation: Recommendation::Inconclusive, variant: None, reasons: vec![] },
        checks,
        variants,
        metrics,
        window,
        settings: settings(experiment),
        traffic: Traffic {
            units_per_variant_per_day: per_variant_per_day,
            exposure_rows: data.allocation.exposure_rows,
            counted_events: data.totals.counted_events,
            excluded_units: data.allocation.units.len() as u64 - total_units,
        },
    }
}

#[expect(clippy::too_many_arguments, reason = "one call site; a struct would only rename the arguments")]
fn compare_variant(
    control: Option<Summary>,
    treatment: Option<Summary>,
    treatment_units: u64,
    variant: &str,
    baseline: &str,
    role: Role,
    stats: crate::config::StatsSettings,
    per_variant_per_day: Option<f64>,
) -> ComparisonResult {
    let (comparison, notes) = match (control, treatment) {
        (Some(c), Some(t)) => {
            let comparison = stats::compare(&c, &t, stats.alpha);
            let notes = comparison.notes.iter().map(|n| n.to_string()).collect();
            (comparison, notes)
        }
        _ => {
            let note = if treatment_units == 0 || control.is_none_or(|c| c.n == 0) {
                "a variant has no units"
            } else {
                "the ratio's denominator is 0 in a variant, so the ratio is undefined"
            };
            (stats::Comparison::default(), vec![note.to_string()])
        }
    };
    let sample_size = match (role, control, treatment) {
        (Role::Primary | Role::Guardrail, Some(c), Some(t)) => {
            stats::required_units(&c, &t, stats.mde, stats.alpha, stats.power).map(|s| {
                let have = c.n.min(t.n);
                let additional = s.required_per_variant.saturating_sub(have);
                SampleSizeResult {
                    mde: stats.mde,
                    mde_absolute: s.mde_absolute,
                    power_at_current_n: s.power_at_current_n,
                    required_units: s.required_per_variant,
                    additional_units: additional,
                    additional_days: per_variant_per_day.map(|per_day| additional as f64 / per_day),
                }
            })
        }
        _ => None,
    };
    ComparisonResult {
        variant: variant.to_string(),
        baseline: baseline.to_string(),
        absolute_effect: comparison.absolute_effect,
        relative_effect: comparison.relative_effect,
        ci_absolute: comparison.ci_absolute,
        ci_relative: comparison.ci_relative,
        p_value: comparison.p_value,
        p_value_adjusted: None,
        significant: false,
        direction: Direction::Neutral,
        standard_error: comparison.standard_error,
        df: comparison.df,
        notes,
        sample_size,
    }
}

/// Adjusts the p-values of all comparisons of one experiment together (those without a
/// p-value left out), then marks significance and direction.
fn correct(metrics: &mut [MetricResult], correction: crate::config::Correction, alpha: f64) {
    let p_values: Vec<f64> = metrics.iter().flat_map(|m| m.comparisons.iter().filter_map(|c| c.p_value)).collect();
    let mut adjusted = stats::adjust(&p_values, correction).into_iter();
    for metric in metrics {
        for c in &mut metric.comparisons {
            if c.p_value.is_some() {
                let p = adjusted.next().expect("one adjusted p-value per p-value");
                c.p_value_adjusted = Some(p);
                c.significant = p < alpha;
                let up = c.absolute_effect.is_some_and(|d| d > 0.0);
                c.direction = match (c.significant, up == metric.higher_is_better) {
                    (false, _) => Direction::Neutral,
                    (true, true) => Direction::Better,
                    (true, false) => Direction::Worse,
                };
            }
        }
    }
}

fn check(name: &str, status: CheckStatus, p_value: Option<f64>, detail: String) -> Check {
    Check { name: name.into(), status, p_value, detail }
}

/// The six data-quality checks, always all present.
fn checks(data: &ExperimentData<'_>, units: &[u64], variants: &[VariantResult]) -> Vec<Check> {
    let allocation = data.allocation;
    let experiment = data.experiment;
    let mut out = Vec::with_capacity(6);

    let weights: Vec<f64> = experiment.variants.iter().map(|v| v.weight).collect();
    let srm = stats::srm_p_value(units, &weights);
    let split =
        |f: &dyn Fn(&VariantResult) -> f64| variants.iter().map(|v| percent(f(v), 1)).collect::<Vec<_>>().join(" / ");
    out.push(match srm {
        None => check("srm", CheckStatus::Pass, None, "not tested: no units".into()),
        Some(p) => {
            let observed = split(&|v| v.observed_share.unwrap_or(0.0));
            let expected = split(&|v| v.expected_weight);
            let status = if p < experiment.stats.srm_p_value { CheckStatus::Fail } else { CheckStatus::Pass };
            let verdict = if status == CheckStatus::Fail { "mismatch" } else { "consistent" };
            let detail = format!(
                "observed split {observed} vs expected {expected}: {verdict} (chi-square p = {}, threshold {})",
                pvalue(p),
                experiment.stats.srm_p_value
            );
            check("srm", status, Some(p), detail)
        }
    });

    let all_units = allocation.units.len() as u64;
    let multi = allocation.count(UnitStatus::MultiVariant);
    out.push(if multi == 0 {
        check("multi_variant_units", CheckStatus::Pass, None, "no unit was exposed to more than one variant".into())
    } else {
        let share = multi as f64 / all_units as f64;
        let status = if share >= MULTI_VARIANT_FAIL_SHARE { CheckStatus::Fail } else { CheckStatus::Warn };
        check(
            "multi_variant_units",
            status,
            None,
            format!(
                "{} of {} units ({}) were exposed to more than one variant and are excluded",
                count(multi),
                count(all_units),
                percent(share, 2)
            ),
        )
    });

    let invalid = data.totals.invalid_values;
    out.push(if invalid == 0 {
        check("invalid_values", CheckStatus::Pass, None, "no NaN or infinite event values".into())
    } else {
        check(
            "invalid_values",
            CheckStatus::Warn,
            None,
            format!(
                "{} of {} counted events had a NaN or infinite value; they count as events without a value",
                count(invalid),
                count(data.totals.counted_events)
            ),
        )
    });

    let unknown_units = allocation.count(UnitStatus::UnknownVariant);
    let unknown_names = allocation.unknown_variants();
    out.push(if unknown_names.is_empty() {
        check("unknown_variant", CheckStatus::Pass, None, "every variant in the data is configured".into())
    } else {
        let names = unknown_names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
        check(
            "unknown_variant",
            CheckStatus::Warn,
            None,
            format!(
                "variants {names} are in the data but not in the job file; {} units only in them are excluded",
                count(unknown_units)
            ),
        )
    });

    let missing: Vec<&str> = variants.iter().filter(|v| v.units == 0).map(|v| v.name.as_str()).collect();
    out.push(if missing.is_empty() {
        check("missing_variant", CheckStatus::Pass, None, "every configured variant has units".into())
    } else {
        let names = missing.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
        check(
            "missing_variant",
            CheckStatus::Fail,
            None,
            format!("configured variants {names} have no units in the window"),
        )
    });

    let mut missing_dates: Vec<String> = data
        .missing_partitions
        .iter()
        .filter(|(_, date)| experiment.start <= *date && *date <= data.report_date)
        .map(|(dataset, date)| format!("{dataset} {date}"))
        .collect();
    missing_dates.sort();
    out.push(if missing_dates.is_empty() {
        check("missing_partitions", CheckStatus::Pass, None, "every date of the window has exposures and events".into())
    } else {
        check(
            "missing_partitions",
            CheckStatus::Warn,
            None,
            format!("no partition for {}: figures for those days are missing", missing_dates.join(", ")),
        )
    });
    out
}
