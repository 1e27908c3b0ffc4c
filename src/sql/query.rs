//! The common table expressions of the queries, from the datasets to the per-unit metric
//! values, each named after what it holds, and the queries made of them: the
//! sufficient-statistics table and the two per-unit exports.
//!
//! Each step follows `aggregate::fold` and `aggregate::values` (each CTE's comment says what it
//! holds):
//! - exposures: the rows of an experiment's window partitions (`start..=report_date`); a row
//!   without a unit id counts in `exposures_without_unit`, one with a unit but no variant or
//!   timestamp in `exposures_without_variant_or_ts`; a complete row timestamped at or after the
//!   end of the report date is a future exposure, decides nothing, and is only counted.
//! - a unit's variant is the set of variants of its complete window rows; two or more make it
//!   `multi_variant`, one not configured `unknown_variant`; its first exposure is the earliest
//!   of those rows, and its dimension values are those of that row (of rows tied at that
//!   instant, the smallest value, nulls losing, as the engine keeps it).
//! - events: the rows of partitions `first_event_date..=report_date` (one range for all
//!   experiments, as the engine reads them) of an event some experiment uses, attributed to the
//!   experiment's analyzable units: counted when `first exposure <= ts < end of report date`,
//!   pre-exposure when `ts < first exposure`, in the CUPED lookback when also
//!   `ts >= first exposure - lookback`. Null values count for `count` and proportions and add
//!   nothing to sums and maxima; NaN and ±Inf the same, and are `invalid_values`.
//! - per-unit values: `count`, the sum of finite values (0 without), the largest finite value
//!   (0 without), a proportion's 0/1; caps lower values (and CUPED covariates) above the cap,
//!   a percentile cap being the quantile of the experiment's analyzable units' values, computed
//!   in plain SQL with the engine's operations (`aggregate::values::quantile`).
//!
//! Metrics, counters and dimensions are rows of small literal tables joined to the data, not
//! one UNION branch each: an engine that inlines every reference to a CTE (Spark) then plans a
//! query whose size does not grow with the job (one branch per metric ran Spark's driver out
//! of memory on three experiments).

use chrono::NaiveDate;

use super::dialect::{Dialect, comment};
use super::error::SqlError;
use super::source::SqlSource;
use crate::aggregate::Spec;
use crate::aggregate::{ExperimentSpec, MetricPlan, SlotValue};
use crate::config::{Aggregate, Cap, Job, Metric};
use crate::sufficient_table::{SCHEMA_VERSION, Section, column, counter};

/// One of the per-unit exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PerUnitTable {
    /// `allocation.parquet`'s columns: every unit exposed in the window.
    Allocation,
    /// `units.parquet`'s columns: the analyzable units' metric values.
    Units,
}

/// One query under construction: the job, which of the spec's experiments it covers, the
/// dialect and where the data is.
pub(super) struct Query<'a> {
    job: &'a Job,
    spec: &'a Spec,
    experiments: Vec<&'a ExperimentSpec>,
    dialect: Dialect,
    exposures: String,
    events: String,
    /// The exposure partitions read: the covered experiments' earliest start to the report date.
    exposures_from: NaiveDate,
    /// The event partitions read: as the engine reads them for the whole spec.
    events_from: NaiveDate,
}

/// The table's columns after `schema_version` and `report_date`, in order, with their types.
const ROW_COLUMNS: [(&str, Kind); 14] = [
    (column::EXPERIMENT_ID, Kind::Text),
    (column::SECTION, Kind::Text),
    (column::NAME, Kind::Text),
    (column::VARIANT, Kind::Text),
    (column::DAY, Kind::Date),
    (column::DIMENSION, Kind::Text),
    (column::DIMENSION_VALUE, Kind::Text),
    (column::N, Kind::BigInt),
    (column::SUM_Y, Kind::Double),
    (column::SUM_YY, Kind::Double),
    (column::SUM_X, Kind::Double),
    (column::SUM_XX, Kind::Double),
    (column::SUM_XY, Kind::Double),
    (column::CAP_VALUE, Kind::Double),
];

#[derive(Clone, Copy)]
enum Kind {
    Text,
    Date,
    BigInt,
    Double,
}

impl<'a> Query<'a> {
    pub(super) fn new(
        job: &'a Job,
        spec: &'a Spec,
        experiments: Vec<&'a ExperimentSpec>,
        source: &SqlSource,
        dialect: Dialect,
    ) -> Result<Self, SqlError> {
        let (Some(exposures_from), Some(events_from)) =
            (experiments.iter().map(|e| e.start).min(), spec.first_event_date())
        else {
            return Err(SqlError::NoExperiments { job: job.name.clone(), report_date: spec.report_date });
        };
        let (exposures, events) = match source {
            SqlSource::Tables { exposures, events } => (dialect.table_name(exposures), dialect.table_name(events)),
            SqlSource::Files { root } => {
                let root = root.trim_end_matches('/');
                match dialect {
                    Dialect::DuckDb => {
                        let files = |dataset: &str| {
                            format!(
                                "read_parquet({}, hive_partitioning = true, union_by_name = true)",
                                dialect.string(&format!("{root}/{dataset}/*/*.parquet"))
                            )
                        };
                        (files("exposures"), files("events"))
                    }
                    Dialect::Spark => {
                        let files = |dataset: &str| format!("parquet.{}", dialect.ident(&format!("{root}/{dataset}")));
                        (files("exposures"), files("events"))
                    }
                    Dialect::Trino | Dialect::BigQuery => {
                        return Err(SqlError::FilesUnsupported { dialect: dialect.name() });
                    }
                }
            }
        };
        Ok(Self { job, spec, experiments, dialect, exposures, events, exposures_from, events_from })
    }

