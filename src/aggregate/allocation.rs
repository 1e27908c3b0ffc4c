//! The allocation of units to variants, per experiment: the result of the exposure fold; and
//! its counts, all that the statistics read of it.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;

use super::columns::UnitKey;
use super::unit_keys::{UnitIdKind, UnitKeys};

/// A dimension code for a missing (null) value.
pub const NO_DIMENSION: u16 = u16::MAX;

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

    /// The status of a unit exposed to variant `variant` (an index into the experiment's
    /// variants, of which the first `n_configured` are configured), or to several when `multi`.
    pub fn of(variant: u32, multi: bool, n_configured: usize) -> Self {
        if multi {
            UnitStatus::MultiVariant
        } else if variant as usize >= n_configured {
            UnitStatus::UnknownVariant
        } else {
            UnitStatus::Ok
        }
    }
}

/// One unit of one experiment.
#[derive(Debug, Clone, Copy)]
pub struct AllocatedUnit {
    /// Index into [`Allocation::keys`].
    pub unit: u32,
    pub first_micros: i64,
    /// Exposures in the window (saturating at `u32::MAX`).
    pub exposures: u32,
    /// The unit's variant (an index into [`ExperimentAllocation::variants`]); for a
    /// multi-variant unit the first one seen ([`ExperimentAllocation::multi_variants`] lists
    /// them all).
    pub variant: u32,
    pub status: UnitStatus,
}

/// The unit ids of a run: per-shard key stores behind one dense index.
#[derive(Default)]
pub struct UnitIndex {
    shards: Vec<UnitKeys>,
    /// `bases[s]` is the global index of shard `s`'s first unit.
    bases: Vec<u32>,
    kind: Option<UnitIdKind>,
}

impl UnitIndex {
    pub(super) fn new(shards: Vec<UnitKeys>) -> Self {
        let mut bases = Vec::with_capacity(shards.len());
        let mut next = 0u32;
        for shard in &shards {
            bases.push(next);
            next += shard.len() as u32;
        }
        let kind = shards.iter().find_map(UnitKeys::kind);
        Self { shards, bases, kind }
    }

    pub(super) fn shard(&self, shard: usize) -> &UnitKeys {
        &self.shards[shard]
    }

    pub(super) fn global(&self, shard: usize, local: u32) -> u32 {
        self.bases[shard] + local
    }

    pub fn kind(&self) -> Option<UnitIdKind> {
        self.kind
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(UnitKeys::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shard and shard-local index of a unit.
    pub(super) fn locate(&self, unit: u32) -> (usize, u32) {
        let shard = self.bases.partition_point(|&base| base <= unit) - 1;
        (shard, unit - self.bases[shard])
    }

    /// The original id of a unit.
    pub fn key(&self, unit: u32) -> UnitKey<'_> {
        let (shard, local) = self.locate(unit);
        self.shards[shard].key(local)
    }

    pub fn heap_bytes(&self) -> usize {
        self.shards.iter().map(UnitKeys::heap_bytes).sum()
    }
}

/// All experiments' allocations and the unit ids they refer to.
pub struct Allocation {
    pub keys: UnitIndex,
    pub experiments: Vec<ExperimentAllocation>,
    /// Exposure rows of an experiment in the run that lacked a variant, unit id or timestamp.
    pub rows_without_key: u64,
}

/// One experiment's units.
#[derive(Default)]
pub struct ExperimentAllocation {
    /// Configured variants (control first), then unknown ones seen in the data.
    pub variants: Vec<String>,
    pub n_configured: usize,
    /// Every unit exposed in the window: by unit-id shard, then first exposure, then id.
    pub units: Vec<AllocatedUnit>,
    pub exposure_rows: u64,
    /// The variants of each multi-variant unit (by [`AllocatedUnit::unit`]), ascending.
    pub multi_variants: HashMap<u32, Vec<u32>>,
    /// Per dimension of the spec, each unit's value code at its first exposure (parallel to
    /// `units`; `NO_DIMENSION` when null).
    pub dimensions: Vec<Vec<u16>>,
    /// Per dimension, the names of the codes.
    pub dimension_values: Vec<Vec<String>>,
    /// Rows read for the experiment that could not be used.
    pub quality: DataQuality,
}

/// What the scan read for an experiment but could not use: exposures after the window, and
/// rows without a unit id, variant or timestamp. The `future_exposures` and `incomplete_rows`
/// checks report them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DataQuality {
    /// Exposure rows of the window's partitions timestamped at or after the end of the report
    /// date: outside the window, so not counted.
    pub future_exposure_rows: u64,
    /// Units with such rows.
    pub future_exposure_units: u64,
    /// Units with only such rows: not in the allocation at all.
    pub future_only_units: u64,
    /// Exposure rows of the window's partitions without a unit id.
    pub exposures_without_unit: u64,
    /// Exposure rows with a unit id but without a variant or a timestamp.
    pub exposures_without_variant_or_ts: u64,
    /// Rows of the experiment's events in the window's partitions without a unit id.
    pub events_without_unit: u64,
    /// Rows of the experiment's events with a unit id but without a timestamp.
    pub events_without_ts: u64,
}

