//! The scan's fold: exposure batches, then event batches, into per-unit state.
//!
//! State is sharded by unit: a unit id's hash picks one of [`SHARDS`] shards, each behind its
//! own lock, holding that shard's unit ids and, per experiment, dense per-unit arrays (first
//! exposure, variants seen, exposure count, then event accumulators). A batch is decoded and
//! hashed without any lock, its rows bucketed by shard, and each shard locked once for its
//! rows — so reader tasks on both cores fold at the same time and rarely wait for each other.
//!
//! Attribution (shared/contract.md): a unit's variant is the set of variants it was exposed to
//! in the window; its exposure time is its first exposure; an event counts when
//! `first exposure <= ts < end of report date`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};

use arrow::array::ArrayRef;
use chrono::NaiveDate;

use super::allocation::{AllocatedUnit, Allocation, ExperimentAllocation, UnitIndex, UnitStatus};
use super::columns::{UnitIds, UnitKey, numbers, text_codes, timestamps_micros};
use super::unit_keys::{UnitKeys, hash_unit};
use super::{AggregateError, Spec};

const SHARD_BITS: u32 = 6;
/// Enough shards that two reader tasks seldom want the same one at once.
pub const SHARDS: usize = 1 << SHARD_BITS;
/// At most this many distinct variants per experiment are told apart (a `u64` bit mask);
/// further unknown variants share the last bit.
const MAX_VARIANTS: usize = 64;

/// The shard of a unit id hash. The hash is remixed first: the tables inside a shard use the
/// hash's own high and low bits, which must stay uniform within the shard.
fn shard_of(hash: u64) -> usize {
    (hash.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SHARD_BITS)) as usize
}

/// One slot's per-unit accumulators (indexed by the unit's position among the experiment's
/// analyzable units in allocation order).
#[derive(Debug, Clone, Default)]
pub struct SlotTotals {
    pub count: Vec<u32>,
    /// Sum of finite values; empty when no metric needs it.
    pub sum: Vec<f64>,
    /// Largest finite value (`-inf` when none); empty when no metric needs it.
    pub max: Vec<f64>,
}

impl SlotTotals {
    fn new(len: usize, sum: bool, max: bool) -> Self {
        Self {
            count: vec![0; len],
            sum: if sum { vec![0.0; len] } else { Vec::new() },
            max: if max { vec![f64::NEG_INFINITY; len] } else { Vec::new() },
        }
    }
}

/// One experiment's event accumulators and data-quality counts.
#[derive(Debug, Clone, Default)]
pub struct EventTotals {
    pub slots: Vec<SlotTotals>,
    /// Events that counted toward a metric.
    pub counted_events: u64,
    /// Counted events whose value was NaN or infinite (treated as missing).
    pub invalid_values: u64,
    /// Events of exposed units before their first exposure (not counted).
    pub pre_exposure_events: u64,
}

/// One experiment's per-unit arrays within a shard, indexed by the shard-local unit index.
#[derive(Default)]
struct ShardExperiment {
    /// `i64::MAX` when the unit has no exposure in this experiment.
    first_micros: Vec<i64>,
    /// Bit `i` set when exposed to variant `i`.
    mask: Vec<u64>,
    exposures: Vec<u32>,
    rows: u64,
    /// Allocated when the first event batch arrives (the unit count is final by then).
    slots: Vec<SlotTotals>,
    counted: u64,
    invalid: u64,
    pre_exposure: u64,
}

#[derive(Default)]
struct Shard {
    keys: UnitKeys,
    experiments: Vec<ShardExperiment>,
    rows_without_key: u64,
}

impl Shard {
    fn intern(&mut self, hash: u64, key: UnitKey<'_>) -> usize {
        let before = self.keys.len();
        let local = self.keys.intern(hash, key) as usize;
        if local == before {
            for experiment in &mut self.experiments {
                experiment.first_micros.push(i64::MAX);
                experiment.mask.push(0);
                experiment.exposures.push(0);
            }
        }
        local
    }

    fn ensure_slots(&mut self, spec: &Spec) {
        let len = self.keys.len();
        for (experiment, experiment_spec) in self.experiments.iter_mut().zip(&spec.experiments) {
            if experiment.slots.len() != experiment_spec.slots.len() {
                experiment.slots = experiment_spec.slots.iter().map(|s| SlotTotals::new(len, s.sum, s.max)).collect();
            }
        }
    }
}

/// A value's class under the contract: finite, missing (null) or invalid (NaN/Inf).
#[derive(Clone, Copy)]
enum Value {
    Finite(f64),
    Missing,
    Invalid,
}

const KIND_UNSET: u8 = 0;
const KIND_TEXT: u8 = 1;
const KIND_INT: u8 = 2;

