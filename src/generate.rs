//! Synthetic experiment data: exposure and event partitions plus a matching job file, with
//! true effects (per treatment variant on the primary, on every other metric), any number of
//! variants with any split, and switches for the abnormal cases (SRM, NaN values,
//! multi-variant units, a missing partition, a lag before the first purchase). Used by
//! `abreport demo`, the tests and the benchmark.
//!
//! Deterministic: the same spec and seed give the same files, on any machine. Each (unit, day)
//! draws from its own seeded stream, so days are generated in parallel and in any order.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Builder, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder};
use arrow::datatypes::{Field, Schema};
use chrono::NaiveDate;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::aggregate::day_start_micros;
use crate::rng::Rng;

const DAY_MICROS: i64 = 86_400_000_000;

/// One experiment of a generated dataset.
#[derive(Debug, Clone)]
pub struct GenExperiment {
    pub id: String,
    /// Share of units enrolled.
    pub coverage: f64,
    /// Configured weights of the variants, control first (two or more); units are assigned
    /// in these proportions unless `treatment_share` says otherwise. Names: see
    /// [`GenExperiment::variant_names`].
    pub weights: Vec<f64>,
    /// True relative effect of every treatment variant on the chance of a purchase per active
    /// day (the primary metric), unless `conversion_effects` names one per variant.
    pub conversion_effect: f64,
    /// Per treatment variant, in variant order: its own true effect on the chance of a
    /// purchase (empty: `conversion_effect` for each).
    pub conversion_effects: Vec<f64>,
    /// True relative effect on purchase amounts (secondary metrics only: revenue, order value).
    pub revenue_effect: f64,
    /// True relative effect on the chance of an error (a guardrail; lower is better).
    pub error_effect: f64,
    /// True relative effect on the chance of a bounce (a second proportion guardrail; lower is
    /// better; needs [`GenSpec::bounce_rate`]).
    pub bounce_effect: f64,
    /// Share of enrolled units actually assigned to the treatment variants together, split
    /// among them by their weights (`None`: as configured). Off the configured share, an SRM.
    pub treatment_share: Option<f64>,
    /// Share of enrolled units later also exposed to the other variant.
    pub multi_variant_rate: f64,
    /// With `treatment_share` off 0.5: the mismatch starts on this day of the window (units
    /// arriving earlier are split evenly).
    pub srm_from_day: Option<u32>,
    /// With `treatment_share` off 0.5: the mismatch only affects units of this country.
    pub srm_country: Option<String>,
    /// The job file's `description` of the experiment.
    pub description: Option<String>,
}

/// The `i`-th name of the sequence `a`, …, `z`, `aa`, `ab`, … (bijective base 26).
fn letters(i: usize) -> String {
    let mut n = i + 1;
    let mut name = Vec::new();
    while n > 0 {
        n -= 1;
        name.push(char::from(b'a' + (n % 26) as u8));
        n /= 26;
    }
    name.iter().rev().collect()
}

impl GenExperiment {
    pub fn new(id: &str) -> Self {
        Self {
            id: id.to_string(),
            coverage: 1.0,
            weights: vec![0.5, 0.5],
            conversion_effect: 0.0,
            conversion_effects: Vec::new(),
            revenue_effect: 0.0,
            error_effect: 0.0,
            bounce_effect: 0.0,
            treatment_share: None,
            multi_variant_rate: 0.0,
            srm_from_day: None,
            srm_country: None,
            description: None,
        }
    }

    /// `control`, then `treatment` when there is one treatment variant, else `a`, `b`, … `z`,
    /// `aa`, `ab`, … (distinct, however many).
    pub fn variant_names(&self) -> Vec<String> {
        let treatments = self.weights.len().saturating_sub(1);
        let mut names = vec!["control".to_string()];
        if treatments == 1 {
            names.push("treatment".into());
        } else {
            names.extend((0..treatments).map(letters));
        }
        names
    }

