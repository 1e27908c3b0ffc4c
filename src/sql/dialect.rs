//! What differs between the SQL dialects the queries are written in: quoting, type names, and
//! the few functions without a common spelling (timestamps as integer microseconds, finite
//! tests, ordered string aggregation, dates from day numbers). Everything else in
//! the queries is plain SQL that all four engines read the same way.

/// The SQL dialect a query is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Dialect {
    Spark,
    #[value(name = "duckdb")]
    DuckDb,
    Trino,
    #[value(name = "bigquery")]
    BigQuery,
}

impl Dialect {
    /// The dialect's name on the command line and in the queries' header.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Spark => "spark",
            Dialect::DuckDb => "duckdb",
            Dialect::Trino => "trino",
            Dialect::BigQuery => "bigquery",
        }
    }

    /// `name` as a quoted identifier: DuckDB and Trino quote with `"` (doubled inside), Spark
    /// with backticks (doubled inside), BigQuery with backticks (backslash escapes inside).
    pub fn ident(self, name: &str) -> String {
        match self {
            Dialect::DuckDb | Dialect::Trino => format!("\"{}\"", name.replace('"', "\"\"")),
            Dialect::Spark => format!("`{}`", name.replace('`', "``")),
            Dialect::BigQuery => format!("`{}`", backslash_escaped(name, '`')),
        }
    }

    /// A dotted table name (`catalog.schema.table`), each part quoted.
    pub fn table_name(self, name: &str) -> String {
        name.split('.').map(|part| self.ident(part)).collect::<Vec<_>>().join(".")
    }

    /// `text` as a string literal: DuckDB and Trino double `'` (standard SQL); Spark and
    /// BigQuery read backslash escapes in literals, so backslashes, quotes and line breaks are
    /// escaped with a backslash.
    pub fn string(self, text: &str) -> String {
        match self {
            Dialect::DuckDb | Dialect::Trino => format!("'{}'", text.replace('\'', "''")),
            Dialect::Spark | Dialect::BigQuery => format!("'{}'", backslash_escaped(text, '\'')),
        }
    }

    /// A date literal.
    pub fn date(self, date: chrono::NaiveDate) -> String {
        format!("DATE '{date}'")
    }

    pub fn text_type(self) -> &'static str {
        match self {
            Dialect::DuckDb | Dialect::Trino => "VARCHAR",
            Dialect::Spark | Dialect::BigQuery => "STRING",
        }
    }

    pub fn double_type(self) -> &'static str {
        match self {
            Dialect::BigQuery => "FLOAT64",
            _ => "DOUBLE",
        }
    }

    pub fn bigint_type(self) -> &'static str {
        match self {
            Dialect::BigQuery => "INT64",
            _ => "BIGINT",
        }
    }

    /// The 32-bit integer of `schema_version` (BigQuery has only 64-bit integers; the reader
    /// accepts any integer width).
    pub fn int_type(self) -> &'static str {
        match self {
            Dialect::DuckDb | Dialect::Trino => "INTEGER",
            Dialect::Spark => "INT",
            Dialect::BigQuery => "INT64",
        }
    }

    /// A timestamp column as integer microseconds since the epoch, a naive timestamp read as
    /// UTC (the contract). Spark's `unix_micros(CAST(ts AS TIMESTAMP))` reads a TIMESTAMP_NTZ
    /// in the session time zone (checked: a session in `Asia/Bangkok` moves it by 7 hours): the
    /// query relies on `spark.sql.session.timeZone=UTC`, which the pipeline's Spark session
    /// sets first. Trino has no integer conversion: the seconds
    /// of `to_unixtime` (a double, exact to well under a microsecond for dates of this
    /// century) are rounded to microseconds; the column must be a naive `timestamp`.
    pub fn micros(self, ts: &str) -> String {
        match self {
            Dialect::DuckDb => format!("epoch_us({ts})"),
            Dialect::Spark => format!("unix_micros(CAST({ts} AS TIMESTAMP))"),
            Dialect::Trino => format!("CAST(round(to_unixtime(with_timezone({ts}, 'UTC')) * 1000000) AS BIGINT)"),
            Dialect::BigQuery => format!("UNIX_MICROS(CAST({ts} AS TIMESTAMP))"),
        }
    }

    /// Integer microseconds since the epoch as a timestamp (UTC).
    pub fn timestamp_of_micros(self, micros: &str) -> String {
        match self {
            Dialect::DuckDb => format!("make_timestamp({micros})"),
            Dialect::Spark => format!("timestamp_micros({micros})"),
            Dialect::Trino => format!("from_unixtime_nanos({micros} * 1000)"),
            Dialect::BigQuery => format!("TIMESTAMP_MICROS({micros})"),
        }
    }

    /// The UTC date of integer microseconds since the epoch.
    pub fn date_of_micros(self, micros: &str) -> String {
        let days = format!("CAST(floor({micros} / 86400000000.0) AS {})", self.bigint_type());
        match self {
            Dialect::DuckDb => format!("(DATE '1970-01-01' + CAST({days} AS INTEGER))"),
            Dialect::Spark => format!("date_add(DATE '1970-01-01', CAST({days} AS INT))"),
            Dialect::Trino => format!("date_add('day', {days}, DATE '1970-01-01')"),
            Dialect::BigQuery => format!("DATE_ADD(DATE '1970-01-01', INTERVAL {days} DAY)"),
        }
    }

    /// Whether a double is finite (neither NaN nor ±Inf); null for null.
    pub fn is_finite(self, value: &str) -> String {
        match self {
            Dialect::DuckDb => format!("isfinite({value})"),
            Dialect::Spark => format!("(NOT isnan({value}) AND abs({value}) <> double('Infinity'))"),
            Dialect::Trino => format!("is_finite({value})"),
            Dialect::BigQuery => format!("(NOT IS_NAN({value}) AND NOT IS_INF({value}))"),
        }
    }

    /// `value`s joined with `|`, ordered by `order` (an expression list), as one aggregate.
    pub fn ordered_join(self, value: &str, order: &[&str]) -> String {
        let joined = order.join(", ");
        match self {
            Dialect::DuckDb | Dialect::BigQuery => format!("string_agg({value}, '|' ORDER BY {joined})"),
            Dialect::Trino => format!("array_join(array_agg({value} ORDER BY {joined}), '|')"),
            // Spark aggregates have no ORDER BY: sort (key…, value) structs, keep the values.
            Dialect::Spark => {
                let fields: Vec<String> = order.iter().enumerate().map(|(i, e)| format!("'k{i}', {e}")).collect();
                format!(
                    "array_join(transform(array_sort(collect_list(named_struct({}, 'v', {value}))), s -> s.v), '|')",
                    fields.join(", ")
                )
            }
        }
    }
}

/// `text` with backslashes, `quote`, and line breaks escaped by a backslash.
fn backslash_escaped(text: &str, quote: char) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// Text for a `--` comment: line breaks cannot end it early.
pub(super) fn comment(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}
