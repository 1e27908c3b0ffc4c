//! Results -> the data exports, as bytes: `results.json`, `results.parquet`, `results.csv`,
//! `allocation.parquet`, `units.parquet`, `run.log.jsonl`, and the `manifest.json` that lists
//! every file with its size and sha256.
//!
//! Encoding is pure (no IO); [`write_dir`] is the one writer, and it publishes atomically:
//! each file goes to a temporary name and is renamed into place, the previous manifest is
//! removed first and the new one written last, so a reader that sees a manifest sees a
//! complete, matching set.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray, UInt32Array,
    UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::aggregate::{Allocation, ExperimentAllocation, MetricValues, UnitIdKind, UnitKey};
use crate::results::{Direction, ExperimentResult, InferenceScale, ResultsFile};

pub const MANIFEST: &str = "manifest.json";

/// The key prefix of one run: `<job>/<report_date>`, each part made path-safe.
pub fn run_prefix(job: &str, report_date: chrono::NaiveDate) -> String {
    format!("{}/{}", crate::config::safe_path_component(job), report_date)
}

/// One output file, in memory.
#[derive(Debug, Clone)]
pub struct OutputFile {
    pub name: String,
    pub bytes: Arc<[u8]>,
}

impl OutputFile {
    fn new(name: &str, bytes: Vec<u8>) -> Self {
        Self { name: name.to_string(), bytes: bytes.into() }
    }
}

/// Every output of one experiment; `files` in publishing order, manifest last.
#[derive(Debug, Clone)]
pub struct ExperimentOutputs {
    pub experiment_id: String,
    /// The sanitized folder name (`config::safe_path_component`).
    pub dir_name: String,
    pub files: Vec<OutputFile>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot encode `{file}`: {message}")]
    Encode { file: &'static str, message: String },
    #[error("cannot write `{}`: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
}

fn encode_error(file: &'static str) -> impl Fn(String) -> ExportError {
    move |message| ExportError::Encode { file, message }
}

/// `manifest.json`: what a complete output set holds.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct Manifest {
    pub schema_version: u32,
    pub job: String,
    pub experiment: String,
    pub report_date: String,
    pub status: String,
    pub recommendation: String,
    pub files: Vec<ManifestEntry>,
    /// Files another engine wrote straight to its output location (Spark's per-unit part
    /// files); absent when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub engine_files: Vec<EngineFile>,
}

/// A file another engine wrote where it writes (a part of `allocation/` or `units/`), listed
/// by size and the store's etag: the engine does not hash it, and hashing it here would move
/// every per-unit row through abreport.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct EngineFile {
    /// `<export>/<part file>`, e.g. `units/part-00000-….parquet`.
    pub name: String,
    /// Where it is (credentials never part of it).
    pub url: String,
    pub bytes: u64,
    pub etag: Option<String>,
}

#[derive(Debug, Serialize, serde::Deserialize)]
pub struct ManifestEntry {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Adds the manifest (last) to a set of encoded files.
pub fn with_manifest(
    results: &ResultsFile,
    result: &ExperimentResult,
    dir_name: &str,
    mut files: Vec<OutputFile>,
    engine_files: Vec<EngineFile>,
) -> Result<ExperimentOutputs, ExportError> {
    let manifest = Manifest {
        schema_version: 1,
        job: results.job.clone(),
        experiment: result.id.clone(),
        report_date: results.report_date.to_string(),
        status: if result.error.is_some() { "failed".into() } else { "ok".into() },
        recommendation: result.decision.recommendation.name().into(),
        files: files
            .iter()
            .map(|f| ManifestEntry { name: f.name.clone(), bytes: f.bytes.len() as u64, sha256: sha256_hex(&f.bytes) })
            .collect(),
        engine_files,
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| encode_error("manifest.json")(e.to_string()))?;
    files.push(OutputFile::new(MANIFEST, json));
    Ok(ExperimentOutputs { experiment_id: result.id.clone(), dir_name: dir_name.to_string(), files })
}

/// `results.json` for one experiment (the contract's shape, with one entry in `experiments`).
pub fn results_json(results: &ResultsFile) -> Result<OutputFile, ExportError> {
    let mut json = serde_json::to_vec_pretty(results).map_err(|e| encode_error("results.json")(e.to_string()))?;
    json.push(b'\n');
    Ok(OutputFile::new("results.json", json))
}

pub fn text_file(name: &str, text: String) -> OutputFile {
    OutputFile::new(name, text.into_bytes())
}

fn parquet_bytes(file: &'static str, batch: &RecordBatch) -> Result<Vec<u8>, ExportError> {
    let mut properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).map_err(|e| encode_error(file)(e.to_string()))?))
        // Dictionaries only for the few low-cardinality text columns: for ids, timestamps and
        // values the writer would build one per page only to fall back to plain encoding.
        .set_dictionary_enabled(false)
        .set_column_dictionary_enabled(ColumnPath::from("variant"), true)
        .set_column_dictionary_enabled(ColumnPath::from("status"), true)
        // No min/max of unit ids: rows are in first-exposure order, so every row group spans
        // nearly all ids and the statistics could prune nothing; comparing every id to the
        // running min and max was most of the cost of writing that column.
        .set_column_statistics_enabled(ColumnPath::from("unit_id"), EnabledStatistics::None)
        // The writer buffers a row group in memory before encoding it: 128k rows bounds that
        // to a few MB per export in flight, instead of the whole million-unit table.
        .set_max_row_group_row_count(Some(128 * 1024));
    // Integers and timestamps as deltas: the units are in first-exposure order within each
    // shard, so timestamps differ by little from one row to the next. Stored plain, random
    // microseconds were most of units.parquet and allocation.parquet, and most of zstd's work.
    for field in batch.schema().fields() {
        if field.data_type().is_integer() || matches!(field.data_type(), DataType::Timestamp(..) | DataType::Date32) {
            properties =
                properties.set_column_encoding(ColumnPath::from(field.name().as_str()), Encoding::DELTA_BINARY_PACKED);
        }
    }
    let properties = properties.build();
    let mut buffer = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buffer, batch.schema(), Some(properties))
        .map_err(|e| encode_error(file)(e.to_string()))?;
    writer.write(batch).map_err(|e| encode_error(file)(e.to_string()))?;
    writer.close().map_err(|e| encode_error(file)(e.to_string()))?;
    Ok(buffer)
}

