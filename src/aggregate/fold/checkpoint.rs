//! The checkpoint of an incremental run: an [`Aggregator`]'s whole state after a run, and what
//! it was made from ([`CheckpointHeader`]), as versioned bytes, and back. Pure: the ledger keeps
//! the bytes, the pipeline decides whether they can be used.
//!
//! Layout (integers little-endian):
//!
//! ```text
//! "ABRCKPT\0" | version u32 | header length u64 | header   (zstd of JSON: CheckpointHeader)
//!             | index length u64 | index                    (zstd of JSON: registries, shard sizes)
//!             | shard 0 | shard 1 | …                        (zstd each, compressed on all cores)
//! ```
//!
//! A shard holds its unit ids in local-index order (loading interns them again in that order,
//! so local indices come back identical; no hash table is written), then per unit and
//! experiment the exposure state and dimension codes, the event-phase rows, the counters and
//! the multi-variant lists. Every zstd frame carries a checksum: a flipped bit is an error, not
//! a wrong number.

use std::io::Write as _;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{
    Aggregator, Counters, DimensionRegistry, Exposure, KIND_INT, KIND_TEXT, KIND_UNSET, Shard, VARIANT_INDEX,
    VariantNames, lock,
};
use crate::aggregate::allocation::NO_DIMENSION;
use crate::aggregate::columns::UnitKey;
use crate::aggregate::spec::Spec;
use crate::aggregate::unit_keys::hash_unit;

const MAGIC: &[u8; 8] = b"ABRCKPT\0";
/// The format's version; a checkpoint of another version is not read (the run reads all).
pub const CHECKPOINT_VERSION: u32 = 3;
/// zstd level: the state is mostly small integers and zeros; level 1 keeps the write short.
const LEVEL: i32 = 1;

/// Why checkpoint bytes could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("not an abreport checkpoint (its first bytes are not `ABRCKPT`)")]
    NotACheckpoint,
    #[error("checkpoint format version {found}; this abreport reads version {expected}")]
    Version { found: u32, expected: u32 },
    #[error("truncated: the {what} ends early")]
    Truncated { what: String },
    #[error("corrupt {what}: {cause}")]
    Corrupt { what: String, cause: String },
}

fn corrupt(what: &str, cause: impl std::fmt::Display) -> CheckpointError {
    CheckpointError::Corrupt { what: what.to_string(), cause: cause.to_string() }
}

/// What a checkpoint was made from: checked against the next run before its state is used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointHeader {
    /// [`fingerprint`] of the run's spec.
    pub fingerprint: String,
    /// The report date of the run that wrote it (the state counts events before its end).
    pub report_date: NaiveDate,
    /// Every partition of the run's window (dataset, date), read or missing.
    pub partitions: Vec<PartitionRecord>,
}

/// One partition (dataset and date) as a run read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionRecord {
    /// `exposures` or `events`.
    pub dataset: String,
    pub date: NaiveDate,
    /// Its files in path order (none: the partition was missing).
    pub files: Vec<FileRecord>,
    /// The largest timestamp of its rows, when any had one.
    pub max_ts: Option<i64>,
}

/// One data file as the listing showed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub path: String,
    pub size: u64,
    /// Its etag, else its last-modified time: a rewritten file of the same size differs here.
    pub version: Option<String>,
}

