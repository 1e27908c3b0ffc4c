//! Event accumulators -> per-unit metric values -> per-variant sufficient statistics.

use super::fold::EventTotals;
use super::spec::{MetricPlan, SlotValue};
use crate::config::{Aggregate, Cap};
use crate::stats::{CovariateSummary, RatioSummary, Summary};

/// One metric's per-unit values, in the order of the experiment's analyzable units.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricValues {
    Single(Vec<f64>),
    Ratio { numerator: Vec<f64>, denominator: Vec<f64> },
}

/// A metric's sufficient statistics for each configured variant.
#[derive(Debug, Clone, PartialEq)]
pub enum VariantSummaries {
    Single(Vec<Summary>),
    Ratio(Vec<RatioSummary>),
}

impl VariantSummaries {
    /// The summary the tests run on: for ratio metrics the ratio and its delta-method variance
    /// (`None` when the denominator's mean is 0).
    pub fn summary(&self, variant: usize) -> Option<Summary> {
        match self {
            VariantSummaries::Single(s) => Some(s[variant]),
            VariantSummaries::Ratio(r) => r[variant].to_summary(),
        }
    }

    pub fn units(&self, variant: usize) -> u64 {
        match self {
            VariantSummaries::Single(s) => s[variant].n,
            VariantSummaries::Ratio(r) => r[variant].n,
        }
    }
}

fn slot_values(value: SlotValue, totals: &EventTotals) -> Vec<f64> {
    aggregate_values(value.aggregate, &totals.slots[value.slot])
}

fn aggregate_values(aggregate: Aggregate, slot: &super::fold::SlotTotals) -> Vec<f64> {
    match aggregate {
        Aggregate::Count => slot.count.iter().map(|&c| f64::from(c)).collect(),
        Aggregate::Sum => slot.sum.clone(),
        // A unit without a finite value has no maximum; the contract makes it 0.
        Aggregate::Max => slot.max.iter().map(|&m| if m == f64::NEG_INFINITY { 0.0 } else { m }).collect(),
    }
}

/// The per-unit values of one metric.
pub fn metric_values(plan: &MetricPlan, totals: &EventTotals) -> MetricValues {
    match *plan {
        MetricPlan::Proportion { slot } => {
            MetricValues::Single(totals.slots[slot].count.iter().map(|&c| if c > 0 { 1.0 } else { 0.0 }).collect())
        }
        MetricPlan::Mean(value) => MetricValues::Single(slot_values(value, totals)),
        MetricPlan::Ratio { numerator, denominator } => MetricValues::Ratio {
            numerator: slot_values(numerator, totals),
            denominator: slot_values(denominator, totals),
        },
    }
}

/// The CUPED covariate of a metric: the same per-unit value computed over the unit's
/// lookback window before its first exposure. `None` when the metric has none (not `cuped`, or
/// a ratio metric).
pub fn covariate_values(plan: &MetricPlan, totals: &EventTotals) -> Option<Vec<f64>> {
    match *plan {
        MetricPlan::Proportion { slot } => {
            let pre = totals.pre_slots.get(slot)?.as_ref()?;
            Some(pre.count.iter().map(|&c| if c > 0 { 1.0 } else { 0.0 }).collect())
        }
        MetricPlan::Mean(value) => {
            let pre = totals.pre_slots.get(value.slot)?.as_ref()?;
            Some(aggregate_values(value.aggregate, pre))
        }
        MetricPlan::Ratio { .. } => None,
    }
}

