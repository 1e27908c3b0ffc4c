//! The embedded engine with a checkpoint: a daily run that reads the checkpoint of the last
//! run plus the new partitions only, and gives exactly the results of a full read.
//!
//! The rules, in the order they are checked (each failing one is a full read, logged with its
//! reason, that writes a fresh checkpoint):
//! 1. `--full`; no checkpoint; a checkpoint that cannot be read (a warning naming the file);
//!    the job's fold changed (experiments, metrics' events, columns, dimensions: the spec's
//!    fingerprint); the report date is not after the checkpoint's.
//! 2. A partition the checkpoint read (date `<= C`) is not as it was: a file added, removed,
//!    or of another size or etag (late-arriving files for an old date).
//! 3. A partition the checkpoint read has rows timestamped at or after the end of `C`: its
//!    run set them aside (future exposures, uncounted events) where today's would count them.
//!
//! Otherwise the state is loaded, the exposure partitions after `C` folded into it, the gates
//! moved ([`Aggregator::regate`]), the event partitions after `C` folded, and the old event
//! partitions that can hold events of the moved (unit, experiment) pairs read again for those
//! pairs only. Everything after the fold is the full run's.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::NaiveDate;
use serde_json::json;

use super::error::RunError;
use super::read::{Computed, Reader, folded, list, scan_dates};
use crate::aggregate::{
    self, Aggregator, CheckpointHeader, FileRecord, MaxTimestamps, PartitionRecord, Spec, day_start_micros,
};
use crate::config::{Dataset, Job};
use crate::runlog::{Deadline, RunLog};
use crate::source::{self, ScanPlan, Source};

/// A run's use of its job's checkpoint.
pub struct Checkpointing {
    /// Where the checkpoint is kept, for messages.
    pub location: String,
    /// Its bytes as read; `None` when there is none (or it could not be read, said already).
    pub previous: Option<bytes::Bytes>,
    /// Ignore it and read everything (`--full`); a new one is written all the same.
    pub full: bool,
    /// Where the new checkpoint goes the moment it is encoded: the caller writes it aside
    /// while the experiments are analysed, and puts it in place once the run is published.
    /// So its write is off the run's path and its bytes are not held to the end.
    /// The parts' concatenation is the checkpoint ([`Aggregator::checkpoint`]).
    pub encoded: Option<tokio::sync::oneshot::Sender<Vec<Vec<u8>>>>,
}

/// A loaded checkpoint the run can go on from.
struct Resumed {
    aggregator: Aggregator,
    header: CheckpointHeader,
}

/// What [`embedded`] hands the run.
pub(super) struct Checkpointed {
    pub computed: Computed,
    /// How the run read, for the report, when it went on from the checkpoint.
    pub read_note: Option<String>,
}