fn batch<S: AsRef<str>>(file: &'static str, columns: Vec<(S, ArrayRef)>) -> Result<RecordBatch, ExportError> {
    let fields: Vec<Field> =
        columns.iter().map(|(name, array)| Field::new(name.as_ref(), array.data_type().clone(), true)).collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns.into_iter().map(|(_, a)| a).collect())
        .map_err(|e| encode_error(file)(e.to_string()))
}

/// `results.parquet`: one row per metric × variant with the numbers of `results.json`.
pub fn results_parquet(report_date: &str, result: &ExperimentResult) -> Result<OutputFile, ExportError> {
    let mut rows = ResultRows::default();
    for metric in &result.metrics {
        for v in &metric.variants {
            let c = metric.comparisons.iter().find(|c| c.variant == v.variant);
            rows.experiment_id.push(result.id.clone());
            rows.report_date.push(report_date.to_string());
            rows.metric.push(metric.name.clone());
            rows.kind.push(metric.kind.name());
            rows.role.push(metric.role.name());
            rows.variant.push(v.variant.clone());
            rows.baseline.push(c.map(|c| c.baseline.clone()));
            rows.units.push(v.units);
            rows.mean.push(v.mean);
            rows.variance.push(v.variance);
            rows.absolute_effect.push(c.and_then(|c| c.absolute_effect));
            rows.relative_effect.push(c.and_then(|c| c.relative_effect));
            rows.ci_absolute_low.push(c.and_then(|c| c.ci_absolute.map(|ci| ci[0])));
            rows.ci_absolute_high.push(c.and_then(|c| c.ci_absolute.map(|ci| ci[1])));
            rows.ci_relative_low.push(c.and_then(|c| c.ci_relative.map(|ci| ci[0])));
            rows.ci_relative_high.push(c.and_then(|c| c.ci_relative.map(|ci| ci[1])));
            rows.p_value.push(c.and_then(|c| c.p_value));
            rows.p_value_adjusted.push(c.and_then(|c| c.p_value_adjusted));
            rows.significant.push(c.map(|c| c.significant));
        }
    }
    let f = |v: Vec<Option<f64>>| Arc::new(Float64Array::from(v)) as ArrayRef;
    let s = |v: Vec<String>| Arc::new(StringArray::from(v)) as ArrayRef;
    let batch = batch(
        "results.parquet",
        vec![
            ("experiment_id", s(rows.experiment_id)),
            ("report_date", s(rows.report_date)),
            ("metric", s(rows.metric)),
            ("kind", Arc::new(StringArray::from(rows.kind)) as ArrayRef),
            ("role", Arc::new(StringArray::from(rows.role)) as ArrayRef),
            ("variant", s(rows.variant)),
            ("baseline", Arc::new(StringArray::from(rows.baseline)) as ArrayRef),
            ("units", Arc::new(UInt64Array::from(rows.units)) as ArrayRef),
            ("mean", f(rows.mean)),
            ("variance", f(rows.variance)),
            ("absolute_effect", f(rows.absolute_effect)),
            ("relative_effect", f(rows.relative_effect)),
            ("ci_absolute_low", f(rows.ci_absolute_low)),
            ("ci_absolute_high", f(rows.ci_absolute_high)),
            ("ci_relative_low", f(rows.ci_relative_low)),
            ("ci_relative_high", f(rows.ci_relative_high)),
            ("p_value", f(rows.p_value)),
            ("p_value_adjusted", f(rows.p_value_adjusted)),
            ("significant", Arc::new(BooleanArray::from(rows.significant)) as ArrayRef),
        ],
    )?;
    Ok(OutputFile::new("results.parquet", parquet_bytes("results.parquet", &batch)?))
}

