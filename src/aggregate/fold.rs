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
use super::exact_sum;
use super::unit_keys::{UnitKeys, hash_unit};
use super::{AggregateError, Spec};

const SHARD_BITS: u32 = 6;
/// Enough shards that two reader tasks seldom want the same one at once.
pub const SHARDS: usize = 1 << SHARD_BITS;
/// At most this many distinct variants per experiment are told apart (a `u32` bit mask keeps a
/// unit's exposure state at 16 bytes); further unknown variants share the last bit.
const MAX_VARIANTS: usize = 32;

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

/// One experiment's event accumulators and data-quality counts.
#[derive(Debug, Clone, Default)]
pub struct EventTotals {
    pub slots: Vec<SlotTotals>,
    /// Per slot, the lookback window's accumulators when a CUPED covariate needs them.
    pub pre_slots: Vec<Option<SlotTotals>>,
    /// Events that counted toward a metric.
    pub counted_events: u64,
    /// Counted events whose value was NaN or infinite (treated as missing).
    pub invalid_values: u64,
    /// Events of exposed units before their first exposure (not counted).
    pub pre_exposure_events: u64,
}

/// One unit's exposure state in one experiment.
#[derive(Debug, Clone, Copy)]
struct Exposure {
    /// `i64::MAX` while the unit has no exposure in the experiment.
    first_micros: i64,
    /// Bit `i` set when exposed to variant `i`.
    mask: u32,
    exposures: u32,
}

const UNEXPOSED: Exposure = Exposure { first_micros: i64::MAX, mask: 0, exposures: 0 };

/// A dimension code for a missing (null) value.
pub const NO_DIMENSION: u16 = u16::MAX;
/// Distinct values kept per dimension; further values share the last code.
const MAX_DIMENSION_VALUES: usize = u16::MAX as usize - 1;

/// The distinct values seen in each dimension column, and their codes.
#[derive(Default)]
struct DimensionRegistry {
    values: Vec<Vec<String>>,
    codes: Vec<HashMap<String, u16>>,
}

impl DimensionRegistry {
    fn code(&mut self, dimension: usize, value: &str) -> u16 {
        if let Some(&code) = self.codes[dimension].get(value) {
            return code;
        }
        let values = &mut self.values[dimension];
        if values.len() >= MAX_DIMENSION_VALUES {
            return (MAX_DIMENSION_VALUES - 1) as u16;
        }
        values.push(value.to_string());
        let code = (values.len() - 1) as u16;
        self.codes[dimension].insert(value.to_string(), code);
        code
    }
}

/// One set of accumulators in a unit's row (word indices).
#[derive(Debug, Clone, Copy)]
struct Accumulators {
    /// Counts are `u32` halves of a word: `(row[word] >> shift) as u32`.
    count_word: usize,
    count_shift: u32,
    /// The first of the sum's `exact_sum::WORDS` words.
    sum: Option<usize>,
    max: Option<usize>,
}

impl Accumulators {
    #[inline]
    fn add(&self, row: &mut [u64], value: Value) {
        row[self.count_word] += 1 << self.count_shift;
        if let Value::Finite(v) = value {
            // Sums and maxima must not depend on the order events arrive in (files finish in
            // any order): sums are exact (see `exact_sum`), and -0.0 counts as 0.0 for maxima.
            if let Some(i) = self.sum {
                exact_sum::add(&mut row[i..i + exact_sum::WORDS], v);
            }
            if let Some(i) = self.max {
                row[i] = f64::from_bits(row[i]).max(v + 0.0).to_bits();
            }
        }
    }

    /// This accumulator's totals for the given rows.
    fn totals<'a>(&self, rows: impl Iterator<Item = &'a [u64]> + Clone) -> SlotTotals {
        SlotTotals {
            count: rows.clone().map(|row| (row[self.count_word] >> self.count_shift) as u32).collect(),
            sum: self.sum.map_or_else(Vec::new, |i| {
                rows.clone().map(|row| exact_sum::total(&row[i..i + exact_sum::WORDS])).collect()
            }),
            max: self.max.map_or_else(Vec::new, |i| rows.map(|row| f64::from_bits(row[i])).collect()),
        }
    }
}

/// Where an experiment's slot lives in a unit's row: the counted events' accumulators, and for
/// CUPED covariates those of the events in the lookback window before the first exposure.
#[derive(Debug, Clone, Copy)]
struct SlotIndex {
    post: Accumulators,
    pre: Option<Accumulators>,
}