/// A digest of everything the fold depends on except the report date: the columns, the
/// dimensions, the experiments (id, start, variants, slots, lookback) and the events, in
/// order. Another digest means the state answers another question.
pub fn fingerprint(spec: &Spec) -> String {
    let c = &spec.columns;
    let experiments: Vec<serde_json::Value> = spec
        .experiments
        .iter()
        .map(|e| {
            let slots: Vec<serde_json::Value> = e
                .slots
                .iter()
                .map(|s| serde_json::json!({ "event": s.event, "sum": s.sum, "max": s.max, "pre": s.pre }))
                .collect();
            serde_json::json!({
                "id": e.id,
                "start": e.start.to_string(),
                "variants": e.variants,
                "slots": slots,
                "lookback_micros": e.lookback_micros,
            })
        })
        .collect();
    let canonical = serde_json::json!({
        "version": CHECKPOINT_VERSION,
        "columns": [c.experiment_id, c.variant, c.unit_id, c.exposure_ts, c.event, c.value, c.event_ts],
        "dimensions": spec.dimensions,
        "experiments": experiments,
        "events": spec.events,
    });
    let digest = Sha256::digest(canonical.to_string().as_bytes());
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// The registries and the shape of the state, and each shard's size in the file.
#[derive(Serialize, Deserialize)]
struct Index {
    unit_kind: u8,
    experiments: usize,
    dimensions: usize,
    width: usize,
    variants: Vec<Vec<String>>,
    dimension_values: Vec<Vec<String>>,
    /// Per shard: (units, compressed bytes).
    shards: Vec<(u64, u64)>,
}

fn compress(raw: &[u8]) -> Vec<u8> {
    let mut encoder = zstd::stream::write::Encoder::new(Vec::with_capacity(raw.len() / 4), LEVEL)
        .expect("a zstd encoder of a valid level starts");
    encoder.include_checksum(true).expect("zstd takes the checksum flag");
    encoder.write_all(raw).expect("writing to memory cannot fail");
    encoder.finish().expect("finishing into memory cannot fail")
}

fn decompress(what: &str, bytes: &[u8]) -> Result<Vec<u8>, CheckpointError> {
    zstd::stream::decode_all(bytes).map_err(|e| corrupt(what, e))
}

/// [`decompress`] into `out` (cleared first), keeping its capacity.
fn decompress_into(what: &str, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), CheckpointError> {
    use std::io::Read;
    out.clear();
    let mut decoder = zstd::stream::read::Decoder::new(bytes).map_err(|e| corrupt(what, e))?;
    decoder.read_to_end(out).map(|_| ()).map_err(|e| corrupt(what, e))
}

thread_local! {
    /// One shard's uncompressed bytes, reused for every shard a thread encodes or decodes.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `work` on this thread's scratch buffer, emptied. A shard's bytes are tens of MB at
/// millions of units: a fresh buffer per shard, freed after, stays resident in glibc's heap
/// (its mmap threshold rises to the size of the first one freed), which had a run from a
/// checkpoint peak 0.8 GiB above a full run at 3M units.
fn with_scratch<R>(work: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    let mut buffer = SCRATCH.with(|scratch| std::mem::take(&mut *scratch.borrow_mut()));
    buffer.clear();
    let result = work(&mut buffer);
    SCRATCH.with(|scratch| *scratch.borrow_mut() = buffer);
    result
}

/// Reads the parts of a byte string in order, each a typed error when short.
struct Cursor<'a> {
    bytes: &'a [u8],
    what: &'a str,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CheckpointError> {
        if self.bytes.len() < n {
            return Err(CheckpointError::Truncated { what: self.what.to_string() });
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u64(&mut self) -> Result<u64, CheckpointError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    fn u32(&mut self) -> Result<u32, CheckpointError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    /// A count of items of `item_bytes` each, checked against what is left (a corrupt count
    /// must not allocate gigabytes).
    fn count(&mut self, item_bytes: usize) -> Result<usize, CheckpointError> {
        let n = self.u64()?;
        let n = usize::try_from(n).map_err(|_| corrupt(self.what, format!("count {n}")))?;
        if n.saturating_mul(item_bytes.max(1)) > self.bytes.len() {
            return Err(CheckpointError::Truncated { what: self.what.to_string() });
        }
        Ok(n)
    }

    fn section(&mut self) -> Result<&'a [u8], CheckpointError> {
        let n = self.count(1)?;
        self.take(n)
    }
}

/// The header of checkpoint `bytes`, without decoding the state.
pub fn read_header(bytes: &[u8]) -> Result<CheckpointHeader, CheckpointError> {
    let mut cursor = Cursor { bytes, what: "checkpoint header" };
    read_header_at(&mut cursor)
}

fn read_header_at(cursor: &mut Cursor<'_>) -> Result<CheckpointHeader, CheckpointError> {
    if cursor.bytes.len() < MAGIC.len() || &cursor.bytes[..MAGIC.len()] != MAGIC {
        return Err(CheckpointError::NotACheckpoint);
    }
    cursor.take(MAGIC.len())?;
    let version = cursor.u32()?;
    if version != CHECKPOINT_VERSION {
        return Err(CheckpointError::Version { found: version, expected: CHECKPOINT_VERSION });
    }
    let header = decompress("checkpoint header", cursor.section()?)?;
    serde_json::from_slice(&header).map_err(|e| corrupt("checkpoint header", e))
}

fn push_u64s(out: &mut Vec<u8>, words: impl IntoIterator<Item = u64>) {
    for word in words {
        out.extend_from_slice(&word.to_le_bytes());
    }
}

impl Counters {
    fn words(&self) -> [u64; 7] {
        [
            self.rows,
            self.pre_exposure,
            self.future_rows,
            self.exposures_without_unit,
            self.exposures_without_variant_or_ts,
            self.events_without_unit,
            self.events_without_ts,
        ]
    }

    fn from_words(w: [u64; 7]) -> Self {
        Self {
            rows: w[0],
            pre_exposure: w[1],
            future_rows: w[2],
            exposures_without_unit: w[3],
            exposures_without_variant_or_ts: w[4],
            events_without_unit: w[5],
            events_without_ts: w[6],
        }
    }
}

impl Aggregator {
    /// The state after both scans as checkpoint bytes, with `header`, in parts whose
    /// concatenation is the checkpoint (the head, then each shard's frame): writers send the
    /// parts one after the other, so the state is never copied into one buffer, which at 10M
    /// units would hold 650 MB a second time. Call before [`Aggregator::finish`], which takes
    /// the state apart.
    pub fn checkpoint(&self, header: &CheckpointHeader) -> Vec<Vec<u8>> {
        let keys = self.keys();
        let n = self.spec.experiments.len();
        let d = self.spec.dimensions.len();
        let unit_kind = self.unit_kind.load(std::sync::atomic::Ordering::Acquire);
        let shards: Vec<(u64, Vec<u8>)> = crate::threads::map((0..self.shards.len()).collect(), |s| {
            with_scratch(|raw| {
                let shard = lock(&self.shards[s]);
                let shard_keys = keys.shard(s);
                // Unit ids in local order: integers, or each text id's length then all bytes.
                push_u64s(raw, [shard.units as u64]);
                match unit_kind {
                    KIND_INT => push_u64s(
                        raw,
                        (0..shard.units as u32).map(|i| match shard_keys.key(i) {
                            UnitKey::Int(int) => int as u64,
                            UnitKey::Text(_) => unreachable!("a shard holds one kind of id"),
                        }),
                    ),
                    _ => {
                        let texts: Vec<&str> = (0..shard.units as u32)
                            .map(|i| match shard_keys.key(i) {
                                UnitKey::Text(text) => text,
                                UnitKey::Int(_) => unreachable!("a shard holds one kind of id"),
                            })
                            .collect();
                        for text in &texts {
                            raw.extend_from_slice(&(text.len() as u32).to_le_bytes());
                        }
                        for text in &texts {
                            raw.extend_from_slice(text.as_bytes());
                        }
                    }
                }
                for x in &shard.exposure {
                    raw.extend_from_slice(&x.first_micros.to_le_bytes());
                    raw.extend_from_slice(&x.exposures.to_le_bytes());
                    raw.extend_from_slice(&x.variant.to_le_bytes());
                }
                for code in &shard.dimensions {
                    raw.extend_from_slice(&code.to_le_bytes());
                }
                push_u64s(raw, [shard.rows.len() as u64]);
                push_u64s(raw, shard.rows.iter().copied());
                push_u64s(raw, [shard.sums.len() as u64]);
                push_u64s(raw, shard.sums.iter().copied());
                for counters in &shard.counters {
                    push_u64s(raw, counters.words());
                }
                let mut multi: Vec<(&(u32, u32), &Vec<u32>)> = shard.multi.iter().collect();
                multi.sort_unstable_by_key(|(key, _)| **key);
                push_u64s(raw, [multi.len() as u64]);
                for (&(local, e), variants) in multi {
                    for word in [local, e, variants.len() as u32].into_iter().chain(variants.iter().copied()) {
                        raw.extend_from_slice(&word.to_le_bytes());
                    }
                }
                debug_assert_eq!(shard.exposure.len(), shard.units * n);
                debug_assert_eq!(shard.dimensions.len(), shard.units * n * d);
                (shard.units as u64, compress(raw))
            })
        });
        let index = Index {
            unit_kind,
            experiments: n,
            dimensions: d,
            width: self.layout.width,
            variants: lock(&self.variants).iter().map(|v| v.names.clone()).collect(),
            dimension_values: lock(&self.dimensions).values.clone(),
            shards: shards.iter().map(|(units, bytes)| (*units, bytes.len() as u64)).collect(),
        };
        let header = compress(&serde_json::to_vec(header).expect("a checkpoint header serializes"));
        let index = compress(&serde_json::to_vec(&index).expect("a checkpoint index serializes"));
        let mut head = Vec::with_capacity(8 + 4 + 16 + header.len() + index.len());
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(&CHECKPOINT_VERSION.to_le_bytes());
        push_u64s(&mut head, [header.len() as u64]);
        head.extend_from_slice(&header);
        push_u64s(&mut head, [index.len() as u64]);
        head.extend_from_slice(&index);
        std::iter::once(head).chain(shards.into_iter().map(|(_, bytes)| bytes)).collect()
    }

    /// An aggregator for `spec` holding the state of checkpoint `bytes` (keys back in the
    /// shards, not frozen, so new exposures can add units), and the checkpoint's header. The
    /// caller has checked the header's fingerprint against `spec`'s.
    pub fn from_checkpoint(
        spec: std::sync::Arc<Spec>,
        bytes: &[u8],
    ) -> Result<(Self, CheckpointHeader), CheckpointError> {
        let mut cursor = Cursor { bytes, what: "checkpoint" };
        let header = read_header_at(&mut cursor)?;
        cursor.what = "checkpoint index";
        let index: Index = serde_json::from_slice(&decompress("checkpoint index", cursor.section()?)?)
            .map_err(|e| corrupt("checkpoint index", e))?;
        let aggregator = Aggregator::new(spec);
        let (n, d) = (aggregator.spec.experiments.len(), aggregator.spec.dimensions.len());
        if (index.experiments, index.dimensions, index.width) != (n, d, aggregator.layout.width)
            || index.shards.len() != aggregator.shards.len()
            || index.variants.len() != n
            || index.dimension_values.len() != d
            || ![KIND_UNSET, KIND_TEXT, KIND_INT].contains(&index.unit_kind)
        {
            return Err(corrupt("checkpoint index", "its state has another shape than this job's"));
        }
        let mut frames = Vec::with_capacity(index.shards.len());
        cursor.what = "checkpoint state";
        for &(_, compressed) in &index.shards {
            let compressed = usize::try_from(compressed).map_err(|_| corrupt("checkpoint index", "a shard size"))?;
            frames.push(cursor.take(compressed)?);
        }
        if !cursor.bytes.is_empty() {
            return Err(corrupt("checkpoint", format!("{} bytes after the last shard", cursor.bytes.len())));
        }
        let n_variants: Vec<u32> = index.variants.iter().map(|v| v.len() as u32).collect();
        let n_values: Vec<usize> = index.dimension_values.iter().map(Vec::len).collect();
        let shape = ShardShape {
            experiments: n,
            dimensions: d,
            width: aggregator.layout.width,
            sum_blocks: &aggregator.layout.sum_blocks(),
            unit_kind: index.unit_kind,
            n_variants: &n_variants,
            n_values: &n_values,
        };
        let shards: Vec<Result<Shard, CheckpointError>> =
            crate::threads::map((0..frames.len()).collect(), |s| decode_shard(s, frames[s], index.shards[s].0, &shape));
        for (slot, shard) in aggregator.shards.iter().zip(shards) {
            *lock(slot) = shard?;
        }
        {
            let mut variants = lock(&aggregator.variants);
            for (e, names) in index.variants.iter().enumerate() {
                let configured = &aggregator.spec.experiments[e].variants;
                if names.len() < configured.len() || names[..configured.len()] != configured[..] {
                    return Err(corrupt("checkpoint index", "its variants are not this job's"));
                }
                let registry = VariantNames::new(names);
                if registry.names.len() != names.len() {
                    return Err(corrupt("checkpoint index", "a variant is listed twice"));
                }
                variants[e] = registry;
            }
        }
        *lock(&aggregator.dimensions) = DimensionRegistry {
            codes: index
                .dimension_values
                .iter()
                .map(|values| values.iter().enumerate().map(|(code, v)| (v.clone(), code as u16)).collect())
                .collect(),
            values: index.dimension_values,
        };
        aggregator.unit_kind.store(index.unit_kind, std::sync::atomic::Ordering::Release);
        Ok((aggregator, header))
    }
}

/// What every shard of a checkpoint must look like.
struct ShardShape<'a> {
    experiments: usize,
    dimensions: usize,
    width: usize,
    /// `(handle word, words)` of each block of sums in a row.
    sum_blocks: &'a [(usize, usize)],
    unit_kind: u8,
    n_variants: &'a [u32],
    n_values: &'a [usize],
}

