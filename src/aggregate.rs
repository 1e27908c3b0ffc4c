//! Record batches -> per-unit values -> per-variant sufficient statistics.
//!
//! One [`Aggregator`] folds the scan: exposure batches build each experiment's allocation (a
//! unit's variant, first exposure, exposure count, status), then event batches accumulate,
//! per experiment and unit, the events the contract's attribution rule counts. It is called
//! from the reader tasks with one batch at a time; state is sharded by unit so both cores fold
//! at once. `values` then turns the accumulators into per-unit metric values and per-variant
//! sufficient statistics.
//!
//! This module does no IO, is not async and knows nothing of files beyond the partition date.

mod allocation;
mod columns;
mod exact_sum;
mod experiment;
mod fold;
mod unit_keys;
mod values;

use std::collections::HashMap;

use chrono::{NaiveDate, NaiveTime};

use crate::config::{Aggregate, ColumnNames, Experiment, Job, MetricKind};

pub use allocation::{
    AllocatedUnit, Allocation, AllocationCounts, DataQuality, ExperimentAllocation, UnitIndex, UnitStatus,
};
pub use columns::UnitKey;
pub use experiment::{DimensionSlices, ExperimentAggregates, ExperimentInput, MetricData, TOP_SLICES, experiment};
pub use fold::{Aggregator, EventTotals, NO_DIMENSION, SlotTotals};
pub use unit_keys::{UnitIdKind, UnitKeys};
pub use values::{
    MetricValues, VariantSummaries, apply_cap, covariate_values, metric_values, quantile, summarize,
    summarize_covariate,
};

/// Why a batch could not be folded.
#[derive(Debug, thiserror::Error)]
pub enum AggregateError {
    #[error("column `{column}` is {found}, which abreport cannot read here")]
    ColumnType { column: String, found: String },
    #[error(
        "column `{column}` holds {found} unit ids, but earlier files held {expected} ids; both datasets must use one type"
    )]
    UnitIdKind { column: String, expected: &'static str, found: &'static str },
    #[error("expected {expected} columns in a batch, got {found}")]
    Columns { expected: usize, found: usize },
}

/// Microseconds since the epoch of midnight UTC at the start of `date`.
pub fn day_start_micros(date: NaiveDate) -> i64 {
    date.and_time(NaiveTime::MIN).and_utc().timestamp_micros()
}

/// What to compute: the experiments of one run, their windows and the events they need.
#[derive(Debug, Clone)]
pub struct Spec {
    pub report_date: NaiveDate,
    /// Exclusive end of the analysis window: midnight UTC after the report date.
    pub end_micros: i64,
    pub columns: ColumnNames,
    /// Exposure-log columns whose value at a unit's first exposure is kept (breakdowns).
    pub dimensions: Vec<String>,
    pub experiments: Vec<ExperimentSpec>,
    /// Distinct event names any experiment needs; an event id is an index here.
    pub events: Vec<String>,
}

/// One experiment's part of the [`Spec`].
#[derive(Debug, Clone)]
pub struct ExperimentSpec {
    pub id: String,
    pub start: NaiveDate,
    /// Configured variants, control first.
    pub variants: Vec<String>,
    /// Per-unit accumulators this experiment needs, one per distinct event.
    pub slots: Vec<Slot>,
    /// How each of its metrics (in the experiment's metric order) is made from slots.
    pub metrics: Vec<MetricPlan>,
    /// Per metric: whether its pre-exposure value (over `lookback_micros`) is a CUPED covariate.
    pub cuped: Vec<bool>,
    /// How far before a unit's first exposure its events form covariates.
    pub lookback_micros: i64,
}

impl ExperimentSpec {
    pub fn contains(&self, date: NaiveDate, report_date: NaiveDate) -> bool {
        self.start <= date && date <= report_date
    }
}

/// A per-unit accumulator for one event: the count is always kept; sum and max when a metric
/// needs them.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    pub event: usize,
    pub sum: bool,
    pub max: bool,
    /// Also accumulate the unit's pre-exposure events (a CUPED covariate needs them).
    pub pre: bool,
}

