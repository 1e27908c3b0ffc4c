//! One experiment's accumulators -> what `analyze` reads of it: per-unit metric values (capped),
//! CUPED covariates, per-variant summaries of every metric, and the primary metric's breakdowns
//! by dimension.
//!
//! Pure: no IO, not async. The per-unit values are returned too, for the units export.

use std::collections::HashMap;

use super::ExperimentSpec;
use super::allocation::NO_DIMENSION;
use super::allocation::{ExperimentAllocation, UnitStatus};
use super::fold::EventTotals;
use super::values::{
    MetricValues, VariantSummaries, apply_cap, covariate_values, metric_values, summarize, summarize_covariate,
};
use crate::config::{Cap, Experiment, Job, MetricKind};
use crate::results::{CapInfo, CapKind};
use crate::stats::CovariateSummary;

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

/// What one experiment's aggregation reads.
pub struct ExperimentInput<'a> {
    pub job: &'a Job,
    pub experiment: &'a Experiment,
    /// Its part of the run's spec; `None` for an experiment outside the run (not started: no data).
    pub spec: Option<&'a ExperimentSpec>,
    pub allocation: &'a ExperimentAllocation,
    pub totals: &'a EventTotals,
}

/// One experiment, aggregated.
pub struct ExperimentAggregates {
    /// Per metric: per-unit values (capped), in the order of the allocation's analyzable units.
    pub values: Vec<MetricValues>,
    /// Per metric: per-unit CUPED covariates (capped with the values), when the metric uses CUPED.
    pub covariates: Vec<Option<Vec<f64>>>,
    /// Per metric: what `analyze` reads.
    pub metrics: Vec<MetricData>,
    /// The primary metric per value of each dimension.
    pub breakdowns: Vec<DimensionSlices>,
}

/// Aggregates one experiment. See the module docs.
pub fn experiment(input: &ExperimentInput<'_>) -> ExperimentAggregates {
    let (values, covariates, metrics) =
        metric_data(input.job, input.experiment, input.spec, input.allocation, input.totals);
    let breakdowns = breakdowns(input.job, input.experiment, input.allocation, values.first());
    ExperimentAggregates { values, covariates, metrics, breakdowns }
}

/// Per-unit values (capped), CUPED covariates and per-variant statistics of every metric of one
/// experiment. `spec` is `None` for an experiment outside the run (no data).
type Prepared = (Vec<MetricValues>, Vec<Option<Vec<f64>>>, Vec<MetricData>);

fn metric_data(
    job: &Job,
    experiment: &Experiment,
    spec: Option<&ExperimentSpec>,
    allocation: &ExperimentAllocation,
    totals: &EventTotals,
) -> Prepared {
    let Some(spec) = spec else {
        let empty = experiment
            .metrics
            .iter()
            .map(|m| {
                let summaries = match job.metrics[m.metric].kind {
                    MetricKind::Ratio { .. } => {
                        VariantSummaries::Ratio(vec![Default::default(); experiment.variants.len()])
                    }
                    _ => VariantSummaries::Single(vec![Default::default(); experiment.variants.len()]),
                };
                MetricData { summaries, covariates: None, cap: None }
            })
            .collect();
        return (Vec::new(), Vec::new(), empty);
    };
    let variant_of: Vec<u32> = allocation.analyzable().map(|u| u.variant).collect();
    let n_variants = experiment.variants.len();
    let mut values = Vec::with_capacity(spec.metrics.len());
    let mut covariates = Vec::with_capacity(spec.metrics.len());
    let mut data = Vec::with_capacity(spec.metrics.len());
    for ((plan, cuped), m) in spec.metrics.iter().zip(&spec.cuped).zip(&experiment.metrics) {
        let metric = &job.metrics[m.metric];
        let mut metric_values = metric_values(plan, totals);
        let mut covariate = if *cuped { covariate_values(plan, totals) } else { None };
        let cap = metric.cap.and_then(|cap| {
            let (value, capped_units) = apply_cap(&mut metric_values, covariate.as_mut(), cap)?;
            let (kind, percentile) = match cap {
                Cap::Absolute(_) => (CapKind::Absolute, None),
                Cap::Percentile(q) => (CapKind::Percentile, Some(q)),
            };
            Some(CapInfo { kind, percentile, value, capped_units })
        });
        let summaries = summarize(&metric_values, &variant_of, n_variants);
        let covariate_summaries = match (&metric_values, &covariate) {
            (MetricValues::Single(ys), Some(xs)) => Some(summarize_covariate(ys, xs, &variant_of, n_variants)),
            _ => None,
        };
        data.push(MetricData { summaries, covariates: covariate_summaries, cap });
        values.push(metric_values);
        covariates.push(covariate);
    }
    (values, covariates, data)
}

/// The primary metric's statistics per value of each dimension: the 20 values with the most
/// units, the rest pooled as `(other)`, nulls as `(missing)`.
fn breakdowns(
    job: &Job,
    experiment: &Experiment,
    allocation: &ExperimentAllocation,
    primary: Option<&MetricValues>,
) -> Vec<DimensionSlices> {
    let Some(primary) = primary else { return Vec::new() };
    let n_variants = experiment.variants.len();
    let variant_of: Vec<u32> = allocation.analyzable().map(|u| u.variant).collect();
    job.dimensions
        .iter()
        .enumerate()
        .filter_map(|(d, dimension)| {
            let codes = allocation.dimensions.get(d)?;
            let names = allocation.dimension_values.get(d)?;
            let codes: Vec<u16> = allocation
                .units
                .iter()
                .zip(codes)
                .filter(|(u, _)| u.status == UnitStatus::Ok)
                .map(|(_, &c)| c)
                .collect();
            let mut counts: HashMap<u16, u64> = HashMap::new();
            for &code in &codes {
                *counts.entry(code).or_default() += 1;
            }
            let mut ranked: Vec<(u16, u64)> = counts.into_iter().collect();
            // Ties by value: codes number the values in the order reader threads first saw them.
            let value = |code: u16| (code == NO_DIMENSION, names.get(usize::from(code)));
            ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| value(a.0).cmp(&value(b.0))));
            let top: Vec<u16> = ranked.iter().take(TOP_SLICES).map(|(c, _)| *c).collect();
            let other = top.len();
            let slice_of = |code: u16| top.iter().position(|&c| c == code).unwrap_or(other);
            let n_slices = other + usize::from(ranked.len() > top.len());
            let group_of: Vec<u32> =
                codes.iter().zip(&variant_of).map(|(&code, &v)| (slice_of(code) * n_variants) as u32 + v).collect();
            let grouped = summarize(primary, &group_of, n_slices * n_variants);
            let slices = (0..n_slices)
                .map(|s| {
                    let name = match top.get(s) {
                        Some(&code) if code == NO_DIMENSION => "(missing)".to_string(),
                        Some(&code) => names.get(usize::from(code)).cloned().unwrap_or_else(|| "(other)".into()),
                        None => "(other)".to_string(),
                    };
                    let part = |range: std::ops::Range<usize>| match &grouped {
                        VariantSummaries::Single(all) => VariantSummaries::Single(all[range].to_vec()),
                        VariantSummaries::Ratio(all) => VariantSummaries::Ratio(all[range].to_vec()),
                    };
                    (name, part(s * n_variants..(s + 1) * n_variants))
                })
                .collect();
            Some(DimensionSlices { dimension: dimension.clone(), slices })
        })
        .collect()
}
