//! Exposure batches -> each experiment's allocation of units to variants.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::array::ArrayRef;
use chrono::NaiveDate;

use super::columns::{UnitIds, text_codes, timestamps_micros};
use super::unit_keys::{UnitIdKind, UnitKeys};
use super::{AggregateError, Spec};

/// At most this many distinct variants per experiment are told apart (a `u64` bit mask);
/// further unknown variants share the last slot.
const MAX_VARIANTS: usize = 64;

/// What one exposure log says about one unit in one experiment.
#[derive(Debug, Clone, Copy)]
struct UnitExposure {
    first_micros: i64,
    /// Bit `i` set when the unit was exposed to variant `i`.
    mask: u64,
    exposures: u32,
}

#[derive(Default)]
struct ExperimentExposures {
    /// Variant names: the configured ones (control first), then unknown ones as seen.
    variants: Vec<String>,
    units: HashMap<u32, UnitExposure, ahash::RandomState>,
    rows: u64,
}

struct ExposureState {
    keys: UnitKeys,
    experiments: Vec<ExperimentExposures>,
    rows_without_key: u64,
}

/// The exposure fold: call [`ExposureFold::fold`] with each batch (from any thread), then
/// [`ExposureFold::finish`].
pub struct ExposureFold {
    spec: Arc<Spec>,
    experiment_index: HashMap<String, usize>,
    state: Mutex<ExposureState>,
}

impl ExposureFold {
    pub fn new(spec: Arc<Spec>) -> Self {
        let experiments = spec
            .experiments
            .iter()
            .map(|e| ExperimentExposures { variants: e.variants.clone(), ..Default::default() })
            .collect();
        Self {
            experiment_index: spec.experiment_index(),
            spec,
            state: Mutex::new(ExposureState { keys: UnitKeys::default(), experiments, rows_without_key: 0 }),
        }
    }

    /// Folds one batch of `[experiment_id, variant, unit_id, ts]` from the partition of `date`.
    pub fn fold(&self, date: NaiveDate, columns: &[ArrayRef]) -> Result<(), AggregateError> {
        let names = &self.spec.columns;
        let [experiment_col, variant_col, unit_col, ts_col] = columns else {
            unreachable!("the exposure scan asks for four columns");
        };
        let report_date = self.spec.report_date;
        // Rows of experiments not in this run, or outside their window, are dropped here.
        let experiments = text_codes(&names.experiment_id, experiment_col.as_ref(), |id| {
            self.experiment_index.get(id).copied().filter(|&e| self.spec.experiments[e].contains(date, report_date))
        })?;
        // Variant names get batch-local codes; they become per-experiment indices under the lock.
        let mut batch_variants: Vec<String> = Vec::new();
        let mut batch_variant_codes: HashMap<String, u16> = HashMap::new();
        let variants = text_codes(&names.variant, variant_col.as_ref(), |name| {
            if let Some(&code) = batch_variant_codes.get(name) {
                return Some(code);
            }
            let code = batch_variants.len() as u16;
            batch_variants.push(name.to_string());
            batch_variant_codes.insert(name.to_string(), code);
            Some(code)
        })?;
        let units = UnitIds::new(&names.unit_id, unit_col.as_ref())?;
        let times = timestamps_micros(&names.exposure_ts, ts_col.as_ref())?;

        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let kind = if units.is_text() { UnitIdKind::Text } else { UnitIdKind::Int };
        if !state.keys.accept_kind(kind) {
            return Err(unit_kind_error(&names.unit_id, kind));
        }
        let mut variant_index: HashMap<(usize, u16), usize> = HashMap::new();
        let state = &mut *state;
        for row in 0..experiments.len() {
            let Some(experiment) = experiments[row] else {
                continue;
            };
            let (Some(variant), Some(unit), Some(micros)) = (variants[row], units.get(row), times[row]) else {
                state.rows_without_key += 1;
                continue;
            };
            let exposures = &mut state.experiments[experiment];
            let variant = *variant_index.entry((experiment, variant)).or_insert_with(|| {
                let name = &batch_variants[variant as usize];
                match exposures.variants.iter().position(|v| v == name) {
                    Some(i) => i,
                    None if exposures.variants.len() < MAX_VARIANTS => {
                        exposures.variants.push(name.clone());
                        exposures.variants.len() - 1
                    }
                    None => MAX_VARIANTS - 1,
                }
            });
            let hash = state.keys.hash(unit);
            let unit = state.keys.intern(hash, unit);
            exposures.rows += 1;
            exposures
                .units
                .entry(unit)
                .and_modify(|u| {
                    u.first_micros = u.first_micros.min(micros);
                    u.mask |= 1 << variant;
                    u.exposures += 1;
                })
                .or_insert(UnitExposure { first_micros: micros, mask: 1 << variant, exposures: 1 });
        }
        Ok(())
    }

