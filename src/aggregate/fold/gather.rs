//! The fold's end: every shard's units into each experiment's allocation and event totals.
//!
//! Units are ordered by shard, then first exposure, then id: the shard is a fixed function of
//! the id, so the order never depends on thread timing. The sizes of every shard's part of
//! every experiment are counted first, so the final vectors are allocated once and each shard
//! writes straight into its own disjoint part of them. A shard is gathered for all experiments
//! at once, its rows read in memory order, one visit each (not once per experiment, in
//! allocation order, which at 10M units was a cache miss per row and experiment), and it is
//! dropped as soon as it is gathered: the fold's state and the gathered outputs are never
//! both whole in memory.

use std::collections::HashMap;

use super::{
    Accumulators, Aggregator, Exposure, FUTURE, Layout, MULTI, SHARDS, Shard, SlotTotals, VARIANT_INDEX, analyzable,
};
use crate::aggregate::spec::Spec;
use crate::aggregate::{
    AllocatedUnit, Allocation, DataQuality, EventTotals, ExperimentAllocation, NO_DIMENSION, UnitIndex, UnitStatus,
};

/// A shard's part of one experiment's totals of one accumulator set.
struct TotalsPart<'a> {
    count: &'a mut [u32],
    /// Empty when the set has no sum (or no max).
    sum: &'a mut [f64],
    max: &'a mut [f64],
}

/// A shard's part of one experiment's outputs.
struct ExperimentPart<'a> {
    members: &'a mut [AllocatedUnit],
    /// Per dimension.
    dimensions: Vec<&'a mut [u16]>,
    slots: Vec<TotalsPart<'a>>,
    pre_slots: Vec<Option<TotalsPart<'a>>>,
}

/// What a shard adds to each experiment besides its parts: per experiment, its multi-variant
/// units, future-exposed units (and those with only future exposures) and invalid values.
#[derive(Default)]
struct ShardExtras {
    multi: Vec<(usize, u32, Vec<u32>)>,
    future_units: Vec<u64>,
    future_only_units: Vec<u64>,
    invalid_values: Vec<u64>,
}

impl Accumulators {
    /// Empty totals for `units` units, to be written in place.
    fn zeroed_totals(&self, units: usize) -> SlotTotals {
        SlotTotals {
            count: vec![0; units],
            sum: if self.sum.is_some() { vec![0.0; units] } else { Vec::new() },
            max: if self.max.is_some() { vec![0.0; units] } else { Vec::new() },
        }
    }

    /// Writes this accumulator's values in `row` at place `at` of `part`.
    #[inline]
    fn write_totals(&self, row: &[u64], sums: &[u64], part: &mut TotalsPart<'_>, at: usize) {
        part.count[at] = (row[self.count_word] >> self.count_shift) as u32;
        if let Some(sum) = self.sum {
            part.sum[at] = sum.words(row, sums).map_or(0.0, super::exact_sum::total);
        }
        if let Some(i) = self.max {
            part.max[at] = f64::from_bits(row[i]);
        }
    }
}

/// `whole` cut into consecutive parts of `sizes` (an empty `whole` into empty parts: a
/// column no metric needs).
fn split<T>(whole: &mut [T], sizes: impl Iterator<Item = usize>) -> std::vec::IntoIter<&mut [T]> {
    let empty = whole.is_empty();
    let mut rest = whole;
    let mut parts = Vec::new();
    for size in sizes {
        let (part, tail) = std::mem::take(&mut rest).split_at_mut(if empty { 0 } else { size });
        parts.push(part);
        rest = tail;
    }
    parts.into_iter()
}