    fn s(&self, text: &str) -> String {
        self.dialect.string(text)
    }

    fn id(&self, name: &str) -> String {
        self.dialect.ident(name)
    }

    fn end(&self) -> i64 {
        self.spec.end_micros
    }

    fn metric_of(&self, e: &ExperimentSpec, m: usize) -> &'a Metric {
        let experiment =
            self.job.experiments.iter().find(|x| x.id == e.id).expect("the spec's experiments are the job's");
        &self.job.metrics[experiment.metrics[m].metric]
    }

    /// `SELECT a UNION ALL SELECT b …` of `rows`, each a list of `expr AS name`.
    fn literal_rows(&self, rows: &[Vec<(String, &str)>]) -> String {
        rows.iter()
            .map(|row| {
                let items: Vec<String> = row.iter().map(|(expr, name)| format!("{expr} AS {name}")).collect();
                format!("  SELECT {}", items.join(", "))
            })
            .collect::<Vec<_>>()
            .join("\n  UNION ALL\n")
    }

    /// The header comment: what the query computes, for which job, date and experiments.
    fn header(&self, what: &str) -> String {
        let experiments: Vec<String> =
            self.experiments.iter().map(|e| format!("{} (from {})", e.id, e.start)).collect();
        let mut lines = vec![
            format!("-- abreport: {what}"),
            format!(
                "-- job: {}; report date: {}; dialect: {}",
                self.job.name,
                self.spec.report_date,
                self.dialect.name()
            ),
            format!("-- experiments: {}", experiments.join(", ")),
            format!(
                "-- reads exposures of partitions {} to {}, events of {} to {} (`date` partition column)",
                self.exposures_from, self.spec.report_date, self.events_from, self.spec.report_date
            ),
            format!(
                "-- timestamps compared as integer microseconds since the epoch, UTC; end of the report date = {}",
                self.end()
            ),
        ];
        if self.dialect == Dialect::Spark {
            lines.push("-- run with spark.sql.session.timeZone=UTC (naive timestamps are UTC)".into());
        }
        lines.into_iter().map(|l| comment(&l)).collect::<Vec<_>>().join("\n")
    }

    /// The common table expressions up to the per-unit metric values (`metric_values`).
    fn ctes(&self) -> Vec<(&'static str, String, String)> {
        let d = self.dialect;
        let (text, double, bigint) = (d.text_type(), d.double_type(), d.bigint_type());
        let columns = &self.spec.columns;
        let end = self.end();
        let mut ctes: Vec<(&'static str, String, String)> = Vec::new();
        let mut cte = |name: &'static str, why: &str, body: String| ctes.push((name, why.to_string(), body));

        cte(
            "experiments",
            "the experiments, their window's first date and CUPED lookback (microseconds)",
            self.literal_rows(
                &self
                    .experiments
                    .iter()
                    .map(|e| {
                        vec![
                            (format!("CAST({} AS {text})", self.s(&e.id)), "experiment_id"),
                            (d.date(e.start), "start_date"),
                            (format!("CAST({} AS {bigint})", e.lookback_micros), "lookback_us"),
                        ]
                    })
                    .collect::<Vec<_>>(),
            ),
        );
        cte(
            "configured_variants",
            "the variants the job configures, control first",
            self.literal_rows(
                &self
                    .experiments
                    .iter()
                    .flat_map(|e| {
                        e.variants.iter().enumerate().map(move |(rank, v)| {
                            vec![
                                (format!("CAST({} AS {text})", self.s(&e.id)), "experiment_id"),
                                (format!("CAST({} AS {text})", self.s(v)), "variant"),
                                (format!("CAST({rank} AS {bigint})"), "variant_rank"),
                            ]
                        })
                    })
                    .collect::<Vec<_>>(),
            ),
        );
        cte(
            "experiment_events",
            "the events each experiment's metrics read",
            self.literal_rows(
                &self
                    .experiments
                    .iter()
                    .flat_map(|e| {
                        e.slots.iter().map(move |slot| {
                            vec![
                                (format!("CAST({} AS {text})", self.s(&e.id)), "experiment_id"),
                                (format!("CAST({} AS {text})", self.s(&self.spec.events[slot.event])), "event"),
                            ]
                        })
                    })
                    .collect::<Vec<_>>(),
            ),
        );
        cte(
            "experiment_metrics",
            "each experiment's metrics: the event and aggregate of their value (y) and of their ratio denominator or CUPED covariate (x), their cap",
            self.experiment_metrics(),
        );
        let dimensions: Vec<String> = (0..self.spec.dimensions.len()).map(|i| format!("dimension_{}", i + 1)).collect();
        let dimension_columns: String = self
            .spec
            .dimensions
            .iter()
            .zip(&dimensions)
            .map(|(name, alias)| format!(",\n    CAST(x.{} AS {text}) AS {alias}", self.id(name)))
            .collect();
        let date = self.id("date");
        cte(
            "exposure_partitions",
            "every row of the exposure partitions read",
            format!(
                "  SELECT CAST(x.{date} AS DATE) AS partition_date,\n    x.{} AS experiment_id,\n    x.{} AS variant,\n    x.{} AS unit_id,\n    {} AS ts_us{dimension_columns}\n  FROM {} x\n  WHERE CAST(x.{date} AS DATE) BETWEEN {} AND {}",
                self.id(&columns.experiment_id),
                self.id(&columns.variant),
                self.id(&columns.unit_id),
                d.micros(&format!("x.{}", self.id(&columns.exposure_ts))),
                self.exposures,
                d.date(self.exposures_from),
                d.date(self.spec.report_date),
            ),
        );
        cte(
            "exposure_rows",
            "the rows of each experiment's window partitions",
            "  SELECT p.*\n  FROM exposure_partitions p\n  JOIN experiments e ON p.experiment_id = e.experiment_id\n  WHERE p.partition_date >= e.start_date".into(),
        );
        cte(
            "complete_exposures",
            "rows with a unit id, a variant and a timestamp",
            "  SELECT * FROM exposure_rows\n  WHERE unit_id IS NOT NULL AND variant IS NOT NULL AND ts_us IS NOT NULL"
                .into(),
        );
        cte(
            "window_exposures",
            "complete rows before the end of the report date: the ones that decide a unit's variant",
            format!("  SELECT * FROM complete_exposures WHERE ts_us < {end}"),
        );
        cte(
            "unit_variants",
            "each unit's variants in each experiment",
            "  SELECT experiment_id, unit_id, variant, count(*) AS exposures, min(ts_us) AS first_us\n  FROM window_exposures\n  GROUP BY experiment_id, unit_id, variant".into(),
        );
        cte(
            "units",
            "every unit exposed in an experiment's window, with its status",
            format!(
                "  SELECT experiment_id, unit_id, variant, exposures, first_us,\n    CASE WHEN n_variants > 1 THEN 'multi_variant' WHEN n_configured = 0 THEN 'unknown_variant' ELSE 'ok' END AS status\n  FROM (\n    SELECT v.experiment_id, v.unit_id, count(*) AS n_variants, min(v.variant) AS variant,\n      CAST(sum(v.exposures) AS {bigint}) AS exposures, min(v.first_us) AS first_us, count(c.variant) AS n_configured\n    FROM unit_variants v\n    LEFT JOIN configured_variants c ON c.experiment_id = v.experiment_id AND c.variant = v.variant\n    GROUP BY v.experiment_id, v.unit_id\n  ) exposed"
            ),
        );
        cte(
            "analyzable_units",
            "units exposed to exactly one variant, a configured one",
            "  SELECT experiment_id, unit_id, variant, first_us FROM units WHERE status = 'ok'".into(),
        );
        if !dimensions.is_empty() {
            // Of rows tied at the first exposure, the smallest value (`min` skips nulls), as
            // `aggregate::fold` keeps it whatever order it folds the files in.
            let mins: Vec<String> = dimensions.iter().map(|a| format!("min(w.{a}) AS {a}")).collect();
            cte(
                "unit_dimensions",
                "each analyzable unit's dimension values at its first exposure",
                format!(
                    "  SELECT a.experiment_id, a.unit_id, a.variant, {}\n  FROM analyzable_units a\n  JOIN window_exposures w\n    ON w.experiment_id = a.experiment_id AND w.unit_id = a.unit_id AND w.ts_us = a.first_us\n  GROUP BY a.experiment_id, a.unit_id, a.variant",
                    mins.join(", ")
                ),
            );
            cte(
                "dimension_names",
                "the job's dimensions",
                self.literal_rows(
                    &self
                        .spec
                        .dimensions
                        .iter()
                        .enumerate()
                        .map(|(i, name)| {
                            vec![
                                (format!("CAST({} AS {bigint})", i + 1), "dimension_index"),
                                (format!("CAST({} AS {text})", self.s(name)), "dimension"),
                            ]
                        })
                        .collect::<Vec<_>>(),
                ),
            );
            let cases: String =
                dimensions.iter().enumerate().map(|(i, alias)| format!(" WHEN {} THEN u.{alias}", i + 1)).collect();
            cte(
                "unit_dimension_values",
                "the same, one row per unit and dimension",
                format!(
                    "  SELECT u.experiment_id, u.unit_id, u.variant, k.dimension,\n    CASE k.dimension_index{cases} END AS dimension_value\n  FROM unit_dimensions u\n  CROSS JOIN dimension_names k"
                ),
            );
        }
        cte(
            "future_units",
            "units with complete rows after the end of the report date, and whether they also have window rows",
            format!(
                "  SELECT experiment_id, unit_id,\n    max(CASE WHEN ts_us < {end} THEN 1 ELSE 0 END) AS in_window,\n    max(CASE WHEN ts_us >= {end} THEN 1 ELSE 0 END) AS future\n  FROM complete_exposures\n  GROUP BY experiment_id, unit_id"
            ),
        );
        cte(
            "event_partitions",
            "every row of the event partitions read",
            format!(
                "  SELECT CAST(v.{date} AS DATE) AS partition_date,\n    v.{} AS unit_id,\n    v.{} AS event,\n    CAST(v.{} AS {double}) AS value,\n    {} AS ts_us\n  FROM {} v\n  WHERE CAST(v.{date} AS DATE) BETWEEN {} AND {}",
                self.id(&columns.unit_id),
                self.id(&columns.event),
                self.id(&columns.value),
                d.micros(&format!("v.{}", self.id(&columns.event_ts))),
                self.events,
                d.date(self.events_from),
                d.date(self.spec.report_date),
            ),
        );
        let used: Vec<String> = {
            let mut names: Vec<&str> = self
                .experiments
                .iter()
                .flat_map(|e| e.slots.iter().map(|s| self.spec.events[s.event].as_str()))
                .collect();
            names.sort_unstable();
            names.dedup();
            names.into_iter().map(|n| self.s(n)).collect()
        };
        cte(
            "needed_events",
            "rows of an event some experiment uses",
            format!("  SELECT * FROM event_partitions WHERE event IN ({})", used.join(", ")),
        );
        let finite = d.is_finite("n.value");
        cte(
            "attributed_events",
            "complete event rows of analyzable units, per experiment: counted, pre-exposure, in the CUPED lookback",
            format!(
                "  SELECT a.experiment_id, a.unit_id, n.event, n.value,\n    CASE WHEN n.ts_us >= a.first_us AND n.ts_us < {end} THEN 1 ELSE 0 END AS counted,\n    CASE WHEN n.ts_us < a.first_us THEN 1 ELSE 0 END AS pre_exposure,\n    CASE WHEN n.ts_us < a.first_us AND n.ts_us >= a.first_us - e.lookback_us THEN 1 ELSE 0 END AS in_lookback,\n    CASE WHEN n.value IS NOT NULL AND {finite} THEN 1 ELSE 0 END AS finite,\n    CASE WHEN n.value IS NOT NULL AND NOT ({finite}) THEN 1 ELSE 0 END AS invalid\n  FROM needed_events n\n  JOIN experiment_events x ON x.event = n.event\n  JOIN analyzable_units a ON a.experiment_id = x.experiment_id AND a.unit_id = n.unit_id\n  JOIN experiments e ON e.experiment_id = a.experiment_id\n  WHERE n.ts_us IS NOT NULL"
            ),
        );
        cte(
            "unit_event_totals",
            "per unit and event: counted events, sum and maximum of finite values; the same over the lookback",
            "  SELECT experiment_id, unit_id, event,\n    sum(counted) AS n_events,\n    sum(CASE WHEN counted = 1 AND finite = 1 THEN value END) AS sum_value,\n    max(CASE WHEN counted = 1 AND finite = 1 THEN value END) AS max_value,\n    sum(in_lookback) AS pre_n_events,\n    sum(CASE WHEN in_lookback = 1 AND finite = 1 THEN value END) AS pre_sum_value,\n    max(CASE WHEN in_lookback = 1 AND finite = 1 THEN value END) AS pre_max_value\n  FROM attributed_events\n  GROUP BY experiment_id, unit_id, event".into(),
        );
        cte(
            "metric_values_uncapped",
            "each analyzable unit's value of each metric (y) and its ratio denominator or CUPED covariate (x)",
            format!(
                "  SELECT a.experiment_id, d.metric, a.unit_id, a.variant, a.first_us,\n    {} AS y,\n    CASE WHEN d.x_event IS NULL THEN CAST(NULL AS {double})\n      WHEN d.x_pre = 1 THEN {}\n      ELSE {} END AS x\n  FROM analyzable_units a\n  JOIN experiment_metrics d ON d.experiment_id = a.experiment_id\n  LEFT JOIN unit_event_totals ty\n    ON ty.experiment_id = a.experiment_id AND ty.unit_id = a.unit_id AND ty.event = d.y_event\n  LEFT JOIN unit_event_totals tx\n    ON tx.experiment_id = a.experiment_id AND tx.unit_id = a.unit_id AND tx.event = d.x_event",
                self.unit_value("d.y_aggregate", "ty.", ""),
                self.unit_value("d.x_aggregate", "tx.", "pre_"),
                self.unit_value("d.x_aggregate", "tx.", ""),
            ),
        );
        cte(
            "percentile_cap_ranks",
            "the values of metrics with a percentile cap, ranked within their experiment",
            "  SELECT m.experiment_id, m.metric, m.y, d.cap_percentile,\n    row_number() OVER (PARTITION BY m.experiment_id, m.metric ORDER BY m.y) - 1 AS k,\n    count(*) OVER (PARTITION BY m.experiment_id, m.metric) AS n\n  FROM metric_values_uncapped m\n  JOIN experiment_metrics d ON d.experiment_id = m.experiment_id AND d.metric = m.metric\n  WHERE d.cap_percentile IS NOT NULL".into(),
        );
        cte(
            "metric_caps",
            "each capped metric's cap: the given value, or the quantile of its values with linear interpolation between order statistics (numpy's default, as aggregate::values::quantile computes it, operation for operation)",
            format!(
                "  SELECT experiment_id, metric, cap_absolute AS cap_value FROM experiment_metrics WHERE cap_absolute IS NOT NULL\n  UNION ALL\n  SELECT experiment_id, metric, lower_value + (upper_value - lower_value) * (position - floor(position)) AS cap_value\n  FROM (\n    SELECT experiment_id, metric, position,\n      max(CASE WHEN k = floor(position) THEN y END) AS lower_value,\n      max(CASE WHEN k = ceil(position) THEN y END) AS upper_value\n    FROM (SELECT experiment_id, metric, y, k, cap_percentile * CAST(n - 1 AS {double}) AS position FROM percentile_cap_ranks) ranked\n    GROUP BY experiment_id, metric, position\n  ) bounds"
            ),
        );
        cte(
            "metric_values",
            "the values and covariates, capped",
            "  SELECT m.experiment_id, m.metric, m.unit_id, m.variant, m.first_us,\n    CASE WHEN m.y > c.cap_value THEN c.cap_value ELSE m.y END AS y,\n    CASE WHEN m.x > c.cap_value THEN c.cap_value ELSE m.x END AS x\n  FROM metric_values_uncapped m\n  LEFT JOIN metric_caps c ON c.experiment_id = m.experiment_id AND c.metric = m.metric".into(),
        );
        ctes
    }

    /// A unit's value from its totals of one event (`t` the totals' alias with a dot, `pre`
    /// the prefix of the lookback's columns) by `aggregate`, a column holding `any` (a
    /// proportion: 1 with an event, else 0), `count`, `sum` (of finite values, 0 without) or
    /// `max` (the largest finite value, 0 without).
    fn unit_value(&self, aggregate: &str, t: &str, pre: &str) -> String {
        let double = self.dialect.double_type();
        format!(
            "CASE {aggregate} WHEN 'any' THEN CAST(CASE WHEN coalesce({t}{pre}n_events, 0) > 0 THEN 1 ELSE 0 END AS {double}) WHEN 'count' THEN CAST(coalesce({t}{pre}n_events, 0) AS {double}) WHEN 'sum' THEN coalesce({t}{pre}sum_value, CAST(0 AS {double})) ELSE coalesce({t}{pre}max_value, CAST(0 AS {double})) END"
        )
    }

    /// `experiment_metrics`: per experiment and metric, how its per-unit value (`y`) and its
    /// ratio denominator or CUPED covariate (`x`, from the lookback when `x_pre = 1`) are made
    /// from one event's totals each, and its cap (ratio metrics are never capped).
    fn experiment_metrics(&self) -> String {
        let d = self.dialect;
        let (text, double, bigint) = (d.text_type(), d.double_type(), d.bigint_type());
        let aggregate = |a: Aggregate| a.name();
        let mut rows = Vec::new();
        for e in &self.experiments {
            for (m, (plan, cuped)) in e.metrics.iter().zip(&e.cuped).enumerate() {
                let metric = self.metric_of(e, m);
                let event = |slot: usize| self.spec.events[e.slots[slot].event].as_str();
                let (kind, y, x, x_pre) = match *plan {
                    MetricPlan::Proportion { slot } => {
                        ("proportion", (event(slot), "any"), cuped.then(|| (event(slot), "any")), *cuped)
                    }
                    MetricPlan::Mean(SlotValue { slot, aggregate: a }) => {
                        ("mean", (event(slot), aggregate(a)), cuped.then(|| (event(slot), aggregate(a))), *cuped)
                    }
                    MetricPlan::Ratio { numerator, denominator } => (
                        "ratio",
                        (event(numerator.slot), aggregate(numerator.aggregate)),
                        Some((event(denominator.slot), aggregate(denominator.aggregate))),
                        false,
                    ),
                };
                let cap = if kind == "ratio" { None } else { metric.cap };
                let text_or_null = |v: Option<&str>| match v {
                    Some(v) => format!("CAST({} AS {text})", self.s(v)),
                    None => format!("CAST(NULL AS {text})"),
                };
                let number_or_null = |v: Option<f64>| match v {
                    Some(v) => format!("CAST({v:?} AS {double})"),
                    None => format!("CAST(NULL AS {double})"),
                };
                rows.push(vec![
                    (format!("CAST({} AS {text})", self.s(&e.id)), "experiment_id"),
                    (format!("CAST({} AS {text})", self.s(&metric.name)), "metric"),
                    (format!("CAST({} AS {bigint})", i64::from(m == 0)), "is_primary"),
                    (format!("CAST({} AS {text})", self.s(kind)), "kind"),
                    (format!("CAST({} AS {text})", self.s(y.0)), "y_event"),
                    (format!("CAST({} AS {text})", self.s(y.1)), "y_aggregate"),
                    (text_or_null(x.map(|x| x.0)), "x_event"),
                    (text_or_null(x.map(|x| x.1)), "x_aggregate"),
                    (format!("CAST({} AS {bigint})", i64::from(x_pre)), "x_pre"),
                    (
                        number_or_null(match cap {
                            Some(Cap::Absolute(v)) => Some(v),
                            _ => None,
                        }),
                        "cap_absolute",
                    ),
                    (
                        number_or_null(match cap {
                            Some(Cap::Percentile(q)) => Some(q),
                            _ => None,
                        }),
                        "cap_percentile",
                    ),
                ]);
            }
        }
        self.literal_rows(&rows)
    }

    /// `WITH name AS (…), …` of `ctes`.
    fn with(ctes: &[(&'static str, String, String)]) -> String {
        let parts: Vec<String> =
            ctes.iter().map(|(name, why, body)| format!("-- {}\n{name} AS (\n{body}\n)", comment(why))).collect();
        format!("WITH\n{}", parts.join(",\n"))
    }

    /// One `sufficient_rows` branch: `values` for some of the row columns, typed NULLs for the
    /// others, then `rest` (FROM …).
    fn row(&self, values: &[(&str, String)], rest: &str) -> String {
        let d = self.dialect;
        let items: Vec<String> = ROW_COLUMNS
            .iter()
            .map(|(name, kind)| {
                let ty = match kind {
                    Kind::Text => d.text_type(),
                    Kind::Date => "DATE",
                    Kind::BigInt => d.bigint_type(),
                    Kind::Double => d.double_type(),
                };
                match values.iter().find(|(n, _)| n == name) {
                    Some((_, expr)) => format!("CAST({expr} AS {ty}) AS {name}"),
                    None => format!("CAST(NULL AS {ty}) AS {name}"),
                }
            })
            .collect();
        format!("  SELECT {}\n  {rest}", items.join(", "))
    }

    /// The sufficient-statistics table (docs/sufficient-stats.md).
    pub(super) fn sufficient_stats(&self) -> String {
        let d = self.dialect;
        let end = self.end();
        let mut ctes = self.ctes();
        ctes.push((
            "experiment_counters",
            "the fourteen counters of each experiment, zeros included".into(),
            format!(
                "  SELECT e.experiment_id,
    coalesce(u.all_units, 0) AS all_units,
    coalesce(u.multi_variant_units, 0) AS multi_variant_units,
    coalesce(u.unknown_variant_units, 0) AS unknown_variant_units,
    coalesce(r.exposure_rows, 0) AS exposure_rows,
    coalesce(v.counted_events, 0) AS counted_events,
    coalesce(v.invalid_values, 0) AS invalid_values,
    coalesce(v.pre_exposure_events, 0) AS pre_exposure_events,
    coalesce(r.future_exposure_rows, 0) AS future_exposure_rows,
    coalesce(f.future_exposure_units, 0) AS future_exposure_units,
    coalesce(f.future_only_units, 0) AS future_only_units,
    coalesce(r.exposures_without_unit, 0) AS exposures_without_unit,
    coalesce(r.exposures_without_variant_or_ts, 0) AS exposures_without_variant_or_ts,
    coalesce(i.events_without_unit, 0) AS events_without_unit,
    coalesce(i.events_without_ts, 0) AS events_without_ts
  FROM experiments e
  LEFT JOIN (
    SELECT experiment_id,
      sum(CASE WHEN unit_id IS NULL THEN 1 ELSE 0 END) AS exposures_without_unit,
      sum(CASE WHEN unit_id IS NOT NULL AND (variant IS NULL OR ts_us IS NULL) THEN 1 ELSE 0 END) AS exposures_without_variant_or_ts,
      sum(CASE WHEN unit_id IS NOT NULL AND variant IS NOT NULL AND ts_us < {end} THEN 1 ELSE 0 END) AS exposure_rows,
      sum(CASE WHEN unit_id IS NOT NULL AND variant IS NOT NULL AND ts_us >= {end} THEN 1 ELSE 0 END) AS future_exposure_rows
    FROM exposure_rows
    GROUP BY experiment_id
  ) r ON r.experiment_id = e.experiment_id
  LEFT JOIN (
    SELECT experiment_id, count(*) AS all_units,
      sum(CASE WHEN status = 'multi_variant' THEN 1 ELSE 0 END) AS multi_variant_units,
      sum(CASE WHEN status = 'unknown_variant' THEN 1 ELSE 0 END) AS unknown_variant_units
    FROM units
    GROUP BY experiment_id
  ) u ON u.experiment_id = e.experiment_id
  LEFT JOIN (
    SELECT experiment_id, sum(future) AS future_exposure_units,
      sum(CASE WHEN future = 1 AND in_window = 0 THEN 1 ELSE 0 END) AS future_only_units
    FROM future_units
    GROUP BY experiment_id
  ) f ON f.experiment_id = e.experiment_id
  LEFT JOIN (
    SELECT experiment_id, sum(counted) AS counted_events,
      sum(CASE WHEN counted = 1 AND invalid = 1 THEN 1 ELSE 0 END) AS invalid_values,
      sum(pre_exposure) AS pre_exposure_events
    FROM attributed_events
    GROUP BY experiment_id
  ) v ON v.experiment_id = e.experiment_id
  LEFT JOIN (
    -- rows of an experiment's events in its window's partitions that cannot be attributed
    SELECT x.experiment_id,
      sum(CASE WHEN n.unit_id IS NULL THEN 1 ELSE 0 END) AS events_without_unit,
      sum(CASE WHEN n.unit_id IS NOT NULL AND n.ts_us IS NULL THEN 1 ELSE 0 END) AS events_without_ts
    FROM needed_events n
    JOIN experiment_events x ON x.event = n.event
    JOIN experiments w ON w.experiment_id = x.experiment_id
    WHERE n.partition_date >= w.start_date AND (n.unit_id IS NULL OR n.ts_us IS NULL)
    GROUP BY x.experiment_id
  ) i ON i.experiment_id = e.experiment_id"
            ),
        ));
        ctes.push((
            "cap_rows",
            "each capped metric's cap and the units above it".into(),
            "  SELECT c.experiment_id, c.metric, c.cap_value, count(m.unit_id) AS capped_units\n  FROM metric_caps c\n  LEFT JOIN metric_values_uncapped m\n    ON m.experiment_id = c.experiment_id AND m.metric = c.metric AND m.y > c.cap_value\n  WHERE c.cap_value IS NOT NULL\n  GROUP BY c.experiment_id, c.metric, c.cap_value".into(),
        ));
        ctes.push((
            "counter_names",
            "the table's counters".into(),
            self.literal_rows(
                &counter::ALL
                    .iter()
                    .map(|name| vec![(format!("CAST({} AS {})", self.s(name), d.text_type()), "name")])
                    .collect::<Vec<_>>(),
            ),
        ));
        ctes.push((
            "partition_rows",
            "rows per partition date read, per dataset".into(),
            "  SELECT 'exposures' AS dataset, partition_date, count(*) AS n FROM exposure_partitions GROUP BY partition_date\n  UNION ALL\n  SELECT 'events' AS dataset, partition_date, count(*) AS n FROM event_partitions GROUP BY partition_date".into(),
        ));

        let section = |s: Section| self.s(s.name());
        let mut rows: Vec<String> = Vec::new();
        let counter_cases: String =
            counter::ALL.iter().map(|name| format!(" WHEN {} THEN c.{name}", self.s(name))).collect();
        rows.push(self.row(
            &[
                (column::EXPERIMENT_ID, "c.experiment_id".into()),
                (column::SECTION, section(Section::Counter)),
                (column::NAME, "k.name".into()),
                (column::N, format!("CASE k.name{counter_cases} END")),
            ],
            "FROM experiment_counters c CROSS JOIN counter_names k",
        ));
        rows.push(self.row(
            &[
                (column::EXPERIMENT_ID, "experiment_id".into()),
                (column::SECTION, section(Section::Variant)),
                (column::VARIANT, "variant".into()),
                (column::N, "count(*)".into()),
            ],
            "FROM analyzable_units GROUP BY experiment_id, variant",
        ));
        rows.push(self.row(
            &[
                (column::EXPERIMENT_ID, "w.experiment_id".into()),
                (column::SECTION, section(Section::UnknownVariant)),
                (column::VARIANT, "w.variant".into()),
                (column::N, "count(*)".into()),
            ],
            "FROM window_exposures w\n  LEFT JOIN configured_variants c ON c.experiment_id = w.experiment_id AND c.variant = w.variant\n  WHERE c.variant IS NULL GROUP BY w.experiment_id, w.variant",
        ));
        let day = d.date_of_micros("first_us");
        rows.push(self.row(
            &[
                (column::EXPERIMENT_ID, "experiment_id".into()),
                (column::SECTION, section(Section::Day)),
                (column::VARIANT, "variant".into()),
                (column::DAY, day.clone()),
                (column::N, "count(*)".into()),
            ],
            &format!("FROM analyzable_units GROUP BY experiment_id, variant, {day}"),
        ));
        if !self.spec.dimensions.is_empty() {
            rows.push(self.row(
                &[
                    (column::EXPERIMENT_ID, "experiment_id".into()),
                    (column::SECTION, section(Section::Dimension)),
                    (column::VARIANT, "variant".into()),
                    (column::DIMENSION, "dimension".into()),
                    (column::DIMENSION_VALUE, "dimension_value".into()),
                    (column::N, "count(*)".into()),
                ],
                "FROM unit_dimension_values GROUP BY experiment_id, variant, dimension, dimension_value",
            ));
        }
        let sums = [
            (column::SUM_Y, "sum(m.y)".to_string()),
            (column::SUM_YY, "sum(m.y * m.y)".into()),
            (column::SUM_X, "sum(m.x)".into()),
            (column::SUM_XX, "sum(m.x * m.x)".into()),
            (column::SUM_XY, "sum(m.x * m.y)".into()),
        ];
        let mut metric = vec![
            (column::EXPERIMENT_ID, "m.experiment_id".to_string()),
            (column::SECTION, section(Section::Metric)),
            (column::NAME, "m.metric".into()),
            (column::VARIANT, "m.variant".into()),
            (column::N, "count(*)".into()),
        ];
        // x is null for metrics without a denominator or covariate, and so are its sums.
        metric.extend(sums.clone());
        rows.push(self.row(&metric, "FROM metric_values m GROUP BY m.experiment_id, m.metric, m.variant"));
        if !self.spec.dimensions.is_empty() {
            // The primary metric's; x (and its sums) only for a ratio's denominator.
            let mut values = vec![
                (column::EXPERIMENT_ID, "m.experiment_id".to_string()),
                (column::SECTION, section(Section::MetricDimension)),
                (column::NAME, "m.metric".into()),
                (column::VARIANT, "m.variant".into()),
                (column::DIMENSION, "u.dimension".into()),
                (column::DIMENSION_VALUE, "u.dimension_value".into()),
                (column::N, "count(*)".into()),
            ];
            values.extend(sums);
            rows.push(self.row(
                &values,
                "FROM (\n    SELECT v.experiment_id, v.metric, v.unit_id, v.variant, v.y, CASE WHEN d.kind = 'ratio' THEN v.x END AS x\n    FROM metric_values v\n    JOIN experiment_metrics d ON d.experiment_id = v.experiment_id AND d.metric = v.metric AND d.is_primary = 1\n  ) m\n  JOIN unit_dimension_values u ON u.experiment_id = m.experiment_id AND u.unit_id = m.unit_id\n  GROUP BY m.experiment_id, m.metric, m.variant, u.dimension, u.dimension_value",
            ));
        }
        rows.push(self.row(
            &[
                (column::EXPERIMENT_ID, "experiment_id".into()),
                (column::SECTION, section(Section::Cap)),
                (column::NAME, "metric".into()),
                (column::N, "capped_units".into()),
                (column::CAP_VALUE, "cap_value".into()),
            ],
            "FROM cap_rows",
        ));
        rows.push(self.row(
            &[
                (column::EXPERIMENT_ID, "e.experiment_id".into()),
                (column::SECTION, section(Section::Partition)),
                (column::NAME, "p.dataset".into()),
                (column::DAY, "p.partition_date".into()),
                (column::N, "p.n".into()),
            ],
            "FROM partition_rows p CROSS JOIN experiments e",
        ));
        ctes.push(("sufficient_rows", "every row of the table, by section".into(), rows.join("\n  UNION ALL\n")));

        let outer: Vec<String> =
            std::iter::once(format!("CAST({SCHEMA_VERSION} AS {}) AS schema_version", d.int_type()))
                .chain(std::iter::once(format!("{} AS report_date", d.date(self.spec.report_date))))
                .chain(ROW_COLUMNS.iter().map(|(name, _)| name.to_string()))
                .collect();
        format!(
            "{}\n{}\nSELECT {}\nFROM sufficient_rows\nORDER BY experiment_id, section, name, variant, day, dimension, dimension_value\n",
            self.header(&format!("the sufficient-statistics table, schema version {SCHEMA_VERSION}")),
            Self::with(&ctes),
            outer.join(",\n  ")
        )
    }

    /// One per-unit export of the (single) experiment of the query.
    pub(super) fn per_unit(&self, table: PerUnitTable) -> String {
        let d = self.dialect;
        let e = self.experiments[0];
        let mut ctes = self.ctes();
        let ts = |micros: &str| format!("{} AS first_exposure_ts", d.timestamp_of_micros(micros));
        let body = match table {
            PerUnitTable::Allocation => {
                let n_configured = e.variants.len();
                ctes.push((
                    "multi_variant_names",
                    "a multi-variant unit's variants, `|`-joined: configured ones in the job's order, then unknown ones by name".into(),
                    format!(
                        "  SELECT v.experiment_id, v.unit_id, {} AS variants\n  FROM unit_variants v\n  JOIN units u ON u.experiment_id = v.experiment_id AND u.unit_id = v.unit_id AND u.status = 'multi_variant'\n  LEFT JOIN configured_variants c ON c.experiment_id = v.experiment_id AND c.variant = v.variant\n  GROUP BY v.experiment_id, v.unit_id",
                        d.ordered_join("v.variant", &[&format!("coalesce(c.variant_rank, {n_configured})"), "v.variant"])
                    ),
                ));
                format!(
                    "SELECT u.unit_id,\n  CASE WHEN u.status = 'multi_variant' THEN n.variants ELSE u.variant END AS variant,\n  {},\n  u.exposures AS exposures,\n  u.status AS status\nFROM units u\nLEFT JOIN multi_variant_names n ON n.experiment_id = u.experiment_id AND n.unit_id = u.unit_id\nWHERE u.experiment_id = {}\n",
                    ts("u.first_us"),
                    self.s(&e.id)
                )
            }
            PerUnitTable::Units => {
                let mut columns = vec!["m.unit_id".to_string(), "m.variant".into(), ts("m.first_us")];
                for (m, (plan, cuped)) in e.metrics.iter().zip(&e.cuped).enumerate() {
                    let name = &self.metric_of(e, m).name;
                    let of = |v: &str, column: &str| {
                        format!("max(CASE WHEN m.metric = {} THEN m.{v} END) AS {}", self.s(name), self.id(column))
                    };
                    match plan {
                        MetricPlan::Ratio { .. } => {
                            columns.push(of("y", &format!("{name}_numerator")));
                            columns.push(of("x", &format!("{name}_denominator")));
                        }
                        _ => {
                            columns.push(of("y", name));
                            if *cuped {
                                columns.push(of("x", &format!("{name}_pre")));
                            }
                        }
                    }
                }
                format!(
                    "SELECT {}\nFROM metric_values m\nWHERE m.experiment_id = {}\nGROUP BY m.unit_id, m.variant, m.first_us\n",
                    columns.join(",\n  "),
                    self.s(&e.id)
                )
            }
        };
        let what = match table {
            PerUnitTable::Allocation => "allocation.parquet's rows",
            PerUnitTable::Units => "units.parquet's rows",
        };
        format!("{}\n{}\n{body}", self.header(&format!("{what} of experiment {}", e.id)), Self::with(&ctes))
    }
}