/// The fold of one run. Call [`Aggregator::fold_exposures`] for every exposure batch, then
/// [`Aggregator::fold_events`] for every event batch (each from any thread), then
/// [`Aggregator::finish`] once.
pub struct Aggregator {
    spec: std::sync::Arc<Spec>,
    experiment_index: HashMap<String, usize>,
    event_index: HashMap<String, u16>,
    /// Per experiment, the slot of each event id.
    slot_of: Vec<Vec<Option<u16>>>,
    shards: Vec<Mutex<Shard>>,
    /// Per experiment: configured variants (control first), then unknown ones as seen.
    variants: Mutex<Vec<Vec<String>>>,
    unit_kind: AtomicU8,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere cannot leave these plain accumulators half-updated in a way that
    // matters more than the panic itself, which is reported anyway.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Row indices grouped by shard (a counting sort): `rows[starts[s]..starts[s + 1]]`.
struct Buckets {
    starts: Vec<usize>,
    rows: Vec<u32>,
}

impl Buckets {
    fn new(shard_of_row: &[(u32, u8)]) -> Self {
        let mut starts = vec![0usize; SHARDS + 1];
        for &(_, shard) in shard_of_row {
            starts[shard as usize + 1] += 1;
        }
        for s in 0..SHARDS {
            starts[s + 1] += starts[s];
        }
        let mut fill = starts.clone();
        let mut rows = vec![0u32; shard_of_row.len()];
        for &(row, shard) in shard_of_row {
            rows[fill[shard as usize]] = row;
            fill[shard as usize] += 1;
        }
        Self { starts, rows }
    }

    fn of(&self, shard: usize) -> &[u32] {
        &self.rows[self.starts[shard]..self.starts[shard + 1]]
    }
}

impl Aggregator {
    pub fn new(spec: std::sync::Arc<Spec>) -> Self {
        let n_experiments = spec.experiments.len();
        let shards = (0..SHARDS)
            .map(|_| {
                let experiments = (0..n_experiments).map(|_| ShardExperiment::default()).collect();
                Mutex::new(Shard { experiments, ..Shard::default() })
            })
            .collect();
        let slot_of = spec
            .experiments
            .iter()
            .map(|e| {
                let mut slot_of = vec![None; spec.events.len()];
                for (s, slot) in e.slots.iter().enumerate() {
                    slot_of[slot.event] = Some(s as u16);
                }
                slot_of
            })
            .collect();
        Self {
            experiment_index: spec.experiment_index(),
            event_index: spec.events.iter().enumerate().map(|(i, e)| (e.clone(), i as u16)).collect(),
            slot_of,
            shards,
            variants: Mutex::new(spec.experiments.iter().map(|e| e.variants.clone()).collect()),
            unit_kind: AtomicU8::new(KIND_UNSET),
            spec,
        }
    }

    /// Fixes the unit id kind on first use and rejects the other kind afterwards.
    fn accept_kind(&self, units: &UnitIds<'_>) -> Result<(), AggregateError> {
        let kind = if units.is_text() { KIND_TEXT } else { KIND_INT };
        match self.unit_kind.compare_exchange(KIND_UNSET, kind, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => Ok(()),
            Err(seen) if seen == kind => Ok(()),
            Err(_) => {
                let name = |k: u8| if k == KIND_TEXT { "string" } else { "integer" };
                Err(AggregateError::UnitIdKind {
                    column: self.spec.columns.unit_id.clone(),
                    expected: name(if kind == KIND_TEXT { KIND_INT } else { KIND_TEXT }),
                    found: name(kind),
                })
            }
        }
    }