/// The event phase keeps one row of `u64` words per unit: for each experiment the time from
/// which its events count (the first exposure, or `i64::MAX` when the unit is not analyzable),
/// then every accumulator's count (two per word), exact sum (`exact_sum::WORDS` words) and
/// maximum (`f64` bits). One event touches one contiguous row, a few cache lines, whatever the
/// number of experiments.
struct Layout {
    experiments: usize,
    slots: Vec<Vec<SlotIndex>>,
    /// Words per unit row.
    width: usize,
    /// Words `maxes.0..maxes.1` start at `-inf`; all others at 0.
    maxes: (usize, usize),
    /// For each event id, the (experiment, slot) pairs it feeds.
    targets: Vec<Vec<(usize, SlotIndex)>>,
    /// Per experiment, the CUPED lookback.
    lookback_micros: Vec<i64>,
}

impl Layout {
    fn new(spec: &Spec) -> Self {
        let experiments = spec.experiments.len();
        // (sum, max) of every accumulator set, in slot order, pre after post.
        let sets: Vec<(bool, bool)> = spec
            .experiments
            .iter()
            .flat_map(|e| e.slots.iter())
            .flat_map(|s| std::iter::once((s.sum, s.max)).chain(s.pre.then_some((s.sum, s.max))))
            .collect();
        let sums_at = experiments + sets.len().div_ceil(2);
        let maxes_at = sums_at + exact_sum::WORDS * sets.iter().filter(|s| s.0).count();
        let width = maxes_at + sets.iter().filter(|s| s.1).count();
        let (mut count, mut sum, mut max) = (0, 0, 0);
        let mut next = |with_sum: bool, with_max: bool| {
            let set = Accumulators {
                count_word: experiments + count / 2,
                count_shift: 32 * (count % 2) as u32,
                sum: with_sum.then_some(sums_at + exact_sum::WORDS * sum),
                max: with_max.then_some(maxes_at + max),
            };
            count += 1;
            sum += usize::from(with_sum);
            max += usize::from(with_max);
            set
        };
        let mut targets = vec![Vec::new(); spec.events.len()];
        let slots = spec
            .experiments
            .iter()
            .enumerate()
            .map(|(e, experiment)| {
                experiment
                    .slots
                    .iter()
                    .map(|slot| {
                        let post = next(slot.sum, slot.max);
                        let pre = slot.pre.then(|| next(slot.sum, slot.max));
                        let index = SlotIndex { post, pre };
                        targets[slot.event].push((e, index));
                        index
                    })
                    .collect()
            })
            .collect();
        let lookback_micros = spec.experiments.iter().map(|e| e.lookback_micros).collect();
        Self { experiments, slots, width, maxes: (maxes_at, width), targets, lookback_micros }
    }

    /// A unit's fresh row, given its exposure state in each experiment.
    fn row(&self, exposure: &[Exposure], n_configured: &[usize], row: &mut [u64]) {
        for (e, x) in exposure.iter().enumerate() {
            row[e] = if analyzable(x, n_configured[e]) { x.first_micros } else { i64::MAX } as u64;
        }
        row[self.experiments..].fill(0);
        row[self.maxes.0..self.maxes.1].fill(f64::NEG_INFINITY.to_bits());
    }
}

/// Per-experiment event counts within a shard.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    rows: u64,
    counted: u64,
    invalid: u64,
    pre_exposure: u64,
}

/// One shard: its unit ids and, per unit, a row of exposure states (one per experiment) and,
/// once events arrive, a row of accumulators.
#[derive(Default)]
struct Shard {
    /// The shard's unit ids while exposures are folded; moved to [`Aggregator::frozen`] when
    /// the first event batch arrives.
    keys: UnitKeys,
    /// Units in the shard (the length of `keys` before it moved).
    units: usize,
    /// `dimensions[(local * n_experiments + e) * n_dimensions + d]`: the unit's value code of
    /// dimension `d` at its first exposure in experiment `e`.
    dimensions: Vec<u16>,
    /// `exposure[local * n_experiments + e]`.
    exposure: Vec<Exposure>,
    /// `rows[local * layout.width..][..layout.width]`: the unit's event-phase row (see
    /// [`Layout`]); built when the first event batch arrives (the unit count is final then).
    rows: Vec<u64>,
    counters: Vec<Counters>,
    rows_without_key: u64,
}

impl Shard {
    fn intern(&mut self, hash: u64, key: UnitKey<'_>, n_experiments: usize, n_dimensions: usize) -> usize {
        let local = self.keys.intern(hash, key) as usize;
        if local == self.units {
            self.units += 1;
            self.exposure.extend(std::iter::repeat_n(UNEXPOSED, n_experiments));
            self.dimensions.extend(std::iter::repeat_n(NO_DIMENSION, n_experiments * n_dimensions));
        }
        local
    }