/// `results.csv`: the results table a PM opens in a spreadsheet — one row per metric ×
/// variant with the figures of the test the recommendation reads (each comparison's
/// `inference`), not the fixed-horizon contract fields of `results.parquet`.
///
/// RFC 4180 (CRLF, quotes doubled), UTF-8 without a byte-order mark, numbers in full precision
/// with a `.` (Rust's shortest round-trip form, never an exponent), empty cells where a figure
/// is undefined. A text cell a spreadsheet would read as a formula is prefixed with `'`.
pub fn results_csv(report_date: &str, result: &ExperimentResult) -> OutputFile {
    let test = crate::render::Test::of(result).interval_label();
    let mut out = String::new();
    let header = [
        "experiment_id",
        "report_date",
        "metric",
        "role",
        "kind",
        "variant",
        "is_control",
        "units",
        "mean",
        "effect_scale",
        "effect",
        "ci_lower",
        "ci_upper",
        "p_value",
        "significant",
        "direction",
        "test",
    ];
    csv_row(&mut out, header.iter().map(|h| csv_text(h)));
    for metric in &result.metrics {
        for v in &metric.variants {
            let comparison = metric.comparisons.iter().find(|c| c.variant == v.variant);
            let inference = comparison.and_then(|c| c.inference.as_ref());
            let number = |x: Option<f64>| x.map(csv_number).unwrap_or_default();
            csv_row(
                &mut out,
                [
                    csv_text(&result.id),
                    csv_text(report_date),
                    csv_text(&metric.name),
                    csv_text(metric.role.name()),
                    csv_text(metric.kind.name()),
                    csv_text(&v.variant),
                    // Comparisons name every variant but the control.
                    comparison.is_none().to_string(),
                    v.units.to_string(),
                    number(v.mean),
                    inference.map(|i| scale_name(i.scale).to_string()).unwrap_or_default(),
                    number(inference.map(|i| i.estimate)),
                    number(inference.map(|i| i.ci[0])),
                    number(inference.map(|i| i.ci[1])),
                    number(inference.map(|i| i.p_value)),
                    inference.map(|i| i.significant.to_string()).unwrap_or_default(),
                    inference.map(|i| direction_name(i.direction).to_string()).unwrap_or_default(),
                    // The control row has no test: its label would suggest one.
                    if comparison.is_some() { csv_text(&test) } else { String::new() },
                ],
            );
        }
    }
    OutputFile::new("results.csv", out.into_bytes())
}

/// `relative` or `absolute`, as results.json spells it.
fn scale_name(scale: InferenceScale) -> &'static str {
    match scale {
        InferenceScale::Relative => "relative",
        InferenceScale::Absolute => "absolute",
    }
}

/// `better`, `worse` or `neutral`, as results.json spells it.
fn direction_name(direction: Direction) -> &'static str {
    match direction {
        Direction::Better => "better",
        Direction::Worse => "worse",
        Direction::Neutral => "neutral",
    }
}

/// One CSV record of already-encoded cells, CRLF-terminated.
fn csv_row(out: &mut String, cells: impl IntoIterator<Item = String>) {
    for (i, cell) in cells.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&cell);
    }
    out.push_str("\r\n");
}

/// A number cell: full precision with a `.`; empty when not finite (undefined figures are
/// null in results.json too).
fn csv_number(x: f64) -> String {
    if x.is_finite() { x.to_string() } else { String::new() }
}

/// A text cell, RFC 4180-quoted when it holds a comma, a quote or a line break. Text starting
/// with `=`, `+`, `-`, `@`, a tab or a CR is prefixed with `'`: spreadsheets would run it as a
/// formula (CSV injection), and a variant or metric name comes from the job file.
fn csv_text(text: &str) -> String {
    let guarded = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{text}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    };
    if guarded.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded.into_owned()
    }
}

#[derive(Default)]
struct ResultRows {
    experiment_id: Vec<String>,
    report_date: Vec<String>,
    metric: Vec<String>,
    kind: Vec<&'static str>,
    role: Vec<&'static str>,
    variant: Vec<String>,
    baseline: Vec<Option<String>>,
    units: Vec<u64>,
    mean: Vec<Option<f64>>,
    variance: Vec<Option<f64>>,
    absolute_effect: Vec<Option<f64>>,
    relative_effect: Vec<Option<f64>>,
    ci_absolute_low: Vec<Option<f64>>,
    ci_absolute_high: Vec<Option<f64>>,
    ci_relative_low: Vec<Option<f64>>,
    ci_relative_high: Vec<Option<f64>>,
    p_value: Vec<Option<f64>>,
    p_value_adjusted: Vec<Option<f64>>,
    significant: Vec<Option<bool>>,
}

