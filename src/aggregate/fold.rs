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
use std::collections::hash_map::Entry;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};

use arrow::array::ArrayRef;
use chrono::NaiveDate;

use super::allocation::{NO_DIMENSION, UnitIndex};
use super::columns::{UnitIds, UnitKey, numbers, text_codes, timestamps_micros};
use super::error::AggregateError;
use super::exact_sum;
use super::prefetch::prefetch;
use super::spec::Spec;
use super::unit_keys::{UnitKeys, hash_unit};

// The checkpoint of incremental runs: state to bytes and back, and the regating of a loaded
// state. Children, so they reach the state's private parts; this file never calls into them
// by path (only their `impl Aggregator` methods), so the layering has no circle.
pub(super) mod checkpoint;
mod gather;
pub(super) mod incremental;
pub(super) mod tracking;

const SHARD_BITS: u32 = 6;
/// How many rows ahead the event fold prefetches the unit-id table's line, and the unit's
/// accumulator row: far enough that the line arrives in time (a miss costs about as much as
/// the work of a few rows), near enough that it is still cached when used.
const PROBE_AHEAD: usize = 16;
const ROW_AHEAD: usize = 8;
/// Enough shards that two reader tasks seldom want the same one at once.
pub(super) const SHARDS: usize = 1 << SHARD_BITS;
/// [`Exposure::variant`] flag: the unit was exposed to two or more variants (its shard's
/// `multi` table lists them).
const MULTI: u32 = 1 << 31;
/// [`Exposure::variant`] flag: the unit has exposures after the end of the report date.
const FUTURE: u32 = 1 << 30;
/// [`Exposure::variant`] bits holding the index of the first variant seen. The index
/// `VARIANT_INDEX` itself is shared by the variant names past the first `VARIANT_INDEX` of an
/// experiment (a billion names: more than memory holds, so never in practice); every other
/// index names exactly one variant.
const VARIANT_INDEX: u32 = FUTURE - 1;

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
    /// Events that counted toward a metric: the sum of the slots' counts over the analyzable
    /// units, so a unit that stops being analyzable takes its events away.
    pub counted_events: u64,
    /// Counted events whose value was NaN or infinite (treated as missing), from a per-unit
    /// counter for the same reason.
    pub invalid_values: u64,
    /// Events of exposed units before their first exposure (not counted). An incremental run
    /// leaves out, for units first exposed (or first exposed earlier) after its checkpoint's
    /// date, those in partitions its checkpoint read that it does not re-read (see
    /// `fold::incremental`); results.json does not carry it.
    pub pre_exposure_events: u64,
}

/// One unit's exposure state in one experiment: 16 bytes whatever the number of variants, so
/// the dense per-unit, per-experiment array stays small. A unit seen in one variant needs
/// nothing more; one seen in several has its variants listed in its shard's `multi` table,
/// which only such units (rare, and excluded) use.
#[derive(Debug, Clone, Copy)]
struct Exposure {
    /// `i64::MAX` while the unit has no exposure in the window.
    first_micros: i64,
    /// Exposures in the window (saturating; 0 while there is none).
    exposures: u32,
    /// The index of the first variant seen in the window ([`VARIANT_INDEX`] bits), with the
    /// [`MULTI`] and [`FUTURE`] flags.
    variant: u32,
}

const UNEXPOSED: Exposure = Exposure { first_micros: i64::MAX, exposures: 0, variant: 0 };
// One per unit and experiment of the run: it must not grow with the number of variants.
const _: () = assert!(size_of::<Exposure>() == 16);

/// The variant names of one experiment: configured ones (control first), then unknown ones
/// as the data shows them; a name's index is its position.
#[derive(Default)]
struct VariantNames {
    names: Vec<String>,
    index: HashMap<String, u32>,
}

impl VariantNames {
    fn new(configured: &[String]) -> Self {
        let mut names = Self::default();
        for name in configured {
            names.index_of(name);
        }
        names
    }

    fn index_of(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        if self.names.len() >= VARIANT_INDEX as usize {
            return VARIANT_INDEX;
        }
        let i = self.names.len() as u32;
        self.names.push(name.to_string());
        self.index.insert(name.to_string(), i);
        i
    }
}

/// Distinct values kept per dimension; further values share the last code.
const MAX_DIMENSION_VALUES: usize = u16::MAX as usize - 1;

/// The distinct values seen in each dimension column, and their codes.
#[derive(Default)]
struct DimensionRegistry {
    values: Vec<Vec<String>>,
    codes: Vec<HashMap<String, u16>>,
}