    /// The true effect on the chance of a purchase of treatment variant `variant` (1-based).
    pub fn conversion_effect_of(&self, variant: usize) -> f64 {
        self.conversion_effects.get(variant.wrapping_sub(1)).copied().unwrap_or(self.conversion_effect)
    }

    /// The variant a unit drawing `u` (uniform in [0, 1)) is assigned to, with `share` the
    /// treatment variants' joint share: control when `u >= share`, else a treatment variant by
    /// the weights, reusing `u` (so a two-variant experiment draws what it always drew).
    fn assign(&self, u: f64, share: f64) -> usize {
        if u >= share {
            return 0;
        }
        let treatment_weights = &self.weights[1..];
        let total: f64 = treatment_weights.iter().sum();
        let mut x = u / share * total;
        for (i, w) in treatment_weights.iter().enumerate() {
            if x < *w {
                return i + 1;
            }
            x -= w;
        }
        treatment_weights.len()
    }

    /// The treatment variants' configured joint share.
    fn configured_treatment_share(&self) -> f64 {
        let total: f64 = self.weights.iter().sum();
        1.0 - self.weights[0] / total
    }
}

/// Unit ids as strings or integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UnitIdStyle {
    String,
    Int,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenSpec {
    pub units: u64,
    pub days: u32,
    /// Last day of data (the report date to use).
    pub end_date: NaiveDate,
    pub files_per_day: u32,
    pub seed: u64,
    pub unit_ids: UnitIdStyle,
    /// Mean page views per active day.
    pub page_views_per_day: f64,
    /// Chance of a bounce per active day (control); 0 writes no bounce events and leaves the
    /// `bounce_rate` metric out of the job.
    pub bounce_rate: f64,
    /// Days at the start of the window without any purchase (the primary metric has no
    /// events yet).
    pub purchase_lag_days: u32,
    /// Share of purchase values written as NaN or infinity.
    pub nan_rate: f64,
    /// A partition to leave out.
    pub missing_partition: Option<(crate::source::Dataset, NaiveDate)>,
    /// Days of event history before the window (units already active before their first
    /// exposure): the CUPED covariate's data. With history, the generated job uses CUPED.
    pub history_days: u32,
    pub experiments: Vec<GenExperiment>,
}

impl GenSpec {
    /// The first day of the experiments' window.
    pub fn start_date(&self) -> NaiveDate {
        self.end_date - chrono::Days::new(u64::from(self.days.saturating_sub(1)))
    }

    /// The first day of data (history included).
    pub fn first_date(&self) -> NaiveDate {
        self.start_date() - chrono::Days::new(u64::from(self.history_days))
    }
}

/// Countries with rough traffic weights: more than 20 values, so breakdowns show `(other)`.
const COUNTRIES: [(&str, f64); 24] = [
    ("US", 30.0),
    ("DE", 10.0),
    ("BR", 9.0),
    ("IN", 8.0),
    ("GB", 6.0),
    ("FR", 5.0),
    ("JP", 4.0),
    ("MX", 3.5),
    ("CA", 3.0),
    ("ES", 2.5),
    ("IT", 2.5),
    ("NL", 2.0),
    ("SE", 1.5),
    ("PL", 1.5),
    ("TR", 1.5),
    ("AU", 1.5),
    ("KR", 1.0),
    ("TH", 1.0),
    ("VN", 1.0),
    ("ID", 1.0),
    ("AR", 0.8),
    ("CL", 0.7),
    ("NO", 0.6),
    ("FI", 0.5),
];
const PLATFORMS: [(&str, f64); 3] = [("android", 45.0), ("ios", 35.0), ("web", 20.0)];

fn pick<'a>(rng: &mut Rng, choices: &[(&'a str, f64)]) -> &'a str {
    let total: f64 = choices.iter().map(|c| c.1).sum();
    let mut x = rng.uniform() * total;
    for (name, weight) in choices {
        if x < *weight {
            return name;
        }
        x -= weight;
    }
    choices[choices.len() - 1].0
}