/// Per-group statistics of `values`, where `group_of[i]` is unit `i`'s group (its variant,
/// or a slice × variant combination). Two passes over the units (means, then centred
/// moments), no copies.
pub fn summarize(values: &MetricValues, group_of: &[u32], n_groups: usize) -> VariantSummaries {
    let mut n = vec![0u64; n_groups];
    for &g in group_of {
        n[g as usize] += 1;
    }
    let means = |xs: &[f64]| {
        let mut sums = vec![0.0; n_groups];
        for (x, &g) in xs.iter().zip(group_of) {
            sums[g as usize] += x;
        }
        sums.iter().zip(&n).map(|(s, &k)| if k > 0 { s / k as f64 } else { 0.0 }).collect::<Vec<f64>>()
    };
    let dof = |k: u64| if k > 1 { (k - 1) as f64 } else { f64::INFINITY };
    match values {
        MetricValues::Single(xs) => {
            let mean = means(xs);
            let mut m2 = vec![0.0; n_groups];
            for (x, &g) in xs.iter().zip(group_of) {
                let d = x - mean[g as usize];
                m2[g as usize] += d * d;
            }
            VariantSummaries::Single(
                (0..n_groups).map(|g| Summary { n: n[g], mean: mean[g], variance: m2[g] / dof(n[g]) }).collect(),
            )
        }
        MetricValues::Ratio { numerator, denominator } => {
            let (mean_n, mean_d) = (means(numerator), means(denominator));
            let (mut s_nn, mut s_dd, mut s_nd) = (vec![0.0; n_groups], vec![0.0; n_groups], vec![0.0; n_groups]);
            for ((x, y), &g) in numerator.iter().zip(denominator).zip(group_of) {
                let g = g as usize;
                let (dx, dy) = (x - mean_n[g], y - mean_d[g]);
                s_nn[g] += dx * dx;
                s_dd[g] += dy * dy;
                s_nd[g] += dx * dy;
            }
            VariantSummaries::Ratio(
                (0..n_groups)
                    .map(|g| RatioSummary {
                        n: n[g],
                        mean_numerator: mean_n[g],
                        mean_denominator: mean_d[g],
                        var_numerator: s_nn[g] / dof(n[g]),
                        var_denominator: s_dd[g] / dof(n[g]),
                        covariance: s_nd[g] / dof(n[g]),
                    })
                    .collect(),
            )
        }
    }
}

/// Per-group statistics of a metric and its CUPED covariate: means, unbiased variances and
/// covariance, two-pass.
pub fn summarize_covariate(
    values: &[f64],
    covariates: &[f64],
    group_of: &[u32],
    n_groups: usize,
) -> Vec<CovariateSummary> {
    let pair = MetricValues::Ratio { numerator: values.to_vec(), denominator: covariates.to_vec() };
    let VariantSummaries::Ratio(moments) = summarize(&pair, group_of, n_groups) else {
        unreachable!("a ratio summary of a ratio input")
    };
    moments
        .into_iter()
        .map(|m| CovariateSummary {
            n: m.n,
            mean: m.mean_numerator,
            mean_covariate: m.mean_denominator,
            variance: m.var_numerator,
            variance_covariate: m.var_denominator,
            covariance: m.covariance,
        })
        .collect()
}

/// The `q` quantile of `values` with linear interpolation between order statistics (numpy's
/// default `percentile` method, Hyndman & Fan type 7). The two order statistics are selected,
/// not sorted for (linear time: a cap on millions of units per experiment no longer sorts them
/// all); they are the same values a sort would put there.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut scratch = values.to_vec();
    let position = q.clamp(0.0, 1.0) * (scratch.len() - 1) as f64;
    let (lower, upper) = (position.floor() as usize, position.ceil() as usize);
    let (_, &mut at_lower, above) = scratch.select_nth_unstable_by(lower, f64::total_cmp);
    // The next order statistic is the smallest of those above the lower one.
    let at_upper = if upper == lower { at_lower } else { above.iter().copied().min_by(f64::total_cmp)? };
    Some(at_lower + (at_upper - at_lower) * (position - lower as f64))
}

