//! The only module that reads storage: lists the date partitions of a window and streams
//! projected Parquet record batches to a caller-supplied sink.
//!
//! Every file is read once, by one task; up to `concurrency` files are decoded at the same time
//! on the runtime's worker threads, and each decoded batch goes straight to the sink, so memory
//! holds a few batches per task, never a table. Column types are checked against the file's
//! schema before any data is read, so a mistyped column fails fast with the file's name.
//!
//! Every request goes through [`retry::Retry`]: transient failures are retried inside the run's
//! SLA budget, each request has a timeout derived from what is left of it, and permanent ones
//! (access denied, a missing bucket or prefix, a corrupt file) fail at once.
//!
//! [`spark`] is the other way data comes in: a Spark Connect client that has a Spark cluster
//! run SQL over the data and returns the (small) result as Arrow record batches.

mod reader;
pub mod retry;
pub mod spark;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use arrow::array::ArrayRef;
use arrow::datatypes::{DataType, Field, Schema};
use chrono::NaiveDate;
use futures::{StreamExt, TryStreamExt};
use indicatif::ProgressBar;
use object_store::ObjectStore;
use object_store::path::Path;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
use parquet::errors::ParquetError;
use tokio::task::JoinSet;

pub use crate::config::Dataset;
use crate::config::Job;
use crate::runlog::Deadline;
use reader::ObjectReader;
use retry::{Failure, Kind, Retry};

/// Rows per decoded batch: large enough to amortise per-batch work, small enough that a few
/// in flight per task stay in the CPU cache's neighbourhood.
const BATCH_ROWS: usize = 16 * 1024;

/// One Parquet file of one date partition.
#[derive(Debug, Clone)]
pub struct DataFile {
    pub dataset: Dataset,
    pub date: NaiveDate,
    pub path: Path,
    pub size: u64,
    /// The store's etag of the file, else its last-modified time: what tells a rewritten file
    /// of the same size from the one a checkpoint read.
    pub version: Option<String>,
}

/// What a window's partitions hold.
#[derive(Debug, Clone, Default)]
pub struct ScanPlan {
    pub files: Vec<DataFile>,
    /// Dates of the window with no file in a dataset.
    pub missing: Vec<(Dataset, NaiveDate)>,
}

impl ScanPlan {
    pub fn files_of(&self, dataset: Dataset) -> impl Iterator<Item = &DataFile> {
        self.files.iter().filter(move |f| f.dataset == dataset)
    }

    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// What a column must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Utf8, LargeUtf8, Utf8View or a dictionary of those.
    Text,
    /// Text or a signed integer.
    UnitId,
    /// A timestamp of any unit, with or without a time zone.
    Timestamp,
    /// Any float or integer type (read as f64).
    Number,
    /// Any integer type.
    Integer,
    /// A date (Date32 or Date64).
    Date,
}

impl Expect {
    fn accepts(self, data_type: &DataType) -> bool {
        match self {
            Expect::Text => is_text(data_type),
            Expect::UnitId => is_text(data_type) || matches!(data_type, DataType::Int64 | DataType::Int32),
            Expect::Timestamp => matches!(data_type, DataType::Timestamp(_, _)),
            Expect::Number => data_type.is_numeric() || data_type == &DataType::Null,
            Expect::Integer => data_type.is_integer(),
            Expect::Date => matches!(data_type, DataType::Date32 | DataType::Date64),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Expect::Text => "a string (Utf8, LargeUtf8, Utf8View or Dictionary)",
            Expect::UnitId => "a string or Int64",
            Expect::Timestamp => "a timestamp",
            Expect::Number => "Float64 (or another numeric type)",
            Expect::Integer => "an integer",
            Expect::Date => "a date",
        }
    }
}

fn is_text(data_type: &DataType) -> bool {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, value) => is_text(value),
        _ => false,
    }
}

/// A column to read: its name in the files and what it must hold.
#[derive(Debug, Clone)]
pub struct ColumnSpec {
    pub name: String,
    pub expect: Expect,
}