/// What was generated.
#[derive(Debug, Clone, Default)]
pub struct Generated {
    pub job_file: PathBuf,
    pub data_dir: PathBuf,
    pub exposure_rows: u64,
    pub event_rows: u64,
    pub files: u64,
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("cannot write `{}`: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot encode `{}`: {message}", path.display())]
    Encode { path: PathBuf, message: String },
    #[error("{0}")]
    Spec(String),
}

/// A unit's fixed traits.
struct UnitTraits {
    arrival_day: u32,
    arrival_offset: i64,
    propensity: f64,
    /// How active the unit is (share of days active, page views per day): persistent, so a
    /// unit's past predicts its future, as with real users (what CUPED exploits).
    engagement: f64,
    country: &'static str,
    platform: &'static str,
    /// Per experiment: enrolled, its variant (0 = control), exposed to another one too.
    assignment: Vec<Option<(usize, bool)>>,
}

fn traits(spec: &GenSpec, unit: u64) -> UnitTraits {
    let mut rng = Rng::for_stream(spec.seed, unit, u64::MAX);
    let arrival_day = (rng.uniform() * f64::from(spec.days)) as u32;
    let arrival_offset = (rng.uniform() * 0.9 * DAY_MICROS as f64) as i64;
    let propensity = (0.6 * rng.normal() - 0.18).exp();
    let engagement = (0.5 * rng.normal() - 0.125).exp();
    let country = pick(&mut rng, &COUNTRIES);
    let platform = pick(&mut rng, &PLATFORMS);
    let assignment = spec
        .experiments
        .iter()
        .map(|e| {
            rng.chance(e.coverage).then(|| {
                let mismatched = e.srm_from_day.is_none_or(|day| arrival_day >= day)
                    && e.srm_country.as_deref().is_none_or(|c| c == country);
                let configured = e.configured_treatment_share();
                let share = if mismatched { e.treatment_share.unwrap_or(configured) } else { configured };
                let variant = e.assign(rng.uniform(), share);
                (variant, rng.chance(e.multi_variant_rate))
            })
        })
        .collect();
    UnitTraits { arrival_day, arrival_offset, propensity, engagement, country, platform, assignment }
}

fn unit_id(unit: u64, text: &mut String) {
    text.clear();
    let _ = write!(text, "u{unit:010}");
}

struct DayRows {
    exp_experiment: StringBuilder,
    exp_variant: StringBuilder,
    exp_unit_text: StringBuilder,
    exp_unit_int: Int64Builder,
    exp_ts: TimestampMicrosecondBuilder,
    exp_country: StringBuilder,
    exp_platform: StringBuilder,
    ev_unit_text: StringBuilder,
    ev_unit_int: Int64Builder,
    ev_event: StringBuilder,
    ev_value: Float64Builder,
    ev_ts: TimestampMicrosecondBuilder,
    exposures: u64,
    events: u64,
}

impl DayRows {
    fn new() -> Self {
        Self {
            exp_experiment: StringBuilder::new(),
            exp_variant: StringBuilder::new(),
            exp_unit_text: StringBuilder::new(),
            exp_unit_int: Int64Builder::new(),
            exp_ts: TimestampMicrosecondBuilder::new(),
            exp_country: StringBuilder::new(),
            exp_platform: StringBuilder::new(),
            ev_unit_text: StringBuilder::new(),
            ev_unit_int: Int64Builder::new(),
            ev_event: StringBuilder::new(),
            ev_value: Float64Builder::new(),
            ev_ts: TimestampMicrosecondBuilder::new(),
            exposures: 0,
            events: 0,
        }
    }

    fn unit(text: &mut StringBuilder, int: &mut Int64Builder, style: UnitIdStyle, id: &str, unit: u64) {
        match style {
            UnitIdStyle::String => text.append_value(id),
            UnitIdStyle::Int => int.append_value(unit as i64),
        }
    }
}

