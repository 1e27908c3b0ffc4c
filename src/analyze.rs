//! Per-variant statistics and data-quality counts -> an [`ExperimentResult`]: fixed-horizon
//! comparisons with corrected p-values (the contract's numbers), and beside them CUPED-adjusted
//! numbers, always-valid (sequential) intervals, the Bayesian view, non-inferiority tests of
//! guardrails, power, the six data-quality checks with SRM localisation, and exploratory
//! breakdowns.
//!
//! Pure: no IO, not async. The recommendation is left to [`crate::decide`].

use chrono::NaiveDate;

use crate::aggregate::{EventTotals, ExperimentAllocation, NO_DIMENSION, UnitStatus, VariantSummaries};
use crate::config::{Experiment, Job, Metric, Role, StatsSettings};
use crate::numbers::{count, percent, pvalue};
use crate::results::*;
use crate::source::Dataset;
use crate::stats::{self, CovariateSummary, GaussianPrior, Summary};

/// Share of an experiment's units exposed to several variants from which the check fails.
pub const MULTI_VARIANT_FAIL_SHARE: f64 = 0.01;
/// Slices shown per dimension in breakdowns; the rest are pooled as `(other)`.
pub const TOP_SLICES: usize = 20;

/// One metric's data after the scan: per-variant statistics of its (capped) per-unit values,
/// and the CUPED covariate statistics when the metric uses CUPED.
#[derive(Debug, Clone)]
pub struct MetricData {
    pub summaries: VariantSummaries,
    pub covariates: Option<Vec<CovariateSummary>>,
    pub cap: Option<CapInfo>,
}

/// The primary metric's statistics per value of one dimension.
#[derive(Debug, Clone)]
pub struct DimensionSlices {
    pub dimension: String,
    /// (value, its per-variant statistics), largest first, `(other)` last.
    pub slices: Vec<(String, VariantSummaries)>,
}

/// Everything known about one experiment after the scan.
pub struct ExperimentData<'a> {
    pub job: &'a Job,
    pub experiment: &'a Experiment,
    pub report_date: NaiveDate,
    pub allocation: &'a ExperimentAllocation,
    pub totals: &'a EventTotals,
    /// Per metric of the experiment, in its metric order.
    pub metrics: &'a [MetricData],
    /// Window dates without a partition.
    pub missing_partitions: &'a [(Dataset, NaiveDate)],
    pub breakdowns: &'a [DimensionSlices],
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
        sequential: s.sequential,
    }
}

/// The sequential tuning of an experiment: its planned total units, else gbstats' default.
pub fn tuning(experiment: &Experiment) -> f64 {
    experiment.planned_units.map_or(stats::DEFAULT_TUNING, |n| n as f64)
}

/// What every comparison of one experiment needs to know.
struct Context<'a> {
    stats: StatsSettings,
    tuning: f64,
    prior: Option<GaussianPrior>,
    per_variant_per_day: Option<f64>,
    n_guardrails: usize,
    control: &'a str,
}

/// Analyses one experiment. The decision is a placeholder until [`crate::decide::recommend`].
pub fn analyze(data: &ExperimentData<'_>) -> ExperimentResult {
    let experiment = data.experiment;
    let stats = experiment.stats;
    let window = window(experiment, data.report_date);
    let units = data.allocation.units_per_variant();
    let units: Vec<u64> = (0..experiment.variants.len()).map(|v| units.get(v).copied().unwrap_or(0)).collect();
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
    let context = Context {
        stats,
        tuning: tuning(experiment),
        prior: stats.prior_stddev.map(|sd| GaussianPrior { mean: 0.0, variance: sd * sd }),
        per_variant_per_day,
        n_guardrails: experiment.metrics.iter().filter(|m| m.role == Role::Guardrail).count(),
        control: &experiment.control().name,
    };

    let mut metrics: Vec<MetricResult> = experiment
        .metrics
        .iter()
        .zip(data.metrics)
        .map(|(m, metric_data)| {
            let metric = &data.job.metrics[m.metric];
            metric_result(&context, experiment, metric, m.role, m.margin, metric_data)
        })
        .collect();
    correct(&mut metrics, stats.correction, stats.alpha);

    let srm = srm_detail(data, &units);
    let checks = checks(data, &units, &variants, &srm);
    let breakdowns = data
        .breakdowns
        .iter()
        .map(|b| breakdown(&context, experiment, &data.job.metrics[experiment.metrics[0].metric], b))
        .collect();
    ExperimentResult {
        id: experiment.id.clone(),
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
        srm,
        breakdowns,
    }
}

