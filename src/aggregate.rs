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
mod error;
mod exact_sum;
mod experiment;
mod fold;
mod prefetch;
mod spec;
pub mod sufficient;
mod unit_keys;
mod values;

pub use allocation::{
    AllocatedUnit, Allocation, AllocationCounts, DataQuality, ExperimentAllocation, NO_DIMENSION, UnitIndex, UnitStatus,
};
pub use columns::UnitKey;
pub use error::AggregateError;
pub use experiment::{DimensionSlices, ExperimentAggregates, ExperimentInput, MetricData, TOP_SLICES, experiment};
pub use fold::checkpoint::{
    CHECKPOINT_VERSION, CheckpointError, CheckpointHeader, FileRecord, PartitionRecord, fingerprint, read_header,
};
pub use fold::incremental::Regated;
pub use fold::tracking::MaxTimestamps;
pub use fold::{Aggregator, EventTotals, SlotTotals};
pub use spec::{ExperimentSpec, MetricPlan, Slot, SlotValue, Spec, day_start_micros};
pub use unit_keys::{UnitIdKind, UnitKeys};
pub use values::{
    MetricValues, VariantSummaries, apply_cap, covariate_values, metric_values, quantile, summarize,
    summarize_covariate,
};