/// Rows of one day of data (`day` counts from the first history day) for units `range`.
fn generate_rows(spec: &GenSpec, day: u32, range: std::ops::Range<u64>) -> DayRows {
    let mut rows = DayRows::new();
    let day_start = day_start_micros(spec.first_date() + chrono::Days::new(u64::from(day)));
    let names: Vec<Vec<String>> = spec.experiments.iter().map(GenExperiment::variant_names).collect();
    let mut id = String::new();
    for unit in range {
        let traits = traits(spec, unit);
        // Days before the unit's first exposure: with history, units are already active
        // (their events are the CUPED covariate); without, they have not arrived yet.
        let window_day = day.checked_sub(spec.history_days);
        let before_arrival = window_day.is_none_or(|d| d < traits.arrival_day);
        if before_arrival && spec.history_days == 0 {
            continue;
        }
        let mut rng = Rng::for_stream(spec.seed, unit, u64::from(day));
        let arrival = window_day == Some(traits.arrival_day);
        if !arrival && !rng.chance((0.5 * traits.engagement).min(0.95)) {
            continue; // not active today
        }
        unit_id(unit, &mut id);
        let session_start = if arrival {
            day_start + traits.arrival_offset
        } else {
            day_start + (rng.uniform() * 0.9 * DAY_MICROS as f64) as i64
        };
        let mut conversion = 0.04 * traits.propensity;
        let mut error_rate = 0.02;
        let mut bounce_rate = spec.bounce_rate;
        let mut revenue = 1.0;
        for ((e, assignment), names) in spec.experiments.iter().zip(&traits.assignment).zip(&names) {
            let Some((variant, multi)) = *assignment else {
                continue;
            };
            if before_arrival {
                continue;
            }
            // Exposure at session start; a multi-variant unit sees another variant on a later
            // day (control's units the first treatment, treatment units the control).
            let switched = multi && !arrival;
            let shown = match (switched, variant) {
                (false, v) => v,
                (true, 0) => 1,
                (true, _) => 0,
            };
            rows.exp_experiment.append_value(&e.id);
            rows.exp_variant.append_value(&names[shown]);
            DayRows::unit(&mut rows.exp_unit_text, &mut rows.exp_unit_int, spec.unit_ids, &id, unit);
            rows.exp_ts.append_value(session_start + (rng.uniform() * 1e6) as i64);
            rows.exp_country.append_value(traits.country);
            rows.exp_platform.append_value(traits.platform);
            rows.exposures += 1;
            if variant > 0 {
                conversion *= 1.0 + e.conversion_effect_of(variant);
                error_rate *= 1.0 + e.error_effect;
                bounce_rate *= 1.0 + e.bounce_effect;
                revenue *= 1.0 + e.revenue_effect;
            }
        }
        // Events of the session; a few land just before the exposure (pre-exposure events).
        let session_from = session_start - 10 * 60_000_000;
        let day_end = day_start + DAY_MICROS;
        let event = |rows: &mut DayRows, rng: &mut Rng, name: &str, value: Option<f64>| {
            let ts = session_from + (rng.uniform() * (day_end - session_from) as f64) as i64;
            DayRows::unit(&mut rows.ev_unit_text, &mut rows.ev_unit_int, spec.unit_ids, &id, unit);
            rows.ev_event.append_value(name);
            rows.ev_value.append_option(value);
            rows.ev_ts.append_value(ts.min(day_end - 1));
            rows.events += 1;
        };
        for _ in 0..1 + rng.poisson(((spec.page_views_per_day - 1.0) * traits.engagement).max(0.0)) {
            event(&mut rows, &mut rng, "page_view", None);
        }
        // The draws are made during the lag too, so a lag changes nothing else.
        let lagged = window_day.is_some_and(|d| d < spec.purchase_lag_days);
        if rng.chance(conversion.min(1.0)) {
            let amount = (3.6 + 0.7 * rng.normal()).exp() * revenue;
            let value = if rng.chance(spec.nan_rate) {
                if rng.chance(0.5) { f64::NAN } else { f64::INFINITY }
            } else {
                (amount * 100.0).round() / 100.0
            };
            if lagged {
                let _ = rng.uniform(); // the event's timestamp
            } else {
                event(&mut rows, &mut rng, "purchase", Some(value));
            }
        }
        if rng.chance(error_rate.min(1.0)) {
            event(&mut rows, &mut rng, "error", None);
        }
        // Last, so datasets without bounces draw what they always drew.
        if spec.bounce_rate > 0.0 && rng.chance(bounce_rate.min(1.0)) {
            event(&mut rows, &mut rng, "bounce", None);
        }
    }
    rows
}

fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) -> Result<u64, GenerateError> {
    let io = |source| GenerateError::Io { path: path.to_path_buf(), source };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let fields: Vec<Field> = columns.iter().map(|(n, a)| Field::new(*n, a.data_type().clone(), true)).collect();
    let encode = |e: &dyn std::fmt::Display| GenerateError::Encode { path: path.to_path_buf(), message: e.to_string() };
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns.into_iter().map(|(_, a)| a).collect())
        .map_err(|e| encode(&e))?;
    // Logs arrive in time order: rows are generated unit by unit, then sorted by `ts`, so
    // readers see the interleaving of units a real log has (not cache-friendly runs per unit).
    let order = batch
        .column_by_name("ts")
        .map(|ts| arrow::compute::sort_to_indices(ts, None, None))
        .transpose()
        .map_err(|e| encode(&e))?;
    let batch = match order {
        Some(indices) => arrow::compute::take_record_batch(&batch, &indices).map_err(|e| encode(&e))?,
        None => batch,
    };
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).map_err(|e| encode(&e))?))
        .set_max_row_group_row_count(Some(256 * 1024))
        .build();
    let file = std::fs::File::create(path).map_err(io)?;
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(properties)).map_err(|e| encode(&e))?;
    writer.write(&batch).map_err(|e| encode(&e))?;
    writer.close().map_err(|e| encode(&e))?;
    Ok(std::fs::metadata(path).map_err(io)?.len())
}

