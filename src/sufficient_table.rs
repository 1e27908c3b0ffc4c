//! The sufficient-statistics table's schema (docs/sufficient-stats.md), version 1: its columns,
//! sections and counters by name, and its Arrow schema. Shared by the reader of a
//! `sufficient_stats` source (`source`), the conversion to what `analyze` reads
//! (`aggregate::sufficient`) and the SQL that computes it (`sql`).

/// The version of the table's schema; a reader refuses any other.
pub const SCHEMA_VERSION: i32 = 1;

/// Column names, in the table's order.
pub mod column {
    pub const SCHEMA_VERSION: &str = "schema_version";
    pub const REPORT_DATE: &str = "report_date";
    pub const EXPERIMENT_ID: &str = "experiment_id";
    pub const SECTION: &str = "section";
    pub const NAME: &str = "name";
    pub const VARIANT: &str = "variant";
    pub const DAY: &str = "day";
    pub const DIMENSION: &str = "dimension";
    pub const DIMENSION_VALUE: &str = "dimension_value";
    pub const N: &str = "n";
    pub const SUM_Y: &str = "sum_y";
    pub const SUM_YY: &str = "sum_yy";
    pub const SUM_X: &str = "sum_x";
    pub const SUM_XX: &str = "sum_xx";
    pub const SUM_XY: &str = "sum_xy";
    pub const CAP_VALUE: &str = "cap_value";
}

/// What a row counts (the `section` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Counter,
    Variant,
    UnknownVariant,
    Day,
    Dimension,
    Metric,
    MetricDimension,
    Cap,
    Partition,
}

impl Section {
    pub const ALL: [Section; 9] = [
        Section::Counter,
        Section::Variant,
        Section::UnknownVariant,
        Section::Day,
        Section::Dimension,
        Section::Metric,
        Section::MetricDimension,
        Section::Cap,
        Section::Partition,
    ];

    /// The word the `section` column holds.
    pub fn name(self) -> &'static str {
        match self {
            Section::Counter => "counter",
            Section::Variant => "variant",
            Section::UnknownVariant => "unknown_variant",
            Section::Day => "day",
            Section::Dimension => "dimension",
            Section::Metric => "metric",
            Section::MetricDimension => "metric_dimension",
            Section::Cap => "cap",
            Section::Partition => "partition",
        }
    }

    pub fn parse(word: &str) -> Option<Section> {
        Section::ALL.into_iter().find(|s| s.name() == word)
    }
}

/// The experiment-level counters (`section = 'counter'`), by the word in `name`.
pub mod counter {
    pub const ALL_UNITS: &str = "all_units";
    pub const MULTI_VARIANT_UNITS: &str = "multi_variant_units";
    pub const UNKNOWN_VARIANT_UNITS: &str = "unknown_variant_units";
    pub const EXPOSURE_ROWS: &str = "exposure_rows";
    pub const COUNTED_EVENTS: &str = "counted_events";
    pub const INVALID_VALUES: &str = "invalid_values";
    pub const PRE_EXPOSURE_EVENTS: &str = "pre_exposure_events";
    pub const FUTURE_EXPOSURE_ROWS: &str = "future_exposure_rows";
    pub const FUTURE_EXPOSURE_UNITS: &str = "future_exposure_units";
    pub const FUTURE_ONLY_UNITS: &str = "future_only_units";
    pub const EXPOSURES_WITHOUT_UNIT: &str = "exposures_without_unit";
    pub const EXPOSURES_WITHOUT_VARIANT_OR_TS: &str = "exposures_without_variant_or_ts";
    pub const EVENTS_WITHOUT_UNIT: &str = "events_without_unit";
    pub const EVENTS_WITHOUT_TS: &str = "events_without_ts";

    /// Every counter; each experiment of a table has a row for each.
    pub const ALL: [&str; 14] = [
        ALL_UNITS,
        MULTI_VARIANT_UNITS,
        UNKNOWN_VARIANT_UNITS,
        EXPOSURE_ROWS,
        COUNTED_EVENTS,
        INVALID_VALUES,
        PRE_EXPOSURE_EVENTS,
        FUTURE_EXPOSURE_ROWS,
        FUTURE_EXPOSURE_UNITS,
        FUTURE_ONLY_UNITS,
        EXPOSURES_WITHOUT_UNIT,
        EXPOSURES_WITHOUT_VARIANT_OR_TS,
        EVENTS_WITHOUT_UNIT,
        EVENTS_WITHOUT_TS,
    ];
}

/// The table's Arrow schema.
pub fn schema() -> arrow::datatypes::SchemaRef {
    use arrow::datatypes::{DataType, Field, Schema};
    let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    let number = |name: &str| Field::new(name, DataType::Float64, true);
    std::sync::Arc::new(Schema::new(vec![
        Field::new(column::SCHEMA_VERSION, DataType::Int32, false),
        Field::new(column::REPORT_DATE, DataType::Date32, false),
        text(column::EXPERIMENT_ID, false),
        text(column::SECTION, false),
        text(column::NAME, true),
        text(column::VARIANT, true),
        Field::new(column::DAY, DataType::Date32, true),
        text(column::DIMENSION, true),
        text(column::DIMENSION_VALUE, true),
        Field::new(column::N, DataType::Int64, false),
        number(column::SUM_Y),
        number(column::SUM_YY),
        number(column::SUM_X),
        number(column::SUM_XX),
        number(column::SUM_XY),
        number(column::CAP_VALUE),
    ]))
}