impl DimensionRegistry {
    /// Whether the value of code `a` sorts before that of code `b` (byte-wise, as SQL's `min`).
    fn less(&self, dimension: usize, a: u16, b: u16) -> bool {
        let values = &self.values[dimension];
        values[usize::from(a)] < values[usize::from(b)]
    }

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
    /// Where the sum lives: sums are sparse (see [`SumAt`]).
    sum: Option<SumAt>,
    max: Option<usize>,
}

/// A sum's place. Most units never sum a value of most events (at 1M units of the benchmark,
/// 10% ever purchase), and an exact sum takes `exact_sum::WORDS` words, so sums are not kept in
/// the row: each block of a row with sums has one handle word, 0 until the unit's first summed
/// value of that block, then 1 + the index of the block's sums in its shard's `sums` arena.
#[derive(Debug, Clone, Copy)]
struct SumAt {
    /// The row word holding the block's handle.
    handle: usize,
    /// Words from the block's first sum to this one.
    offset: usize,
    /// Words of the block's sums in the arena: what its first summed value allocates.
    block: usize,
}

impl SumAt {
    /// This sum's words in `sums`, if the block has any.
    #[inline]
    fn words<'a>(&self, row: &[u64], sums: &'a [u64]) -> Option<&'a [u64]> {
        match row[self.handle] {
            0 => None,
            handle => Some(&sums[handle as usize - 1 + self.offset..][..exact_sum::WORDS]),
        }
    }

    /// This sum's words in `sums`, the block's sums allocated (zero) if it had none.
    #[inline]
    fn words_mut<'a>(&self, row: &mut [u64], sums: &'a mut Vec<u64>) -> &'a mut [u64] {
        let base = match row[self.handle] {
            0 => {
                let base = sums.len();
                sums.resize(base + self.block, 0);
                row[self.handle] = base as u64 + 1;
                base
            }
            handle => handle as usize - 1,
        };
        &mut sums[base + self.offset..][..exact_sum::WORDS]
    }
}