fn decode_shard(s: usize, frame: &[u8], units: u64, shape: &ShardShape<'_>) -> Result<Shard, CheckpointError> {
    let what = format!("checkpoint shard {s}");
    with_scratch(|raw| {
        decompress_into(&what, frame, raw)?;
        decode_raw(&what, raw, units, shape)
    })
}

/// One shard from its uncompressed bytes (`what` names it in errors).
fn decode_raw(what: &str, raw: &[u8], units: u64, shape: &ShardShape<'_>) -> Result<Shard, CheckpointError> {
    let what = what.to_string();
    let mut cursor = Cursor { bytes: raw, what: &what };
    let n = shape.experiments;
    let d = shape.dimensions;
    // Each unit takes at least its id's 4 bytes and 16 per experiment.
    let stored_units = cursor.count(4 + 16 * n)?;
    if stored_units as u64 != units {
        return Err(corrupt(&what, format!("{stored_units} units, the index says {units}")));
    }
    let mut shard = Shard { counters: vec![Counters::default(); n], ..Shard::default() };
    let mut intern = |key: UnitKey<'_>, i: usize| -> Result<(), CheckpointError> {
        if shard.keys.intern(hash_unit(key), key) as usize != i {
            return Err(corrupt(&what, "a unit id appears twice"));
        }
        Ok(())
    };
    match shape.unit_kind {
        KIND_INT => {
            for i in 0..stored_units {
                intern(UnitKey::Int(cursor.u64()? as i64), i)?;
            }
        }
        _ if stored_units == 0 => {}
        KIND_TEXT => {
            let lengths: Vec<usize> =
                (0..stored_units).map(|_| cursor.u32().map(|l| l as usize)).collect::<Result<_, _>>()?;
            let texts = cursor.take(lengths.iter().sum())?;
            let texts = std::str::from_utf8(texts).map_err(|e| corrupt(&what, e))?;
            let mut at = 0;
            for (i, len) in lengths.into_iter().enumerate() {
                let text = texts.get(at..at + len).ok_or_else(|| corrupt(&what, "a unit id is not text"))?;
                intern(UnitKey::Text(text), i)?;
                at += len;
            }
        }
        _ => return Err(corrupt(&what, "units without an id kind")),
    }
    shard.units = stored_units;
    let pairs = stored_units * n;
    shard.exposure = (0..pairs)
        .map(|_| -> Result<Exposure, CheckpointError> {
            let first_micros = cursor.u64()? as i64;
            let exposures = cursor.u32()?;
            let variant = cursor.u32()?;
            Ok(Exposure { first_micros, exposures, variant })
        })
        .collect::<Result<_, _>>()?;
    for (i, x) in shard.exposure.iter().enumerate() {
        let index = x.variant & VARIANT_INDEX;
        if x.exposures > 0 && index != VARIANT_INDEX && index >= shape.n_variants[i % n] {
            return Err(corrupt(&what, "a unit's variant is not in the variant list"));
        }
    }
    let codes = cursor.take(pairs * d * 2)?;
    shard.dimensions = codes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    if d > 0
        && shard
            .dimensions
            .iter()
            .enumerate()
            .any(|(i, &code)| code != NO_DIMENSION && usize::from(code) >= shape.n_values[i % d])
    {
        return Err(corrupt(&what, "a dimension code is not in the value list"));
    }
    let words = cursor.count(8)?;
    if (shape.width == 0 && words > 0)
        || (shape.width > 0 && (words % shape.width != 0 || words > stored_units * shape.width))
    {
        return Err(corrupt(&what, format!("{words} row words for {stored_units} units")));
    }
    shard.rows =
        cursor.take(words * 8)?.chunks_exact(8).map(|w| u64::from_le_bytes(w.try_into().expect("8"))).collect();
    let words = cursor.count(8)?;
    shard.sums =
        cursor.take(words * 8)?.chunks_exact(8).map(|w| u64::from_le_bytes(w.try_into().expect("8"))).collect();
    // Every handle must point at a whole block of sums: the fold indexes the arena by them.
    if shape.width > 0
        && shard.rows.chunks_exact(shape.width).any(|row| {
            shape.sum_blocks.iter().any(|&(handle, block)| {
                row[handle] != 0 && (row[handle] - 1).checked_add(block as u64).is_none_or(|end| end > words as u64)
            })
        })
    {
        return Err(corrupt(&what, "a row's sums are not in the shard's sums"));
    }
    for counters in &mut shard.counters {
        let mut w = [0u64; 7];
        for word in &mut w {
            *word = cursor.u64()?;
        }
        *counters = Counters::from_words(w);
    }
    let n_multi = cursor.count(12)?;
    for _ in 0..n_multi {
        let (local, e, len) = (cursor.u32()?, cursor.u32()?, cursor.u32()? as usize);
        if local as usize >= stored_units || e as usize >= n || len * 4 > cursor.bytes.len() {
            return Err(corrupt(&what, "a multi-variant entry is out of range"));
        }
        let variants = (0..len).map(|_| cursor.u32()).collect::<Result<Vec<u32>, _>>()?;
        shard.multi.insert((local, e), variants);
    }
    if !cursor.bytes.is_empty() {
        return Err(corrupt(&what, format!("{} bytes after its last part", cursor.bytes.len())));
    }
    Ok(shard)
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Float64Array};

    use super::*;
    use crate::aggregate::{Allocation, EventTotals};
    use crate::test_support::{at, checked_job, experiment_text, nov, text, times};

    /// Experiment `x` from 2026-11-19 on `conversion` and `revenue` (a sum, with a CUPED
    /// covariate over one day), with a `country` dimension.
    fn spec(report_day: u32) -> Arc<Spec> {
        let text = format!(
            "name = \"t\"\ndimensions = [\"country\"]\n[source]\nurl = \"file:///data\"\n[stats]\ncuped_lookback_days = 1\n\
             [[metrics]]\nname = \"conversion\"\nkind = \"proportion\"\nevent = \"purchase\"\n\
             [[metrics]]\nname = \"revenue\"\nkind = \"mean\"\nevent = \"purchase\"\naggregate = \"sum\"\ncuped = true\n\
             {}secondary = [\"revenue\"]\n",
            experiment_text("x", "2026-11-19")
        );
        let job = checked_job(&text, Path::new("t.toml"));
        let experiments: Vec<&crate::config::Experiment> = job.experiments.iter().collect();
        Arc::new(Spec::new(&job, &experiments, nov(report_day)))
    }

    fn exposures(rows: &[(&str, &str, i64, &str)]) -> Vec<ArrayRef> {
        vec![
            text(&vec!["x"; rows.len()]),
            text(&rows.iter().map(|r| r.1).collect::<Vec<_>>()),
            text(&rows.iter().map(|r| r.0).collect::<Vec<_>>()),
            times(&rows.iter().map(|r| r.2).collect::<Vec<_>>()),
            text(&rows.iter().map(|r| r.3).collect::<Vec<_>>()),
        ]
    }

    fn events(rows: &[(&str, f64, i64)]) -> Vec<ArrayRef> {
        vec![
            text(&rows.iter().map(|r| r.0).collect::<Vec<_>>()),
            text(&vec!["purchase"; rows.len()]),
            Arc::new(Float64Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())) as ArrayRef,
            times(&rows.iter().map(|r| r.2).collect::<Vec<_>>()),
        ]
    }

    /// Day 19: u1 control, u2 treatment, u3 control; purchases of u1 before and after its
    /// exposure, a NaN of u2, one of a unit never exposed and one of u5, exposed on day 20.
    fn day_19(aggregator: &Aggregator) {
        let rows = [
            ("u1", "control", at(19, 10), "DE"),
            ("u2", "treatment", at(19, 11), "FR"),
            ("u3", "control", at(19, 12), "US"),
        ];
        aggregator.fold_exposures(nov(19), &exposures(&rows)).expect("exposures fold");
    }

    fn events_19(
        aggregator: &Aggregator,
        fold: fn(&Aggregator, NaiveDate, &[ArrayRef]) -> Result<(), crate::aggregate::AggregateError>,
    ) {
        let rows = [
            ("u1", 4.0, at(19, 9)),
            ("u1", 5.0, at(19, 13)),
            ("u2", f64::NAN, at(19, 12)),
            ("u2", 2.0, at(19, 9)),
            ("u4", 3.0, at(19, 13)),
            ("u3", 1.0, at(19, 14)),
            ("u5", 7.0, at(19, 20)),
        ];
        fold(aggregator, nov(19), &events(&rows)).expect("events fold");
    }

    /// Day 20: u3 also sees treatment (now multi-variant), u5 arrives, and a late row moves
    /// u2's first exposure earlier (into day 19, before its NaN and its 09:00 purchase).
    fn day_20(aggregator: &Aggregator) {
        let rows = [
            ("u3", "treatment", at(20, 1), "US"),
            ("u5", "control", at(20, 1), "IT"),
            ("u2", "treatment", at(19, 8), "ES"),
        ];
        aggregator.fold_exposures(nov(20), &exposures(&rows)).expect("exposures fold");
    }

    fn events_20(aggregator: &Aggregator) {
        let rows = [("u5", 1.5, at(20, 2)), ("u1", 2.5, at(20, 5)), ("u2", 6.0, at(20, 3)), ("u3", 9.0, at(20, 4))];
        aggregator.fold_events(nov(20), &events(&rows)).expect("events fold");
    }

    /// What the tests compare of a finished fold: everything but `pre_exposure_events`.
    fn outcome((allocation, totals): (Allocation, Vec<EventTotals>)) -> String {
        let totals: Vec<String> = totals
            .iter()
            .map(|t| format!("{:?} {:?} {} {}", t.slots, t.pre_slots, t.counted_events, t.invalid_values))
            .collect();
        let experiments: Vec<String> = allocation
            .experiments
            .iter()
            .map(|x| {
                let mut multi: Vec<_> = x.multi_variants.iter().collect();
                multi.sort();
                format!(
                    "{:?} {:?} {} {multi:?} {:?} {:?} {:?}",
                    x.variants, x.units, x.exposure_rows, x.dimensions, x.dimension_values, x.quality
                )
            })
            .collect();
        format!("{experiments:?}\n{totals:?}")
    }

    /// Day 19's exposures and events, folded.
    fn folded_19() -> Aggregator {
        let aggregator = Aggregator::new(spec(19));
        day_19(&aggregator);
        events_19(&aggregator, Aggregator::fold_events);
        aggregator
    }

    fn header_19() -> CheckpointHeader {
        CheckpointHeader { fingerprint: fingerprint(&spec(19)), report_date: nov(19), partitions: Vec::new() }
    }

    fn checkpoint_of_19() -> Vec<u8> {
        folded_19().checkpoint(&header_19()).concat()
    }

    #[test]
    fn a_state_comes_back_from_its_bytes_as_it_was() {
        let bytes = checkpoint_of_19();
        let (loaded, header) = Aggregator::from_checkpoint(spec(19), &bytes).expect("reads back");
        assert_eq!(header.report_date, nov(19));
        assert_eq!(read_header(&bytes).expect("header"), header);
        assert_eq!(loaded.checkpoint(&header).concat(), bytes, "the same bytes again");
        assert_eq!(outcome(loaded.finish()), outcome(folded_19().finish()));
        assert_eq!(fingerprint(&spec(19)), fingerprint(&spec(20)), "the report date is not in the fingerprint");
    }

    #[test]
    fn an_incremental_fold_equals_the_full_fold_with_new_late_and_multi_variant_units() {
        let full = Aggregator::new(spec(20));
        day_19(&full);
        day_20(&full);
        events_19(&full, Aggregator::fold_events);
        events_20(&full);

        let (incremental, _) = Aggregator::from_checkpoint(spec(20), &checkpoint_of_19()).expect("reads back");
        day_20(&incremental);
        let regated = incremental.regate();
        // u5 is new; u2's gate moved earlier; u3 is no longer analyzable.
        assert_eq!((regated.new_units, regated.touched, regated.excluded), (1, 2, 1));
        assert_eq!(regated.earliest_micros, Some(at(19, 8) - 86_400_000_000));
        events_20(&incremental);
        events_19(&incremental, Aggregator::fold_old_events);
        assert_eq!(outcome(incremental.finish()), outcome(full.finish()));
    }

    #[test]
    fn truncated_or_altered_bytes_are_an_error_naming_the_part_never_a_panic() {
        let bytes = checkpoint_of_19();
        for len in (0..bytes.len()).step_by(7).chain([bytes.len() - 1]) {
            let error = Aggregator::from_checkpoint(spec(19), &bytes[..len]).err().expect("an error");
            assert!(!error.to_string().is_empty());
        }
        for at in (0..bytes.len()).step_by(5) {
            let mut altered = bytes.clone();
            altered[at] ^= 0x20;
            // A flipped bit is caught by a checksum, a length or a check, or falls in a
            // frame's header where it changes nothing read; never a panic, never another state.
            if let Ok((loaded, header)) = Aggregator::from_checkpoint(spec(19), &altered) {
                assert_eq!(loaded.checkpoint(&header).concat(), bytes, "byte {at} altered and read as another state");
            }
        }
        let mut other_version = bytes.clone();
        other_version[8] = 9;
        assert!(matches!(
            read_header(&other_version),
            Err(CheckpointError::Version { found: 9, expected: CHECKPOINT_VERSION })
        ));
        assert!(matches!(read_header(b"PAR1 not a checkpoint"), Err(CheckpointError::NotACheckpoint)));
        let error = Aggregator::from_checkpoint(spec(19), &bytes[..bytes.len() - 3]).err().expect("an error");
        assert!(error.to_string().contains("checkpoint"), "{error}");
    }

    #[test]
    fn a_row_whose_sums_handle_points_past_its_shards_sums_is_an_error() {
        let aggregator = folded_19();
        let blocks = aggregator.layout.sum_blocks();
        assert!(!blocks.is_empty(), "the test job sums revenue");
        let (handle, _) = blocks[0];
        let width = aggregator.layout.width;
        let summed = (aggregator.shards.iter())
            .find(|shard| lock(shard).rows.chunks_exact(width).any(|row| row[handle] != 0))
            .expect("a unit summed a value");
        {
            let mut shard = lock(summed);
            let row = shard.rows.chunks_exact_mut(width).find(|row| row[handle] != 0).expect("that unit");
            row[handle] += 1_000;
        }
        let error = Aggregator::from_checkpoint(spec(19), &aggregator.checkpoint(&header_19()).concat())
            .err()
            .expect("an error");
        assert!(error.to_string().contains("sums"), "{error}");
    }
}