fn metric_variants(experiment: &Experiment, summaries: &VariantSummaries) -> Vec<MetricVariant> {
    experiment
        .variants
        .iter()
        .enumerate()
        .map(|(v, spec)| {
            let n = summaries.units(v);
            let summary = summaries.summary(v).filter(|_| n > 0);
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
        .collect()
}

fn metric_result(
    context: &Context<'_>,
    experiment: &Experiment,
    metric: &Metric,
    role: Role,
    margin: Option<f64>,
    data: &MetricData,
) -> MetricResult {
    // CUPED: one theta pooled over all variants (Deng et al. 2013).
    let cuped = data.covariates.as_ref().and_then(|covariates| stats::cuped(covariates).map(|c| (covariates, c)));
    let comparisons = (1..experiment.variants.len())
        .map(|v| {
            let raw = (data.summaries.summary(0), data.summaries.summary(v));
            let adjusted = cuped.as_ref().map(|(covariates, c)| (&covariates[0], &covariates[v], c.theta));
            compare_variant(
                context,
                &experiment.variants[v].name,
                metric,
                role,
                margin,
                raw,
                adjusted,
                data.summaries.units(v),
            )
        })
        .collect();
    MetricResult {
        name: metric.name.clone(),
        kind: metric.kind.name().into(),
        role: role.name().into(),
        higher_is_better: metric.higher_is_better,
        variants: metric_variants(experiment, &data.summaries),
        comparisons,
        margin,
        cuped: cuped.map(|(_, c)| CupedInfo {
            theta: c.theta,
            variance_reduction: c.variance_reduction,
            lookback_days: experiment.stats.cuped_lookback_days,
        }),
        cap: data.cap.clone(),
    }
}

/// The worse-side bound of a relative interval: the lower end when higher is better.
fn worse_bound(ci: [f64; 2], higher_is_better: bool) -> f64 {
    if higher_is_better { ci[0] } else { ci[1] }
}

#[expect(clippy::too_many_arguments, reason = "one call site; a struct would only rename the arguments")]
fn compare_variant(
    context: &Context<'_>,
    variant: &str,
    metric: &Metric,
    role: Role,
    margin: Option<f64>,
    (control, treatment): (Option<Summary>, Option<Summary>),
    adjusted: Option<(&CovariateSummary, &CovariateSummary, f64)>,
    treatment_units: u64,
) -> ComparisonResult {
    let stats = context.stats;
    let (Some(c), Some(t)) = (control, treatment) else {
        let note = if treatment_units == 0 || control.is_none_or(|c| c.n == 0) {
            "a variant has no units"
        } else {
            "the ratio's denominator is 0 in a variant, so the ratio is undefined"
        };
        return empty_comparison(variant, context.control, vec![note.to_string()]);
    };
    // With CUPED, the main numbers are adjusted; sequential and Bayesian views use the
    // adjusted variants centred on the control's covariate mean, so that relative effects are
    // relative to the control's own mean.
    // The treatment mean in the relative delta-method variance: unadjusted, as gbstats.
    let variance_mean_t = adjusted.map_or(t.mean, |(_, tc, _)| tc.mean);
    let (main, unadjusted, c_used, t_used) = match adjusted {
        Some((cc, tc, theta)) => {
            let main = stats::compare_cuped(cc, tc, theta, stats.alpha);
            let raw = stats::compare(&c, &t, stats.alpha);
            let centre = cc.mean_covariate;
            let unadjusted = UnadjustedResult {
                absolute_effect: raw.absolute_effect,
                relative_effect: raw.relative_effect,
                ci_absolute: raw.ci_absolute,
                ci_relative: raw.ci_relative,
                p_value: raw.p_value,
            };
            (main, Some(unadjusted), stats::cuped_adjust(cc, theta, centre), stats::cuped_adjust(tc, theta, centre))
        }
        None => (stats::compare(&c, &t, stats.alpha), None, c, t),
    };
    let sequential = stats.sequential.then(|| {
        let s = stats::compare_sequential_with(&c_used, &t_used, variance_mean_t, stats.alpha, context.tuning);
        SequentialResult {
            ci_absolute: s.ci_absolute,
            ci_relative: s.ci_relative,
            p_value: s.p_value,
            significant: s.p_value.is_some_and(|p| p < stats.alpha),
            tuning: context.tuning,
        }
    });
    let bayesian = stats::compare_bayesian_with(
        &c_used,
        &t_used,
        variance_mean_t,
        stats.alpha,
        context.prior.as_ref(),
        metric.higher_is_better,
    )
    .map(|b| BayesianResult { chance_to_win: b.chance_to_win, risk: b.risk, ci_relative: b.ci_relative });

    // Guardrails: one-sided non-inferiority at alpha (an intersection–union test needs no
    // correction across guardrails; Schultzberg et al. 2024, §4). With sequential on, the bound
    // is the always-valid one.
    let non_inferiority = margin.filter(|_| role == Role::Guardrail).map(|margin| {
        let p_value = stats::noninferiority(&c_used, &t_used, margin, metric.higher_is_better).map(|ni| ni.p_value);
        let one_sided = if stats.sequential {
            stats::compare_sequential(&c_used, &t_used, 2.0 * stats.alpha, context.tuning).ci_relative
        } else {
            stats::compare(&c_used, &t_used, 2.0 * stats.alpha).ci_relative
        };
        let bound = one_sided.map(|ci| worse_bound(ci, metric.higher_is_better));
        let non_inferior = bound.is_some_and(|b| if metric.higher_is_better { b > -margin } else { b < margin });
        NonInferiorityResult { margin, p_value, bound, non_inferior }
    });

    let power = match role {
        Role::Primary => {
            let sample = if stats.sequential {
                stats::sequential_required_units(&c_used, &t_used, stats.mde, stats.alpha, stats.power, context.tuning)
            } else {
                stats::required_units(&c_used, &t_used, stats.mde, stats.alpha, stats.power)
            };
            sample.map(|s| {
                power_result(
                    context,
                    stats.mde,
                    stats.power,
                    s.mde_absolute,
                    s.power_at_current_n,
                    s.required_per_variant,
                    &c_used,
                    &t_used,
                )
            })
        }
        Role::Guardrail => margin.and_then(|margin| {
            // Power is corrected across guardrails: all must show non-inferiority together.
            let target = 1.0 - (1.0 - stats.power) / context.n_guardrails.max(1) as f64;
            stats::noninferiority_units(&c_used, &t_used, margin, stats.alpha, target, metric.higher_is_better).map(
                |s| {
                    power_result(
                        context,
                        margin,
                        target,
                        s.margin_absolute,
                        s.power_at_current_n,
                        s.required_per_variant,
                        &c_used,
                        &t_used,
                    )
                },
            )
        }),
        Role::Secondary => None,
    };

    ComparisonResult {
        variant: variant.to_string(),
        baseline: context.control.to_string(),
        absolute_effect: main.absolute_effect,
        relative_effect: main.relative_effect,
        ci_absolute: main.ci_absolute,
        ci_relative: main.ci_relative,
        p_value: main.p_value,
        p_value_adjusted: None,
        significant: false,
        direction: Direction::Neutral,
        standard_error: main.standard_error,
        df: main.df,
        notes: main.notes.iter().map(|n| n.to_string()).collect(),
        power,
        sequential,
        bayesian,
        unadjusted,
        non_inferiority,
    }
}

#[expect(clippy::too_many_arguments, reason = "a plain constructor of the result fields")]
fn power_result(
    context: &Context<'_>,
    mde: f64,
    target_power: f64,
    mde_absolute: f64,
    power_at_current_n: f64,
    required_units: u64,
    control: &Summary,
    treatment: &Summary,
) -> PowerResult {
    let additional_units = required_units.saturating_sub(control.n.min(treatment.n));
    PowerResult {
        mde,
        mde_absolute,
        target_power,
        power_at_current_n,
        required_units,
        additional_units,
        additional_days: context.per_variant_per_day.map(|per_day| additional_units as f64 / per_day),
    }
}

fn empty_comparison(variant: &str, baseline: &str, notes: Vec<String>) -> ComparisonResult {
    ComparisonResult {
        variant: variant.to_string(),
        baseline: baseline.to_string(),
        absolute_effect: None,
        relative_effect: None,
        ci_absolute: None,
        ci_relative: None,
        p_value: None,
        p_value_adjusted: None,
        significant: false,
        direction: Direction::Neutral,
        standard_error: None,
        df: None,
        notes,
        power: None,
        sequential: None,
        bayesian: None,
        unadjusted: None,
        non_inferiority: None,
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
                c.direction = direction(c.significant, c.absolute_effect, metric.higher_is_better);
            }
        }
    }
}