impl Accumulators {
    #[inline]
    fn add(&self, row: &mut [u64], sums: &mut Vec<u64>, value: Value) {
        row[self.count_word] += 1 << self.count_shift;
        if let Value::Finite(v) = value {
            // Sums and maxima must not depend on the order events arrive in (files finish in
            // any order): sums are exact (see `exact_sum`), and -0.0 counts as 0.0 for maxima.
            // Where a block's sums sit in the arena does depend on it; their totals do not.
            if let Some(at) = self.sum {
                exact_sum::add(at.words_mut(row, sums), v);
            }
            if let Some(i) = self.max {
                row[i] = f64::from_bits(row[i]).max(v + 0.0).to_bits();
            }
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
/// then one block per event with every experiment's accumulators of it: counts (two per word),
/// the handle of its sums (kept apart, see [`SumAt`]) and maxima (`f64` bits), the blocks that
/// only count first. The lookback's accumulators of CUPED covariates follow all those blocks,
/// one block per event too, and each experiment's count of invalid values comes last. An event
/// touches the gates and its own block, a few adjacent cache lines, whatever the number of
/// experiments and metrics; [`Layout::blocks`] says which, so they can be prefetched.
struct Layout {
    experiments: usize,
    slots: Vec<Vec<SlotIndex>>,
    /// Words per unit row.
    width: usize,
    /// The words that start at `-inf` (maxima); all others start at 0.
    maxes: Vec<usize>,
    /// For each event id, the (experiment, slot) pairs it feeds.
    targets: Vec<Vec<(usize, SlotIndex)>>,
    /// For each event id, the words `start..end` of its block of counted-event accumulators.
    blocks: Vec<(usize, usize)>,
    /// Per experiment, the CUPED lookback.
    lookback_micros: Vec<i64>,
    /// Per experiment, the `(word, shift)` of the unit's count of invalid values (NaN or
    /// infinite) among its counted events: a `u32` half-word like the counts.
    invalid: Vec<(usize, u32)>,
}

impl Layout {
    fn new(spec: &Spec) -> Self {
        let experiments = spec.experiments.len();
        let mut width = experiments;
        let mut maxes = Vec::new();
        let mut blocks = vec![(0, 0); spec.events.len()];
        // One block of accumulator sets per event: counts, then sums, then maxima.
        let mut block = |sets: &[(bool, bool)], width: &mut usize| -> Vec<Accumulators> {
            let counts_at = *width;
            let handle = counts_at + sets.len().div_ceil(2);
            let n_sums = sets.iter().filter(|s| s.0).count();
            let maxes_at = handle + usize::from(n_sums > 0);
            *width = maxes_at + sets.iter().filter(|s| s.1).count();
            let (mut sum, mut max) = (0, 0);
            sets.iter()
                .enumerate()
                .map(|(i, &(with_sum, with_max))| {
                    let set = Accumulators {
                        count_word: counts_at + i / 2,
                        count_shift: 32 * (i % 2) as u32,
                        sum: with_sum.then_some(SumAt {
                            handle,
                            offset: exact_sum::WORDS * sum,
                            block: exact_sum::WORDS * n_sums,
                        }),
                        max: with_max.then_some(maxes_at + max),
                    };
                    sum += usize::from(with_sum);
                    max += usize::from(with_max);
                    if let Some(word) = set.max {
                        maxes.push(word);
                    }
                    set
                })
                .collect()
        };
        // The (experiment, slot) pairs of each event, in experiment order.
        let users: Vec<Vec<(usize, usize)>> = (0..spec.events.len())
            .map(|event| {
                spec.experiments
                    .iter()
                    .enumerate()
                    .flat_map(|(e, experiment)| {
                        experiment.slots.iter().enumerate().filter(|(_, s)| s.event == event).map(move |(k, _)| (e, k))
                    })
                    .collect()
            })
            .collect();
        let slot = |(e, k): (usize, usize)| &spec.experiments[e].slots[k];
        let mut post: Vec<Vec<Option<Accumulators>>> =
            spec.experiments.iter().map(|e| vec![None; e.slots.len()]).collect();
        let mut pre = post.clone();
        // Blocks that only count come first, right after the gates: the frequent events
        // (page views, clicks) are counted, the rare ones (purchases) summed, and an event
        // touches the gates and its own block, so a counted event's block shares the gates'
        // cache line (or the next one) instead of lying two lines on. Only speed depends on
        // this order.
        let mut order: Vec<usize> = (0..users.len()).collect();
        order.sort_by_key(|&event| users[event].iter().any(|&u| slot(u).sum || slot(u).max));
        for &event in &order {
            let event_users = &users[event];
            let start = width;
            let sets: Vec<(bool, bool)> = event_users.iter().map(|&u| (slot(u).sum, slot(u).max)).collect();
            for (&(e, k), set) in event_users.iter().zip(block(&sets, &mut width)) {
                post[e][k] = Some(set);
            }
            blocks[event] = (start, width);
        }
        for event_users in order.iter().map(|&event| &users[event]) {
            let with_pre: Vec<(usize, usize)> = event_users.iter().copied().filter(|&u| slot(u).pre).collect();
            let sets: Vec<(bool, bool)> = with_pre.iter().map(|&u| (slot(u).sum, slot(u).max)).collect();
            for (&(e, k), set) in with_pre.iter().zip(block(&sets, &mut width)) {
                pre[e][k] = Some(set);
            }
        }
        let mut targets = vec![Vec::new(); spec.events.len()];
        let slots = post
            .into_iter()
            .zip(pre)
            .enumerate()
            .map(|(e, (post, pre))| {
                post.into_iter()
                    .zip(pre)
                    .enumerate()
                    .map(|(k, (post, pre))| {
                        let index = SlotIndex { post: post.expect("every slot has a block"), pre };
                        targets[spec.experiments[e].slots[k].event].push((e, index));
                        index
                    })
                    .collect()
            })
            .collect();
        // Each experiment's count of invalid values (two per word) last: only a NaN or
        // infinite value touches it.
        let invalid = (0..experiments).map(|e| (width + e / 2, 32 * (e % 2) as u32)).collect();
        let width = width + experiments.div_ceil(2);
        let lookback_micros = spec.experiments.iter().map(|e| e.lookback_micros).collect();
        Self { experiments, slots, width, maxes, targets, blocks, lookback_micros, invalid }
    }

    /// `(handle word, words)` of each block of sums in a row (see [`SumAt`]).
    fn sum_blocks(&self) -> Vec<(usize, usize)> {
        let mut blocks: Vec<(usize, usize)> = (self.slots.iter().flatten())
            .flat_map(|slot| std::iter::once(&slot.post).chain(&slot.pre))
            .filter_map(|set| set.sum.map(|at| (at.handle, at.block)))
            .collect();
        blocks.sort_unstable();
        blocks.dedup();
        blocks
    }

    /// A unit's fresh row, given its exposure state in each experiment.
    fn row(&self, exposure: &[Exposure], n_configured: &[usize], row: &mut [u64]) {
        for (e, x) in exposure.iter().enumerate() {
            row[e] = if analyzable(x, n_configured[e]) { x.first_micros } else { i64::MAX } as u64;
        }
        row[self.experiments..].fill(0);
        for &word in &self.maxes {
            row[word] = f64::NEG_INFINITY.to_bits();
        }
    }
}

/// Per-experiment row counts within a shard.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    /// Exposure rows in the window.
    rows: u64,
    pre_exposure: u64,
    /// Exposure rows timestamped at or after the end of the report date.
    future_rows: u64,
    exposures_without_unit: u64,
    exposures_without_variant_or_ts: u64,
    events_without_unit: u64,
    events_without_ts: u64,
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
    /// The blocks of sums the rows' handles point to (see [`SumAt`]).
    sums: Vec<u64>,
    counters: Vec<Counters>,
    /// `(local, experiment)` of each unit exposed to several variants of an experiment: the
    /// indices of those variants, in the order seen.
    multi: HashMap<(u32, u32), Vec<u32>>,
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

    /// Gives every unit its row: fresh rows for the units that have none yet (all of them in
    /// a run from scratch; the new ones in a run from a checkpoint). Returns the first unit
    /// that got one.
    fn ensure_accumulators(&mut self, layout: &Layout, n_configured: &[usize]) -> usize {
        if layout.width == 0 {
            return self.units;
        }
        let built = self.rows.len() / layout.width;
        if built == self.units {
            return built;
        }
        // Exactly: the rows are most of a run's memory, and a doubling would keep up to twice
        // what a run from a checkpoint needs.
        self.rows.reserve_exact(self.units * layout.width - self.rows.len());
        self.rows.resize(self.units * layout.width, 0);
        let n = layout.experiments;
        for (local, row) in self.rows.chunks_exact_mut(layout.width).enumerate().skip(built) {
            layout.row(&self.exposure[local * n..(local + 1) * n], n_configured, row);
        }
        built
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
    variants: Mutex<Vec<VariantNames>>,
    dimensions: Mutex<DimensionRegistry>,
    unit_kind: AtomicU8,
    /// Per dataset and partition date, the largest timestamp of its rows (any row with one):
    /// what a checkpoint needs to know which old partitions a later run must read again.
    max_ts: Mutex<tracking::MaxTimestamps>,
    /// After [`Aggregator::regate`]: the (unit, experiment) pairs whose gate moved, the only
    /// ones [`Aggregator::fold_old_events`] adds to.
    touched: std::sync::OnceLock<tracking::Touched>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere cannot leave these plain accumulators half-updated in a way that
    // matters more than the panic itself, which is reported anyway.
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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
/// variants: exposed in the window, to exactly one variant, and a configured one.
#[inline]
fn analyzable(x: &Exposure, n_configured: usize) -> bool {
    x.exposures > 0 && x.variant & MULTI == 0 && ((x.variant & VARIANT_INDEX) as usize) < n_configured
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
            variants: Mutex::new(spec.experiments.iter().map(|e| VariantNames::new(&e.variants)).collect()),
            dimensions: Mutex::new(DimensionRegistry {
                values: vec![Vec::new(); spec.dimensions.len()],
                codes: vec![HashMap::new(); spec.dimensions.len()],
            }),
            unit_kind: AtomicU8::new(KIND_UNSET),
            max_ts: Mutex::default(),
            touched: std::sync::OnceLock::new(),
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
        let mut batch_codes: HashMap<String, u32> = HashMap::new();
        let variants = text_codes(&names.variant, variant_col.as_ref(), |name| {
            if let Some(&code) = batch_codes.get(name) {
                return Some(code);
            }
            let code = batch_variants.len() as u32;
            batch_variants.push(name.to_string());
            batch_codes.insert(name.to_string(), code);
            Some(code)
        })?;
        let units = UnitIds::new(&names.unit_id, unit_col.as_ref())?;
        self.accept_kind(&units)?;
        let times = timestamps_micros(&names.exposure_ts, ts_col.as_ref())?;
        self.note_max_ts(crate::config::Dataset::Exposures, date, &times);

        // Resolve (experiment, batch variant) pairs to experiment variant indices at once.
        let n_experiments = self.spec.experiments.len();
        let width = batch_variants.len();
        const UNUSED: u32 = u32::MAX;
        let mut variant_index = vec![UNUSED; n_experiments * width];
        let mut incomplete = vec![(0u64, 0u64); n_experiments];
        let mut hashed: Vec<(u32, u8)> = Vec::with_capacity(experiments.len());
        let mut hashes: Vec<u64> = vec![0; experiments.len()];
        for row in 0..experiments.len() {
            let Some(experiment) = experiments[row] else { continue };
            let Some(unit) = units.get(row) else {
                incomplete[experiment].0 += 1;
                continue;
            };
            let (Some(variant), Some(micros)) = (variants[row], times[row]) else {
                incomplete[experiment].1 += 1;
                continue;
            };
            // A variant seen only after the window is not one of the experiment's (yet).
            if micros < self.spec.end_micros {
                variant_index[experiment * width + variant as usize] = 0;
            }
            let hash = hash_unit(unit);
            hashes[row] = hash;
            hashed.push((row as u32, shard_of(hash) as u8));
        }
        {
            let mut registry = lock(&self.variants);
            for (pair, index) in variant_index.iter_mut().enumerate() {
                if *index != UNUSED {
                    *index = registry[pair / width].index_of(&batch_variants[pair % width]);
                }
            }
        }

        let end = self.spec.end_micros;
        let buckets = Buckets::new(&hashed);
        let mut locals: Vec<u32> = Vec::new();
        for s in 0..SHARDS {
            let rows = buckets.of(s);
            if rows.is_empty() {
                continue;
            }
            let mut guard = lock(&self.shards[s]);
            let shard = &mut *guard;
            // Two passes: the ids first (each row's table line asked for `PROBE_AHEAD` rows
            // ahead), then the exposure states (each row's asked for `ROW_AHEAD` rows ahead,
            // now that its unit's place is known). Rows are interned in the same order either
            // way, so the units' places do not change.
            // Only rows with an experiment, unit id, variant and time were bucketed.
            locals.clear();
            for (i, &row) in rows.iter().enumerate() {
                if let Some(&ahead) = rows.get(i + PROBE_AHEAD) {
                    shard.keys.prefetch(hashes[ahead as usize]);
                }
                let local = units
                    .get(row as usize)
                    .map(|unit| shard.intern(hashes[row as usize], unit, n_experiments, n_dimensions));
                locals.push(local.map_or(u32::MAX, |local| local as u32));
            }
            for (i, (&row, &local)) in rows.iter().zip(&locals).enumerate() {
                if let (Some(&ahead), Some(&ahead_row)) = (locals.get(i + ROW_AHEAD), rows.get(i + ROW_AHEAD))
                    && ahead != u32::MAX
                    && let Some(experiment) = experiments[ahead_row as usize]
                {
                    let at = ahead as usize * n_experiments + experiment;
                    prefetch(&shard.exposure[at]);
                    if n_dimensions > 0 {
                        prefetch(&shard.dimensions[at * n_dimensions]);
                    }
                }
                let row = row as usize;
                let (Some(experiment), Some(variant), Some(micros), true) =
                    (experiments[row], variants[row], times[row], local != u32::MAX)
                else {
                    continue;
                };
                let local = local as usize;
                let counters = &mut shard.counters[experiment];
                let x = &mut shard.exposure[local * n_experiments + experiment];
                // After the end of the report date is outside the window: such an exposure
                // decides nothing about the unit (its events could not count yet), it is
                // only counted for the `future_exposures` check.
                if micros >= end {
                    counters.future_rows += 1;
                    x.variant |= FUTURE;
                    continue;
                }
                let variant = variant_index[experiment * width + variant as usize];
                counters.rows += 1;
                let first = micros < x.first_micros;
                // Another row at the first exposure's instant: its dimension values compete.
                let tie = micros == x.first_micros && x.exposures > 0;
                if x.exposures == 0 {
                    x.variant = (x.variant & FUTURE) | variant;
                } else if x.variant & VARIANT_INDEX != variant {
                    let seen = match shard.multi.entry((local as u32, experiment as u32)) {
                        Entry::Occupied(seen) => seen.into_mut(),
                        Entry::Vacant(slot) => slot.insert(vec![x.variant & VARIANT_INDEX]),
                    };
                    if !seen.contains(&variant) {
                        seen.push(variant);
                    }
                    x.variant |= MULTI;
                }
                x.first_micros = x.first_micros.min(micros);
                x.exposures = x.exposures.saturating_add(1);
                if (first || tie) && n_dimensions > 0 {
                    let at = (local * n_experiments + experiment) * n_dimensions;
                    for d in 0..n_dimensions {
                        let value =
                            dimension_codes[d][row].map_or(NO_DIMENSION, |code| dimension_maps[d][code as usize]);
                        let kept = &mut shard.dimensions[at + d];
                        // Of rows tied at the first exposure, the smallest value wins (nulls
                        // lose), whatever order the files are folded in; the SQL's `min`.
                        if first
                            || (value != NO_DIMENSION
                                && value != *kept
                                && (*kept == NO_DIMENSION || lock(&self.dimensions).less(d, value, *kept)))
                        {
                            *kept = value;
                        }
                    }
                }
            }
        }
        if incomplete.iter().any(|&(a, b)| a + b > 0) {
            let mut shard = lock(&self.shards[0]);
            for (counters, (without_unit, without_other)) in shard.counters.iter_mut().zip(incomplete) {
                counters.exposures_without_unit += without_unit;
                counters.exposures_without_variant_or_ts += without_other;
            }
        }
        Ok(())
    }

    /// The unit ids, frozen: taken out of the shards on first use (all exposures are folded
    /// by then), each shard's table compacted for the lookups that are all that is left.
    fn keys(&self) -> &UnitIndex {
        self.frozen.get_or_init(|| {
            UnitIndex::new(crate::threads::map((0..self.shards.len()).collect(), |s| {
                let mut keys = std::mem::take(&mut lock(&self.shards[s]).keys);
                keys.compact();
                keys
            }))
        })
    }

    /// Folds one batch of `[unit_id, event, value, ts]` from the partition of `date`. All
    /// exposure batches must have been folded before the first call.
    pub fn fold_events(&self, date: NaiveDate, columns: &[ArrayRef]) -> Result<(), AggregateError> {
        self.fold_events_of(date, columns, None)
    }

    /// [`Aggregator::fold_events`], adding only to the (unit, experiment) pairs of `only` when
    /// given (a partition read again for them: its other counts are in the state already).
    fn fold_events_of(
        &self,
        date: NaiveDate,
        columns: &[ArrayRef],
        only: Option<&tracking::Touched>,
    ) -> Result<(), AggregateError> {
        let names = &self.spec.columns;
        let [unit_col, event_col, value_col, ts_col] = columns else {
            return Err(AggregateError::Columns { expected: 4, found: columns.len() });
        };
        let events = text_codes(&names.event, event_col.as_ref(), |name| self.event_index.get(name).copied())?;
        let units = UnitIds::new(&names.unit_id, unit_col.as_ref())?;
        self.accept_kind(&units)?;
        let values = numbers(&names.value, value_col.as_ref())?;
        let times = timestamps_micros(&names.event_ts, ts_col.as_ref())?;
        self.note_max_ts(crate::config::Dataset::Events, date, &times);

        // Outside the locks: drop unneeded events and unknown units, find each unit's shard and
        // local index, and bucket the rows by shard. Hashing first and looking up second lets
        // the lookup loop prefetch the table line of the row `PROBE_AHEAD` rows on, so that
        // the table's cache misses (one per event: the ids do not repeat within a batch of
        // rows in time order) overlap instead of queueing.
        let keys = self.keys();
        let layout = &self.layout;
        let report_date = self.spec.report_date;
        // Per experiment: rows of its events in its window's partitions without a unit id,
        // and without a timestamp (they cannot be attributed).
        let mut incomplete: Option<Vec<(u64, u64)>> = None;
        let mut candidates: Vec<(u32, u64)> = Vec::with_capacity(events.len());
        for row in 0..events.len() {
            let Some(event) = events[row] else { continue };
            let unit = units.get(row);
            let (Some(unit), Some(_)) = (unit, times[row]) else {
                let counts = incomplete.get_or_insert_with(|| vec![(0, 0); layout.experiments]);
                for &(e, _) in &layout.targets[event as usize] {
                    if self.spec.experiments[e].contains(date, report_date) {
                        if unit.is_none() {
                            counts[e].0 += 1;
                        } else {
                            counts[e].1 += 1;
                        }
                    }
                }
                continue;
            };
            candidates.push((row as u32, hash_unit(unit)));
        }
        let mut hashed: Vec<(u32, u8)> = Vec::with_capacity(candidates.len());
        let mut locals: Vec<u32> = vec![0; events.len()];
        for (i, &(row, hash)) in candidates.iter().enumerate() {
            if let Some(&(_, ahead)) = candidates.get(i + PROBE_AHEAD) {
                keys.shard(shard_of(ahead)).prefetch(ahead);
            }
            let shard = shard_of(hash);
            let Some(unit) = units.get(row as usize) else { continue };
            let Some(local) = keys.shard(shard).get(hash, unit) else { continue };
            locals[row as usize] = local;
            hashed.push((row, shard as u8));
        }
        if let Some(incomplete) = incomplete.filter(|_| only.is_none()) {
            let mut shard = lock(&self.shards[0]);
            for (counters, (without_unit, without_ts)) in shard.counters.iter_mut().zip(incomplete) {
                counters.events_without_unit += without_unit;
                counters.events_without_ts += without_ts;
            }
        }
        let buckets = Buckets::new(&hashed);
        let end = self.spec.end_micros;
        let n_configured: Vec<usize> = self.spec.experiments.iter().map(|e| e.variants.len()).collect();
        for s in 0..SHARDS {
            let rows = buckets.of(s);
            if rows.is_empty() {
                continue;
            }
            let mut guard = lock(&self.shards[s]);
            guard.ensure_accumulators(layout, &n_configured);
            let shard = &mut *guard;
            for (i, &row) in rows.iter().enumerate() {
                // The row `ROW_AHEAD` on: its gates and its event's block, on their way.
                if let Some(&ahead) = rows.get(i + ROW_AHEAD)
                    && let Some(event) = events[ahead as usize]
                {
                    let at = locals[ahead as usize] as usize * layout.width;
                    let (start, end) = layout.blocks[event as usize];
                    prefetch(&shard.rows[at]);
                    // Every line of the block, its last word's too when it crosses a line.
                    for word in (at + start..at + end).step_by(8).chain((end > start).then_some(at + end - 1)) {
                        prefetch(&shard.rows[word]);
                    }
                }
                let row = row as usize;
                let (Some(event), Some(micros)) = (events[row], times[row]) else { continue };
                let local = locals[row] as usize;
                let value = match values[row] {
                    None => Value::Missing,
                    Some(v) if v.is_finite() => Value::Finite(v),
                    Some(_) => Value::Invalid,
                };
                let row = &mut shard.rows[local * layout.width..(local + 1) * layout.width];
                let sums = &mut shard.sums;
                for &(e, slot) in &layout.targets[event as usize] {
                    let from = row[e] as i64;
                    if from == i64::MAX {
                        continue; // not analyzable in this experiment
                    }
                    if only.is_some_and(|touched| !touched.contains(s, local, e)) {
                        continue;
                    }
                    let counters = &mut shard.counters[e];
                    if micros < from {
                        counters.pre_exposure += u64::from(only.is_none());
                        if let Some(pre) = &slot.pre
                            && micros >= from.saturating_sub(layout.lookback_micros[e])
                        {
                            pre.add(row, sums, value);
                        }
                        continue;
                    }
                    if micros >= end {
                        continue;
                    }
                    if let Value::Invalid = value {
                        let (word, shift) = layout.invalid[e];
                        row[word] += 1 << shift;
                    }
                    slot.post.add(row, sums, value);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Float64Array, StringArray};

    use super::*;
    use crate::aggregate::{ExperimentInput, MetricValues, UnitStatus, VariantSummaries, experiment};
    use crate::stats::Summary;
    use crate::test_support::{at, checked_job, experiment_text, job_text, nov, text, times};

    /// Experiment `x` from 2026-11-19 on `conversion` (any purchase) and `revenue` (the sum of
    /// purchase values), reported on 2026-11-20.
    fn aggregator() -> (crate::config::Job, Aggregator) {
        let revenue = "[[metrics]]\nname = \"revenue\"\nkind = \"mean\"\nevent = \"purchase\"\naggregate = \"sum\"\n";
        let rest = format!("{revenue}{}secondary = [\"revenue\"]\n", experiment_text("x", "2026-11-19"));
        let job = checked_job(&job_text("t", "file:///data", &rest), Path::new("t.toml"));
        let experiments: Vec<&crate::config::Experiment> = job.experiments.iter().collect();
        let spec = Arc::new(Spec::new(&job, &experiments, nov(20)));
        (job, Aggregator::new(spec))
    }

    #[test]
    fn hand_made_batches_fold_into_the_allocation_and_the_sums_the_contract_counts() {
        let (job, aggregator) = aggregator();
        // u1: control, exposed twice; u2: treatment; u3: both variants (excluded).
        let exposures = [
            text(&["x", "x", "x", "x", "x"]),
            text(&["control", "treatment", "control", "treatment", "control"]),
            text(&["u1", "u2", "u3", "u3", "u1"]),
            times(&[at(19, 10), at(19, 11), at(19, 12), at(19, 13), at(19, 14)]),
        ];
        aggregator.fold_exposures(nov(19), &exposures).expect("exposures fold");
        // Counted: u1's 5.0 and 2.5, u2's 1.0 and NaN (counted, but not summed). Not counted:
        // u2's 4.0 before its first exposure, u4 never exposed, u1's purchase after the report
        // date, and `view`, an event no metric reads.
        let events = [
            text(&["u1", "u1", "u2", "u2", "u2", "u4", "u1", "u1"]),
            text(&["purchase", "purchase", "purchase", "purchase", "purchase", "purchase", "purchase", "view"]),
            Arc::new(Float64Array::from(vec![5.0, 2.5, 4.0, 1.0, f64::NAN, 3.0, 9.0, 1.0])) as ArrayRef,
            times(&[at(20, 9), at(20, 10), at(19, 10), at(19, 12), at(19, 15), at(20, 1), at(21, 1), at(20, 2)]),
        ];
        aggregator.fold_events(nov(20), &events).expect("events fold");
        let (allocation, totals) = aggregator.finish();

        let x = &allocation.experiments[0];
        assert_eq!(x.exposure_rows, 5);
        assert_eq!(x.units_per_variant(), vec![1, 1]);
        assert_eq!(x.count(UnitStatus::MultiVariant), 1);
        let u1 = x.units.iter().find(|u| u.first_micros == at(19, 10)).expect("u1");
        assert_eq!((u1.exposures, u1.variant, u1.status), (2, 0, UnitStatus::Ok));

        let totals = &totals[0];
        assert_eq!((totals.counted_events, totals.invalid_values, totals.pre_exposure_events), (4, 1, 1));
        let input = ExperimentInput {
            job: &job,
            experiment: &job.experiments[0],
            spec: Some(&aggregator_spec(&job)),
            allocation: x,
            totals,
        };
        let aggregates = experiment(&input);
        let summary = |n, mean, variance| Summary { n, mean, variance };
        // One unit per variant: each has converted; revenue 5.0 + 2.5 for u1, 1.0 for u2.
        assert_eq!(
            aggregates.metrics[0].summaries,
            VariantSummaries::Single(vec![summary(1, 1.0, 0.0), summary(1, 1.0, 0.0)])
        );
        assert_eq!(
            aggregates.metrics[1].summaries,
            VariantSummaries::Single(vec![summary(1, 7.5, 0.0), summary(1, 1.0, 0.0)])
        );
        let MetricValues::Single(revenue) = &aggregates.values[1] else { panic!("a mean metric") };
        let mut revenue = revenue.clone();
        revenue.sort_by(f64::total_cmp);
        assert_eq!(revenue, vec![1.0, 7.5]);
    }

    #[test]
    fn of_exposures_tied_at_the_first_instant_the_smallest_dimension_value_wins_in_any_order() {
        // u1's two rows share its first instant with countries `US` and `DE`, and a null one;
        // u2's tie is between a null and `FR`. Folded in either order, the smallest value wins.
        let country_of = |order: &[usize]| {
            let (job, mut aggregator) = aggregator();
            let mut spec = (*aggregator.spec).clone();
            spec.dimensions = vec!["country".into()];
            aggregator = Aggregator::new(Arc::new(spec));
            let rows: [(&str, Option<&str>); 5] =
                [("u1", Some("US")), ("u1", Some("DE")), ("u1", None), ("u2", None), ("u2", Some("FR"))];
            for &i in order {
                let (unit, country) = rows[i];
                let exposures = [
                    text(&["x"]),
                    text(&["control"]),
                    text(&[unit]),
                    times(&[at(19, 10)]),
                    Arc::new(StringArray::from(vec![country])) as ArrayRef,
                ];
                aggregator.fold_exposures(nov(19), &exposures).expect("exposures fold");
            }
            let (allocation, _) = aggregator.finish();
            let counts = allocation.experiments[0].counts(job.experiments[0].start);
            counts.by_dimension[0].iter().map(|(value, units)| (value.clone(), units[0])).collect::<Vec<_>>()
        };
        let expected = vec![("DE".to_string(), 1), ("FR".to_string(), 1)];
        assert_eq!(country_of(&[0, 1, 2, 3, 4]), expected);
        assert_eq!(country_of(&[2, 0, 1, 4, 3]), expected);
        assert_eq!(country_of(&[1, 2, 0, 3, 4]), expected);
    }

    fn aggregator_spec(job: &crate::config::Job) -> crate::aggregate::ExperimentSpec {
        let experiments: Vec<&crate::config::Experiment> = job.experiments.iter().collect();
        Spec::new(job, &experiments, nov(20)).experiments.remove(0)
    }
}