impl Aggregator {
    /// The allocation of every experiment and each experiment's event totals in the order of
    /// its analyzable units (see the module docs); shards are gathered on all cores. Takes the
    /// state out: call once, after both scans.
    pub fn finish(self) -> (Allocation, Vec<EventTotals>) {
        // Freeze the keys now if no event batch did (a run without events).
        self.keys();
        let Aggregator { spec, layout, shards, frozen, variants, dimensions, .. } = self;
        let dimension_values = dimensions.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner).values;
        let keys = frozen.into_inner().unwrap_or_default();
        let mut shards: Vec<Shard> =
            shards.into_iter().map(|s| s.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner)).collect();
        let n_configured: Vec<usize> = spec.experiments.iter().map(|e| e.variants.len()).collect();
        for shard in &mut shards {
            shard.ensure_accumulators(&layout, &n_configured);
        }
        let names: Vec<Vec<String>> = (variants.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner))
            .into_iter()
            .map(|names| names.names)
            .collect();
        let rows_without_key = shards
            .iter()
            .flat_map(|s| &s.counters)
            .map(|c| c.exposures_without_unit + c.exposures_without_variant_or_ts)
            .sum();
        let (experiments, totals) = gather(&spec, &layout, shards, &keys, names, &dimension_values);
        (Allocation { keys, experiments, rows_without_key }, totals)
    }
}

/// `totals` cut into consecutive parts of `sizes`.
fn totals_parts<'a>(
    totals: &'a mut SlotTotals,
    sizes: impl Iterator<Item = usize> + Clone,
) -> impl Iterator<Item = TotalsPart<'a>> {
    let count = split(&mut totals.count, sizes.clone());
    let sum = split(&mut totals.sum, sizes.clone());
    let max = split(&mut totals.max, sizes);
    count.zip(sum).zip(max).map(|((count, sum), max)| TotalsPart { count, sum, max })
}