/// Lists, reads and folds like [`super::read::embedded`], from the checkpoint when it is
/// usable; sends the new checkpoint's bytes to [`Checkpointing::encoded`] as soon as they are
/// encoded (before the allocation is gathered).
pub(super) async fn embedded(
    source: &Source,
    job: &Job,
    spec: &Arc<Spec>,
    progress: bool,
    deadline: &Deadline,
    log: &RunLog,
    checkpointing: &mut Checkpointing,
) -> Result<Checkpointed, RunError> {
    let plan = list(source, spec, deadline, log).await?;
    let current = partitions(spec, &plan);
    let fingerprint = aggregate::fingerprint(spec);
    let loaded_at = Instant::now();
    let previous = checkpointing.previous.take();
    let resumed =
        tokio::task::block_in_place(|| resume(spec, &current, &fingerprint, checkpointing, previous.as_deref(), log));
    let bytes_loaded = previous.as_ref().map_or(0, bytes::Bytes::len);
    drop(previous);
    let reader = Reader { source, plan: &plan, progress, deadline, log };
    let (aggregator, old, read, read_note) = match resumed {
        Err(reason) => {
            log.info(
                "checkpoint",
                None,
                format!("full read: {reason}"),
                json!({ "mode": "full", "reason": reason, "location": checkpointing.location }),
            );
            let aggregator = Arc::new(Aggregator::new(spec.clone()));
            let read = reader.window(job, &aggregator).await?;
            (aggregator, MaxTimestamps::default(), read, None)
        }
        Ok(Resumed { aggregator, header }) => {
            let since = header.report_date;
            let new_dates: Vec<String> =
                since.iter_days().skip(1).take_while(|d| *d <= spec.report_date).map(|d| d.to_string()).collect();
            log.stage_done(
                "checkpoint",
                loaded_at.elapsed(),
                json!({
                    "mode": "incremental",
                    "checkpoint_date": since.to_string(),
                    "bytes": bytes_loaded,
                    "new_partition_dates": new_dates,
                    "location": checkpointing.location,
                }),
            );
            let aggregator = Arc::new(aggregator);
            let new_plan = subplan(&plan, |file| file.date > since);
            let new_reader = Reader { plan: &new_plan, ..reader };
            let exposures = new_reader.exposures(job, &aggregator).await?;
            let regated = tokio::task::block_in_place(|| aggregator.regate());
            let events = new_reader.events(job, &aggregator).await?;
            // Old event partitions with rows at or after the earliest time a moved pair
            // counts from: read again, for those pairs only.
            let reread: Vec<NaiveDate> = header
                .partitions
                .iter()
                .filter(|p| p.dataset == Dataset::Events.folder() && p.date <= since)
                .filter(
                    |p| matches!((p.max_ts, regated.earliest_micros), (Some(max), Some(earliest)) if max >= earliest),
                )
                .map(|p| p.date)
                .collect();
            let old_plan = subplan(&plan, |file| file.dataset == Dataset::Events && reread.contains(&file.date));
            let old_reader = Reader { plan: &old_plan, ..reader };
            let fold = aggregator.clone();
            let columns = source::read_columns(job, Dataset::Events);
            let again = old_reader
                .read_as("read old events", Dataset::Events, columns, move |file, columns| {
                    fold.fold_old_events(file.date, columns)
                })
                .await?;
            log.info(
                "checkpoint",
                None,
                format!(
                    "{} (unit, experiment) pairs started afresh; {} old event partition(s) read again for them",
                    regated.touched,
                    reread.len()
                ),
                json!({
                    "new_units": regated.new_units,
                    "touched_pairs": regated.touched,
                    "excluded_pairs": regated.excluded,
                    "reread_partition_dates": reread.iter().map(ToString::to_string).collect::<Vec<_>>(),
                }),
            );
            let old = max_timestamps(&header);
            let note = format!(
                "incremental: the checkpoint of {since}, the partitions after it and {} old event partition(s) read again",
                reread.len()
            );
            (aggregator, old, [exposures, events, again].into_iter().sum(), Some(note))
        }
    };

    // The new checkpoint: every partition of the window as listed, with the largest
    // timestamp the checkpoint had for it or this run saw.
    let encoded_at = Instant::now();
    let mut seen = old;
    let now = aggregator.max_timestamps();
    for (dataset, map) in [(Dataset::Exposures, &now.exposures), (Dataset::Events, &now.events)] {
        for (&date, &micros) in map {
            seen.note(dataset, date, micros);
        }
    }
    let header = CheckpointHeader {
        fingerprint,
        report_date: spec.report_date,
        partitions: current
            .into_iter()
            .map(|mut p| {
                let dataset =
                    if p.dataset == Dataset::Exposures.folder() { Dataset::Exposures } else { Dataset::Events };
                p.max_ts = seen.of(dataset).and_then(|m| m.get(&p.date)).copied();
                p
            })
            .collect(),
    };
    let parts = tokio::task::block_in_place(|| aggregator.checkpoint(&header));
    let bytes = parts.iter().map(Vec::len).sum::<usize>();
    log.stage_done("checkpoint encode", encoded_at.elapsed(), json!({ "bytes": bytes }));
    if let Some(encoded) = checkpointing.encoded.take() {
        // A caller that stopped listening keeps no checkpoint: nothing to do about it here.
        let _ = encoded.send(parts);
    }

    let computed = folded(aggregator, plan.missing, read, log)?;
    Ok(Checkpointed { computed, read_note })
}