/// The sufficient-statistics table's columns (docs/sufficient-stats.md), in its order.
fn table_columns<'a>() -> Vec<(&'a str, Expect)> {
    use crate::sufficient_table::column;
    vec![
        (column::SCHEMA_VERSION, Expect::Integer),
        (column::REPORT_DATE, Expect::Date),
        (column::EXPERIMENT_ID, Expect::Text),
        (column::SECTION, Expect::Text),
        (column::NAME, Expect::Text),
        (column::VARIANT, Expect::Text),
        (column::DAY, Expect::Date),
        (column::DIMENSION, Expect::Text),
        (column::DIMENSION_VALUE, Expect::Text),
        (column::N, Expect::Integer),
        (column::SUM_Y, Expect::Number),
        (column::SUM_YY, Expect::Number),
        (column::SUM_X, Expect::Number),
        (column::SUM_XX, Expect::Number),
        (column::SUM_XY, Expect::Number),
        (column::CAP_VALUE, Expect::Number),
    ]
}

/// The columns a run reads of `dataset`, in the order the fold takes them: exposures'
/// `experiment_id, variant, unit_id, ts` and the job's dimensions; events' `unit_id, event,
/// value, ts` (as `[source.columns]` names them). `validate` probes the same.
pub fn read_columns(job: &Job, dataset: Dataset) -> Arc<[ColumnSpec]> {
    let names = &job.source.columns;
    let mut specs: Vec<(&str, Expect)> = match dataset {
        Dataset::Exposures => vec![
            (&names.experiment_id, Expect::Text),
            (&names.variant, Expect::Text),
            (&names.unit_id, Expect::UnitId),
            (&names.exposure_ts, Expect::Timestamp),
        ],
        Dataset::Events => vec![
            (&names.unit_id, Expect::UnitId),
            (&names.event, Expect::Text),
            (&names.value, Expect::Number),
            (&names.event_ts, Expect::Timestamp),
        ],
        Dataset::SufficientStats => table_columns(),
    };
    if dataset == Dataset::Exposures {
        specs.extend(job.dimensions.iter().map(|d| (d.as_str(), Expect::Text)));
    }
    specs.iter().map(|(name, expect)| ColumnSpec { name: name.to_string(), expect: *expect }).collect()
}

/// How a read went.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ScanStats {
    pub files: usize,
    pub bytes: u64,
    pub rows: u64,
}

impl std::iter::Sum for ScanStats {
    fn sum<I: Iterator<Item = ScanStats>>(reads: I) -> Self {
        reads.fold(ScanStats::default(), |a, b| ScanStats {
            files: a.files + b.files,
            bytes: a.bytes + b.bytes,
            rows: a.rows + b.rows,
        })
    }
}

/// Why the source could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Transient failures (network, timeouts, 5xx, throttling) that lasted until the budget
    /// for retrying them ran out.
    #[error("data source `{url}` is unavailable: {cause}")]
    Unavailable { url: String, cause: String },
    /// Missing, wrong or insufficient credentials.
    #[error("data source `{url}` refused access: {cause}")]
    Denied { url: String, cause: String },
    /// The bucket, prefix or file does not exist.
    #[error("data source `{url}` is missing: {cause}")]
    Missing { url: String, cause: String },
    /// Any other permanent refusal (a malformed URL, an unsupported store, a 4xx answer).
    #[error("data source `{url}` cannot be read: {cause}")]
    Refused { url: String, cause: String },
    #[error("cannot read `{file}`: not a readable Parquet file (truncated or corrupt?): {cause}")]
    Corrupt { file: String, cause: String },
    #[error("`{file}` has no column `{column}` (columns: {available}); map it with [source.columns] in the job file")]
    MissingColumn { file: String, column: String, available: String },
    #[error("`{file}`: column `{column}` is {found}, expected {expected}")]
    ColumnType { file: String, column: String, found: String, expected: &'static str },
    #[error("`{file}`: {cause}")]
    Batch { file: String, cause: Box<dyn std::error::Error + Send + Sync> },
}

impl SourceError {
    /// True when the store could not be reached or read at all (as opposed to a file in it
    /// being unusable): a run ending so is `source_unavailable`.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            SourceError::Unavailable { .. }
                | SourceError::Denied { .. }
                | SourceError::Missing { .. }
                | SourceError::Refused { .. }
        )
    }

    fn from_failure(url: String, failure: Failure) -> Self {
        match failure {
            Failure::Permanent { kind: Kind::Denied, cause } => SourceError::Denied { url, cause },
            Failure::Permanent { kind: Kind::Missing, cause } => SourceError::Missing { url, cause },
            Failure::Permanent { cause, .. } => SourceError::Refused { url, cause },
            gave_up @ Failure::GaveUp { .. } => SourceError::Unavailable { url, cause: gave_up.to_string() },
        }
    }
}

