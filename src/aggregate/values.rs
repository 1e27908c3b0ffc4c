//! Event accumulators -> per-unit metric values -> per-variant sufficient statistics.

use super::fold::EventTotals;
use super::{MetricPlan, SlotValue};
use crate::config::Aggregate;
use crate::stats::{RatioSummary, Summary};

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

fn aggregate_values(aggregate: Aggregate, slot: &super::SlotTotals) -> Vec<f64> {
    match aggregate {
        Aggregate::Count => slot.count.iter().map(|&c| c as f64).collect(),
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

/// Per-variant statistics of `values`, where `variant_of[i]` is unit `i`'s variant.
/// Two passes over the units (means, then centred moments), no copies.
pub fn summarize(values: &MetricValues, variant_of: &[u8], n_variants: usize) -> VariantSummaries {
    let mut n = vec![0u64; n_variants];
    for &v in variant_of {
        n[v as usize] += 1;
    }
    let means = |xs: &[f64]| {
        let mut sums = vec![0.0; n_variants];
        for (x, &v) in xs.iter().zip(variant_of) {
            sums[v as usize] += x;
        }
        sums.iter().zip(&n).map(|(s, &k)| if k > 0 { s / k as f64 } else { 0.0 }).collect::<Vec<f64>>()
    };
    let dof = |k: u64| if k > 1 { (k - 1) as f64 } else { f64::INFINITY };
    match values {
        MetricValues::Single(xs) => {
            let mean = means(xs);
            let mut m2 = vec![0.0; n_variants];
            for (x, &v) in xs.iter().zip(variant_of) {
                let d = x - mean[v as usize];
                m2[v as usize] += d * d;
            }
            VariantSummaries::Single(
                (0..n_variants).map(|v| Summary { n: n[v], mean: mean[v], variance: m2[v] / dof(n[v]) }).collect(),
            )
        }
        MetricValues::Ratio { numerator, denominator } => {
            let (mean_n, mean_d) = (means(numerator), means(denominator));
            let (mut s_nn, mut s_dd, mut s_nd) = (vec![0.0; n_variants], vec![0.0; n_variants], vec![0.0; n_variants]);
            for ((x, y), &v) in numerator.iter().zip(denominator).zip(variant_of) {
                let v = v as usize;
                let (dx, dy) = (x - mean_n[v], y - mean_d[v]);
                s_nn[v] += dx * dx;
                s_dd[v] += dy * dy;
                s_nd[v] += dx * dy;
            }
            VariantSummaries::Ratio(
                (0..n_variants)
                    .map(|v| RatioSummary {
                        n: n[v],
                        mean_numerator: mean_n[v],
                        mean_denominator: mean_d[v],
                        var_numerator: s_nn[v] / dof(n[v]),
                        var_denominator: s_dd[v] / dof(n[v]),
                        covariance: s_nd[v] / dof(n[v]),
                    })
                    .collect(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouped_summaries_equal_per_variant_summaries() {
        let xs = [1.0, 5.0, 2.0, 7.0, 4.0, 10.0];
        let variant_of = [0u8, 1, 0, 1, 0, 1];
        let VariantSummaries::Single(s) = summarize(&MetricValues::Single(xs.to_vec()), &variant_of, 2) else {
            panic!("single metric")
        };
        assert_eq!(s[0], Summary::from_values(&[1.0, 2.0, 4.0]));
        assert_eq!(s[1], Summary::from_values(&[5.0, 7.0, 10.0]));
    }

    #[test]
    fn grouped_ratio_summaries_equal_per_variant_ones() {
        let (num, den) = ([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 2.0, 1.0]);
        let variant_of = [0u8, 0, 1, 1];
        let values = MetricValues::Ratio { numerator: num.to_vec(), denominator: den.to_vec() };
        let VariantSummaries::Ratio(r) = summarize(&values, &variant_of, 2) else { panic!("ratio metric") };
        assert_eq!(r[1], RatioSummary::from_values(&num[2..], &den[2..]));
    }

    #[test]
    fn empty_variant_has_zero_units_and_no_nan() {
        let VariantSummaries::Single(s) = summarize(&MetricValues::Single(vec![1.0]), &[0], 2) else { panic!() };
        assert_eq!(s[1], Summary::default());
        assert_eq!(s[0].variance, 0.0);
    }
}