    /// Folds one batch of `[experiment_id, variant, unit_id, ts]` from the partition of `date`.
    pub fn fold_exposures(&self, date: NaiveDate, columns: &[ArrayRef]) -> Result<(), AggregateError> {
        let names = &self.spec.columns;
        let [experiment_col, variant_col, unit_col, ts_col] = columns else {
            return Err(AggregateError::Columns { expected: 4, found: columns.len() });
        };
        let report_date = self.spec.report_date;
        // Rows of experiments not in this run, or outside their window, are dropped here.
        let experiments = text_codes(&names.experiment_id, experiment_col.as_ref(), |id| {
            self.experiment_index.get(id).copied().filter(|&e| self.spec.experiments[e].contains(date, report_date))
        })?;
        let mut batch_variants: Vec<String> = Vec::new();
        let mut batch_codes: HashMap<String, u16> = HashMap::new();
        let variants = text_codes(&names.variant, variant_col.as_ref(), |name| {
            if let Some(&code) = batch_codes.get(name) {
                return Some(code);
            }
            let code = u16::try_from(batch_variants.len()).ok()?;
            batch_variants.push(name.to_string());
            batch_codes.insert(name.to_string(), code);
            Some(code)
        })?;
        let units = UnitIds::new(&names.unit_id, unit_col.as_ref())?;
        self.accept_kind(&units)?;
        let times = timestamps_micros(&names.exposure_ts, ts_col.as_ref())?;

        // Resolve (experiment, batch variant) pairs to experiment variant indices at once.
        let n_experiments = self.spec.experiments.len();
        let mut variant_index = vec![u8::MAX; n_experiments * batch_variants.len()];
        let mut rows_without_key = 0u64;
        let mut hashed: Vec<(u32, u8)> = Vec::with_capacity(experiments.len());
        let mut hashes: Vec<u64> = vec![0; experiments.len()];
        for row in 0..experiments.len() {
            let Some(experiment) = experiments[row] else { continue };
            let (Some(variant), Some(unit), Some(_)) = (variants[row], units.get(row), times[row]) else {
                rows_without_key += 1;
                continue;
            };
            variant_index[experiment * batch_variants.len() + variant as usize] = 0;
            let hash = hash_unit(unit);
            hashes[row] = hash;
            hashed.push((row as u32, shard_of(hash) as u8));
        }
        {
            let mut registry = lock(&self.variants);
            for (pair, index) in variant_index.iter_mut().enumerate() {
                if *index == u8::MAX {
                    continue;
                }
                let (experiment, code) = (pair / batch_variants.len(), pair % batch_variants.len());
                let known = &mut registry[experiment];
                let name = &batch_variants[code];
                *index = match known.iter().position(|v| v == name) {
                    Some(i) => i as u8,
                    None if known.len() < MAX_VARIANTS => {
                        known.push(name.clone());
                        (known.len() - 1) as u8
                    }
                    None => (MAX_VARIANTS - 1) as u8,
                };
            }
        }

        let buckets = Buckets::new(&hashed);
        for s in 0..SHARDS {
            let rows = buckets.of(s);
            if rows.is_empty() && !(s == 0 && rows_without_key > 0) {
                continue;
            }
            let mut shard = lock(&self.shards[s]);
            if s == 0 {
                shard.rows_without_key += rows_without_key;
            }
            for &row in rows {
                let row = row as usize;
                let (Some(experiment), Some(variant), Some(unit), Some(micros)) =
                    (experiments[row], variants[row], units.get(row), times[row])
                else {
                    continue;
                };
                let local = shard.intern(hashes[row], unit);
                let variant = variant_index[experiment * batch_variants.len() + variant as usize];
                let e = &mut shard.experiments[experiment];
                e.rows += 1;
                e.first_micros[local] = e.first_micros[local].min(micros);
                e.mask[local] |= 1u64 << variant;
                e.exposures[local] += 1;
            }
        }
        Ok(())
    }

    /// Folds one batch of `[unit_id, event, value, ts]`.
    pub fn fold_events(&self, columns: &[ArrayRef]) -> Result<(), AggregateError> {
        let names = &self.spec.columns;
        let [unit_col, event_col, value_col, ts_col] = columns else {
            return Err(AggregateError::Columns { expected: 4, found: columns.len() });
        };
        let events = text_codes(&names.event, event_col.as_ref(), |name| self.event_index.get(name).copied())?;
        let units = UnitIds::new(&names.unit_id, unit_col.as_ref())?;
        self.accept_kind(&units)?;
        let values = numbers(&names.value, value_col.as_ref())?;
        let times = timestamps_micros(&names.event_ts, ts_col.as_ref())?;

        // Outside the locks: drop unneeded events, hash the rest and bucket them by shard.
        let mut hashed: Vec<(u32, u8)> = Vec::with_capacity(events.len() / 2);
        let mut hashes: Vec<u64> = vec![0; events.len()];
        for row in 0..events.len() {
            if events[row].is_none() || times[row].is_none() {
                continue;
            }
            let Some(unit) = units.get(row) else { continue };
            let hash = hash_unit(unit);
            hashes[row] = hash;
            hashed.push((row as u32, shard_of(hash) as u8));
        }
        let buckets = Buckets::new(&hashed);
        let end = self.spec.end_micros;
        let n_configured: Vec<usize> = self.spec.experiments.iter().map(|e| e.variants.len()).collect();
        for s in 0..SHARDS {
            let rows = buckets.of(s);
            if rows.is_empty() {
                continue;
            }
            let mut shard = lock(&self.shards[s]);
            shard.ensure_slots(&self.spec);
            let shard = &mut *shard;
            for &row in rows {
                let row = row as usize;
                let (Some(event), Some(unit), Some(micros)) = (events[row], units.get(row), times[row]) else {
                    continue;
                };
                let Some(local) = shard.keys.get(hashes[row], unit) else { continue };
                let local = local as usize;
                let value = match values[row] {
                    None => Value::Missing,
                    Some(v) if v.is_finite() => Value::Finite(v),
                    Some(_) => Value::Invalid,
                };
                for (e, experiment) in shard.experiments.iter_mut().enumerate() {
                    let Some(slot) = self.slot_of[e][event as usize] else { continue };
                    let mask = experiment.mask[local];
                    // Analyzable: exactly one variant, and a configured one.
                    if mask == 0 || mask & (mask - 1) != 0 || mask.trailing_zeros() as usize >= n_configured[e] {
                        continue;
                    }
                    if micros < experiment.first_micros[local] {
                        experiment.pre_exposure += 1;
                        continue;
                    }
                    if micros >= end {
                        continue;
                    }
                    experiment.counted += 1;
                    let slot = &mut experiment.slots[slot as usize];
                    slot.count[local] += 1;
                    match value {
                        Value::Finite(v) => {
                            if let Some(sum) = slot.sum.get_mut(local) {
                                *sum += v;
                            }
                            if let Some(max) = slot.max.get_mut(local) {
                                *max = max.max(v);
                            }
                        }
                        Value::Invalid => experiment.invalid += 1,
                        Value::Missing => {}
                    }
                }
            }
        }
        Ok(())
    }