/// A dataset root: an object store and the prefix the two datasets live under.
#[derive(Clone)]
pub struct Source {
    store: Arc<dyn ObjectStore>,
    root: Path,
    url: String,
    /// A local folder: a missing partition folder is reported as NotFound, which then means
    /// an empty partition rather than a missing bucket.
    local: bool,
    retry: Retry,
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source").field("url", &self.url).finish()
    }
}

/// The budget of reads made outside a run (`abreport validate`).
const DEFAULT_BUDGET: Duration = Duration::from_secs(60);

impl Source {
    /// Opens the root at `url` (no request is made for cloud stores; a local folder must exist)
    /// with a budget of 60 seconds from now for its requests and retries.
    pub fn open(url: &str) -> Result<Self, SourceError> {
        Self::open_within(url, Deadline::new(Instant::now(), DEFAULT_BUDGET))
    }

    /// Opens the root at `url` for a run that must end by `deadline`: every request's timeout
    /// and every retry stay inside what is left of it.
    pub fn open_within(url: &str, deadline: Deadline) -> Result<Self, SourceError> {
        Self::open_counting(url, deadline, Arc::default())
    }

    /// [`Source::open_within`], counting the requests it retries in `retries` (shared with the
    /// caller, who reads it whether the run succeeds or not).
    pub fn open_counting(url: &str, deadline: Deadline, retries: Arc<AtomicU32>) -> Result<Self, SourceError> {
        let limits = crate::store::Limits::within(deadline.remaining());
        let (store, root) =
            crate::store::open(url, limits).map_err(|cause| SourceError::Refused { url: url.to_string(), cause })?;
        let local = url.starts_with("file:");
        let retry = Retry::counting(deadline, retries);
        Ok(Self { store, root, url: url.trim_end_matches('/').to_string(), local, retry })
    }

