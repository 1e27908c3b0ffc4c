//! Per-variant statistics and data-quality counts -> an [`Analyzed`] experiment: fixed-horizon
//! comparisons with corrected p-values (the contract's numbers), and beside them the test the
//! recommendation reads ([`Inference`]: always-valid by default), CUPED-adjusted numbers, the
//! Bayesian view, non-inferiority of guardrails, the plan (units and days the verdict needs,
//! [`plan`]), the six data-quality checks with SRM localisation, and exploratory breakdowns.
//!
//! Pure: no IO, not async. The recommendation is left to [`crate::decide`], which turns the
//! [`Analyzed`] experiment into its result.

pub mod plan;

use chrono::NaiveDate;

use crate::aggregate::{AllocationCounts, VariantSummaries};
pub use crate::aggregate::{DimensionSlices, MetricData};
use crate::config::Dataset;
use crate::config::{Experiment, Job, Metric, Role, StatsSettings};
use crate::numbers::{count, percent, pvalue};
use crate::results::*;
use crate::stats::{self, CovariateSummary, Effect, GaussianPrior, Method, Scale, Summary};

pub use plan::Design;

/// Share of an experiment's units exposed to several variants from which the check fails.
pub const MULTI_VARIANT_FAIL_SHARE: f64 = 0.01;
/// Everything known about one experiment after the scan.
pub struct ExperimentData<'a> {
    pub job: &'a Job,
    pub experiment: &'a Experiment,
    pub report_date: NaiveDate,
    pub allocation: &'a AllocationCounts,
    /// Events that counted toward a metric, and those among them with a NaN or infinite value.
    pub counted_events: u64,
    pub invalid_values: u64,
    /// Per metric of the experiment, in its metric order.
    pub metrics: &'a [MetricData],
    /// Window dates without a partition.
    pub missing_partitions: &'a [(Dataset, NaiveDate)],
    pub breakdowns: &'a [DimensionSlices],
    /// The design an earlier run fixed, when there is one.
    pub design: Option<&'a Design>,
}

/// An analysed experiment, and the design this run fixed when it made one (to keep).
pub struct Analysis {
    pub result: Analyzed,
    pub new_design: Option<Design>,
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
        correction: s.correction,
        srm_p_value: s.srm_p_value,
        mde: s.mde,
        sequential: s.sequential,
        max_days: s.max_days,
    }
}

/// One metric's comparison of one treatment variant, before any test: the summaries the tests
/// run on (CUPED-adjusted when the metric uses CUPED) and the raw ones.
#[derive(Debug, Clone, Copy)]
struct Pair {
    raw: (Option<Summary>, Option<Summary>),
    /// With CUPED: both variants' covariate moments and this pair's θ.
    cuped: Option<(CovariateSummary, CovariateSummary, f64)>,
    /// The summaries every test reads.
    used: Option<(Summary, Summary)>,
    /// The treatment mean in the relative variance (unadjusted under CUPED, as gbstats).
    variance_mean_t: f64,
}

fn pairs(experiment: &Experiment, data: &MetricData) -> Vec<Pair> {
    (1..experiment.variants.len())
        .map(|v| {
            let raw = (data.summaries.summary(0), data.summaries.summary(v));
            // CUPED: θ pooled over the pair's two variants, as gbstats' pairwise tests.
            let cuped = data.covariates.as_ref().and_then(|covariates| {
                let (cc, tc) = (covariates[0], covariates[v]);
                stats::cuped(&[cc, tc]).map(|c| (cc, tc, c.theta))
            });
            let (used, variance_mean_t) = match (raw, cuped) {
                ((Some(_), Some(_)), Some((cc, tc, theta))) => {
                    // Centred on the control's covariate mean, so the control's adjusted mean
                    // is its own and relative effects stay on the metric's scale.
                    let centre = cc.mean_covariate;
                    (Some((stats::cuped_adjust(&cc, theta, centre), stats::cuped_adjust(&tc, theta, centre))), tc.mean)
                }
                ((Some(c), Some(t)), None) => (Some((c, t)), t.mean),
                _ => (None, 0.0),
            };
            Pair { raw, cuped, used, variance_mean_t }
        })
        .collect()
}

/// What every comparison of one experiment needs to know.
struct Context<'a> {
    stats: StatsSettings,
    /// The level every decision interval is drawn at: `alpha / k`, k treatment variants.
    alpha_k: f64,
    tuning: &'a [f64],
    prior: Option<GaussianPrior>,
    control: &'a str,
}

