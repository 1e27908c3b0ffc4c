//! Event batches -> per-experiment, per-unit event accumulators, under the contract's
//! attribution rule: an event counts when `first exposure <= ts < end of report date`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::array::ArrayRef;

use super::columns::{UnitIds, numbers, text_codes, timestamps_micros};
use super::exposures::{Allocation, UnitStatus, unit_kind_error};
use super::unit_keys::UnitIdKind;
use super::{AggregateError, Spec};

/// One slot's per-unit accumulators (indexed by the unit's position among the experiment's
/// analyzable units).
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
    /// Events that counted toward a metric.
    pub counted_events: u64,
    /// Counted events whose value was NaN or infinite (treated as missing).
    pub invalid_values: u64,
    /// Events of exposed units before their first exposure (not counted).
    pub pre_exposure_events: u64,
}

/// A unit's membership in one experiment.
#[derive(Debug, Clone, Copy)]
struct Member {
    experiment: u32,
    /// Position among the experiment's analyzable units.
    position: u32,
    first_micros: i64,
}

/// An event row that passed the batch-local filters.
struct Candidate {
    unit: u32,
    event: u16,
    micros: i64,
    value: Value,
}

#[derive(Clone, Copy)]
enum Value {
    Finite(f64),
    Missing,
    Invalid,
}

/// The event fold: call [`EventFold::fold`] with each batch (from any thread), then
/// [`EventFold::finish`].
pub struct EventFold {
    spec: Arc<Spec>,
    allocation: Arc<Allocation>,
    event_index: HashMap<String, u16>,
    /// `members[offsets[u]..offsets[u + 1]]` are unit `u`'s experiments (CSR layout).
    offsets: Vec<u32>,
    members: Vec<Member>,
    /// Per experiment, the slot of each event id.
    slot_of: Vec<Vec<Option<u16>>>,
    totals: Mutex<Vec<EventTotals>>,
}

impl EventFold {
    pub fn new(spec: Arc<Spec>, allocation: Arc<Allocation>) -> Self {
        let n_units = allocation.keys.len();
        let mut offsets = vec![0u32; n_units + 1];
        for experiment in &allocation.experiments {
            for unit in experiment.analyzable() {
                offsets[unit.unit as usize + 1] += 1;
            }
        }
        for i in 0..n_units {
            offsets[i + 1] += offsets[i];
        }
        let mut fill = offsets.clone();
        let empty = Member { experiment: 0, position: 0, first_micros: 0 };
        let mut members = vec![empty; offsets[n_units] as usize];
        let mut totals = Vec::new();
        for (e, (experiment, experiment_spec)) in allocation.experiments.iter().zip(&spec.experiments).enumerate() {
            let mut n = 0u32;
            for unit in experiment.units.iter().filter(|u| u.status == UnitStatus::Ok) {
                let at = &mut fill[unit.unit as usize];
                members[*at as usize] = Member { experiment: e as u32, position: n, first_micros: unit.first_micros };
                *at += 1;
                n += 1;
            }
            let n = n as usize;
            let slots = experiment_spec
                .slots
                .iter()
                .map(|slot| SlotTotals {
                    count: vec![0; n],
                    sum: if slot.sum { vec![0.0; n] } else { Vec::new() },
                    max: if slot.max { vec![f64::NEG_INFINITY; n] } else { Vec::new() },
                })
                .collect();
            totals.push(EventTotals { slots, ..Default::default() });
        }
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
        let event_index = spec.events.iter().enumerate().map(|(i, e)| (e.clone(), i as u16)).collect();
        Self { spec, allocation, event_index, offsets, members, slot_of, totals: Mutex::new(totals) }
    }

    /// Folds one batch of `[unit_id, event, value, ts]`.
    pub fn fold(&self, columns: &[ArrayRef]) -> Result<(), AggregateError> {
        let names = &self.spec.columns;
        let [unit_col, event_col, value_col, ts_col] = columns else {
            unreachable!("the event scan asks for four columns");
        };
        let events = text_codes(&names.event, event_col.as_ref(), |name| self.event_index.get(name).copied())?;
        let units = UnitIds::new(&names.unit_id, unit_col.as_ref())?;
        let kind = if units.is_text() { UnitIdKind::Text } else { UnitIdKind::Int };
        let keys = &self.allocation.keys;
        if keys.kind().is_some_and(|k| k != kind) {
            return Err(unit_kind_error(&names.unit_id, kind));
        }
        let values = numbers(&names.value, value_col.as_ref())?;
        let times = timestamps_micros(&names.event_ts, ts_col.as_ref())?;

        // Outside the lock: drop rows of unneeded events and unexposed units.
        let mut candidates = Vec::with_capacity(events.len() / 4);
        for row in 0..events.len() {
            let Some(event) = events[row] else { continue };
            let (Some(unit), Some(micros)) = (units.get(row), times[row]) else {
                continue;
            };
            let Some(unit) = keys.get(keys.hash(unit), unit) else {
                continue;
            };
            let value = match values[row] {
                None => Value::Missing,
                Some(v) if v.is_finite() => Value::Finite(v),
                Some(_) => Value::Invalid,
            };
            candidates.push(Candidate { unit, event, micros, value });
        }
        if candidates.is_empty() {
            return Ok(());
        }

        let end = self.spec.end_micros;
        let mut totals = self.totals.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for c in &candidates {
            let unit = c.unit as usize;
            for member in &self.members[self.offsets[unit] as usize..self.offsets[unit + 1] as usize] {
                let experiment = member.experiment as usize;
                let Some(slot) = self.slot_of[experiment][c.event as usize] else {
                    continue;
                };
                let totals = &mut totals[experiment];
                if c.micros < member.first_micros {
                    totals.pre_exposure_events += 1;
                    continue;
                }
                if c.micros >= end {
                    continue;
                }
                totals.counted_events += 1;
                let slot = &mut totals.slots[slot as usize];
                let position = member.position as usize;
                slot.count[position] += 1;
                match c.value {
                    Value::Finite(v) => {
                        if let Some(sum) = slot.sum.get_mut(position) {
                            *sum += v;
                        }
                        if let Some(max) = slot.max.get_mut(position) {
                            *max = max.max(v);
                        }
                    }
                    Value::Invalid => totals.invalid_values += 1,
                    Value::Missing => {}
                }
            }
        }
        Ok(())
    }

    /// Each experiment's totals, in spec order. Takes them out, so it is called once, after
    /// the scan.
    pub fn finish(&self) -> Vec<EventTotals> {
        std::mem::take(&mut *self.totals.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}