    fn ensure_accumulators(&mut self, layout: &Layout, n_configured: &[usize]) {
        if self.rows.len() == self.units * layout.width {
            return;
        }
        self.rows = vec![0; self.units * layout.width];
        if layout.width == 0 {
            return;
        }
        let n = layout.experiments;
        for (local, row) in self.rows.chunks_exact_mut(layout.width).enumerate() {
            layout.row(&self.exposure[local * n..(local + 1) * n], n_configured, row);
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
    layout: Layout,
    experiment_index: HashMap<String, usize>,
    event_index: HashMap<String, u16>,
    shards: Vec<Mutex<Shard>>,
    /// Every shard's unit ids, frozen when the event phase starts: lookups need no lock then.
    frozen: std::sync::OnceLock<UnitIndex>,
    /// Per experiment: configured variants (control first), then unknown ones as seen.
    variants: Mutex<Vec<Vec<String>>>,
    dimensions: Mutex<DimensionRegistry>,
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

/// Whether a unit with exposure state `x` counts for an experiment with `n_configured`
/// variants: exactly one variant, and a configured one.
#[inline]
fn analyzable(x: &Exposure, n_configured: usize) -> bool {
    let mask = x.mask;
    mask != 0 && mask & (mask - 1) == 0 && (mask.trailing_zeros() as usize) < n_configured
}

impl Aggregator {
    pub fn new(spec: std::sync::Arc<Spec>) -> Self {
        let n_experiments = spec.experiments.len();
        let shards = (0..SHARDS)
            .map(|_| Mutex::new(Shard { counters: vec![Counters::default(); n_experiments], ..Shard::default() }))
            .collect();
        Self {
            layout: Layout::new(&spec),
            experiment_index: spec.experiment_index(),
            event_index: spec.events.iter().enumerate().map(|(i, e)| (e.clone(), i as u16)).collect(),
            shards,
            frozen: std::sync::OnceLock::new(),
            variants: Mutex::new(spec.experiments.iter().map(|e| e.variants.clone()).collect()),
            dimensions: Mutex::new(DimensionRegistry {
                values: vec![Vec::new(); spec.dimensions.len()],
                codes: vec![HashMap::new(); spec.dimensions.len()],
            }),
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

    /// Folds one batch of `[experiment_id, variant, unit_id, ts, dimensions…]` from the
    /// partition of `date`.
    pub fn fold_exposures(&self, date: NaiveDate, columns: &[ArrayRef]) -> Result<(), AggregateError> {
        let names = &self.spec.columns;
        let n_dimensions = self.spec.dimensions.len();
        let [experiment_col, variant_col, unit_col, ts_col, dimension_cols @ ..] = columns else {
            return Err(AggregateError::Columns { expected: 4 + n_dimensions, found: columns.len() });
        };
        if dimension_cols.len() != n_dimensions {
            return Err(AggregateError::Columns { expected: 4 + n_dimensions, found: columns.len() });
        }
        // Dimension values get batch-local codes, mapped to run-wide codes under one lock.
        let mut dimension_codes: Vec<Vec<Option<u16>>> = Vec::with_capacity(n_dimensions);
        let mut dimension_maps: Vec<Vec<u16>> = Vec::with_capacity(n_dimensions);
        for (d, column) in dimension_cols.iter().enumerate() {
            let mut batch_values: Vec<String> = Vec::new();
            let mut batch_index: HashMap<String, u16> = HashMap::new();
            dimension_codes.push(text_codes(&self.spec.dimensions[d], column.as_ref(), |value| {
                if let Some(&code) = batch_index.get(value) {
                    return Some(code);
                }
                let code = u16::try_from(batch_values.len()).ok()?;
                batch_values.push(value.to_string());
                batch_index.insert(value.to_string(), code);
                Some(code)
            })?);
            let mut registry = lock(&self.dimensions);
            dimension_maps.push(batch_values.iter().map(|v| registry.code(d, v)).collect());
        }
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
        let width = batch_variants.len();
        let mut variant_index = vec![u8::MAX; n_experiments * width];
        let mut rows_without_key = 0u64;
        let mut hashed: Vec<(u32, u8)> = Vec::with_capacity(experiments.len());
        let mut hashes: Vec<u64> = vec![0; experiments.len()];
        for row in 0..experiments.len() {
            let Some(experiment) = experiments[row] else { continue };
            let (Some(variant), Some(unit), Some(_)) = (variants[row], units.get(row), times[row]) else {
                rows_without_key += 1;
                continue;
            };
            variant_index[experiment * width + variant as usize] = 0;
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
                let known = &mut registry[pair / width];
                let name = &batch_variants[pair % width];
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
            if rows.is_empty() {
                continue;
            }
            let mut shard = lock(&self.shards[s]);
            for &row in rows {
                let row = row as usize;
                let (Some(experiment), Some(variant), Some(unit), Some(micros)) =
                    (experiments[row], variants[row], units.get(row), times[row])
                else {
                    continue;
                };
                let local = shard.intern(hashes[row], unit, n_experiments, n_dimensions);
                let variant = variant_index[experiment * width + variant as usize];
                shard.counters[experiment].rows += 1;
                let x = &mut shard.exposure[local * n_experiments + experiment];
                let first = micros < x.first_micros;
                x.first_micros = x.first_micros.min(micros);
                x.mask |= 1u32 << variant;
                x.exposures += 1;
                if first && n_dimensions > 0 {
                    let at = (local * n_experiments + experiment) * n_dimensions;
                    for d in 0..n_dimensions {
                        shard.dimensions[at + d] =
                            dimension_codes[d][row].map_or(NO_DIMENSION, |code| dimension_maps[d][code as usize]);
                    }
                }
            }
        }
        if rows_without_key > 0 {
            lock(&self.shards[0]).rows_without_key += rows_without_key;
        }
        Ok(())
    }

    /// The unit ids, frozen: taken out of the shards on first use (all exposures are folded
    /// by then).
    fn keys(&self) -> &UnitIndex {
        self.frozen
            .get_or_init(|| UnitIndex::new(self.shards.iter().map(|s| std::mem::take(&mut lock(s).keys)).collect()))
    }

    /// Folds one batch of `[unit_id, event, value, ts]`. All exposure batches must have been
    /// folded before the first call.
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

        // Outside the locks: drop unneeded events and unknown units, find each unit's shard and
        // local index (a tight loop, so the CPU overlaps the table's cache misses), and bucket
        // the rows by shard.
        let keys = self.keys();
        let mut hashed: Vec<(u32, u8)> = Vec::with_capacity(events.len());
        let mut locals: Vec<u32> = vec![0; events.len()];
        for row in 0..events.len() {
            if events[row].is_none() || times[row].is_none() {
                continue;
            }
            let Some(unit) = units.get(row) else { continue };
            let hash = hash_unit(unit);
            let shard = shard_of(hash);
            let Some(local) = keys.shard(shard).get(hash, unit) else { continue };
            locals[row] = local;
            hashed.push((row as u32, shard as u8));
        }
        let buckets = Buckets::new(&hashed);
        let end = self.spec.end_micros;
        let layout = &self.layout;
        let n_configured: Vec<usize> = self.spec.experiments.iter().map(|e| e.variants.len()).collect();
        for s in 0..SHARDS {
            let rows = buckets.of(s);
            if rows.is_empty() {
                continue;
            }
            let mut guard = lock(&self.shards[s]);
            guard.ensure_accumulators(layout, &n_configured);
            let shard = &mut *guard;
            for &row in rows {
                let row = row as usize;
                let (Some(event), Some(micros)) = (events[row], times[row]) else { continue };
                let local = locals[row] as usize;
                let value = match values[row] {
                    None => Value::Missing,
                    Some(v) if v.is_finite() => Value::Finite(v),
                    Some(_) => Value::Invalid,
                };
                let row = &mut shard.rows[local * layout.width..(local + 1) * layout.width];
                for &(e, slot) in &layout.targets[event as usize] {
                    let from = row[e] as i64;
                    if from == i64::MAX {
                        continue; // not analyzable in this experiment
                    }
                    let counters = &mut shard.counters[e];
                    if micros < from {
                        counters.pre_exposure += 1;
                        if let Some(pre) = &slot.pre
                            && micros >= from.saturating_sub(layout.lookback_micros[e])
                        {
                            pre.add(row, value);
                        }
                        continue;
                    }
                    if micros >= end {
                        continue;
                    }
                    counters.counted += 1;
                    if let Value::Invalid = value {
                        counters.invalid += 1;
                    }
                    slot.post.add(row, value);
                }
            }
        }
        Ok(())
    }

    /// The allocation of every experiment and each experiment's event totals in the order of
    /// its analyzable units. Units are ordered by shard, then first exposure, then id: the
    /// shard is a fixed function of the id, so the order never depends on thread timing, and
    /// gathering walks each shard's memory in place. Experiments are gathered on all cores.
    /// Takes the state out: call once, after both scans.
    pub fn finish(self) -> (Allocation, Vec<EventTotals>) {
        // Freeze the keys now if no event batch did (a run without events).
        self.keys();
        let Aggregator { spec, layout, shards, frozen, variants, dimensions, .. } = self;
        let dimension_values = dimensions.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner()).values;
        let keys = frozen.into_inner().unwrap_or_default();
        let mut shards: Vec<Shard> =
            shards.into_iter().map(|s| s.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner())).collect();
        let n_configured: Vec<usize> = spec.experiments.iter().map(|e| e.variants.len()).collect();
        for shard in &mut shards {
            shard.ensure_accumulators(&layout, &n_configured);
        }
        let registry = variants.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
        let rows_without_key = shards.iter().map(|s| s.rows_without_key).sum();

        let work: Mutex<Vec<(usize, Vec<String>)>> = Mutex::new(registry.into_iter().enumerate().rev().collect());
        let threads = crate::threads::count();
        let mut gathered: Vec<(usize, ExperimentAllocation, EventTotals)> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        let mut done = Vec::new();
                        while let Some((e, variants)) = lock(&work).pop() {
                            let (allocation, totals) =
                                gather(&spec, &layout, e, variants, &shards, &keys, &dimension_values);
                            done.push((e, allocation, totals));
                        }
                        done
                    })
                })
                .collect();
            // A gather cannot fail; a panicking one is re-raised here rather than lost.
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
                .collect()
        });
        gathered.sort_by_key(|(e, ..)| *e);
        let (experiments, totals) = gathered.into_iter().map(|(_, a, t)| (a, t)).unzip();
        (Allocation { keys, experiments, rows_without_key }, totals)
    }
}