/// The unit ids of `units`, as the type they had in the source.
fn unit_id_column<'a>(
    allocation: &Allocation,
    units: impl Iterator<Item = &'a crate::aggregate::AllocatedUnit>,
) -> ArrayRef {
    let keys = &allocation.keys;
    if keys.kind() == Some(UnitIdKind::Int) {
        Arc::new(Int64Array::from_iter_values(units.map(|u| match keys.key(u.unit) {
            UnitKey::Int(i) => i,
            UnitKey::Text(_) => 0,
        })))
    } else {
        Arc::new(StringArray::from_iter_values(units.map(|u| match keys.key(u.unit) {
            UnitKey::Text(t) => t,
            // Unreachable for one run's data (one id kind throughout); kept total.
            UnitKey::Int(_) => "",
        })))
    }
}

fn timestamps(values: impl Iterator<Item = i64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from_iter_values(values).with_timezone("UTC"))
}

/// The columns both per-unit files begin with, `unit_id, variant, first_exposure_ts`, for
/// every unit exposed in the window: built once per experiment (looking up a unit's id is most
/// of it). `units.parquet` takes the analyzable units' rows of them, as they are when no unit
/// is excluded: an analyzable unit's variant is its one variant's name in both files.
#[derive(Clone)]
struct UnitColumns {
    unit_id: ArrayRef,
    variant: ArrayRef,
    first_exposure_ts: ArrayRef,
}

impl UnitColumns {
    fn of(allocation: &Allocation, experiment: &ExperimentAllocation) -> Self {
        let units = &experiment.units;
        let variant: ArrayRef = Arc::new(StringArray::from_iter_values(units.iter().map(|u| {
            if u.status == crate::aggregate::UnitStatus::Ok {
                std::borrow::Cow::Borrowed(experiment.variants[u.variant as usize].as_str())
            } else {
                std::borrow::Cow::Owned(experiment.variant_names(u))
            }
        })));
        Self {
            unit_id: unit_id_column(allocation, units.iter()),
            variant,
            first_exposure_ts: timestamps(units.iter().map(|u| u.first_micros)),
        }
    }

    /// The rows of the analyzable units, in order.
    fn analyzable(&self, experiment: &ExperimentAllocation) -> Result<Self, ExportError> {
        if experiment.analyzable().count() == experiment.units.len() {
            return Ok(self.clone());
        }
        let keep: BooleanArray =
            experiment.units.iter().map(|u| Some(u.status == crate::aggregate::UnitStatus::Ok)).collect();
        let filter = |column: &ArrayRef| {
            arrow::compute::filter(column.as_ref(), &keep).map_err(|e| encode_error("units.parquet")(e.to_string()))
        };
        Ok(Self {
            unit_id: filter(&self.unit_id)?,
            variant: filter(&self.variant)?,
            first_exposure_ts: filter(&self.first_exposure_ts)?,
        })
    }
}

/// `allocation.parquet`: every unit exposed in the window — `unit_id, variant,
/// first_exposure_ts, exposures, status` (`ok`, `multi_variant`, `unknown_variant`; excluded
/// units list all their variants, `|`-joined).
fn allocation_parquet(experiment: &ExperimentAllocation, shared: UnitColumns) -> Result<OutputFile, ExportError> {
    let units = &experiment.units;
    let batch = batch(
        "allocation.parquet",
        vec![
            ("unit_id", shared.unit_id),
            ("variant", shared.variant),
            ("first_exposure_ts", shared.first_exposure_ts),
            ("exposures", Arc::new(UInt32Array::from_iter_values(units.iter().map(|u| u.exposures))) as ArrayRef),
            ("status", Arc::new(StringArray::from_iter_values(units.iter().map(|u| u.status.name()))) as ArrayRef),
        ],
    )?;
    Ok(OutputFile::new("allocation.parquet", parquet_bytes("allocation.parquet", &batch)?))
}

/// `units.parquet`: the per-unit values the statistics were computed from — `unit_id,
/// variant, first_exposure_ts`, then one column per metric (ratio metrics:
/// `<metric>_numerator` and `<metric>_denominator`).
fn units_parquet(
    experiment: &ExperimentAllocation,
    shared: &UnitColumns,
    metric_names: &[&str],
    values: Vec<MetricValues>,
    covariates: Vec<Option<Vec<f64>>>,
) -> Result<OutputFile, ExportError> {
    let shared = shared.analyzable(experiment)?;
    let mut columns: Vec<(String, ArrayRef)> = vec![
        ("unit_id".into(), shared.unit_id),
        ("variant".into(), shared.variant),
        ("first_exposure_ts".into(), shared.first_exposure_ts),
    ];
    let mut covariates = covariates.into_iter();
    for (name, values) in metric_names.iter().zip(values) {
        let covariate = covariates.next().flatten();
        match values {
            MetricValues::Single(v) => columns.push((name.to_string(), Arc::new(Float64Array::from(v)) as ArrayRef)),
            MetricValues::Ratio { numerator, denominator } => {
                columns.push((format!("{name}_numerator"), Arc::new(Float64Array::from(numerator)) as ArrayRef));
                columns.push((format!("{name}_denominator"), Arc::new(Float64Array::from(denominator)) as ArrayRef));
            }
        }
        if let Some(covariate) = covariate {
            columns.push((format!("{name}_pre"), Arc::new(Float64Array::from(covariate)) as ArrayRef));
        }
    }
    let batch = batch("units.parquet", columns)?;
    Ok(OutputFile::new("units.parquet", parquet_bytes("units.parquet", &batch)?))
}