/// The loaded checkpoint, or why the run reads everything.
fn resume(
    spec: &Arc<Spec>,
    current: &[PartitionRecord],
    fingerprint: &str,
    checkpointing: &Checkpointing,
    previous: Option<&[u8]>,
    log: &RunLog,
) -> Result<Resumed, String> {
    let location = &checkpointing.location;
    if checkpointing.full {
        return Err("--full".to_string());
    }
    let Some(bytes) = previous else { return Err("no checkpoint".to_string()) };
    let unreadable = |e: aggregate::CheckpointError| {
        let message = format!("the checkpoint `{location}` cannot be read: {e}");
        log.warn("checkpoint", None, format!("{message}; the run reads everything"), json!({ "location": location }));
        message
    };
    let header = aggregate::read_header(bytes).map_err(unreadable)?;
    if header.fingerprint != fingerprint {
        return Err(format!(
            "the job's fold changed since the checkpoint of {} (experiments, their variants or windows, metric events, CUPED lookback, dimensions or columns)",
            header.report_date
        ));
    }
    let since = header.report_date;
    if spec.report_date <= since {
        return Err(format!("the report date {} is not after the checkpoint's, {since}", spec.report_date));
    }
    let old: BTreeMap<(&str, NaiveDate), &PartitionRecord> =
        header.partitions.iter().map(|p| ((p.dataset.as_str(), p.date), p)).collect();
    for partition in current.iter().filter(|p| p.date <= since) {
        let changed = old.get(&(partition.dataset.as_str(), partition.date)).is_none_or(|p| p.files != partition.files);
        if changed {
            return Err(format!(
                "the {} partition of {} changed since the checkpoint (files added, removed or rewritten)",
                partition.dataset, partition.date
            ));
        }
    }
    let end = day_start_micros(since + chrono::Days::new(1));
    if let Some(dirty) = header.partitions.iter().find(|p| p.max_ts.is_some_and(|max| max >= end)) {
        return Err(format!(
            "the {} partition of {} has rows timestamped after {since}, the checkpoint's report date",
            dirty.dataset, dirty.date
        ));
    }
    let (aggregator, header) = Aggregator::from_checkpoint(spec.clone(), bytes).map_err(unreadable)?;
    Ok(Resumed { aggregator, header })
}

/// Every partition of the run's window, as listed: its files (none when missing).
fn partitions(spec: &Spec, plan: &ScanPlan) -> Vec<PartitionRecord> {
    scan_dates(spec)
        .into_iter()
        .flat_map(|(dataset, dates)| {
            dates.into_iter().map(move |date| PartitionRecord {
                dataset: dataset.folder().to_string(),
                date,
                files: plan
                    .files_of(dataset)
                    .filter(|f| f.date == date)
                    .map(|f| FileRecord { path: f.path.to_string(), size: f.size, version: f.version.clone() })
                    .collect(),
                max_ts: None,
            })
        })
        .collect()
}

fn max_timestamps(header: &CheckpointHeader) -> MaxTimestamps {
    let mut seen = MaxTimestamps::default();
    for p in &header.partitions {
        let dataset = if p.dataset == Dataset::Exposures.folder() { Dataset::Exposures } else { Dataset::Events };
        if let Some(micros) = p.max_ts {
            seen.note(dataset, p.date, micros);
        }
    }
    seen
}

fn subplan(plan: &ScanPlan, keep: impl Fn(&source::DataFile) -> bool) -> ScanPlan {
    ScanPlan { files: plan.files.iter().filter(|f| keep(f)).cloned().collect(), missing: Vec::new() }
}