/// Caps a mean metric's per-unit values (and its covariate) at `cap`: the value given, or the
/// quantile of the experiment's per-unit values. Returns the cap value and how many units
/// were lowered; `None` for ratio metrics.
pub fn apply_cap(values: &mut MetricValues, covariate: Option<&mut Vec<f64>>, cap: Cap) -> Option<(f64, u64)> {
    let MetricValues::Single(xs) = values else { return None };
    let limit = match cap {
        Cap::Absolute(x) => x,
        Cap::Percentile(q) => quantile(xs, q)?,
    };
    let mut capped = 0u64;
    for x in xs.iter_mut() {
        if *x > limit {
            *x = limit;
            capped += 1;
        }
    }
    if let Some(covariate) = covariate {
        for x in covariate.iter_mut() {
            *x = x.min(limit);
        }
    }
    Some((limit, capped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouped_summaries_equal_per_variant_summaries() {
        let xs = [1.0, 5.0, 2.0, 7.0, 4.0, 10.0];
        let variant_of = [0u32, 1, 0, 1, 0, 1];
        let VariantSummaries::Single(s) = summarize(&MetricValues::Single(xs.to_vec()), &variant_of, 2) else {
            panic!("single metric")
        };
        assert_eq!(s[0], Summary::from_values(&[1.0, 2.0, 4.0]));
        assert_eq!(s[1], Summary::from_values(&[5.0, 7.0, 10.0]));
    }

    #[test]
    fn grouped_ratio_summaries_equal_per_variant_ones() {
        let (num, den) = ([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 2.0, 1.0]);
        let variant_of = [0u32, 0, 1, 1];
        let values = MetricValues::Ratio { numerator: num.to_vec(), denominator: den.to_vec() };
        let VariantSummaries::Ratio(r) = summarize(&values, &variant_of, 2) else { panic!("ratio metric") };
        assert_eq!(r[1], RatioSummary::from_values(&num[2..], &den[2..]));
    }

    #[test]
    fn quantiles_match_numpy() {
        // numpy.percentile([1, 2, 3, 4, 10], [0, 25, 90, 100]) = [1, 2, 7.6, 10]
        let xs = [10.0, 1.0, 3.0, 2.0, 4.0];
        for (q, expected) in [(0.0, 1.0), (0.25, 2.0), (0.9, 7.6), (1.0, 10.0)] {
            assert!((quantile(&xs, q).expect("values") - expected).abs() < 1e-12, "q={q}");
        }
    }

    #[test]
    fn selected_quantiles_equal_sorted_ones_bit_for_bit() {
        // The definition by sorting, against the selection, on skewed data with many ties (most
        // units buy nothing) and every interpolation case.
        let sorted_quantile = |xs: &[f64], q: f64| {
            let mut sorted = xs.to_vec();
            sorted.sort_unstable_by(f64::total_cmp);
            let position = q * (sorted.len() - 1) as f64;
            let (lower, upper) = (position.floor() as usize, position.ceil() as usize);
            sorted[lower] + (sorted[upper] - sorted[lower]) * (position - lower as f64)
        };
        let mut rng = crate::rng::Rng::for_stream(7, 0, 0);
        for n in [1, 2, 3, 10, 1001, 20_000] {
            let xs: Vec<f64> =
                (0..n).map(|_| if rng.uniform() < 0.9 { 0.0 } else { (rng.uniform() * 400.0).round() / 4.0 }).collect();
            for q in [0.0, 0.001, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0] {
                let selected = quantile(&xs, q).expect("values");
                assert_eq!(selected.to_bits(), sorted_quantile(&xs, q).to_bits(), "n={n} q={q}");
            }
        }
    }

    #[test]
    fn caps_lower_values_and_covariates_above_the_cap() {
        let mut values = MetricValues::Single(vec![1.0, 2.0, 50.0, 3.0]);
        let mut covariate = vec![0.0, 70.0, 1.0, 2.0];
        let (limit, capped) = apply_cap(&mut values, Some(&mut covariate), Cap::Absolute(10.0)).expect("mean metric");
        assert_eq!((limit, capped), (10.0, 1));
        assert_eq!(values, MetricValues::Single(vec![1.0, 2.0, 10.0, 3.0]));
        assert_eq!(covariate, vec![0.0, 10.0, 1.0, 2.0]);
    }

    #[test]
    fn covariate_summaries_match_per_group_moments() {
        let (y, x) = ([1.0, 2.0, 4.0, 3.0], [0.5, 1.0, 1.0, 4.0]);
        let s = summarize_covariate(&y, &x, &[0, 0, 1, 1], 2);
        // group 0: y = [1, 2], x = [0.5, 1]: cov = ((−0.5)(−0.25) + (0.5)(0.25)) / 1 = 0.25
        assert_eq!((s[0].n, s[0].mean, s[0].mean_covariate), (2, 1.5, 0.75));
        assert!((s[0].covariance - 0.25).abs() < 1e-15 && (s[0].variance - 0.5).abs() < 1e-15);
    }

    #[test]
    fn empty_variant_has_zero_units_and_no_nan() {
        let VariantSummaries::Single(s) = summarize(&MetricValues::Single(vec![1.0]), &[0], 2) else { panic!() };
        assert_eq!(s[1], Summary::default());
        assert_eq!(s[0].variance, 0.0);
    }
}