/// Every experiment's allocation and event totals from all shards, which it consumes.
/// `variants` are each experiment's variant names (configured first).
pub(super) fn gather(
    spec: &Spec,
    layout: &Layout,
    shards: Vec<Shard>,
    keys: &UnitIndex,
    variants: Vec<Vec<String>>,
    dimension_values: &[Vec<String>],
) -> (Vec<ExperimentAllocation>, Vec<EventTotals>) {
    let n = spec.experiments.len();
    let n_dimensions = spec.dimensions.len();
    let n_configured: Vec<usize> = spec.experiments.iter().map(|e| e.variants.len()).collect();
    debug_assert_eq!(shards.len(), SHARDS);

    // Per shard and experiment: (members, analyzable members).
    let sizes: Vec<Vec<(usize, usize)>> = crate::threads::map(shards.iter().collect(), |shard| {
        (0..n)
            .map(|e| {
                let of_experiment = shard.exposure.iter().skip(e).step_by(n);
                of_experiment
                    .filter(|x| x.exposures > 0)
                    .fold((0, 0), |(members, ok), x| (members + 1, ok + usize::from(analyzable(x, n_configured[e]))))
            })
            .collect()
    });
    let total = |e: usize, of: fn(&(usize, usize)) -> usize| sizes.iter().map(|s| of(&s[e])).sum::<usize>();
    // Per experiment: exposure rows, the data-quality counts and the pre-exposure events.
    let counted: Vec<(u64, DataQuality, u64)> = (0..n)
        .map(|e| {
            let sum = |f: fn(&super::Counters) -> u64| shards.iter().map(|s| f(&s.counters[e])).sum::<u64>();
            let quality = DataQuality {
                future_exposure_rows: sum(|c| c.future_rows),
                exposures_without_unit: sum(|c| c.exposures_without_unit),
                exposures_without_variant_or_ts: sum(|c| c.exposures_without_variant_or_ts),
                events_without_unit: sum(|c| c.events_without_unit),
                events_without_ts: sum(|c| c.events_without_ts),
                ..DataQuality::default()
            };
            (sum(|c| c.rows), quality, sum(|c| c.pre_exposure))
        })
        .collect();

    // The final vectors, allocated once.
    let placeholder = AllocatedUnit { unit: 0, first_micros: 0, exposures: 0, variant: 0, status: UnitStatus::Ok };
    let mut members: Vec<Vec<AllocatedUnit>> = (0..n).map(|e| vec![placeholder; total(e, |s| s.0)]).collect();
    let mut dimensions: Vec<Vec<Vec<u16>>> =
        (0..n).map(|e| vec![vec![NO_DIMENSION; total(e, |s| s.0)]; n_dimensions]).collect();
    let mut slots: Vec<Vec<SlotTotals>> = (0..n)
        .map(|e| layout.slots[e].iter().map(|slot| slot.post.zeroed_totals(total(e, |s| s.1))).collect())
        .collect();
    let mut pre_slots: Vec<Vec<Option<SlotTotals>>> = (0..n)
        .map(|e| layout.slots[e].iter().map(|slot| slot.pre.map(|pre| pre.zeroed_totals(total(e, |s| s.1)))).collect())
        .collect();

    // Each shard's parts of them.
    let mut parts: Vec<Vec<ExperimentPart<'_>>> = (0..shards.len()).map(|_| Vec::with_capacity(n)).collect();
    let totals_parts = |totals, e: usize| totals_parts(totals, sizes.iter().map(move |s| s[e].1));
    for (e, ((members, dimensions), (slots, pre_slots))) in
        members.iter_mut().zip(&mut dimensions).zip(slots.iter_mut().zip(&mut pre_slots)).enumerate()
    {
        let of_members = || sizes.iter().map(move |s| s[e].0);
        let mut member_parts = split(members, of_members());
        let mut dimension_parts: Vec<_> = dimensions.iter_mut().map(|codes| split(codes, of_members())).collect();
        let mut slot_parts: Vec<_> = slots.iter_mut().map(|totals| totals_parts(totals, e)).collect();
        let mut pre_parts: Vec<Option<_>> =
            pre_slots.iter_mut().map(|totals| totals.as_mut().map(|totals| totals_parts(totals, e))).collect();
        for shard_parts in &mut parts {
            shard_parts.push(ExperimentPart {
                members: member_parts.next().expect("a part per shard"),
                dimensions: dimension_parts.iter_mut().map(|p| p.next().expect("a part per shard")).collect(),
                slots: slot_parts.iter_mut().map(|p| p.next().expect("a part per shard")).collect(),
                pre_slots: pre_parts
                    .iter_mut()
                    .map(|p| p.as_mut().map(|p| p.next().expect("a part per shard")))
                    .collect(),
            });
        }
    }

    let work: Vec<(usize, Shard, Vec<ExperimentPart<'_>>)> =
        shards.into_iter().zip(parts).enumerate().map(|(s, (shard, parts))| (s, shard, parts)).collect();
    let mut extras: Vec<ShardExtras> =
        crate::threads::map(work, |(s, shard, parts)| gather_shard(spec, layout, &n_configured, keys, s, shard, parts));

    let mut multi_variants: Vec<HashMap<u32, Vec<u32>>> = vec![HashMap::new(); n];
    for extra in &mut extras {
        for (e, unit, seen) in extra.multi.drain(..) {
            multi_variants[e].insert(unit, seen);
        }
    }
    let mut allocations = Vec::with_capacity(n);
    let mut totals = Vec::with_capacity(n);
    let per_experiment = members.into_iter().zip(dimensions).zip(slots.into_iter().zip(pre_slots));
    for (e, (((members, dimensions), (slots, pre_slots)), (variants, multi_variants))) in
        per_experiment.zip(variants.into_iter().zip(multi_variants)).enumerate()
    {
        let (exposure_rows, mut quality, pre_exposure_events) = counted[e];
        quality.future_exposure_units = extras.iter().map(|x| x.future_units[e]).sum();
        quality.future_only_units = extras.iter().map(|x| x.future_only_units[e]).sum();
        // Every counted event added one to its slot's count, in the unit's row: summed over
        // the analyzable units, the counts are the counted events (and a unit that stopped
        // being analyzable in a later run takes its events with it).
        let counted_events = slots.iter().flat_map(|slot| &slot.count).map(|&count| u64::from(count)).sum();
        totals.push(EventTotals {
            slots,
            pre_slots,
            counted_events,
            invalid_values: extras.iter().map(|x| x.invalid_values[e]).sum(),
            pre_exposure_events,
        });
        allocations.push(ExperimentAllocation {
            variants,
            n_configured: n_configured[e],
            units: members,
            exposure_rows,
            multi_variants,
            dimensions,
            dimension_values: dimension_values.to_vec(),
            quality,
        });
    }
    (allocations, totals)
}

/// One shard into its parts of every experiment; the shard is dropped at the end.
fn gather_shard(
    spec: &Spec,
    layout: &Layout,
    n_configured: &[usize],
    keys: &UnitIndex,
    s: usize,
    shard: Shard,
    mut parts: Vec<ExperimentPart<'_>>,
) -> ShardExtras {
    let n = spec.experiments.len();
    let n_dimensions = spec.dimensions.len();
    let shard_keys = keys.shard(s);
    let mut extras = ShardExtras {
        future_units: vec![0; n],
        future_only_units: vec![0; n],
        invalid_values: vec![0; n],
        ..ShardExtras::default()
    };
    const NOT_ANALYZABLE: u32 = u32::MAX;
    // `place[local * n + e]`: the unit's place among the shard's analyzable units of `e`.
    let mut place = vec![NOT_ANALYZABLE; shard.units * n];
    let mut order: Vec<(i64, u32)> = Vec::new();
    for (e, part) in parts.iter_mut().enumerate() {
        let of_experiment = || shard.exposure.iter().skip(e).step_by(n);
        for x in of_experiment().filter(|x| x.variant & FUTURE != 0) {
            extras.future_units[e] += 1;
            extras.future_only_units[e] += u64::from(x.exposures == 0);
        }
        order.clear();
        order.extend(
            of_experiment()
                .enumerate()
                .filter(|(_, x)| x.exposures > 0)
                .map(|(local, x)| (x.first_micros, local as u32)),
        );
        order.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| shard_keys.key(a.1).cmp(&shard_keys.key(b.1))));
        let mut ok = 0u32;
        for (i, &(first_micros, local)) in order.iter().enumerate() {
            let x: Exposure = shard.exposure[local as usize * n + e];
            let multi = x.variant & MULTI != 0;
            let variant = x.variant & VARIANT_INDEX;
            let status = UnitStatus::of(variant, multi, n_configured[e]);
            if status == UnitStatus::Ok {
                place[local as usize * n + e] = ok;
                ok += 1;
            }
            let unit = keys.global(s, local);
            if let Some(seen) = multi.then(|| shard.multi.get(&(local, e as u32))).flatten() {
                let mut seen = seen.clone();
                seen.sort_unstable();
                extras.multi.push((e, unit, seen));
            }
            for (d, codes) in part.dimensions.iter_mut().enumerate() {
                codes[i] = shard.dimensions[(local as usize * n + e) * n_dimensions + d];
            }
            part.members[i] = AllocatedUnit { unit, first_micros, exposures: x.exposures, variant, status };
        }
        debug_assert_eq!(order.len(), part.members.len());
    }
    // One visit per row, in memory order: each experiment's totals go to the unit's place.
    if layout.width > 0 {
        for (local, row) in shard.rows.chunks_exact(layout.width).enumerate() {
            for (e, part) in parts.iter_mut().enumerate() {
                let at = place[local * n + e];
                if at == NOT_ANALYZABLE {
                    continue;
                }
                let at = at as usize;
                for ((slot, post), pre) in layout.slots[e].iter().zip(&mut part.slots).zip(&mut part.pre_slots) {
                    slot.post.write_totals(row, &shard.sums, post, at);
                    if let (Some(accumulators), Some(pre)) = (&slot.pre, pre) {
                        accumulators.write_totals(row, &shard.sums, pre, at);
                    }
                }
                let (word, shift) = layout.invalid[e];
                extras.invalid_values[e] += u64::from((row[word] >> shift) as u32);
            }
        }
    }
    // Its memory is given back now, while the other shards are still being gathered.
    drop(shard);
    extras
}