/// Writes the dataset under `out/data` and a job file `out/job.toml`.
pub fn generate(spec: &GenSpec, out: &Path) -> Result<Generated, GenerateError> {
    if spec.units == 0 || spec.days == 0 || spec.files_per_day == 0 {
        return Err(GenerateError::Spec("units, days and files per day must be positive".into()));
    }
    if spec.experiments.is_empty() {
        return Err(GenerateError::Spec("at least one experiment is needed".into()));
    }
    for e in &spec.experiments {
        if e.weights.len() < 2 || e.weights.len() > 1000 || !e.weights.iter().all(|w| w.is_finite() && *w > 0.0) {
            return Err(GenerateError::Spec(format!(
                "experiment `{}`: 2 to 1000 variants with positive weights are needed",
                e.id
            )));
        }
        if e.conversion_effects.len() > e.weights.len() - 1 {
            return Err(GenerateError::Spec(format!(
                "experiment `{}`: {} effects for {} treatment variants",
                e.id,
                e.conversion_effects.len(),
                e.weights.len() - 1
            )));
        }
    }
    let data_dir = out.join("data");
    let threads = crate::threads::count();
    let tasks: Vec<(u32, u32)> =
        (0..spec.history_days + spec.days).flat_map(|d| (0..spec.files_per_day).map(move |f| (d, f))).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Result<Generated, GenerateError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut total = Generated::default();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&(day, file)) = tasks.get(i) else {
                            break;
                        };
                        let per_file = spec.units.div_ceil(u64::from(spec.files_per_day));
                        let range = u64::from(file) * per_file..(u64::from(file + 1) * per_file).min(spec.units);
                        let date = spec.first_date() + chrono::Days::new(u64::from(day));
                        let mut rows = generate_rows(spec, day, range);
                        let name = format!("part-{file:03}.parquet");
                        let partition = |dataset: crate::source::Dataset| {
                            data_dir.join(dataset.folder()).join(format!("date={date}")).join(&name)
                        };
                        let skip = |dataset| spec.missing_partition == Some((dataset, date));
                        let unit_column = |text: &mut StringBuilder, int: &mut Int64Builder| -> ArrayRef {
                            match spec.unit_ids {
                                UnitIdStyle::String => Arc::new(text.finish()),
                                UnitIdStyle::Int => Arc::new(int.finish()),
                            }
                        };
                        let ts = |b: &mut TimestampMicrosecondBuilder| -> ArrayRef { Arc::new(b.finish()) };
                        // History days have no exposures: the experiments had not started.
                        if day >= spec.history_days && !skip(crate::source::Dataset::Exposures) {
                            let columns = vec![
                                ("experiment_id", Arc::new(rows.exp_experiment.finish()) as ArrayRef),
                                ("variant", Arc::new(rows.exp_variant.finish()) as ArrayRef),
                                ("unit_id", unit_column(&mut rows.exp_unit_text, &mut rows.exp_unit_int)),
                                ("ts", ts(&mut rows.exp_ts)),
                                ("country", Arc::new(rows.exp_country.finish()) as ArrayRef),
                                ("platform", Arc::new(rows.exp_platform.finish()) as ArrayRef),
                            ];
                            match write_parquet(&partition(crate::source::Dataset::Exposures), columns) {
                                Ok(bytes) => {
                                    total.bytes += bytes;
                                    total.files += 1;
                                    total.exposure_rows += rows.exposures;
                                }
                                Err(e) => return Err(e),
                            }
                        }
                        if !skip(crate::source::Dataset::Events) {
                            let columns = vec![
                                ("unit_id", unit_column(&mut rows.ev_unit_text, &mut rows.ev_unit_int)),
                                ("event", Arc::new(rows.ev_event.finish()) as ArrayRef),
                                ("value", Arc::new(rows.ev_value.finish()) as ArrayRef),
                                ("ts", ts(&mut rows.ev_ts)),
                            ];
                            match write_parquet(&partition(crate::source::Dataset::Events), columns) {
                                Ok(bytes) => {
                                    total.bytes += bytes;
                                    total.files += 1;
                                    total.event_rows += rows.events;
                                }
                                Err(e) => return Err(e),
                            }
                        }
                    }
                    Ok(total)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(GenerateError::Spec("a generator thread panicked".into()))))
            .collect()
    });
    let mut generated =
        Generated { data_dir: data_dir.clone(), job_file: out.join("job.toml"), ..Generated::default() };
    for result in results {
        let part = result?;
        generated.exposure_rows += part.exposure_rows;
        generated.event_rows += part.event_rows;
        generated.files += part.files;
        generated.bytes += part.bytes;
    }
    std::fs::write(&generated.job_file, job_toml(spec))
        .map_err(|source| GenerateError::Io { path: generated.job_file.clone(), source })?;
    Ok(generated)
}