    /// The allocation of every experiment (units in first-exposure order, ties by unit id, so
    /// outputs do not depend on thread timing) and each experiment's event totals in the order
    /// of its analyzable units. Takes the state out: call once, after both scans.
    pub fn finish(&self) -> (Allocation, Vec<EventTotals>) {
        let mut shards: Vec<Shard> = self.shards.iter().map(|s| std::mem::take(&mut *lock(s))).collect();
        for shard in &mut shards {
            shard.ensure_slots(&self.spec);
        }
        let keys = UnitIndex::new(shards.iter_mut().map(|s| std::mem::take(&mut s.keys)).collect());
        let registry = std::mem::take(&mut *lock(&self.variants));
        let rows_without_key = shards.iter().map(|s| s.rows_without_key).sum();
        let mut experiments = Vec::with_capacity(self.spec.experiments.len());
        let mut totals = Vec::with_capacity(self.spec.experiments.len());
        for (e, (experiment_spec, variants)) in self.spec.experiments.iter().zip(registry).enumerate() {
            let n_configured = experiment_spec.variants.len();
            // (unit, shard, local) of every unit exposed in this experiment.
            let mut members: Vec<(AllocatedUnit, u32, u32)> = Vec::new();
            for (s, shard) in shards.iter().enumerate() {
                let x = &shard.experiments[e];
                for (local, &mask) in x.mask.iter().enumerate() {
                    if mask == 0 {
                        continue;
                    }
                    let unit = AllocatedUnit {
                        unit: keys.global(s, local as u32),
                        first_micros: x.first_micros[local],
                        exposures: x.exposures[local],
                        mask,
                        variant: mask.trailing_zeros() as u8,
                        status: UnitStatus::of(mask, n_configured),
                    };
                    members.push((unit, s as u32, local as u32));
                }
            }
            members.sort_unstable_by(|(a, ..), (b, ..)| {
                a.first_micros.cmp(&b.first_micros).then_with(|| keys.key(a.unit).cmp(&keys.key(b.unit)))
            });
            let analyzable: Vec<(u32, u32)> =
                members.iter().filter(|(u, ..)| u.status == UnitStatus::Ok).map(|&(_, s, l)| (s, l)).collect();
            let slots = experiment_spec
                .slots
                .iter()
                .enumerate()
                .map(|(k, slot)| {
                    let pick = |f: &dyn Fn(&SlotTotals, usize) -> f64| -> Vec<f64> {
                        analyzable
                            .iter()
                            .map(|&(s, l)| f(&shards[s as usize].experiments[e].slots[k], l as usize))
                            .collect()
                    };
                    SlotTotals {
                        count: analyzable
                            .iter()
                            .map(|&(s, l)| shards[s as usize].experiments[e].slots[k].count[l as usize])
                            .collect(),
                        sum: if slot.sum { pick(&|t, l| t.sum[l]) } else { Vec::new() },
                        max: if slot.max { pick(&|t, l| t.max[l]) } else { Vec::new() },
                    }
                })
                .collect();
            let sum = |f: fn(&ShardExperiment) -> u64| shards.iter().map(|s| f(&s.experiments[e])).sum::<u64>();
            totals.push(EventTotals {
                slots,
                counted_events: sum(|x| x.counted),
                invalid_values: sum(|x| x.invalid),
                pre_exposure_events: sum(|x| x.pre_exposure),
            });
            experiments.push(ExperimentAllocation {
                variants,
                n_configured,
                units: members.into_iter().map(|(u, ..)| u).collect(),
                exposure_rows: sum(|x| x.rows),
            });
            // This experiment's shard arrays are no longer needed.
            for shard in &mut shards {
                shard.experiments[e] = ShardExperiment::default();
            }
        }
        (Allocation { keys, experiments, rows_without_key }, totals)
    }
}
