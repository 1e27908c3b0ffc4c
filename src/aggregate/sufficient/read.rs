//! Sufficient-statistics table -> what `analyze` reads of each experiment: the allocation's
//! counts, the event counters, per-variant summaries of every metric (with CUPED covariates
//! and caps) and the primary metric's breakdowns, as the embedded engine makes them.
//!
//! The table is checked as it is read: its version, its columns and their types, that every
//! experiment of the run has its counters and every metric its rows, and that no count is
//! null or negative. A table that fails names the column, section, experiment or metric.

use std::collections::{BTreeMap, HashMap};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Date32Type, Float64Type, Int32Type, Int64Type};
use chrono::NaiveDate;

use super::{SCHEMA_VERSION, Section, column, counter};
use crate::aggregate::experiment::{DimensionSlices, MetricData, TOP_SLICES};
use crate::aggregate::spec::Spec;
use crate::aggregate::values::VariantSummaries;
use crate::aggregate::{AllocationCounts, DataQuality};
use crate::config::{Cap, Dataset, Experiment, Job, MetricKind};
use crate::results::{CapInfo, CapKind};
use crate::stats::{CovariateSummary, RatioSummary, Summary};

/// What `analyze` reads of one experiment, whichever engine computed it.
#[derive(Debug, Clone, Default)]
pub struct ExperimentStats {
    pub counts: AllocationCounts,
    /// Events that counted toward a metric, and those among them with a NaN or infinite value.
    pub counted_events: u64,
    pub invalid_values: u64,
    /// Per metric of the experiment, in its metric order.
    pub metrics: Vec<MetricData>,
    pub breakdowns: Vec<DimensionSlices>,
}

/// A table of one run, read: per experiment of the spec (in its order), and the partitions the
/// engine saw.
#[derive(Debug, Clone, Default)]
pub struct TableStats {
    pub experiments: Vec<ExperimentStats>,
    /// Partition dates with rows, per dataset.
    pub partitions: Vec<(Dataset, NaiveDate)>,
}