fn direction(significant: bool, effect: Option<f64>, higher_is_better: bool) -> Direction {
    let up = effect.is_some_and(|d| d > 0.0);
    match (significant, up == higher_is_better) {
        (false, _) => Direction::Neutral,
        (true, true) => Direction::Better,
        (true, false) => Direction::Worse,
    }
}

/// Exploratory per-slice comparisons of the primary metric: fixed-horizon Welch tests, no
/// correction, flagged as exploratory. Never used for the recommendation.
fn breakdown(context: &Context<'_>, experiment: &Experiment, metric: &Metric, data: &DimensionSlices) -> Breakdown {
    let slices = data
        .slices
        .iter()
        .map(|(value, summaries)| {
            let comparisons = (1..experiment.variants.len())
                .map(|v| {
                    let (c, t) = (summaries.summary(0), summaries.summary(v));
                    match (c, t) {
                        (Some(c), Some(t)) => {
                            let comparison = stats::compare(&c, &t, context.stats.alpha);
                            let significant = comparison.p_value.is_some_and(|p| p < context.stats.alpha);
                            let mut result = empty_comparison(
                                &experiment.variants[v].name,
                                context.control,
                                comparison.notes.iter().map(|n| n.to_string()).collect(),
                            );
                            result.absolute_effect = comparison.absolute_effect;
                            result.relative_effect = comparison.relative_effect;
                            result.ci_absolute = comparison.ci_absolute;
                            result.ci_relative = comparison.ci_relative;
                            result.p_value = comparison.p_value;
                            result.standard_error = comparison.standard_error;
                            result.df = comparison.df;
                            result.significant = significant;
                            result.direction =
                                direction(significant, comparison.absolute_effect, metric.higher_is_better);
                            result
                        }
                        _ => empty_comparison(
                            &experiment.variants[v].name,
                            context.control,
                            vec!["a variant has no units in this slice".into()],
                        ),
                    }
                })
                .collect();
            BreakdownSlice {
                value: value.clone(),
                units: (0..experiment.variants.len()).map(|v| summaries.units(v)).sum(),
                variants: metric_variants(experiment, summaries),
                comparisons,
            }
        })
        .collect();
    Breakdown { dimension: data.dimension.clone(), metric: metric.name.clone(), exploratory: true, slices }
}

