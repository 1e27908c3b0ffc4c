//! What an incremental run keeps track of while folding: the largest timestamp of each
//! partition, and the (unit, experiment) pairs whose gate moved. Shared by the fold and its
//! `incremental` and `checkpoint` children, so it lives in a child of its own.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::config::Dataset;

/// Per partition date, the largest timestamp of each dataset's rows (rows without one are
/// left out; a partition without any is absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaxTimestamps {
    pub exposures: BTreeMap<NaiveDate, i64>,
    pub events: BTreeMap<NaiveDate, i64>,
}

impl MaxTimestamps {
    pub fn of(&self, dataset: Dataset) -> Option<&BTreeMap<NaiveDate, i64>> {
        match dataset {
            Dataset::Exposures => Some(&self.exposures),
            Dataset::Events => Some(&self.events),
            Dataset::SufficientStats => None,
        }
    }

    /// Keeps `micros` when it is the largest of `dataset`'s partition of `date` so far.
    pub fn note(&mut self, dataset: Dataset, date: NaiveDate, micros: i64) {
        let map = match dataset {
            Dataset::Exposures => &mut self.exposures,
            Dataset::Events => &mut self.events,
            Dataset::SufficientStats => return,
        };
        let kept = map.entry(date).or_insert(micros);
        *kept = (*kept).max(micros);
    }
}

/// The (unit, experiment) pairs whose gate moved in [`Aggregator::regate`]:
/// `shards[s][local * experiments + e]`.
#[derive(Debug, Default)]
pub(crate) struct Touched {
    experiments: usize,
    shards: Vec<Vec<bool>>,
}

impl Touched {
    pub(super) fn new(experiments: usize) -> Self {
        Self { experiments, shards: Vec::new() }
    }

    /// The marks of the next shard: `marks[local * experiments + e]`.
    pub(super) fn push_shard(&mut self, marks: Vec<bool>) {
        self.shards.push(marks);
    }

    #[inline]
    pub(super) fn contains(&self, shard: usize, local: usize, e: usize) -> bool {
        self.shards.get(shard).and_then(|marks| marks.get(local * self.experiments + e)).copied().unwrap_or(false)
    }
}