/// A job file for the generated data (data in `data/` beside it). With history days, the
/// metrics that can use it get CUPED.
pub fn job_toml(spec: &GenSpec) -> String {
    let cuped = if spec.history_days > 0 { "\ncuped = true" } else { "" };
    let mut toml = format!(
        r#"# Generated by `abreport generate`: a job for the synthetic dataset in ./data.
name = "generated"
schedule = "0 0 6 * * *"
timezone = "UTC"
sla_seconds = 60
dimensions = ["country", "platform"]

[source]
url = "data"

[stats]
alpha = 0.05
power = 0.8
correction = "holm"
srm_p_value = 0.001
cuped_lookback_days = {lookback}

[[metrics]]
name = "conversion"
kind = "proportion"
event = "purchase"
description = "Share of units with at least one purchase"{cuped}

[[metrics]]
name = "revenue"
kind = "mean"
event = "purchase"
aggregate = "sum"
description = "Revenue per unit"{cuped}
cap = {{ percentile = 0.999 }}

[[metrics]]
name = "order_value"
kind = "ratio"
numerator = {{ event = "purchase", aggregate = "sum" }}
denominator = {{ event = "purchase", aggregate = "count" }}
description = "Average order value"

[[metrics]]
name = "page_views"
kind = "mean"
event = "page_view"
aggregate = "count"
description = "Page views per unit"{cuped}

[[metrics]]
name = "error_rate"
kind = "proportion"
event = "error"
higher_is_better = false
description = "Share of units that hit an error"
"#,
        lookback = spec.history_days.clamp(1, 14),
    );
    if spec.bounce_rate > 0.0 {
        toml.push_str(
            r#"
[[metrics]]
name = "bounce_rate"
kind = "proportion"
event = "bounce"
higher_is_better = false
description = "Share of units with a bounced session"
"#,
        );
    }
    for e in &spec.experiments {
        let variants: Vec<String> =
            e.variant_names().iter().zip(&e.weights).map(|(name, w)| format!("{name} = {w:?}")).collect();
        let description = e
            .description
            .as_ref()
            .map(|d| format!("description = \"{}\"\n", d.replace('\\', "\\\\").replace('"', "\\\"")))
            .unwrap_or_default();
        let _ = write!(
            toml,
            r#"
[[experiments]]
id = "{}"
{description}control = "control"
variants = {{ {} }}
start = {}
primary = "conversion"
secondary = ["revenue", "order_value", "page_views"]
guardrails = [{{ metric = "error_rate", margin = 0.2 }}]
planned_units = {}
"#,
            e.id.replace('\\', "\\\\").replace('"', "\\\""),
            variants.join(", "),
            spec.start_date(),
            ((spec.units as f64 * e.coverage).round() as u64).max(2)
        );
    }
    toml
}