/// Why a table cannot be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TableError {
    #[error("the sufficient-statistics table has no column `{column}`")]
    MissingColumn { column: &'static str },
    #[error("the sufficient-statistics table's column `{column}` is {found}, expected {expected}")]
    ColumnType { column: &'static str, found: String, expected: &'static str },
    #[error("the sufficient-statistics table is schema version {found}; this abreport reads version {SCHEMA_VERSION}")]
    Version { found: i32 },
    #[error("the sufficient-statistics table has a row for report date {found}, not {expected}")]
    ReportDate { found: NaiveDate, expected: NaiveDate },
    #[error("the sufficient-statistics table's section `{section}` is not one of schema version {SCHEMA_VERSION}'s")]
    UnknownSection { section: String },
    #[error("the sufficient-statistics table's `{section}` row of experiment `{experiment}` has no `{column}`")]
    Null { experiment: String, section: &'static str, column: &'static str },
    #[error("the sufficient-statistics table's `{section}` row of experiment `{experiment}` has a negative `n` ({n})")]
    Negative { experiment: String, section: &'static str, n: i64 },
    #[error("the sufficient-statistics table has no `{counter}` counter for experiment `{experiment}`")]
    MissingCounter { experiment: String, counter: &'static str },
    #[error("the sufficient-statistics table has no rows for metric `{metric}` of experiment `{experiment}`")]
    MissingMetric { experiment: String, metric: String },
    #[error(
        "the sufficient-statistics table's `{section}` rows of experiment `{experiment}` name `{name}`, which the job does not know"
    )]
    Unknown { experiment: String, section: &'static str, name: String },
}

/// One row, with the table's columns as Rust values.
#[derive(Debug, Clone, Default)]
struct Row {
    experiment: String,
    section: Option<Section>,
    name: Option<String>,
    variant: Option<String>,
    day: Option<NaiveDate>,
    dimension: Option<String>,
    dimension_value: Option<String>,
    n: i64,
    sums: [Option<f64>; 5],
    cap_value: Option<f64>,
}

/// Reads the table of a run for `spec`'s experiments at `report_date`.
pub fn read(batches: &[RecordBatch], job: &Job, spec: &Spec) -> Result<TableStats, TableError> {
    let mut by_experiment: HashMap<String, Vec<Row>> = HashMap::new();
    let mut partitions = Vec::new();
    for batch in batches {
        for row in rows(batch, spec.report_date)? {
            if row.section == Some(Section::Partition) {
                let dataset = match row.name.as_deref() {
                    Some("exposures") => Dataset::Exposures,
                    Some("events") => Dataset::Events,
                    other => {
                        return Err(TableError::Unknown {
                            experiment: row.experiment,
                            section: "partition",
                            name: other.unwrap_or("(null)").to_string(),
                        });
                    }
                };
                let day = row.day.ok_or_else(|| null(&row, "partition", column::DAY))?;
                if row.n > 0 {
                    partitions.push((dataset, day));
                }
                continue;
            }
            by_experiment.entry(row.experiment.clone()).or_default().push(row);
        }
    }
    partitions.sort_by_key(|(d, day)| (d.folder(), *day));
    partitions.dedup();
    let experiments = spec
        .experiments
        .iter()
        .map(|e| {
            let experiment =
                job.experiments.iter().find(|x| x.id == e.id).expect("the spec's experiments are the job's");
            experiment_stats(job, experiment, &by_experiment.remove(&e.id).unwrap_or_default())
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(TableStats { experiments, partitions })
}

fn null(row: &Row, section: &'static str, column: &'static str) -> TableError {
    TableError::Null { experiment: row.experiment.clone(), section, column }
}

/// The rows of one batch, typed; the columns are cast to the schema's types first, so an
/// engine may hand over `int64` versions, `LargeUtf8` or `Utf8View` text.
fn rows(batch: &RecordBatch, report_date: NaiveDate) -> Result<Vec<Row>, TableError> {
    let get = |name: &'static str, to: &DataType, expected: &'static str| -> Result<ArrayRef, TableError> {
        let array = batch.column_by_name(name).ok_or(TableError::MissingColumn { column: name })?;
        if array.data_type() == to {
            return Ok(array.clone());
        }
        let castable = match to {
            DataType::Utf8 => matches!(
                array.data_type(),
                DataType::LargeUtf8 | DataType::Utf8View | DataType::Null | DataType::Dictionary(_, _)
            ),
            DataType::Int32 | DataType::Int64 => array.data_type().is_integer(),
            DataType::Float64 => array.data_type().is_numeric() || array.data_type() == &DataType::Null,
            DataType::Date32 => matches!(array.data_type(), DataType::Date64 | DataType::Null),
            _ => false,
        };
        let wrong = || TableError::ColumnType { column: name, found: array.data_type().to_string(), expected };
        if !castable {
            return Err(wrong());
        }
        arrow::compute::cast(array, to).map_err(|_| wrong())
    };
    let text = |name| get(name, &DataType::Utf8, "text");
    let float = |name| get(name, &DataType::Float64, "a float");
    let version = get(column::SCHEMA_VERSION, &DataType::Int32, "an integer")?;
    let dates = get(column::REPORT_DATE, &DataType::Date32, "a date")?;
    let experiment = text(column::EXPERIMENT_ID)?;
    let section = text(column::SECTION)?;
    let name = text(column::NAME)?;
    let variant = text(column::VARIANT)?;
    let day = get(column::DAY, &DataType::Date32, "a date")?;
    let dimension = text(column::DIMENSION)?;
    let dimension_value = text(column::DIMENSION_VALUE)?;
    let n = get(column::N, &DataType::Int64, "an integer")?;
    let sums = [column::SUM_Y, column::SUM_YY, column::SUM_X, column::SUM_XX, column::SUM_XY]
        .map(&float)
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let cap_value = float(column::CAP_VALUE)?;

    let version = version.as_primitive::<Int32Type>();
    let dates = dates.as_primitive::<Date32Type>();
    let day = day.as_primitive::<Date32Type>();
    let n = n.as_primitive::<Int64Type>();
    let (experiment, section, name, variant) = (
        experiment.as_string::<i32>(),
        section.as_string::<i32>(),
        name.as_string::<i32>(),
        variant.as_string::<i32>(),
    );
    let (dimension, dimension_value) = (dimension.as_string::<i32>(), dimension_value.as_string::<i32>());
    let sums: Vec<_> = sums.iter().map(AsArray::as_primitive::<Float64Type>).collect();
    let cap_value = cap_value.as_primitive::<Float64Type>();
    let opt_text = |a: &arrow::array::StringArray, i: usize| a.is_valid(i).then(|| a.value(i).to_string());
    let opt_f64 = |a: &arrow::array::Float64Array, i: usize| a.is_valid(i).then(|| a.value(i));
    let to_date = |days: i32| NaiveDate::from_num_days_from_ce_opt(days + 719_163);

    let mut out = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let found = if version.is_valid(i) { version.value(i) } else { 0 };
        if found != SCHEMA_VERSION {
            return Err(TableError::Version { found });
        }
        if let Some(found) = dates.is_valid(i).then(|| to_date(dates.value(i))).flatten()
            && found != report_date
        {
            return Err(TableError::ReportDate { found, expected: report_date });
        }
        let section_word = opt_text(section, i).unwrap_or_default();
        let parsed = Section::parse(&section_word).ok_or(TableError::UnknownSection { section: section_word })?;
        let row = Row {
            experiment: opt_text(experiment, i).unwrap_or_default(),
            section: Some(parsed),
            name: opt_text(name, i),
            variant: opt_text(variant, i),
            day: day.is_valid(i).then(|| to_date(day.value(i))).flatten(),
            dimension: opt_text(dimension, i),
            dimension_value: opt_text(dimension_value, i),
            n: if n.is_valid(i) { n.value(i) } else { -1 },
            sums: [0, 1, 2, 3, 4].map(|k| opt_f64(sums[k], i)),
            cap_value: opt_f64(cap_value, i),
        };
        if row.n < 0 {
            return Err(TableError::Negative { experiment: row.experiment, section: parsed.name(), n: row.n });
        }
        out.push(row);
    }
    Ok(out)
}

/// The sums of a group of units.
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    n: u64,
    y: f64,
    yy: f64,
    x: f64,
    xx: f64,
    xy: f64,
}

impl Sums {
    fn add(&mut self, other: &Sums) {
        self.n += other.n;
        self.y += other.y;
        self.yy += other.yy;
        self.x += other.x;
        self.xx += other.xx;
        self.xy += other.xy;
    }

    fn mean(sum: f64, n: u64) -> f64 {
        if n == 0 { 0.0 } else { sum / n as f64 }
    }

    /// Unbiased (n − 1) co-moment from sums: `(Σab − Σa·Σb/n) / (n − 1)`, 0 when `n < 2`, and
    /// never below 0 for a variance (rounding of the difference of two sums).
    fn comoment(sum_ab: f64, sum_a: f64, sum_b: f64, n: u64, variance: bool) -> f64 {
        if n < 2 {
            return 0.0;
        }
        let m = (sum_ab - sum_a * sum_b / n as f64) / (n - 1) as f64;
        if variance { m.max(0.0) } else { m }
    }

    fn summary(&self) -> Summary {
        Summary {
            n: self.n,
            mean: Self::mean(self.y, self.n),
            variance: Self::comoment(self.yy, self.y, self.y, self.n, true),
        }
    }

    fn ratio(&self) -> RatioSummary {
        RatioSummary {
            n: self.n,
            mean_numerator: Self::mean(self.y, self.n),
            mean_denominator: Self::mean(self.x, self.n),
            var_numerator: Self::comoment(self.yy, self.y, self.y, self.n, true),
            var_denominator: Self::comoment(self.xx, self.x, self.x, self.n, true),
            covariance: Self::comoment(self.xy, self.x, self.y, self.n, false),
        }
    }

    fn covariate(&self) -> CovariateSummary {
        let r = self.ratio();
        CovariateSummary {
            n: r.n,
            mean: r.mean_numerator,
            mean_covariate: r.mean_denominator,
            variance: r.var_numerator,
            variance_covariate: r.var_denominator,
            covariance: r.covariance,
        }
    }

    fn of(row: &Row, section: &'static str, with_x: bool) -> Result<Sums, TableError> {
        let need = |k: usize, column: &'static str| row.sums[k].ok_or_else(|| null(row, section, column));
        let n = row.n as u64;
        let (y, yy) = (need(0, column::SUM_Y)?, need(1, column::SUM_YY)?);
        let (x, xx, xy) = if with_x {
            (need(2, column::SUM_X)?, need(3, column::SUM_XX)?, need(4, column::SUM_XY)?)
        } else {
            (0.0, 0.0, 0.0)
        };
        Ok(Sums { n, y, yy, x, xx, xy })
    }
}

/// What a summary of `sums` is for a metric: a ratio's, or a single value's.
fn summaries(kind: &MetricKind, groups: &[Sums]) -> VariantSummaries {
    match kind {
        MetricKind::Ratio { .. } => VariantSummaries::Ratio(groups.iter().map(Sums::ratio).collect()),
        _ => VariantSummaries::Single(groups.iter().map(Sums::summary).collect()),
    }
}

fn experiment_stats(job: &Job, experiment: &Experiment, rows: &[Row]) -> Result<ExperimentStats, TableError> {
    let id = experiment.id.as_str();
    let variants: Vec<&str> = experiment.variants.iter().map(|v| v.name.as_str()).collect();
    let n_variants = variants.len();
    let variant_index = |row: &Row, section: &'static str| -> Result<usize, TableError> {
        let name = row.variant.as_deref().ok_or_else(|| null(row, section, column::VARIANT))?;
        variants.iter().position(|v| *v == name).ok_or_else(|| TableError::Unknown {
            experiment: id.to_string(),
            section,
            name: name.to_string(),
        })
    };
    let metric_names: Vec<&str> = experiment.metrics.iter().map(|m| job.metrics[m.metric].name.as_str()).collect();
    let metric_index = |row: &Row, section: &'static str| -> Result<usize, TableError> {
        let name = row.name.as_deref().ok_or_else(|| null(row, section, column::NAME))?;
        metric_names.iter().position(|m| *m == name).ok_or_else(|| TableError::Unknown {
            experiment: id.to_string(),
            section,
            name: name.to_string(),
        })
    };
    let dimension_index = |row: &Row, section: &'static str| -> Result<usize, TableError> {
        let name = row.dimension.as_deref().ok_or_else(|| null(row, section, column::DIMENSION))?;
        job.dimensions.iter().position(|d| d == name).ok_or_else(|| TableError::Unknown {
            experiment: id.to_string(),
            section,
            name: name.to_string(),
        })
    };

    let mut counters: HashMap<String, u64> = HashMap::new();
    let mut units = vec![0u64; n_variants];
    let mut unknown_variants = Vec::new();
    let mut by_day: BTreeMap<NaiveDate, Vec<u64>> = BTreeMap::new();
    // Per dimension: value (None = null) -> units per variant.
    let mut by_dimension: Vec<BTreeMap<(bool, String), Vec<u64>>> = vec![BTreeMap::new(); job.dimensions.len()];
    let mut metric_sums: Vec<Option<Vec<Sums>>> = vec![None; metric_names.len()];
    let mut caps: Vec<Option<(f64, u64)>> = vec![None; metric_names.len()];
    let mut primary_by_dimension: Vec<BTreeMap<(bool, String), Vec<Sums>>> =
        vec![BTreeMap::new(); job.dimensions.len()];
    let n_of = |row: &Row| row.n as u64;
    let value_key = |row: &Row| match &row.dimension_value {
        None => (true, "(missing)".to_string()),
        Some(v) => (false, v.clone()),
    };
    for row in rows {
        match row.section.expect("rows are parsed with a section") {
            Section::Counter => {
                let name = row.name.clone().ok_or_else(|| null(row, "counter", column::NAME))?;
                *counters.entry(name).or_default() += n_of(row);
            }
            Section::Variant => units[variant_index(row, "variant")?] += n_of(row),
            Section::UnknownVariant => {
                unknown_variants
                    .push(row.variant.clone().ok_or_else(|| null(row, "unknown_variant", column::VARIANT))?);
            }
            Section::Day => {
                let v = variant_index(row, "day")?;
                let day = row.day.ok_or_else(|| null(row, "day", column::DAY))?;
                by_day.entry(day).or_insert_with(|| vec![0; n_variants])[v] += n_of(row);
            }
            Section::Dimension => {
                let (d, v) = (dimension_index(row, "dimension")?, variant_index(row, "dimension")?);
                by_dimension[d].entry(value_key(row)).or_insert_with(|| vec![0; n_variants])[v] += n_of(row);
            }
            Section::Metric => {
                let (m, v) = (metric_index(row, "metric")?, variant_index(row, "metric")?);
                let metric = &job.metrics[experiment.metrics[m].metric];
                let with_x = matches!(metric.kind, MetricKind::Ratio { .. }) || metric.cuped;
                let sums = Sums::of(row, "metric", with_x)?;
                metric_sums[m].get_or_insert_with(|| vec![Sums::default(); n_variants])[v].add(&sums);
            }
            Section::MetricDimension => {
                let (m, d, v) = (
                    metric_index(row, "metric_dimension")?,
                    dimension_index(row, "metric_dimension")?,
                    variant_index(row, "metric_dimension")?,
                );
                if m != 0 {
                    continue; // breakdowns are of the primary metric only
                }
                let metric = &job.metrics[experiment.metrics[m].metric];
                let sums = Sums::of(row, "metric_dimension", matches!(metric.kind, MetricKind::Ratio { .. }))?;
                primary_by_dimension[d].entry(value_key(row)).or_insert_with(|| vec![Sums::default(); n_variants])[v]
                    .add(&sums);
            }
            Section::Cap => {
                let m = metric_index(row, "cap")?;
                let value = row.cap_value.ok_or_else(|| null(row, "cap", column::CAP_VALUE))?;
                caps[m] = Some((value, n_of(row)));
            }
            Section::Partition => {}
        }
    }

    let counter = |name: &'static str| -> Result<u64, TableError> {
        counters.get(name).copied().ok_or(TableError::MissingCounter { experiment: id.to_string(), counter: name })
    };
    for name in counter::ALL {
        counter(name)?;
    }
    unknown_variants.sort_unstable();
    unknown_variants.dedup();
    let counts = AllocationCounts {
        units,
        by_day: by_day.into_iter().collect(),
        by_dimension: by_dimension
            .into_iter()
            .map(|values| values.into_iter().map(|((_, value), units)| (value, units)).collect())
            .collect(),
        all_units: counter(counter::ALL_UNITS)?,
        multi_variant_units: counter(counter::MULTI_VARIANT_UNITS)?,
        unknown_variant_units: counter(counter::UNKNOWN_VARIANT_UNITS)?,
        unknown_variants,
        exposure_rows: counter(counter::EXPOSURE_ROWS)?,
        quality: DataQuality {
            future_exposure_rows: counter(counter::FUTURE_EXPOSURE_ROWS)?,
            future_exposure_units: counter(counter::FUTURE_EXPOSURE_UNITS)?,
            future_only_units: counter(counter::FUTURE_ONLY_UNITS)?,
            exposures_without_unit: counter(counter::EXPOSURES_WITHOUT_UNIT)?,
            exposures_without_variant_or_ts: counter(counter::EXPOSURES_WITHOUT_VARIANT_OR_TS)?,
            events_without_unit: counter(counter::EVENTS_WITHOUT_UNIT)?,
            events_without_ts: counter(counter::EVENTS_WITHOUT_TS)?,
        },
    };

    let analyzable: u64 = counts.units.iter().sum();
    let mut metrics = Vec::with_capacity(metric_names.len());
    for (m, name) in metric_names.iter().enumerate() {
        let metric = &job.metrics[experiment.metrics[m].metric];
        // An experiment without analyzable units has no metric rows (no group has units).
        let groups = match metric_sums[m].take() {
            Some(groups) => groups,
            None if analyzable == 0 => vec![Sums::default(); n_variants],
            None => return Err(TableError::MissingMetric { experiment: id.to_string(), metric: (*name).to_string() }),
        };
        let covariates = (metric.cuped && !matches!(metric.kind, MetricKind::Ratio { .. }))
            .then(|| groups.iter().map(Sums::covariate).collect());
        let cap = metric.cap.and_then(|cap| {
            // An absolute cap is known without units; the embedded engine reports it with 0.
            let (value, capped_units) = caps[m].or(match cap {
                Cap::Absolute(x) => Some((x, 0)),
                Cap::Percentile(_) => None,
            })?;
            let (kind, percentile) = match cap {
                Cap::Absolute(_) => (CapKind::Absolute, None),
                Cap::Percentile(q) => (CapKind::Percentile, Some(q)),
            };
            (!matches!(metric.kind, MetricKind::Ratio { .. })).then_some(CapInfo {
                kind,
                percentile,
                value,
                capped_units,
            })
        });
        metrics.push(MetricData { summaries: summaries(&metric.kind, &groups), covariates, cap });
    }

    let primary_kind = experiment.metrics.first().map(|m| &job.metrics[m.metric].kind);
    let breakdowns = match primary_kind {
        None => Vec::new(),
        Some(kind) => job
            .dimensions
            .iter()
            .zip(primary_by_dimension)
            .map(|(dimension, values)| breakdown(dimension, kind, values, n_variants))
            .collect(),
    };
    Ok(ExperimentStats {
        counts,
        counted_events: counter(counter::COUNTED_EVENTS)?,
        invalid_values: counter(counter::INVALID_VALUES)?,
        metrics,
        breakdowns,
    })
}