/// The largest relative deviation of a variant's observed share from its expected weight.
fn max_relative_deviation(units: &[u64], weights: &[f64]) -> Option<f64> {
    let total: u64 = units.iter().sum();
    let weight_sum: f64 = weights.iter().sum();
    (total > 0 && weight_sum > 0.0).then(|| {
        units
            .iter()
            .zip(weights)
            .map(|(&n, &w)| {
                let expected = w / weight_sum;
                ((n as f64 / total as f64) - expected).abs() / expected
            })
            .fold(0.0, f64::max)
    })
}

/// Whether a split is a sample ratio mismatch: statistically (p below the threshold) and
/// practically (a share off by at least `srm_min_deviation`, relative), so that a huge sample
/// with a 0.1% skew does not page anyone.
fn srm_broken(units: &[u64], weights: &[f64], stats: &StatsSettings) -> (Option<f64>, bool) {
    let p = stats::srm_p_value(units, weights);
    let deviation = max_relative_deviation(units, weights).unwrap_or(0.0);
    (p, p.is_some_and(|p| p < stats.srm_p_value) && deviation >= stats.srm_min_deviation)
}

/// The split by day of first exposure and by dimension value, to localise an SRM.
fn srm_detail(data: &ExperimentData<'_>, units: &[u64]) -> SrmDetail {
    let experiment = data.experiment;
    let weights: Vec<f64> = experiment.variants.iter().map(|v| v.weight).collect();
    let n_variants = experiment.variants.len();
    let mut by_day: std::collections::BTreeMap<NaiveDate, Vec<u64>> = std::collections::BTreeMap::new();
    for unit in data.allocation.analyzable() {
        let day =
            chrono::DateTime::from_timestamp_micros(unit.first_micros).map_or(experiment.start, |t| t.date_naive());
        by_day.entry(day).or_insert_with(|| vec![0; n_variants])[unit.variant as usize] += 1;
    }
    let by_day: Vec<SrmSlice> = by_day
        .into_iter()
        .map(|(day, units)| {
            let (p_value, broken) = srm_broken(&units, &weights, &experiment.stats);
            SrmSlice { slice: day.to_string(), units, p_value, broken }
        })
        .collect();
    let first_broken_day = by_day.iter().find(|s| s.broken).and_then(|s| s.slice.parse().ok());
    let mut broken_dimension_values = Vec::new();
    for (d, dimension) in data.job.dimensions.iter().enumerate() {
        let (Some(codes), Some(names)) = (data.allocation.dimensions.get(d), data.allocation.dimension_values.get(d))
        else {
            continue;
        };
        let mut by_value: std::collections::BTreeMap<u16, Vec<u64>> = std::collections::BTreeMap::new();
        for (unit, &code) in data.allocation.units.iter().zip(codes) {
            if unit.status == UnitStatus::Ok {
                by_value.entry(code).or_insert_with(|| vec![0; n_variants])[unit.variant as usize] += 1;
            }
        }
        for (code, units) in by_value {
            let (p_value, broken) = srm_broken(&units, &weights, &experiment.stats);
            if broken {
                let value = if code == NO_DIMENSION {
                    "(missing)"
                } else {
                    names.get(code as usize).map_or("(other)", String::as_str)
                };
                broken_dimension_values.push(SrmSlice {
                    slice: format!("{dimension}={value}"),
                    units,
                    p_value,
                    broken,
                });
            }
        }
    }
    SrmDetail {
        max_relative_deviation: max_relative_deviation(units, &weights),
        by_day,
        first_broken_day,
        broken_dimension_values,
    }
}