    /// The allocation of every experiment, units in first-exposure order. Takes the state out,
    /// so it is called once, after the scan.
    pub fn finish(&self) -> Allocation {
        let spec = &self.spec;
        let state = {
            let mut guard = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            std::mem::replace(
                &mut *guard,
                ExposureState { keys: UnitKeys::default(), experiments: Vec::new(), rows_without_key: 0 },
            )
        };
        let experiments = state
            .experiments
            .into_iter()
            .zip(&spec.experiments)
            .map(|(exposures, experiment_spec)| {
                let n_configured = experiment_spec.variants.len();
                let mut units: Vec<AllocatedUnit> = exposures
                    .units
                    .into_iter()
                    .map(|(unit, e)| {
                        let variant = e.mask.trailing_zeros() as u8;
                        let status = if e.mask.count_ones() > 1 {
                            UnitStatus::MultiVariant
                        } else if variant as usize >= n_configured {
                            UnitStatus::UnknownVariant
                        } else {
                            UnitStatus::Ok
                        };
                        AllocatedUnit {
                            unit,
                            first_micros: e.first_micros,
                            exposures: e.exposures,
                            mask: e.mask,
                            variant,
                            status,
                        }
                    })
                    .collect();
                units.sort_unstable_by_key(|u| (u.first_micros, u.unit));
                ExperimentAllocation {
                    variants: exposures.variants,
                    n_configured,
                    units,
                    exposure_rows: exposures.rows,
                }
            })
            .collect();
        Allocation { keys: state.keys, experiments, rows_without_key: state.rows_without_key }
    }
}

pub(super) fn unit_kind_error(column: &str, found: UnitIdKind) -> AggregateError {
    let name = |k: UnitIdKind| {
        if k == UnitIdKind::Text { "string" } else { "integer" }
    };
    let expected = if found == UnitIdKind::Text { UnitIdKind::Int } else { UnitIdKind::Text };
    AggregateError::UnitIdKind { column: column.to_string(), expected: name(expected), found: name(found) }
}

/// Whether a unit's exposures make it usable for an experiment's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitStatus {
    /// Exactly one configured variant: counted.
    Ok,
    /// Two or more variants: excluded.
    MultiVariant,
    /// One variant that the job file does not configure: excluded.
    UnknownVariant,
}

impl UnitStatus {
    pub fn name(self) -> &'static str {
        match self {
            UnitStatus::Ok => "ok",
            UnitStatus::MultiVariant => "multi_variant",
            UnitStatus::UnknownVariant => "unknown_variant",
        }
    }
}

/// One unit of one experiment.
#[derive(Debug, Clone, Copy)]
pub struct AllocatedUnit {
    /// Index into [`Allocation::keys`].
    pub unit: u32,
    pub first_micros: i64,
    pub exposures: u32,
    /// Bit `i` set when exposed to variant `i` of [`ExperimentAllocation::variants`].
    pub mask: u64,
    /// The unit's variant when [`UnitStatus::Ok`] (the lowest one otherwise).
    pub variant: u8,
    pub status: UnitStatus,
}

/// All experiments' allocations and the unit ids they refer to.
pub struct Allocation {
    pub keys: UnitKeys,
    pub experiments: Vec<ExperimentAllocation>,
    /// Exposure rows of an experiment in the run that lacked a variant, unit id or timestamp.
    pub rows_without_key: u64,
}

/// One experiment's units.
pub struct ExperimentAllocation {
    /// Configured variants (control first), then unknown ones seen in the data.
    pub variants: Vec<String>,
    pub n_configured: usize,
    /// Every unit exposed in the window, in first-exposure order.
    pub units: Vec<AllocatedUnit>,
    pub exposure_rows: u64,
}

impl ExperimentAllocation {
    /// Units with exactly one configured variant: the ones the statistics use.
    pub fn analyzable(&self) -> impl Iterator<Item = &AllocatedUnit> {
        self.units.iter().filter(|u| u.status == UnitStatus::Ok)
    }

    /// Analyzable units per configured variant.
    pub fn units_per_variant(&self) -> Vec<u64> {
        let mut counts = vec![0u64; self.n_configured];
        for unit in self.analyzable() {
            counts[unit.variant as usize] += 1;
        }
        counts
    }

    pub fn count(&self, status: UnitStatus) -> u64 {
        self.units.iter().filter(|u| u.status == status).count() as u64
    }

    /// Names of the variants of a unit, `|`-joined (for exports of excluded units).
    pub fn variant_names(&self, unit: &AllocatedUnit) -> String {
        (0..self.variants.len())
            .filter(|&i| unit.mask & (1 << i) != 0)
            .map(|i| self.variants[i].as_str())
            .collect::<Vec<_>>()
            .join("|")
    }

    /// Names of variants seen in the data that the job does not configure.
    pub fn unknown_variants(&self) -> &[String] {
        &self.variants[self.n_configured..]
    }
}
