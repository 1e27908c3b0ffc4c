//! What an incremental run does to a state loaded from a checkpoint: after the new exposure
//! partitions are folded in, [`Aggregator::regate`] compares every unit's gate (the time from
//! which its events count in an experiment) with the one its row holds, starts the rows of the
//! (unit, experiment) pairs whose gate moved afresh, and remembers them; the new event
//! partitions are then folded as usual, and [`Aggregator::fold_old_events`] adds the old
//! partitions' events to the moved pairs only. The largest timestamp of each partition, kept
//! here as batches are folded, says which old partitions can hold such events.
//!
//! Exactness (the contract: an event counts when `first exposure <= ts < end of report date`;
//! the CUPED pre-period is `[first - lookback, first)`): a pair whose gate did not move has
//! counted exactly the old partitions' events a full run would count, as long as no old row is
//! timestamped after its run's report date (the pipeline checks that first). A pair whose gate
//! moved to a finite time starts from zero and reads every event at or after `gate - lookback`
//! again. A pair whose gate moved to "never" (the unit became multi-variant) is left alone:
//! gathering skips units that are not analyzable, and its counted events and invalid values
//! are per-unit counts, so they go with it. Only `pre_exposure_events` (a shard counter, in the
//! SQL table but not in results.json) is not kept exact for moved pairs: their pre-exposure
//! events in old partitions that are not read again are left out, and those counted before the
//! move stay in.
//!
//! Pure, like the rest of the fold: no IO.

use arrow::array::ArrayRef;
use chrono::NaiveDate;

use super::tracking::{MaxTimestamps, Touched};
use super::{Accumulators, Aggregator, Layout, analyzable, exact_sum, lock};
use crate::aggregate::AggregateError;
use crate::config::Dataset;

/// What [`Aggregator::regate`] found, for the run log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Regated {
    /// Units without a row in the checkpoint: new units (and those of a shard that had no
    /// event yet).
    pub new_units: u64,
    /// (unit, experiment) pairs whose gate moved to a finite time: new units, units newly
    /// analyzable, first exposures moved earlier. Their rows start afresh.
    pub touched: u64,
    /// Pairs no longer analyzable (e.g. now exposed to two variants).
    pub excluded: u64,
    /// The earliest event time that can count for a touched pair: the smallest
    /// `gate - lookback` (the lookback of experiments with CUPED covariates, else 0). Old event
    /// partitions whose rows all end before it need not be read again.
    pub earliest_micros: Option<i64>,
}

impl Accumulators {
    /// Back to the state of a fresh row: no events.
    fn reset(&self, row: &mut [u64], sums: &mut [u64]) {
        row[self.count_word] &= !(u64::from(u32::MAX) << self.count_shift);
        // A block's sums stay allocated: another of its sums may still hold a value.
        if let Some(at) = self.sum
            && row[at.handle] != 0
        {
            let base = row[at.handle] as usize - 1 + at.offset;
            sums[base..base + exact_sum::WORDS].fill(0);
        }
        if let Some(i) = self.max {
            row[i] = f64::NEG_INFINITY.to_bits();
        }
    }
}

impl Layout {
    /// Starts experiment `e`'s accumulators in `row` afresh (its gate stays).
    fn reset(&self, e: usize, row: &mut [u64], sums: &mut [u64]) {
        for slot in &self.slots[e] {
            slot.post.reset(row, sums);
            if let Some(pre) = &slot.pre {
                pre.reset(row, sums);
            }
        }
        let (word, shift) = self.invalid[e];
        row[word] &= !(u64::from(u32::MAX) << shift);
    }
}

impl Aggregator {
    /// Keeps the largest timestamp of a batch of `dataset`'s partition of `date`.
    pub(super) fn note_max_ts(&self, dataset: Dataset, date: NaiveDate, times: &[Option<i64>]) {
        if let Some(max) = times.iter().flatten().max() {
            lock(&self.max_ts).note(dataset, date, *max);
        }
    }

    /// The largest timestamp of every partition folded so far.
    pub fn max_timestamps(&self) -> MaxTimestamps {
        lock(&self.max_ts).clone()
    }

    /// After the new exposure partitions of an incremental run, before its event partitions:
    /// gives the new units their rows and moves the gates of the others (see the module docs).
    /// Call once.
    pub fn regate(&self) -> Regated {
        let layout = &self.layout;
        let n = layout.experiments;
        let n_configured: Vec<usize> = self.spec.experiments.iter().map(|e| e.variants.len()).collect();
        // Only experiments with covariates read events before the gate.
        let lookback: Vec<i64> = (0..n)
            .map(|e| {
                let pre = layout.slots[e].iter().any(|slot| slot.pre.is_some());
                if pre { layout.lookback_micros[e] } else { 0 }
            })
            .collect();
        let mut regated = Regated::default();
        let mut touched = Touched::new(n);
        for shard in &self.shards {
            let mut guard = lock(shard);
            let first_new = guard.ensure_accumulators(layout, &n_configured);
            let shard = &mut *guard;
            let mut marks = vec![false; shard.units * n];
            regated.new_units += (shard.units - first_new) as u64;
            if layout.width > 0 {
                for (local, row) in shard.rows.chunks_exact_mut(layout.width).enumerate() {
                    for e in 0..n {
                        let x = &shard.exposure[local * n + e];
                        let from = if analyzable(x, n_configured[e]) { x.first_micros } else { i64::MAX };
                        if local < first_new {
                            if row[e] as i64 == from {
                                continue;
                            }
                            row[e] = from as u64;
                            if from == i64::MAX {
                                regated.excluded += 1;
                                continue;
                            }
                            layout.reset(e, row, &mut shard.sums);
                        } else if from == i64::MAX {
                            continue;
                        }
                        marks[local * n + e] = true;
                        regated.touched += 1;
                        let earliest = from.saturating_sub(lookback[e]);
                        regated.earliest_micros = Some(regated.earliest_micros.map_or(earliest, |m| m.min(earliest)));
                    }
                }
            }
            touched.push_shard(marks);
        }
        // A second call finds every gate in place and nothing touched; the first's set stays.
        let _ = self.touched.set(touched);
        regated
    }

    /// Folds one batch of an old event partition (one the checkpoint read) into the pairs
    /// [`Aggregator::regate`] touched, and nothing else.
    pub fn fold_old_events(&self, date: NaiveDate, columns: &[ArrayRef]) -> Result<(), AggregateError> {
        match self.touched.get() {
            Some(touched) => self.fold_events_of(date, columns, Some(touched)),
            None => Ok(()),
        }
    }
}