/// The primary metric per value of one dimension, as the embedded engine ranks them: the
/// `TOP_SLICES` values with the most units (ties by value, `(missing)` last), the rest pooled
/// as `(other)`.
fn breakdown(
    dimension: &str,
    kind: &MetricKind,
    values: BTreeMap<(bool, String), Vec<Sums>>,
    n_variants: usize,
) -> DimensionSlices {
    let mut ranked: Vec<((bool, String), Vec<Sums>)> = values.into_iter().collect();
    let units = |groups: &[Sums]| groups.iter().map(|g| g.n).sum::<u64>();
    ranked.sort_by(|a, b| units(&b.1).cmp(&units(&a.1)).then_with(|| a.0.cmp(&b.0)));
    let mut slices: Vec<(String, VariantSummaries)> = Vec::new();
    let mut other: Option<Vec<Sums>> = None;
    for (i, ((_, value), groups)) in ranked.into_iter().enumerate() {
        if i < TOP_SLICES {
            slices.push((value, summaries(kind, &groups)));
        } else {
            let pooled = other.get_or_insert_with(|| vec![Sums::default(); n_variants]);
            for (p, g) in pooled.iter_mut().zip(&groups) {
                p.add(g);
            }
        }
    }
    if let Some(pooled) = other {
        slices.push(("(other)".to_string(), summaries(kind, &pooled)));
    }
    DimensionSlices { dimension: dimension.to_string(), slices }
}