    /// How many requests were retried so far.
    pub fn retries(&self) -> u32 {
        self.retry.retries()
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The full URL of a file, for messages.
    pub fn display(&self, path: &Path) -> String {
        let relative = path.as_ref().strip_prefix(self.root.as_ref()).unwrap_or(path.as_ref());
        format!("{}/{}", self.url, relative.trim_start_matches('/'))
    }

    fn partition(&self, dataset: Dataset, date: NaiveDate) -> Path {
        self.root.clone().join(dataset.folder()).join(format!("date={}", date.format("%Y-%m-%d")))
    }

    /// Lists the Parquet files of `dataset` for each date (all dates concurrently).
    pub async fn plan(&self, datasets: &[(Dataset, Vec<NaiveDate>)]) -> Result<ScanPlan, SourceError> {
        // Owned pairs: a stream over borrowed ones makes the future's `Send` unprovable for
        // the compiler (higher-ranked closure lifetimes), and the service spawns runs as tasks.
        let pairs: Vec<(Dataset, NaiveDate)> =
            datasets.iter().flat_map(|(dataset, dates)| dates.iter().map(|date| (*dataset, *date))).collect();
        let listings = pairs.into_iter().map(|(dataset, date)| async move {
            let prefix = self.partition(dataset, date);
            let listed = self
                .retry
                .run(prefix.as_ref(), || self.store.list(Some(&prefix)).try_collect::<Vec<object_store::ObjectMeta>>())
                .await;
            let metas = match listed {
                Ok(metas) => metas,
                // A local store reports a missing partition folder as NotFound; a cloud store
                // lists a missing prefix as empty and only a missing bucket as NotFound.
                Err(Failure::Permanent { kind: Kind::Missing, .. }) if self.local => Vec::new(),
                Err(failure) => return Err(SourceError::from_failure(self.url.clone(), failure)),
            };
            let mut files: Vec<DataFile> = metas
                .into_iter()
                .filter(|meta| is_data_file(&meta.location))
                .map(|meta| DataFile {
                    dataset,
                    date,
                    version: meta.e_tag.clone().or_else(|| Some(meta.last_modified.to_rfc3339())),
                    path: meta.location,
                    size: meta.size,
                })
                .collect();
            files.sort_by(|a, b| a.path.cmp(&b.path));
            Ok::<_, SourceError>((dataset, date, files))
        });
        let results: Vec<_> = futures::stream::iter(listings).buffered(16).try_collect().await?;
        let mut plan = ScanPlan::default();
        for (dataset, date, files) in results {
            if files.is_empty() {
                plan.missing.push((dataset, date));
            }
            plan.files.extend(files);
        }
        if plan.files.is_empty() && !plan.missing.is_empty() {
            self.check_root().await?;
        }
        Ok(plan)
    }

    /// Fails when nothing at all lives under the root: every partition of a window missing is
    /// then a wrong bucket or prefix, not a gap in the data.
    async fn check_root(&self) -> Result<(), SourceError> {
        let listing = self
            .retry
            .run(self.root.as_ref(), || self.store.list_with_delimiter(Some(&self.root)))
            .await
            .map_err(|failure| SourceError::from_failure(self.url.clone(), failure))?;
        if listing.objects.is_empty() && listing.common_prefixes.is_empty() {
            return Err(SourceError::Missing {
                url: self.url.clone(),
                cause: "nothing is stored under it (does the bucket or prefix exist?)".into(),
            });
        }
        Ok(())
    }

    /// Checks that `file` has `columns` with acceptable types, reading only its footer.
    pub async fn probe(&self, file: &DataFile, columns: &[ColumnSpec]) -> Result<(), SourceError> {
        let reader = ObjectReader::new(self.store.clone(), file.path.clone(), file.size, self.retry.clone());
        let builder = ParquetRecordBatchStreamBuilder::new(reader).await.map_err(|e| self.parquet_error(file, e))?;
        self.resolve(file, builder.schema(), columns).map(|_| ())
    }

    /// Finds `columns` in a file's schema: their root indices, in the order asked.
    fn resolve(&self, file: &DataFile, schema: &Schema, columns: &[ColumnSpec]) -> Result<Vec<usize>, SourceError> {
        columns
            .iter()
            .map(|spec| {
                let Some((index, field)) = schema.column_with_name(&spec.name) else {
                    let available: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                    return Err(SourceError::MissingColumn {
                        file: self.display(&file.path),
                        column: spec.name.clone(),
                        available: available.join(", "),
                    });
                };
                if !spec.expect.accepts(field.data_type()) {
                    return Err(SourceError::ColumnType {
                        file: self.display(&file.path),
                        column: spec.name.clone(),
                        found: field.data_type().to_string(),
                        expected: spec.expect.describe(),
                    });
                }
                Ok(index)
            })
            .collect()
    }

    fn parquet_error(&self, file: &DataFile, err: ParquetError) -> SourceError {
        match err {
            ParquetError::External(inner) => match inner.downcast::<Failure>() {
                Ok(failure) => SourceError::from_failure(self.display(&file.path), *failure),
                Err(other) => SourceError::Corrupt { file: self.display(&file.path), cause: other.to_string() },
            },
            other => SourceError::Corrupt { file: self.display(&file.path), cause: other.to_string() },
        }
    }

    /// Decoding hints. [`Expect::Text`] columns (experiment, variant, event: a handful of
    /// distinct values) are asked for as dictionary arrays: Parquet stores them
    /// dictionary-encoded, so the decoder hands over small integer keys instead of a string
    /// per row, and the fold maps each distinct value once per batch. Text unit ids (nearly all
    /// distinct) are asked for as `Utf8View`, which points into the decoded pages instead of
    /// copying every id.
    fn with_dictionary_hints(
        &self,
        file: &DataFile,
        metadata: ArrowReaderMetadata,
        columns: &[ColumnSpec],
    ) -> Result<ArrowReaderMetadata, SourceError> {
        let schema = metadata.schema();
        let dictionary = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        let mut changed = false;
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .map(|field| {
                let expect = columns.iter().find(|c| &c.name == field.name()).map(|c| c.expect);
                let hint = match (expect, field.data_type()) {
                    (Some(Expect::Text), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) => {
                        Some(dictionary.clone())
                    }
                    (Some(Expect::UnitId), DataType::Utf8 | DataType::LargeUtf8) => Some(DataType::Utf8View),
                    _ => None,
                };
                changed |= hint.is_some();
                let field = field.as_ref().clone();
                match hint {
                    Some(data_type) => field.with_data_type(data_type),
                    None => field,
                }
            })
            .collect();
        if !changed {
            return Ok(metadata);
        }
        let hinted = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
        ArrowReaderMetadata::try_new(metadata.metadata().clone(), ArrowReaderOptions::new().with_schema(hinted))
            .map_err(|e| self.parquet_error(file, e))
    }

    /// Reads `columns` of every file, calling `sink` with each batch's columns in the order
    /// asked. Up to `concurrency` files are read at once; the first error stops the scan.
    pub async fn scan<F, E>(
        &self,
        files: Vec<DataFile>,
        columns: Arc<[ColumnSpec]>,
        concurrency: usize,
        progress: &ProgressBar,
        sink: Arc<F>,
    ) -> Result<ScanStats, SourceError>
    where
        F: Fn(&DataFile, &[ArrayRef]) -> Result<(), E> + Send + Sync + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        let mut stats = ScanStats::default();
        let mut tasks = JoinSet::new();
        let mut pending = files.into_iter();
        let mut launch = |tasks: &mut JoinSet<_>| {
            let Some(file) = pending.next() else {
                return false;
            };
            let this = self.clone();
            let (columns, sink) = (columns.clone(), sink.clone());
            tasks.spawn(async move { this.read_file(file, &columns, sink.as_ref()).await });
            true
        };
        for _ in 0..concurrency.max(1) {
            if !launch(&mut tasks) {
                break;
            }
        }
        while let Some(joined) = tasks.join_next().await {
            let file_stats = match joined {
                Ok(Ok(file_stats)) => file_stats,
                Ok(Err(err)) => {
                    tasks.abort_all();
                    return Err(err);
                }
                Err(join_err) => {
                    tasks.abort_all();
                    return Err(SourceError::Unavailable {
                        url: self.url.clone(),
                        cause: format!("reader task failed: {join_err}"),
                    });
                }
            };
            stats.files += 1;
            stats.bytes += file_stats.bytes;
            stats.rows += file_stats.rows;
            progress.inc(file_stats.bytes);
            launch(&mut tasks);
        }
        Ok(stats)
    }