impl ExperimentAllocation {
    /// Units with exactly one configured variant: the ones the statistics use.
    pub fn analyzable(&self) -> impl Iterator<Item = &AllocatedUnit> {
        self.units.iter().filter(|u| u.status == UnitStatus::Ok)
    }

    /// The name of variant `index` (a name for the shared index of names past the billionth).
    pub fn variant_name(&self, index: u32) -> &str {
        self.variants.get(index as usize).map_or("(other variants)", String::as_str)
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

    /// Names of the variants of a unit, `|`-joined (for exports of excluded units): configured
    /// ones in the job's order, then unknown ones by name (they are numbered as reader threads
    /// first saw them, an order that must not show).
    pub fn variant_names(&self, unit: &AllocatedUnit) -> String {
        match self.multi_variants.get(&unit.unit) {
            Some(seen) if unit.status == UnitStatus::MultiVariant => {
                let (mut configured, unknown): (Vec<usize>, Vec<usize>) =
                    seen.iter().map(|&i| i as usize).partition(|&i| i < self.n_configured);
                configured.sort_unstable();
                let mut unknown: Vec<&str> = unknown.into_iter().map(|i| self.variant_name(i as _)).collect();
                unknown.sort_unstable();
                configured.into_iter().map(|i| self.variant_name(i as _)).chain(unknown).collect::<Vec<_>>().join("|")
            }
            _ => self.variant_name(unit.variant).to_string(),
        }
    }

    /// Names of variants seen in the data that the job does not configure.
    pub fn unknown_variants(&self) -> &[String] {
        &self.variants[self.n_configured.min(self.variants.len())..]
    }
}

/// What the statistics read of an experiment's allocation: counts, no units. Computed from the
/// units here, or handed over whole by anything else that counts them (the simulation).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AllocationCounts {
    /// Analyzable units (exactly one configured variant) per configured variant.
    pub units: Vec<u64>,
    /// Analyzable units per configured variant by UTC day of first exposure, ascending.
    pub by_day: Vec<(NaiveDate, Vec<u64>)>,
    /// Per dimension of the job: each value's analyzable units per configured variant, by
    /// value; `(missing)` for nulls, last.
    pub by_dimension: Vec<Vec<(String, Vec<u64>)>>,
    /// Every unit exposed in the window, analyzable or not.
    pub all_units: u64,
    pub multi_variant_units: u64,
    pub unknown_variant_units: u64,
    /// Variants seen in the data that the job does not configure, by name.
    pub unknown_variants: Vec<String>,
    pub exposure_rows: u64,
    /// Rows read but not usable (see [`DataQuality`]).
    pub quality: DataQuality,
}