/// One experiment's allocation and event totals, from all shards.
fn gather(
    spec: &Spec,
    layout: &Layout,
    e: usize,
    variants: Vec<String>,
    shards: &[Shard],
    keys: &UnitIndex,
    dimension_values: &[Vec<String>],
) -> (ExperimentAllocation, EventTotals) {
    let n_experiments = spec.experiments.len();
    let n_dimensions = spec.dimensions.len();
    let n_configured = spec.experiments[e].variants.len();
    let mut members: Vec<AllocatedUnit> = Vec::new();
    let mut dimensions: Vec<Vec<u16>> = vec![Vec::new(); n_dimensions];
    let mut analyzable_units: Vec<(usize, usize)> = Vec::new();
    for (s, shard) in shards.iter().enumerate() {
        let shard_keys = keys.shard(s);
        let mut order: Vec<(i64, u32)> = shard
            .exposure
            .iter()
            .skip(e)
            .step_by(n_experiments)
            .enumerate()
            .filter(|(_, x)| x.mask != 0)
            .map(|(local, x)| (x.first_micros, local as u32))
            .collect();
        order.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| shard_keys.key(a.1).cmp(&shard_keys.key(b.1))));
        for (first_micros, local) in order {
            let x = shard.exposure[local as usize * n_experiments + e];
            let status = UnitStatus::of(x.mask, n_configured);
            if status == UnitStatus::Ok {
                analyzable_units.push((s, local as usize));
            }
            for (d, codes) in dimensions.iter_mut().enumerate() {
                codes.push(shard.dimensions[(local as usize * n_experiments + e) * n_dimensions + d]);
            }
            members.push(AllocatedUnit {
                unit: keys.global(s, local),
                first_micros,
                exposures: x.exposures,
                mask: x.mask,
                variant: x.mask.trailing_zeros() as u8,
                status,
            });
        }
    }
    let rows = analyzable_units.iter().map(|&(s, l)| &shards[s].rows[l * layout.width..(l + 1) * layout.width]);
    let slots = layout.slots[e].iter().map(|slot| slot.post.totals(rows.clone())).collect();
    let pre_slots = layout.slots[e].iter().map(|slot| slot.pre.map(|pre| pre.totals(rows.clone()))).collect();
    let sum = |f: fn(&Counters) -> u64| shards.iter().map(|s| f(&s.counters[e])).sum::<u64>();
    let totals = EventTotals {
        slots,
        pre_slots,
        counted_events: sum(|c| c.counted),
        invalid_values: sum(|c| c.invalid),
        pre_exposure_events: sum(|c| c.pre_exposure),
    };
    let allocation = ExperimentAllocation {
        variants,
        n_configured,
        units: members,
        exposure_rows: sum(|c| c.rows),
        dimensions,
        dimension_values: dimension_values.to_vec(),
    };
    (allocation, totals)
}