/// What one experiment's files are made of: its rendered reports, its result (in
/// `results.json`'s shape), its allocation and its per-unit values.
pub struct ExperimentExports<'a> {
    pub html: String,
    pub markdown: String,
    /// `results.json` of this experiment alone.
    pub results_file: &'a ResultsFile,
    pub result: &'a ExperimentResult,
    /// The per-unit data, when this process computed the statistics (another engine keeps its
    /// units where they are: `allocation.parquet` and `units.parquet` are then not made here).
    pub per_unit: Option<PerUnit<'a>>,
}

/// One experiment's units, for `allocation.parquet` and `units.parquet`.
pub struct PerUnit<'a> {
    pub allocation: &'a Allocation,
    pub experiment_allocation: &'a ExperimentAllocation,
    /// The experiment's metric names, in its metric order.
    pub metric_names: Vec<&'a str>,
    /// Per metric: per-unit values and CUPED covariates, as `aggregate` made them.
    pub values: Vec<MetricValues>,
    pub covariates: Vec<Option<Vec<f64>>>,
}

/// The files of one experiment, in the manifest's order: `report.html`, `report.md`,
/// `results.json`, `results.parquet`, `results.csv`, `allocation.parquet`, `units.parquet` (the run log and the
/// manifest follow, once the log has the export's own line).
pub fn experiment_files(exports: ExperimentExports<'_>) -> Result<Vec<OutputFile>, ExportError> {
    let report_date = exports.results_file.report_date.to_string();
    let mut files = vec![
        text_file("report.html", exports.html),
        text_file("report.md", exports.markdown),
        results_json(exports.results_file)?,
        results_parquet(&report_date, exports.result)?,
        results_csv(&report_date, exports.result),
    ];
    if let Some(units) = exports.per_unit {
        // The two per-unit files are most of an experiment's encoding and do not depend on each
        // other: side by side when a core is free (the run's last experiment, at 10M units a
        // 3.5 s encode with one core idle); one after the other otherwise, as two at once on
        // busy cores only raise the peak.
        let PerUnit { allocation, experiment_allocation, metric_names, values, covariates } = units;
        let shared = UnitColumns::of(allocation, experiment_allocation);
        let (allocation_file, units_file) = crate::threads::join(
            || allocation_parquet(experiment_allocation, shared.clone()),
            || units_parquet(experiment_allocation, &shared, &metric_names, values, covariates),
        );
        files.push(allocation_file?);
        files.push(units_file?);
    }
    Ok(files)
}

/// Writes `outputs` under `root/<dir_name>/`, atomically per file, manifest last. Returns the
/// experiment's folder.
pub fn write_dir(root: &Path, outputs: &ExperimentOutputs) -> Result<PathBuf, ExportError> {
    stage_dir(root, outputs)?.commit()
}

/// An experiment's files written and fsynced under temporary names in their folder, not yet
/// published: [`StagedDir::commit`] renames them into place, [`StagedDir::discard`] removes
/// them. A run writes its folders aside while it still computes, and publishes them only if
/// it completes in time.
#[derive(Debug)]
pub struct StagedDir {
    dir: PathBuf,
    /// `(temporary, target)` of each file, manifest last.
    places: Vec<(PathBuf, PathBuf)>,
}

/// Writes every file of `outputs` under a temporary name in `root/<dir_name>/`, then fsyncs
/// them: the disk writes them back together instead of one fsync after another. On an error
/// nothing is left.
pub fn stage_dir(root: &Path, outputs: &ExperimentOutputs) -> Result<StagedDir, ExportError> {
    let dir = root.join(&outputs.dir_name);
    std::fs::create_dir_all(&dir).map_err(write_error(&dir))?;
    let places: Vec<(PathBuf, PathBuf)> = (outputs.files.iter())
        .map(|file| (dir.join(format!(".{}.tmp-{}", file.name, std::process::id())), dir.join(&file.name)))
        .collect();
    let staged = StagedDir { dir, places };
    let mut handles = Vec::with_capacity(staged.places.len());
    let mut failed = None;
    for (file, (temporary, target)) in outputs.files.iter().zip(&staged.places) {
        match std::fs::File::create(temporary).and_then(|mut handle| handle.write_all(&file.bytes).map(|()| handle)) {
            Ok(handle) => handles.push(handle),
            Err(e) => {
                failed = Some(write_error(target)(e));
                break;
            }
        }
    }
    if failed.is_none() {
        failed = (handles.iter().zip(&staged.places))
            .find_map(|(handle, (_, target))| handle.sync_all().err().map(write_error(target)));
    }
    match failed {
        None => Ok(staged),
        Some(e) => {
            staged.discard();
            Err(e)
        }
    }
}