impl AllocationCounts {
    /// New analyzable units per configured variant per day over the last `days` days of
    /// first exposures up to `last` (days without units count as 0), and the days used.
    pub fn inflow(&self, last: NaiveDate, days: u32, first: NaiveDate) -> (Vec<f64>, u32) {
        let from = (last - chrono::Days::new(u64::from(days.max(1)) - 1)).max(first);
        let used = ((last - from).num_days() + 1).max(1) as u32;
        let mut sums = vec![0.0; self.units.len()];
        for (_, units) in self.by_day.iter().filter(|(day, _)| from <= *day && *day <= last) {
            for (sum, &n) in sums.iter_mut().zip(units) {
                *sum += n as f64;
            }
        }
        (sums.into_iter().map(|s| s / f64::from(used)).collect(), used)
    }
}

impl ExperimentAllocation {
    /// The counts of this allocation. A unit whose first exposure has no valid date counts on
    /// `fallback_day`.
    pub fn counts(&self, fallback_day: NaiveDate) -> AllocationCounts {
        // Counted per UTC day number, a date made once per day: units come in first-exposure
        // order within each shard, so the last day's counts are nearly always the next unit's.
        const MICROS_PER_DAY: i64 = 86_400_000_000;
        let mut per_day: Vec<(i64, Vec<u64>)> = Vec::new();
        let mut last = usize::MAX;
        for unit in self.analyzable() {
            let day = unit.first_micros.div_euclid(MICROS_PER_DAY);
            if per_day.get(last).is_none_or(|(d, _)| *d != day) {
                last = match per_day.binary_search_by_key(&day, |(d, _)| *d) {
                    Ok(found) => found,
                    Err(at) => {
                        per_day.insert(at, (day, vec![0; self.n_configured]));
                        at
                    }
                };
            }
            per_day[last].1[unit.variant as usize] += 1;
        }
        let mut by_day: BTreeMap<NaiveDate, Vec<u64>> = BTreeMap::new();
        for (day, units) in per_day {
            let date = chrono::DateTime::from_timestamp_micros(day.saturating_mul(MICROS_PER_DAY))
                .map_or(fallback_day, |t| t.date_naive());
            let counts = by_day.entry(date).or_insert_with(|| vec![0; self.n_configured]);
            for (count, n) in counts.iter_mut().zip(units) {
                *count += n;
            }
        }
        let by_dimension = self
            .dimensions
            .iter()
            .zip(&self.dimension_values)
            .map(|(codes, names)| {
                // Per code (dense: codes are small indices), then per variant.
                let n = self.n_configured;
                let width = codes.iter().filter(|&&c| c != NO_DIMENSION).max().map_or(0, |&c| usize::from(c) + 1);
                let mut by_code: Vec<Option<Vec<u64>>> = vec![None; width + 1];
                for (unit, &code) in self.units.iter().zip(codes) {
                    if unit.status == UnitStatus::Ok {
                        let at = if code == NO_DIMENSION { width } else { usize::from(code) };
                        by_code[at].get_or_insert_with(|| vec![0; n])[unit.variant as usize] += 1;
                    }
                }
                let mut values: Vec<(bool, String, Vec<u64>)> = by_code
                    .into_iter()
                    .enumerate()
                    .filter_map(|(at, units)| {
                        let code = if at == width { NO_DIMENSION } else { at as u16 };
                        Some((code, units?))
                    })
                    .map(|(code, units)| {
                        let value = if code == NO_DIMENSION {
                            "(missing)"
                        } else {
                            names.get(usize::from(code)).map_or("(other)", String::as_str)
                        };
                        (code == NO_DIMENSION, value.to_string(), units)
                    })
                    .collect();
                // By value, `(missing)` last: codes follow the order reader threads first saw
                // the values in, which must not show.
                values.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
                values.into_iter().map(|(_, value, units)| (value, units)).collect()
            })
            .collect();
        AllocationCounts {
            units: self.units_per_variant(),
            by_day: by_day.into_iter().collect(),
            by_dimension,
            all_units: self.units.len() as u64,
            multi_variant_units: self.count(UnitStatus::MultiVariant),
            unknown_variant_units: self.count(UnitStatus::UnknownVariant),
            unknown_variants: {
                let mut names = self.unknown_variants().to_vec();
                names.sort_unstable();
                names
            },
            exposure_rows: self.exposure_rows,
            quality: self.quality,
        }
    }
}