/// A per-unit value: an aggregate of one slot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlotValue {
    pub slot: usize,
    pub aggregate: Aggregate,
}

/// How a metric's per-unit values come from the slots.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetricPlan {
    /// 1 when the slot's count is positive.
    Proportion {
        slot: usize,
    },
    Mean(SlotValue),
    Ratio {
        numerator: SlotValue,
        denominator: SlotValue,
    },
}

impl Spec {
    /// Builds the spec for `experiments` (a subset of the job's) at `report_date`.
    pub fn new(job: &Job, experiments: &[&Experiment], report_date: NaiveDate) -> Self {
        let mut events: Vec<String> = Vec::new();
        let mut event_id = |name: &str| match events.iter().position(|e| e == name) {
            Some(id) => id,
            None => {
                events.push(name.to_string());
                events.len() - 1
            }
        };
        let experiments = experiments
            .iter()
            .map(|experiment| {
                let mut slots: Vec<Slot> = Vec::new();
                let mut slot_value = |event: &str, aggregate: Aggregate| {
                    let event = event_id(event);
                    let slot = match slots.iter().position(|s| s.event == event) {
                        Some(slot) => slot,
                        None => {
                            slots.push(Slot { event, sum: false, max: false, pre: false });
                            slots.len() - 1
                        }
                    };
                    match aggregate {
                        Aggregate::Sum => slots[slot].sum = true,
                        Aggregate::Max => slots[slot].max = true,
                        Aggregate::Count => {}
                    }
                    SlotValue { slot, aggregate }
                };
                let metrics = experiment
                    .metrics
                    .iter()
                    .map(|m| match &job.metrics[m.metric].kind {
                        MetricKind::Proportion { event } => {
                            MetricPlan::Proportion { slot: slot_value(event, Aggregate::Count).slot }
                        }
                        MetricKind::Mean(e) => MetricPlan::Mean(slot_value(&e.event, e.aggregate)),
                        MetricKind::Ratio { numerator, denominator } => MetricPlan::Ratio {
                            numerator: slot_value(&numerator.event, numerator.aggregate),
                            denominator: slot_value(&denominator.event, denominator.aggregate),
                        },
                    })
                    .collect::<Vec<MetricPlan>>();
                let cuped: Vec<bool> = experiment.metrics.iter().map(|m| job.metrics[m.metric].cuped).collect();
                for (plan, _) in metrics.iter().zip(&cuped).filter(|(_, cuped)| **cuped) {
                    match plan {
                        MetricPlan::Proportion { slot } => slots[*slot].pre = true,
                        MetricPlan::Mean(value) => slots[value.slot].pre = true,
                        MetricPlan::Ratio { .. } => {}
                    }
                }
                ExperimentSpec {
                    id: experiment.id.clone(),
                    start: experiment.start,
                    variants: experiment.variants.iter().map(|v| v.name.clone()).collect(),
                    slots,
                    metrics,
                    cuped,
                    lookback_micros: i64::from(experiment.stats.cuped_lookback_days) * 86_400_000_000,
                }
            })
            .collect();
        Spec {
            report_date,
            end_micros: day_start_micros(report_date + chrono::Days::new(1)),
            columns: job.source.columns.clone(),
            dimensions: job.dimensions.clone(),
            experiments,
            events,
        }
    }

    /// The first event partition to read: the earliest start, moved back by the CUPED
    /// lookback of experiments that need covariates.
    pub fn first_event_date(&self) -> Option<NaiveDate> {
        self.experiments
            .iter()
            .map(|e| {
                let days = if e.cuped.iter().any(|c| *c) { e.lookback_micros / 86_400_000_000 } else { 0 };
                e.start - chrono::Days::new(days as u64)
            })
            .min()
    }

    /// The earliest start of the spec's experiments.
    pub fn first_date(&self) -> Option<NaiveDate> {
        self.experiments.iter().map(|e| e.start).min()
    }

    pub(crate) fn experiment_index(&self) -> HashMap<String, usize> {
        self.experiments.iter().enumerate().map(|(i, e)| (e.id.clone(), i)).collect()
    }
}