fn write_error(path: &Path) -> impl Fn(std::io::Error) -> ExportError {
    let path = path.to_path_buf();
    move |source| ExportError::Write { path: path.clone(), source }
}

impl StagedDir {
    /// Publishes the staged files: the old manifest goes first (it would vouch for files about
    /// to be replaced), then each file is renamed into place, the manifest last. Returns the
    /// experiment's folder.
    pub fn commit(self) -> Result<PathBuf, ExportError> {
        let manifest = self.dir.join(MANIFEST);
        let mut failed = match std::fs::remove_file(&manifest) {
            Ok(()) => None,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => Some(write_error(&manifest)(e)),
        };
        if failed.is_none() {
            failed = (self.places.iter())
                .find_map(|(temporary, target)| std::fs::rename(temporary, target).err().map(write_error(target)));
        }
        match failed {
            None => Ok(self.dir),
            Some(e) => {
                self.discard();
                Err(e)
            }
        }
    }

    /// Removes the staged files (those already renamed are not staged any more), and the
    /// folder when that leaves it empty: an unpublished run leaves nothing behind.
    pub fn discard(self) {
        for (temporary, _) in &self.places {
            let _ = std::fs::remove_file(temporary);
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float64Type, UInt64Type};
    use chrono::NaiveDate;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::*;
    use crate::results::sample_result;

    fn results_file(result: &ExperimentResult) -> ResultsFile {
        ResultsFile {
            schema_version: crate::results::SCHEMA_VERSION,
            job: "daily".into(),
            report_date: NaiveDate::from_ymd_opt(2026, 11, 20).expect("a date"),
            generated_at: "2026-11-21T06:00:00Z".into(),
            abreport_version: "0.0.0".into(),
            experiments: vec![result.clone()],
        }
    }

    /// The one record batch of a Parquet file.
    fn read_parquet(file: &OutputFile) -> RecordBatch {
        let bytes = bytes::Bytes::copy_from_slice(&file.bytes);
        let mut reader =
            ParquetRecordBatchReaderBuilder::try_new(bytes).expect("a Parquet file").build().expect("reader");
        let batch = reader.next().expect("a batch").expect("readable");
        assert!(reader.next().is_none(), "one row group");
        batch
    }

    #[test]
    fn sha256_of_abc_is_the_fips_180_example() {
        // FIPS 180-2, appendix B.1.
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn results_parquet_reads_back_one_row_per_metric_and_variant_with_the_results_numbers() {
        let result = sample_result();
        let file = results_parquet("2026-11-20", &result).expect("encoded");
        assert_eq!(file.name, "results.parquet");
        let batch = read_parquet(&file);
        let expected_rows: usize = result.metrics.iter().map(|m| m.variants.len()).sum();
        assert_eq!(batch.num_rows(), expected_rows);
        let column = |name: &str| batch.column_by_name(name).unwrap_or_else(|| panic!("column {name}")).clone();
        let metric = column("metric");
        let variant = column("variant");
        let units = column("units");
        let mean = column("mean");
        let relative = column("relative_effect");
        let (metric, variant) = (metric.as_string::<i32>(), variant.as_string::<i32>());
        let (units, mean, relative) = (
            units.as_primitive::<UInt64Type>(),
            mean.as_primitive::<Float64Type>(),
            relative.as_primitive::<Float64Type>(),
        );
        let mut row = 0;
        for m in &result.metrics {
            for v in &m.variants {
                assert_eq!((metric.value(row), variant.value(row)), (m.name.as_str(), v.variant.as_str()));
                assert_eq!(units.value(row), v.units);
                assert_eq!(mean.is_null(row), v.mean.is_none());
                if let Some(expected) = v.mean {
                    assert_eq!(mean.value(row), expected);
                }
                // The control has no comparison with itself: its effect is null.
                let comparison = m.comparisons.iter().find(|c| c.variant == v.variant);
                match comparison.and_then(|c| c.relative_effect) {
                    Some(expected) => assert_eq!(relative.value(row), expected),
                    None => assert!(relative.is_null(row)),
                }
                row += 1;
            }
        }
    }

    /// Splits RFC 4180 text into records of unquoted cells (a test-only reader, strict about
    /// CRLF line ends).
    fn read_csv(text: &str) -> Vec<Vec<String>> {
        let mut records = Vec::new();
        let (mut record, mut cell, mut quoted, mut chars) = (Vec::new(), String::new(), false, text.chars().peekable());
        while let Some(c) = chars.next() {
            match (quoted, c) {
                (true, '"') if chars.peek() == Some(&'"') => {
                    chars.next();
                    cell.push('"');
                }
                (true, '"') => quoted = false,
                (false, '"') if cell.is_empty() => quoted = true,
                (false, ',') => record.push(std::mem::take(&mut cell)),
                (false, '\r') => {
                    assert_eq!(chars.next(), Some('\n'), "CRLF line ends");
                    record.push(std::mem::take(&mut cell));
                    records.push(std::mem::take(&mut record));
                }
                (_, c) => cell.push(c),
            }
        }
        assert!(record.is_empty() && cell.is_empty(), "the last record ends with CRLF");
        records
    }

    #[test]
    fn results_csv_holds_the_tests_figures_in_full_precision_one_row_per_metric_and_variant() {
        let mut result = sample_result();
        let inference = result.metrics[0].comparisons[0].inference.as_mut().expect("a test");
        inference.ci = [0.011_234_567_890_123_4, 0.071_000_000_000_000_01];
        inference.p_value = 1.234e-7;
        let file = results_csv("2026-11-20", &result);
        assert_eq!(file.name, "results.csv");
        let text = std::str::from_utf8(&file.bytes).expect("UTF-8");
        assert!(!text.starts_with('\u{feff}'), "no byte-order mark");
        let records = read_csv(text);
        assert_eq!(
            records[0][..9],
            ["experiment_id", "report_date", "metric", "role", "kind", "variant", "is_control", "units", "mean"]
        );
        assert_eq!(records.len(), 1 + 4, "a header and two variants of two metrics");
        let column = |name: &str| records[0].iter().position(|h| h == name).unwrap_or_else(|| panic!("{name}"));
        let treatment = &records[2];
        assert_eq!(
            (treatment[column("metric")].as_str(), treatment[column("variant")].as_str()),
            ("conversion", "treatment")
        );
        assert_eq!(treatment[column("is_control")], "false");
        assert_eq!(treatment[column("effect_scale")], "relative");
        // Full precision: each number reads back as the very f64 it was.
        let number = |cell: &str| cell.parse::<f64>().unwrap_or_else(|e| panic!("`{cell}`: {e}"));
        assert_eq!(number(&treatment[column("effect")]), 0.041);
        assert_eq!(number(&treatment[column("ci_lower")]), 0.011_234_567_890_123_4);
        assert_eq!(number(&treatment[column("ci_upper")]), 0.071_000_000_000_000_01);
        assert_eq!(number(&treatment[column("p_value")]), 1.234e-7);
        assert!(!treatment[column("p_value")].contains('e'), "no exponent: {}", treatment[column("p_value")]);
        assert_eq!(treatment[column("significant")], "true");
        assert_eq!(treatment[column("test")], "always-valid 95% CI");
        let control = &records[1];
        assert_eq!(control[column("is_control")], "true");
        assert_eq!(
            (control[column("effect")].as_str(), control[column("test")].as_str()),
            ("", ""),
            "no test on the control"
        );
        assert_eq!(control[column("units")], "1000");
    }

    #[test]
    fn results_csv_quotes_by_rfc_4180_and_guards_text_a_spreadsheet_would_run_as_a_formula() {
        let mut result = sample_result();
        result.metrics[0].name = "=HYPERLINK(\"http://x\",\"click\")".into();
        result.metrics[1].name = "revenue, net\r\nof \"refunds\"".into();
        for (variant, name) in result.metrics[1].variants.iter_mut().zip(["+1", "@sum"]) {
            variant.variant = name.into();
        }
        result.metrics[1].comparisons[0].variant = "@sum".into();
        result.metrics[1].comparisons[0].inference.as_mut().expect("a test").estimate = -0.25;
        let text = String::from_utf8(results_csv("2026-11-20", &result).bytes.to_vec()).expect("UTF-8");
        assert!(
            text.contains("\r\ncheckout-redesign,2026-11-20,\"'=HYPERLINK(\"\"http://x\"\",\"\"click\"\")\",primary,"),
            "{text}"
        );
        let records = read_csv(&text);
        assert_eq!(records.len(), 5, "a quoted line break does not end a record");
        assert_eq!(records[1][2], "'=HYPERLINK(\"http://x\",\"click\")");
        assert_eq!(records[3][2], "revenue, net\r\nof \"refunds\"");
        assert_eq!((records[3][5].as_str(), records[4][5].as_str()), ("'+1", "'@sum"));
        let effect = records[0].iter().position(|h| h == "effect").expect("effect column");
        assert_eq!(records[4][effect], "-0.25", "a negative number is a number, not guarded text");
        assert_eq!(csv_text("-x"), "'-x");
        assert_eq!(csv_text("\tx"), "'\tx");
        assert_eq!(csv_text("\rx"), "\"'\rx\"");
        assert_eq!(csv_text("a-b"), "a-b", "only a leading character is a formula");
        assert_eq!(csv_number(f64::NAN), "", "undefined figures are empty, as results.json's nulls");
    }

    #[test]
    fn integer_columns_are_delta_encoded_and_floats_are_not() {
        let file = results_parquet("2026-11-20", &sample_result()).expect("encoded");
        let bytes = bytes::Bytes::copy_from_slice(&file.bytes);
        let metadata = ParquetRecordBatchReaderBuilder::try_new(bytes).expect("a Parquet file").metadata().clone();
        let encodings = |name: &str| {
            let chunk = (metadata.row_group(0).columns().iter())
                .find(|c| c.column_path().string() == name)
                .unwrap_or_else(|| panic!("column {name}"));
            chunk.encodings().collect::<Vec<_>>()
        };
        assert!(encodings("units").contains(&Encoding::DELTA_BINARY_PACKED), "{:?}", encodings("units"));
        assert!(!encodings("mean").contains(&Encoding::DELTA_BINARY_PACKED));
    }

    #[test]
    fn the_manifest_comes_last_and_lists_every_file_with_its_size_and_hash() {
        let result = sample_result();
        let results = results_file(&result);
        let files = vec![
            text_file("report.md", "# report\n".into()),
            results_json(&results).expect("results.json"),
            results_parquet("2026-11-20", &result).expect("results.parquet"),
        ];
        let outputs = with_manifest(&results, &result, "checkout", files.clone(), Vec::new()).expect("a manifest");
        assert_eq!(outputs.dir_name, "checkout");
        let names: Vec<&str> = outputs.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["report.md", "results.json", "results.parquet", MANIFEST]);
        let manifest: Manifest =
            serde_json::from_slice(&outputs.files[3].bytes).expect("the manifest is JSON of its own type");
        assert_eq!((manifest.job.as_str(), manifest.report_date.as_str()), ("daily", "2026-11-20"));
        assert_eq!(manifest.experiment, result.id);
        assert_eq!((manifest.status.as_str(), manifest.recommendation.as_str()), ("ok", "promote"));
        assert_eq!(manifest.files.len(), files.len());
        for (entry, file) in manifest.files.iter().zip(&files) {
            assert_eq!(entry.name, file.name);
            assert_eq!(entry.bytes, file.bytes.len() as u64);
            assert_eq!(entry.sha256, sha256_hex(&file.bytes));
        }
        // "# report\n" is 9 bytes.
        assert_eq!(manifest.files[0].bytes, 9);
        // results.json reads back as the results it encodes, ending in a newline.
        let json = &outputs.files[1].bytes;
        assert_eq!(json.last(), Some(&b'\n'));
        let read: ResultsFile = serde_json::from_slice(json).expect("results.json is a ResultsFile");
        assert_eq!(read.experiments[0].id, result.id);
        assert_eq!(read.experiments[0].decision.recommendation, result.decision.recommendation);
    }

    #[test]
    fn a_staged_folder_shows_nothing_new_until_committed_and_leaves_nothing_when_discarded() {
        let result = sample_result();
        let results = results_file(&result);
        let outputs = |report: &str| {
            let files = vec![text_file("report.md", report.into()), results_json(&results).expect("results.json")];
            with_manifest(&results, &result, "checkout", files, Vec::new()).expect("a manifest")
        };
        let root = tempfile::tempdir().expect("temp dir");
        let dir = root.path().join("checkout");
        let names = || {
            let mut names: Vec<String> = (std::fs::read_dir(&dir).expect("folder"))
                .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
                .filter(|name| !name.starts_with('.'))
                .collect();
            names.sort();
            names
        };
        write_dir(root.path(), &outputs("# old\n")).expect("published");

        // Staged: the published set is untouched, its manifest still vouching for it.
        let staged = stage_dir(root.path(), &outputs("# new\n")).expect("staged");
        assert_eq!(std::fs::read_to_string(dir.join("report.md")).expect("report"), "# old\n");
        assert_eq!(names(), ["manifest.json", "report.md", "results.json"]);
        let staged_files = std::fs::read_dir(&dir).expect("folder").count();
        assert_eq!(staged_files, 6, "three published, three staged");
        staged.commit().expect("committed");
        assert_eq!(std::fs::read_to_string(dir.join("report.md")).expect("report"), "# new\n");
        assert_eq!(std::fs::read_dir(&dir).expect("folder").count(), 3, "no staged file left");

        // Discarded: the published set stays; a folder made only for staging goes.
        stage_dir(root.path(), &outputs("# unpublished\n")).expect("staged").discard();
        assert_eq!(std::fs::read_to_string(dir.join("report.md")).expect("report"), "# new\n");
        assert_eq!(std::fs::read_dir(&dir).expect("folder").count(), 3);
        let fresh = ExperimentOutputs { dir_name: "fresh".into(), ..outputs("# x\n") };
        stage_dir(root.path(), &fresh).expect("staged").discard();
        assert!(!root.path().join("fresh").exists());
    }
}