fn check(name: &str, status: CheckStatus, p_value: Option<f64>, detail: String) -> Check {
    Check { name: name.into(), status, p_value, detail }
}

/// The six data-quality checks, always all present.
fn checks(data: &ExperimentData<'_>, units: &[u64], variants: &[VariantResult], srm: &SrmDetail) -> Vec<Check> {
    let allocation = data.allocation;
    let experiment = data.experiment;
    let stats = &experiment.stats;
    let mut out = Vec::with_capacity(6);

    let weights: Vec<f64> = experiment.variants.iter().map(|v| v.weight).collect();
    let (p, broken) = srm_broken(units, &weights, stats);
    let split =
        |f: &dyn Fn(&VariantResult) -> f64| variants.iter().map(|v| percent(f(v), 1)).collect::<Vec<_>>().join(" / ");
    out.push(match p {
        None => check("srm", CheckStatus::Pass, None, "not tested: no units".into()),
        Some(p) => {
            let observed = split(&|v| v.observed_share.unwrap_or(0.0));
            let expected = split(&|v| v.expected_weight);
            let deviation = srm.max_relative_deviation.unwrap_or(0.0);
            let verdict = if broken {
                "mismatch"
            } else if p < stats.srm_p_value {
                "statistically detectable but below the practical threshold"
            } else {
                "consistent"
            };
            let mut detail = format!(
                "observed split {observed} vs expected {expected}: {verdict} (chi-square p = {}, threshold {}; largest share deviation {} relative, practical threshold {})",
                pvalue(p),
                stats.srm_p_value,
                percent(deviation, 2),
                percent(stats.srm_min_deviation, 2)
            );
            if broken {
                if let Some(day) = srm.first_broken_day {
                    detail.push_str(&format!("; first broken day: {day}"));
                }
                if !srm.broken_dimension_values.is_empty() {
                    let values: Vec<&str> = srm.broken_dimension_values.iter().map(|s| s.slice.as_str()).collect();
                    detail.push_str(&format!("; broken in {}", values.join(", ")));
                }
            }
            check("srm", if broken { CheckStatus::Fail } else { CheckStatus::Pass }, Some(p), detail)
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