/// The demo's dataset: a winner, a loser, an undecided experiment and one with an SRM problem.
pub fn demo_spec(end_date: NaiveDate) -> GenSpec {
    GenSpec {
        units: 40_000,
        days: 14,
        end_date,
        files_per_day: 2,
        seed: 20261126,
        unit_ids: UnitIdStyle::String,
        page_views_per_day: 4.0,
        bounce_rate: 0.0,
        purchase_lag_days: 0,
        nan_rate: 0.0,
        missing_partition: None,
        history_days: 7,
        experiments: vec![
            GenExperiment {
                conversion_effect: 0.25,
                revenue_effect: 0.02,
                description: Some("A one-page checkout instead of three steps: more buyers finish.".into()),
                ..GenExperiment::new("checkout-redesign")
            },
            GenExperiment {
                conversion_effect: -0.05,
                error_effect: 0.8,
                description: Some("Recommendations from the new model on the home page.".into()),
                ..GenExperiment::new("new-recommendations")
            },
            GenExperiment {
                coverage: 0.1,
                conversion_effect: 0.03,
                description: Some("Search results ranked by the v2 model, on 10% of traffic.".into()),
                ..GenExperiment::new("search-ranking-v2")
            },
            // The allocation breaks on day 6 of 14: the report should name that day.
            GenExperiment {
                treatment_share: Some(0.55),
                srm_from_day: Some(5),
                conversion_effect: 0.05,
                description: Some("Annual prices shown first on the pricing page.".into()),
                ..GenExperiment::new("pricing-page")
            },
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(experiments: Vec<GenExperiment>) -> GenSpec {
        GenSpec {
            units: 10,
            days: 2,
            end_date: NaiveDate::from_ymd_opt(2026, 11, 20).expect("a date"),
            files_per_day: 1,
            seed: 1,
            unit_ids: UnitIdStyle::String,
            page_views_per_day: 4.0,
            bounce_rate: 0.0,
            purchase_lag_days: 0,
            nan_rate: 0.0,
            missing_partition: None,
            history_days: 0,
            experiments,
        }
    }

    #[test]
    fn two_variants_are_control_and_treatment_split_as_before() {
        let e = GenExperiment::new("x");
        assert_eq!(e.variant_names(), ["control", "treatment"]);
        // The draw that used to be `chance(0.5)`: treatment below 0.5.
        assert_eq!([e.assign(0.0, 0.5), e.assign(0.4999, 0.5), e.assign(0.5, 0.5), e.assign(0.99, 0.5)], [1, 1, 0, 0]);
        assert!(job_toml(&spec(vec![e])).contains("variants = { control = 0.5, treatment = 0.5 }"));
    }

    #[test]
    fn more_variants_are_lettered_and_split_by_their_weights() {
        let e = GenExperiment {
            weights: vec![2.0, 1.0, 1.0],
            conversion_effects: vec![0.0, 0.3],
            ..GenExperiment::new("x")
        };
        assert_eq!(e.variant_names(), ["control", "a", "b"]);
        assert_eq!(e.configured_treatment_share(), 0.5);
        assert_eq!([e.assign(0.1, 0.5), e.assign(0.3, 0.5), e.assign(0.7, 0.5)], [1, 2, 0]);
        assert_eq!([e.conversion_effect_of(1), e.conversion_effect_of(2)], [0.0, 0.3]);
        assert!(job_toml(&spec(vec![e])).contains("variants = { control = 2.0, a = 1.0, b = 1.0 }"));
    }

    #[test]
    fn past_26_treatments_names_go_on_with_two_letters() {
        let e = GenExperiment { weights: vec![1.0; 51], ..GenExperiment::new("x") };
        let names = e.variant_names();
        assert_eq!(
            [&names[1], &names[2], &names[26], &names[27], &names[28], &names[50]],
            ["a", "b", "z", "aa", "ab", "ax"]
        );
        assert_eq!(names.iter().collect::<std::collections::HashSet<_>>().len(), 51, "distinct names");
    }

    #[test]
    fn the_bounce_metric_is_in_the_job_only_with_bounces() {
        let mut s = spec(vec![GenExperiment::new("x")]);
        assert!(!job_toml(&s).contains("bounce"));
        s.bounce_rate = 0.3;
        assert!(job_toml(&s).contains("name = \"bounce_rate\"\nkind = \"proportion\"\nevent = \"bounce\""));
    }

    #[test]
    fn impossible_splits_are_refused() {
        let out = Path::new("/nonexistent");
        for e in [
            GenExperiment { weights: vec![1.0], ..GenExperiment::new("one") },
            GenExperiment { weights: vec![1.0, 0.0], ..GenExperiment::new("zero") },
            GenExperiment { conversion_effects: vec![0.1, 0.2], ..GenExperiment::new("effects") },
        ] {
            assert!(matches!(generate(&spec(vec![e]), out), Err(GenerateError::Spec(_))));
        }
    }

    #[test]
    fn a_purchase_lag_leaves_the_first_days_without_purchases_and_the_rest_unchanged() {
        let plain = spec(vec![GenExperiment { conversion_effect: 3.0, ..GenExperiment::new("x") }]);
        let lagged = GenSpec { purchase_lag_days: 1, units: 400, ..plain.clone() };
        let plain = GenSpec { units: 400, ..plain };
        let purchases = |s: &GenSpec, day: u32| {
            let mut rows = generate_rows(s, day, 0..s.units);
            let events = rows.ev_event.finish();
            events.iter().filter(|e| *e == Some("purchase")).count()
        };
        assert_eq!(purchases(&lagged, 0), 0);
        assert!(purchases(&plain, 0) > 0);
        assert_eq!(purchases(&lagged, 1), purchases(&plain, 1));
    }
}