    async fn read_file<F, E>(&self, file: DataFile, columns: &[ColumnSpec], sink: &F) -> Result<ScanStats, SourceError>
    where
        F: Fn(&DataFile, &[ArrayRef]) -> Result<(), E>,
        E: std::error::Error + Send + Sync + 'static,
    {
        let mut reader = ObjectReader::new(self.store.clone(), file.path.clone(), file.size, self.retry.clone());
        let metadata = ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new())
            .await
            .map_err(|e| self.parquet_error(&file, e))?;
        let indices = self.resolve(&file, metadata.schema(), columns)?;
        let metadata = self.with_dictionary_hints(&file, metadata, columns)?;
        let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, metadata);
        let mask = ProjectionMask::roots(builder.parquet_schema(), indices.iter().copied());
        let mut stream = builder
            .with_projection(mask)
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(|e| self.parquet_error(&file, e))?;
        let mut rows = 0u64;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|e| self.parquet_error(&file, e))?;
            // The projected batch keeps the file's column order; hand columns over in ours.
            let ordered: Vec<ArrayRef> = columns
                .iter()
                .map(|spec| batch.column_by_name(&spec.name).cloned())
                .collect::<Option<_>>()
                .ok_or_else(|| SourceError::Corrupt {
                    file: self.display(&file.path),
                    cause: "a projected column is missing from a decoded batch".into(),
                })?;
            rows += batch.num_rows() as u64;
            sink(&file, &ordered)
                .map_err(|cause| SourceError::Batch { file: self.display(&file.path), cause: Box::new(cause) })?;
        }
        Ok(ScanStats { files: 1, bytes: file.size, rows })
    }
}

/// Data files are `*.parquet` objects that are not hidden (`.` or `_` prefix, as Spark and
/// Hive use for temporary and marker files).
fn is_data_file(path: &Path) -> bool {
    path.filename().is_some_and(|name| name.ends_with(".parquet") && !name.starts_with('.') && !name.starts_with('_'))
}