/// Analyses one experiment; [`crate::decide`] then recommends on it.
pub fn analyze(data: &ExperimentData<'_>) -> Analysis {
    let experiment = data.experiment;
    let stats = experiment.stats;
    let window = window(experiment, data.report_date);
    let n_variants = experiment.variants.len();
    let units: Vec<u64> = (0..n_variants).map(|v| data.allocation.units.get(v).copied().unwrap_or(0)).collect();
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
    let per_variant_per_day =
        (window.days > 0 && total_units > 0).then(|| total_units as f64 / n_variants as f64 / f64::from(window.days));

    let pairs: Vec<Vec<Pair>> = data.metrics.iter().map(|m| pairs(experiment, m)).collect();
    let used: Vec<Vec<Option<(Summary, Summary)>>> =
        pairs.iter().map(|p| p.iter().map(|pair| pair.used).collect()).collect();
    let needs = plan::needs(data.job, experiment, &used);
    let fingerprint = plan::fingerprint(data.job, experiment);
    let kept = data.design.filter(|d| d.fingerprint == fingerprint);
    let (tuning, tuning_source) = plan::tuning(experiment, &needs, kept);
    let variant_names: Vec<String> = experiment.variants.iter().map(|v| v.name.clone()).collect();
    let (plan, new_design) = plan::plan(
        experiment,
        &fingerprint,
        data.report_date,
        data.allocation,
        &needs,
        (&tuning, tuning_source),
        kept,
        &variant_names,
    );

    let context = Context {
        stats,
        alpha_k: stats.alpha / (n_variants.max(2) - 1) as f64,
        tuning: &tuning,
        prior: stats.prior_stddev.map(|sd| GaussianPrior { mean: 0.0, variance: sd * sd }),
        control: &experiment.control().name,
    };
    let mut metrics: Vec<MetricResult> = experiment
        .metrics
        .iter()
        .zip(data.metrics)
        .zip(&pairs)
        .map(|((m, metric_data), pairs)| {
            let metric = &data.job.metrics[m.metric];
            metric_result(&context, experiment, metric, m.role, m.margin, metric_data, pairs, &plan)
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
    let result = Analyzed {
        id: experiment.id.clone(),
        description: experiment.description.clone(),
        checks,
        variants,
        metrics,
        window,
        settings: settings(experiment),
        traffic: Traffic {
            units_per_variant_per_day: per_variant_per_day,
            exposure_rows: data.allocation.exposure_rows,
            counted_events: data.counted_events,
            excluded_units: data.allocation.all_units.saturating_sub(total_units),
        },
        srm,
        breakdowns,
        plan: Some(plan),
    };
    Analysis { result, new_design }
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

#[expect(clippy::too_many_arguments, reason = "one call site; a struct would only rename the arguments")]
fn metric_result(
    context: &Context<'_>,
    experiment: &Experiment,
    metric: &Metric,
    role: Role,
    margin: Option<f64>,
    data: &MetricData,
    pairs: &[Pair],
    plan: &Plan,
) -> MetricResult {
    let covariates = data.covariates.as_ref();
    let pooled = covariates.and_then(|c| stats::cuped(c));
    let comparisons = pairs
        .iter()
        .enumerate()
        .map(|(i, pair)| {
            let variant = &experiment.variants[i + 1].name;
            let units = (data.summaries.units(0), data.summaries.units(i + 1));
            let mut comparison = compare_variant(context, i, variant, metric, role, margin, pair, units);
            comparison.power = plan.tests.iter().find(|t| t.metric == metric.name && &t.variant == variant).map(|t| {
                let inflow = |v: usize| plan.inflow_per_day.get(v).copied();
                power_result(t, pair, [inflow(0), inflow(i + 1)])
            });
            comparison
        })
        .collect();
    MetricResult {
        name: metric.name.clone(),
        description: metric.description.clone(),
        kind: metric.kind.kind(),
        role,
        higher_is_better: metric.higher_is_better,
        variants: metric_variants(experiment, &data.summaries),
        comparisons,
        margin,
        cuped: pooled.map(|c| CupedInfo {
            theta: c.theta,
            variance_reduction: c.variance_reduction,
            lookback_days: experiment.stats.cuped_lookback_days,
        }),
        cap: data.cap.clone(),
    }
}

/// Whether an effect points the good way for the metric.
fn improves(effect: f64, higher_is_better: bool) -> bool {
    effect != 0.0 && (effect > 0.0) == higher_is_better
}

/// The test the recommendation reads for one comparison: the interval at `1 - alpha/k`, its
/// p-value, and for the primary and guardrails the p-value of the harm bound (0, or a
/// guardrail's margin on its worse side).
fn inference(
    context: &Context<'_>,
    effect: &Effect,
    method: Method,
    role: Role,
    margin: Option<f64>,
    higher_is_better: bool,
) -> Inference {
    let alpha = context.alpha_k;
    let ci = effect.interval(alpha, method);
    let p_value = effect.p_value(0.0, alpha, method);
    let significant = p_value < alpha;
    let harm_bound = match (margin, effect.scale) {
        (Some(margin), Scale::Relative) => {
            if higher_is_better {
                -margin
            } else {
                margin
            }
        }
        _ => 0.0,
    };
    let harm_p_value =
        matches!(role, Role::Primary | Role::Guardrail).then(|| effect.p_value(harm_bound, alpha, method));
    Inference {
        method: match method {
            Method::AlwaysValid { .. } => InferenceMethod::AlwaysValid,
            Method::FixedHorizon => InferenceMethod::FixedHorizon,
        },
        scale: match effect.scale {
            Scale::Relative => InferenceScale::Relative,
            Scale::Absolute => InferenceScale::Absolute,
        },
        level: 1.0 - alpha,
        estimate: effect.estimate,
        ci,
        p_value,
        harm_p_value,
        significant,
        direction: match (significant, improves(effect.estimate, higher_is_better)) {
            (false, _) => Direction::Neutral,
            (true, true) => Direction::Better,
            (true, false) => Direction::Worse,
        },
        tuning: match method {
            Method::AlwaysValid { tuning } => Some(tuning),
            Method::FixedHorizon => None,
        },
    }
}

#[expect(clippy::too_many_arguments, reason = "one call site; a struct would only rename the arguments")]
fn compare_variant(
    context: &Context<'_>,
    index: usize,
    variant: &str,
    metric: &Metric,
    role: Role,
    margin: Option<f64>,
    pair: &Pair,
    (control_units, treatment_units): (u64, u64),
) -> ComparisonResult {
    let stats = context.stats;
    let ((Some(c), Some(t)), Some((c_used, t_used))) = (pair.raw, pair.used) else {
        let note = if control_units == 0 || treatment_units == 0 {
            "a variant has no units"
        } else {
            "the ratio's denominator is 0 in a variant, so the ratio is undefined"
        };
        return empty_comparison(variant, context.control, vec![note.to_string()]);
    };
    let variance_mean_t = pair.variance_mean_t;
    let (main, unadjusted) = match pair.cuped {
        Some((cc, tc, theta)) => {
            let raw = stats::compare(&c, &t, stats.alpha);
            let unadjusted = UnadjustedResult {
                absolute_effect: raw.absolute_effect,
                relative_effect: raw.relative_effect,
                ci_absolute: raw.ci_absolute,
                ci_relative: raw.ci_relative,
                p_value: raw.p_value,
            };
            (stats::compare_cuped(&cc, &tc, theta, stats.alpha), Some(unadjusted))
        }
        None => (stats::compare(&c, &t, stats.alpha), None),
    };
    let method = plan::method(context.tuning, index);
    // The always-valid figures at the experiment's alpha, as before this version: kept for
    // readers of results.json; the decision reads `inference`.
    let sequential = match method {
        Method::AlwaysValid { tuning } => {
            let s = stats::compare_sequential_with(&c_used, &t_used, variance_mean_t, stats.alpha, tuning);
            Some(SequentialResult {
                ci_absolute: s.ci_absolute,
                ci_relative: s.ci_relative,
                p_value: s.p_value,
                significant: s.p_value.is_some_and(|p| p < stats.alpha),
                tuning,
            })
        }
        Method::FixedHorizon => None,
    };
    let bayesian = stats::compare_bayesian_with(
        &c_used,
        &t_used,
        variance_mean_t,
        stats.alpha,
        context.prior.as_ref(),
        metric.higher_is_better,
    )
    .map(|b| BayesianResult { chance_to_win: b.chance_to_win, risk: b.risk, ci_relative: b.ci_relative });

    let mut notes: Vec<String> = main.notes.iter().map(ToString::to_string).collect();
    let inference = match Effect::new(&c_used, &t_used, variance_mean_t, method) {
        Ok(effect) => Some(inference(context, &effect, method, role, margin, metric.higher_is_better)),
        Err(why) => {
            if !notes.iter().any(|n| n == why) {
                notes.push(why.to_string());
            }
            None
        }
    };
    // Guardrails with a margin: non-inferior when the decision interval's worse end lies
    // within the margin (an intersection–union test: no correction across guardrails;
    // Schultzberg et al. 2024, §4). The Welch p-value of the margin is kept beside it.
    let non_inferiority = margin.filter(|_| role == Role::Guardrail).map(|margin| {
        let p_value = stats::noninferiority(&c_used, &t_used, margin, metric.higher_is_better).map(|ni| ni.p_value);
        let bound = inference
            .as_ref()
            .filter(|i| i.scale == InferenceScale::Relative)
            .map(|i| if metric.higher_is_better { i.ci[0] } else { i.ci[1] });
        let non_inferior = bound.is_some_and(|b| if metric.higher_is_better { b > -margin } else { b < margin });
        NonInferiorityResult { margin, p_value, bound, non_inferior }
    });

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
        notes,
        power: None,
        sequential,
        bayesian,
        unadjusted,
        non_inferiority,
        inference,
        cuped_theta: pair.cuped.map(|(_, _, theta)| theta),
    }
}

/// The planned test of a comparison in the shape results.json has always had.
/// The planned test of a comparison in the shape results.json has always had; days at each
/// variant's own recent inflow, as the plan counts them.
fn power_result(test: &PlannedTest, pair: &Pair, inflow: [Option<f64>; 2]) -> PowerResult {
    let (n_c, n_t) = pair.used.map_or((0, 0), |(c, t)| (c.n, t.n));
    let missing = [test.required_units[0].saturating_sub(n_c), test.required_units[1].saturating_sub(n_t)];
    let days = missing.iter().zip(inflow).try_fold(0.0f64, |most, (&m, per_day)| {
        if m == 0 {
            return Some(most);
        }
        per_day.filter(|x| *x > 0.0).map(|x| most.max(m as f64 / x))
    });
    PowerResult {
        mde: test.effect,
        mde_absolute: test.effect * pair.used.map_or(0.0, |(c, _)| c.mean.abs()),
        target_power: test.power,
        power_at_current_n: test.power_at_current_n,
        required_units: test.required_units[0].max(test.required_units[1]),
        additional_units: missing[0].max(missing[1]),
        additional_days: days,
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
        inference: None,
        cuped_theta: None,
    }
}

/// Adjusts the p-values of all comparisons of one experiment together (those without a
/// p-value left out), then marks significance and direction.
fn correct(metrics: &mut [MetricResult], correction: Correction, alpha: f64) {
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
                                comparison.notes.iter().map(ToString::to_string).collect(),
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
/// practically (a share off by at least `srm_min_deviation`, relative). The practical gate only
/// softens a statistical mismatch to a warning; it never makes it pass.
fn srm_status(units: &[u64], weights: &[f64], stats: &StatsSettings) -> (Option<f64>, CheckStatus) {
    let p = stats::srm_p_value(units, weights);
    let deviation = max_relative_deviation(units, weights).unwrap_or(0.0);
    let status = match p {
        Some(p) if p < stats.srm_p_value && deviation >= stats.srm_min_deviation => CheckStatus::Fail,
        Some(p) if p < stats.srm_p_value => CheckStatus::Warn,
        _ => CheckStatus::Pass,
    };
    (p, status)
}

/// The split by day of first exposure and by dimension value, to localise an SRM.
fn srm_detail(data: &ExperimentData<'_>, units: &[u64]) -> SrmDetail {
    let experiment = data.experiment;
    let weights: Vec<f64> = experiment.variants.iter().map(|v| v.weight).collect();
    let by_day: Vec<SrmSlice> = data
        .allocation
        .by_day
        .iter()
        .map(|(day, units)| {
            let (p_value, status) = srm_status(units, &weights, &experiment.stats);
            SrmSlice { slice: day.to_string(), units: units.clone(), p_value, broken: status == CheckStatus::Fail }
        })
        .collect();
    let first_broken_day = by_day.iter().find(|s| s.broken).and_then(|s| s.slice.parse().ok());
    let mut broken_dimension_values = Vec::new();
    for (dimension, values) in data.job.dimensions.iter().zip(&data.allocation.by_dimension) {
        for (value, units) in values {
            let (p_value, status) = srm_status(units, &weights, &experiment.stats);
            if status == CheckStatus::Fail {
                broken_dimension_values.push(SrmSlice {
                    slice: format!("{dimension}={value}"),
                    units: units.clone(),
                    p_value,
                    broken: true,
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

/// Where an SRM is, in the fewest words. A value is *clean* when its own split rejects the
/// overall (broken) split at the SRM threshold: the break demonstrably spares it. With no clean
/// value in any dimension the break is everywhere, and the report says `all segments` rather
/// than list the values large enough to fail on their own (a small segment passing only for
/// want of units localises nothing). Else per dimension the broken `dimension=value`s, or
/// `every country` when all its values with units failed.
fn broken_segments(data: &ExperimentData<'_>, overall: &[u64], broken: &[SrmSlice]) -> Option<String> {
    if broken.is_empty() {
        return None;
    }
    let total: u64 = overall.iter().sum();
    let observed: Vec<f64> = overall.iter().map(|&n| n as f64 / total.max(1) as f64).collect();
    let threshold = data.experiment.stats.srm_p_value;
    let mut parts = Vec::new();
    let mut any_clean = false;
    for (dimension, values) in data.job.dimensions.iter().zip(&data.allocation.by_dimension) {
        let prefix = format!("{dimension}=");
        let here: Vec<&str> = broken.iter().map(|s| s.slice.as_str()).filter(|s| s.starts_with(&prefix)).collect();
        let with_units: Vec<&Vec<u64>> =
            values.iter().map(|(_, units)| units).filter(|units| units.iter().sum::<u64>() > 0).collect();
        // A variant with no units overall has a 0 share: no value can be tested against it.
        any_clean |= observed.iter().all(|&w| w > 0.0)
            && with_units.iter().any(|units| stats::srm_p_value(units, &observed).is_some_and(|p| p < threshold));
        if here.len() == with_units.len() && with_units.len() > 1 {
            parts.push(format!("every {dimension}"));
        } else {
            parts.extend(here.iter().map(ToString::to_string));
        }
    }
    Some(if any_clean || data.job.dimensions.is_empty() { parts.join(", ") } else { "all segments".to_string() })
}

fn check(name: CheckName, status: CheckStatus, p_value: Option<f64>, detail: String) -> Check {
    Check { name, status, p_value, detail }
}

/// Unknown variant names quoted in the `unknown_variant` check; the rest are counted.
const QUOTED_UNKNOWN_VARIANTS: usize = 20;

/// The six data-quality checks of the contract, then the extensions `future_exposures` and
/// `incomplete_rows`; always all present.
fn checks(data: &ExperimentData<'_>, units: &[u64], variants: &[VariantResult], srm: &SrmDetail) -> Vec<Check> {
    let allocation = data.allocation;
    let experiment = data.experiment;
    let stats = &experiment.stats;
    let mut out = Vec::with_capacity(6);

    let weights: Vec<f64> = experiment.variants.iter().map(|v| v.weight).collect();
    let (p, srm_check) = srm_status(units, &weights, stats);
    let broken = srm_check == CheckStatus::Fail;
    let split =
        |f: &dyn Fn(&VariantResult) -> f64| variants.iter().map(|v| percent(f(v), 1)).collect::<Vec<_>>().join(" / ");
    out.push(match p {
        None => check(CheckName::Srm, CheckStatus::Pass, None, "not tested: no units".into()),
        Some(p) => {
            let observed = split(&|v| v.observed_share.unwrap_or(0.0));
            let expected = split(&|v| v.expected_weight);
            let deviation = srm.max_relative_deviation.unwrap_or(0.0);
            let verdict = match srm_check {
                CheckStatus::Fail => "mismatch",
                CheckStatus::Warn => "a mismatch, statistically, but smaller than the practical threshold",
                CheckStatus::Pass => "consistent",
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
                if let Some(where_broken) = broken_segments(data, units, &srm.broken_dimension_values) {
                    detail.push_str(&format!("; broken in {where_broken}"));
                }
            }
            check(CheckName::Srm, srm_check, Some(p), detail)
        }
    });

    let all_units = allocation.all_units;
    let multi = allocation.multi_variant_units;
    out.push(if multi == 0 {
        check(
            CheckName::MultiVariantUnits,
            CheckStatus::Pass,
            None,
            "no unit was exposed to more than one variant".into(),
        )
    } else {
        let share = multi as f64 / all_units as f64;
        let status = if share >= MULTI_VARIANT_FAIL_SHARE { CheckStatus::Fail } else { CheckStatus::Warn };
        check(
            CheckName::MultiVariantUnits,
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

    let invalid = data.invalid_values;
    out.push(if invalid == 0 {
        check(CheckName::InvalidValues, CheckStatus::Pass, None, "no NaN or infinite event values".into())
    } else {
        check(
            CheckName::InvalidValues,
            CheckStatus::Warn,
            None,
            format!(
                "{} of {} counted events had a NaN or infinite value; they count as events without a value",
                count(invalid),
                count(data.counted_events)
            ),
        )
    });

    let unknown_units = allocation.unknown_variant_units;
    let unknown_names = &allocation.unknown_variants;
    out.push(if unknown_names.is_empty() {
        check(CheckName::UnknownVariant, CheckStatus::Pass, None, "every variant in the data is configured".into())
    } else {
        let mut names =
            unknown_names.iter().take(QUOTED_UNKNOWN_VARIANTS).map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
        if unknown_names.len() > QUOTED_UNKNOWN_VARIANTS {
            names.push_str(&format!(" and {} more", count((unknown_names.len() - QUOTED_UNKNOWN_VARIANTS) as u64)));
        }
        check(
            CheckName::UnknownVariant,
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
        check(CheckName::MissingVariant, CheckStatus::Pass, None, "every configured variant has units".into())
    } else {
        let names = missing.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
        check(
            CheckName::MissingVariant,
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
        check(
            CheckName::MissingPartitions,
            CheckStatus::Pass,
            None,
            "every date of the window has exposures and events".into(),
        )
    } else {
        check(
            CheckName::MissingPartitions,
            CheckStatus::Warn,
            None,
            format!("no partition for {}: figures for those days are missing", missing_dates.join(", ")),
        )
    });
    out.push(future_exposures(data));
    out.push(incomplete_rows(data));
    out
}

/// Extension check: exposures timestamped after the end of the report date. They lie outside
/// the window, so they decide nothing about a unit: a unit exposed only then is not in the
/// experiment (no event of it could count yet), and one also exposed before keeps its variant
/// and first exposure from the window.
fn future_exposures(data: &ExperimentData<'_>) -> Check {
    let q = &data.allocation.quality;
    let end = data.report_date + chrono::Days::new(1);
    if q.future_exposure_rows == 0 {
        return check(
            CheckName::FutureExposures,
            CheckStatus::Pass,
            None,
            "no exposure is timestamped after the end of the report date".into(),
        );
    }
    check(
        CheckName::FutureExposures,
        CheckStatus::Warn,
        None,
        format!(
            "{} exposure rows of {} units are timestamped at or after {end} 00:00 UTC, after the end of the report date: they are outside the window and not counted; {} of these units have no exposure in the window and are left out",
            count(q.future_exposure_rows),
            count(q.future_exposure_units),
            count(q.future_only_units)
        ),
    )
}

/// Extension check: rows of the experiment that cannot be attributed (no unit id, variant or
/// timestamp) and were left out.
fn incomplete_rows(data: &ExperimentData<'_>) -> Check {
    let q = &data.allocation.quality;
    let c = &data.job.source.columns;
    let mut parts = Vec::new();
    let mut part = |n: u64, what: String| {
        if n > 0 {
            parts.push(format!("{} {what}", count(n)));
        }
    };
    part(q.exposures_without_unit, format!("exposure rows without a `{}`", c.unit_id));
    part(q.exposures_without_variant_or_ts, format!("exposure rows without a `{}` or `{}`", c.variant, c.exposure_ts));
    part(q.events_without_unit, format!("rows of its events without a `{}`", c.unit_id));
    part(q.events_without_ts, format!("rows of its events without a `{}`", c.event_ts));
    if parts.is_empty() {
        return check(
            CheckName::IncompleteRows,
            CheckStatus::Pass,
            None,
            "every exposure and event row has a unit id, and a variant or event and a timestamp".into(),
        );
    }
    check(
        CheckName::IncompleteRows,
        CheckStatus::Warn,
        None,
        format!("{} in the window cannot be attributed and are left out", parts.join(", ")),
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::test_support::{checked_job, close, experiment_text, job_text, nov};

    /// A proportion's summary: `p` of `n` units converted (sample variance, ddof 1).
    fn proportion(n: u64, p: f64) -> Summary {
        Summary { n, mean: p, variance: p * (1.0 - p) * n as f64 / (n as f64 - 1.0) }
    }

    #[test]
    fn hand_made_summaries_give_the_fixed_horizon_welch_comparison_and_passing_checks() {
        let job = checked_job(&job_text("t", "file:///data", &experiment_text("x", "2026-11-14")), Path::new("t.toml"));
        let counts = AllocationCounts {
            units: vec![1000, 1000],
            by_day: vec![(nov(14), vec![1000, 1000])],
            all_units: 2000,
            exposure_rows: 2500,
            ..AllocationCounts::default()
        };
        let metrics = [MetricData {
            summaries: VariantSummaries::Single(vec![proportion(1000, 0.10), proportion(1000, 0.12)]),
            covariates: None,
            cap: None,
        }];
        let data = ExperimentData {
            job: &job,
            experiment: &job.experiments[0],
            report_date: nov(20),
            allocation: &counts,
            counted_events: 220,
            invalid_values: 0,
            metrics: &metrics,
            missing_partitions: &[],
            breakdowns: &[],
            design: None,
        };
        let result = analyze(&data).result;

        assert_eq!((result.window.start, result.window.end, result.window.days), (nov(14), nov(20), 7));
        let variants: Vec<(&str, u64, f64, Option<f64>)> =
            result.variants.iter().map(|v| (v.name.as_str(), v.units, v.expected_weight, v.observed_share)).collect();
        assert_eq!(variants, [("control", 1000, 0.5, Some(0.5)), ("treatment", 1000, 0.5, Some(0.5))]);
        // 2000 units over 2 variants and 7 days.
        close(result.traffic.units_per_variant_per_day.expect("traffic"), 2000.0 / 14.0, 1e-12, "units a day");
        assert_eq!(
            (result.traffic.exposure_rows, result.traffic.counted_events, result.traffic.excluded_units),
            (2500, 220, 0)
        );

        assert_eq!(result.metrics.len(), 1);
        let metric = &result.metrics[0];
        assert_eq!((metric.name.as_str(), metric.role), ("conversion", Role::Primary));
        assert_eq!(metric.comparisons.len(), 1);
        let c = &metric.comparisons[0];
        assert_eq!((c.variant.as_str(), c.baseline.as_str()), ("treatment", "control"));
        // By hand: 0.12 - 0.10, and relative to 0.10.
        close(c.absolute_effect.expect("defined"), 0.02, 1e-12, "absolute effect");
        close(c.relative_effect.expect("defined"), 0.2, 1e-12, "relative effect");
        // By hand, independently of stats/: variances 0.1·0.9·1000/999 and 0.12·0.88·1000/999,
        // se = sqrt(vc/n + vt/n) = 0.013992705092146972, t = 0.02/se = 1.42931619499538, Welch
        // df = 1985.3714563542524, two-sided p = I_{df/(df+t²)}(df/2, 1/2) = 0.15307069563474884
        // (regularized incomplete beta by Lentz's continued fraction, in Python's floats).
        close(c.p_value.expect("defined"), 0.15307069563474884, 1e-9, "Welch p-value");
        // One primary and nothing else: the correction leaves it as it is.
        close(c.p_value_adjusted.expect("defined"), 0.15307069563474884, 1e-9, "adjusted p-value");
        assert!(!c.significant);
        let [low, high] = c.ci_absolute.expect("defined");
        close((low + high) / 2.0, 0.02, 1e-12, "interval centred on the effect");
        assert!(low < 0.0 && high > 0.0, "p > 0.05: the interval holds 0: [{low}, {high}]");

        // An even split of an even design: chi-square 0, p = 1; every other check passes.
        let srm = result.checks.iter().find(|c| c.name == CheckName::Srm).expect("the SRM check");
        close(srm.p_value.expect("a p-value"), 1.0, 1e-12, "SRM p-value");
        assert!(result.checks.iter().all(|c| c.status == CheckStatus::Pass), "{:#?}", result.checks);
        assert!(result.breakdowns.is_empty());
    }
}
