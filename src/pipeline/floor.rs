//! The decode floor of a run (`abreport scan`): the listing and the reads of the embedded
//! engine's window, with the same reader, columns and concurrency, into a sink that only counts.
//! How far a full run is from it is what the fold, the statistics and the exports cost.
//! Nothing is folded, analysed or written.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef};
use chrono::NaiveDate;
use serde_json::json;

use super::error::RunError;
use super::read::{Reader, list, started};
use crate::aggregate::Spec;
use crate::config::{Experiment, Job};
use crate::runlog::{Deadline, RunLog};
use crate::source::{self, DataFile, Dataset, ScanStats, Source};

/// One dataset's reads.
#[derive(Debug, Clone, Copy)]
pub struct DatasetScan {
    pub dataset: Dataset,
    /// Files, bytes and rows, as the scan counted them.
    pub read: ScanStats,
    /// The decoded arrays' lengths summed over every column: the sink's proof that it touched
    /// each batch.
    pub values: u64,
    pub took: Duration,
}

/// The decode floor of one job and report date.
#[derive(Debug, Clone)]
pub struct DecodeFloor {
    /// The partitions' listing.
    pub listed: Duration,
    /// Exposures, then events.
    pub datasets: Vec<DatasetScan>,
    /// The listing and every read.
    pub took: Duration,
}

impl DecodeFloor {
    /// Every dataset's reads together.
    pub fn read(&self) -> ScanStats {
        self.datasets.iter().map(|d| d.read).sum()
    }
}

/// Lists the window of every experiment of `job` started by `report_date`, as `run` does, then
/// reads the exposure files and the event files through the run's [`Reader`] into a counting
/// sink, under the job's SLA as a run is. Errors are the run's.
pub async fn decode_floor(
    job: &Job,
    report_date: NaiveDate,
    progress: bool,
    log: &RunLog,
) -> Result<DecodeFloor, RunError> {
    let started_at = Instant::now();
    let deadline = Deadline::new(started_at, job.sla);
    let all: Vec<&Experiment> = job.experiments.iter().collect();
    let spec = Spec::new(job, &started(&all, report_date), report_date);
    let source = Source::open_within(&job.source.url, deadline)?;
    let plan = list(&source, &spec, &deadline, log).await?;
    let listed = started_at.elapsed();
    let reader = Reader { source: &source, plan: &plan, progress, deadline: &deadline, log };
    let mut datasets = Vec::with_capacity(2);
    // The events after the exposures, as the fold needs them.
    for (dataset, stage) in [(Dataset::Exposures, "scan exposures"), (Dataset::Events, "scan events")] {
        datasets.push(count(&reader, job, dataset, stage).await?);
    }
    Ok(DecodeFloor { listed, datasets, took: started_at.elapsed() })
}

/// Reads `dataset`'s files of the plan, counting rows and values, timed and logged as `stage`.
async fn count(reader: &Reader<'_>, job: &Job, dataset: Dataset, stage: &'static str) -> Result<DatasetScan, RunError> {
    let values = Arc::new(AtomicU64::new(0));
    let sink = {
        let values = values.clone();
        move |_: &DataFile, arrays: &[ArrayRef]| -> Result<(), Infallible> {
            values.fetch_add(arrays.iter().map(|a| a.len() as u64).sum(), Ordering::Relaxed);
            Ok(())
        }
    };
    let started_at = Instant::now();
    let read = reader.read_as(stage, dataset, source::read_columns(job, dataset), sink).await?;
    let took = started_at.elapsed();
    let values = values.load(Ordering::Relaxed);
    reader.log.info(stage, None, format!("{dataset} decoded"), json!({ "rows": read.rows, "values": values }));
    Ok(DatasetScan { dataset, read, values, took })
}
