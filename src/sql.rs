//! The work of a run as SQL: the query that computes the sufficient-statistics table
//! (docs/sufficient-stats.md) where the data lives — on Spark, in DuckDB, in a warehouse — and
//! the per-unit queries behind `allocation.parquet` and `units.parquet`. It follows the
//! contract's attribution exactly as `aggregate::fold` does; tests/it/engines.rs runs the
//! queries on DuckDB and on Spark and proves the results equal to the embedded engine's.
//!
//! Pure text: no IO, not async, no engine. Every name and string from the job (experiment
//! ids, variants, metrics, events, column remaps, dimensions, table names, paths) is quoted
//! or escaped for the dialect, so no job can change what a query does.

mod dialect;
mod error;
mod query;
mod source;

pub use dialect::Dialect;
pub use error::SqlError;
pub use query::PerUnitTable;
pub use source::{SqlSource, engine_location};

use crate::aggregate::Spec;
use crate::config::Job;
use query::Query;

/// The query computing the sufficient-statistics table of `spec`'s experiments at
/// `spec.report_date`: one SELECT with the table's columns and types.
pub fn sufficient_stats_sql(job: &Job, spec: &Spec, source: &SqlSource, dialect: Dialect) -> Result<String, SqlError> {
    Ok(Query::new(job, spec, spec.experiments.iter().collect(), source, dialect)?.sufficient_stats())
}

/// The query computing one per-unit export of `spec.experiments[experiment]`: a SELECT with
/// the columns of `allocation.parquet` or `units.parquet` (rows in no particular order).
pub fn per_unit_sql(
    job: &Job,
    spec: &Spec,
    experiment: usize,
    table: PerUnitTable,
    source: &SqlSource,
    dialect: Dialect,
) -> Result<String, SqlError> {
    let Some(one) = spec.experiments.get(experiment) else {
        return Err(SqlError::NoSuchExperiment {
            job: job.name.clone(),
            index: experiment,
            count: spec.experiments.len(),
        });
    };
    Ok(Query::new(job, spec, vec![one], source, dialect)?.per_unit(table))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::test_support::{checked_job, nov};

    /// A job whose experiment id, variant, metric, event, column and dimension names all carry
    /// quotes, backslashes and comment markers.
    fn hostile_job() -> Job {
        let text = r#"name = "j'ob\nname"
dimensions = ["co`un\"try"]
[source]
url = "file:///data/x'y"
[source.columns]
unit_id = "user `id` \"x\""
[[metrics]]
name = "conversion"
kind = "proportion"
event = "purchase"
[[metrics]]
name = "rev'enue\\"
kind = "mean"
event = "pur'chase\" --"
aggregate = "sum"
[[experiments]]
id = "x'); DROP TABLE t; --"
control = "con'trol"
variants = { "con'trol" = 0.5, "tr\"eat\\ment" = 0.5 }
start = 2026-11-18
primary = "conversion"
secondary = ["rev'enue\\"]
"#;
        checked_job(text, Path::new("job.toml"))
    }

    fn spec(job: &Job) -> Spec {
        Spec::new(job, &job.experiments.iter().collect::<Vec<_>>(), nov(20))
    }

    #[test]
    fn identifiers_are_quoted_per_dialect() {
        assert_eq!(Dialect::DuckDb.ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(Dialect::Trino.ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(Dialect::Spark.ident("a`b"), "`a``b`");
        assert_eq!(Dialect::BigQuery.ident("a`b\\"), "`a\\`b\\\\`");
        assert_eq!(Dialect::Trino.table_name("lake.db.exposures"), "\"lake\".\"db\".\"exposures\"");
    }

    #[test]
    fn string_literals_are_escaped_per_dialect() {
        assert_eq!(Dialect::DuckDb.string("it's \\"), "'it''s \\'");
        assert_eq!(Dialect::Trino.string("it's"), "'it''s'");
        // Spark and BigQuery read backslash escapes in literals.
        assert_eq!(Dialect::Spark.string("it's \\ a\nb"), "'it\\'s \\\\ a\\nb'");
        assert_eq!(Dialect::BigQuery.string("it's"), "'it\\'s'");
    }

    /// No name from the job appears in a query outside its quoted form (or a comment).
    #[test]
    fn names_from_the_job_cannot_change_the_query() {
        let job = hostile_job();
        let spec = spec(&job);
        let names = ["x'); DROP TABLE t; --", "con'trol", "tr\"eat\\ment", "rev'enue\\", "pur'chase\" --"];
        let columns = ["user `id` \"x\"", "co`un\"try"];
        for dialect in [Dialect::Spark, Dialect::DuckDb, Dialect::Trino, Dialect::BigQuery] {
            let source = SqlSource::Tables { exposures: "db.exposures".into(), events: "db.events".into() };
            let mut queries = vec![sufficient_stats_sql(&job, &spec, &source, dialect).expect("sql")];
            for table in [PerUnitTable::Allocation, PerUnitTable::Units] {
                queries.push(per_unit_sql(&job, &spec, 0, table, &source, dialect).expect("sql"));
            }
            for sql in queries {
                let code: String =
                    sql.lines().filter(|l| !l.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n");
                for name in names {
                    let quoted = dialect.string(name);
                    assert!(code.contains(&quoted), "{dialect:?}: {name} is not in the query as {quoted}");
                    // A metric's name is also a column of units.parquet.
                    let rest = code.replace(&quoted, "").replace(&dialect.ident(name), "");
                    assert!(!rest.contains(name), "{dialect:?}: {name} appears unquoted");
                }
                for column in columns {
                    let quoted = dialect.ident(column);
                    assert!(code.contains(&quoted), "{dialect:?}: column {column} is not in the query as {quoted}");
                    // A dimension's name is also a value of the table's `dimension` column.
                    let rest = code.replace(&quoted, "").replace(&dialect.string(column), "");
                    assert!(!rest.contains(column), "{dialect:?}: {column} appears unquoted");
                }
                // The job's name (with a line break) stays inside its header comment.
                assert!(sql.contains("-- job: j'ob name;"), "{dialect:?}");
            }
        }
    }

    #[test]
    fn files_are_read_by_spark_and_duckdb_only() {
        let job = hostile_job();
        let spec = spec(&job);
        for dialect in [Dialect::Trino, Dialect::BigQuery] {
            let error = SqlSource::for_dialect(dialect, &job.source.url, None).expect_err("no files");
            assert_eq!(error, SqlError::FilesUnsupported { dialect: dialect.name() });
            assert!(error.to_string().contains("--exposures-table"), "{error}");
            let files = SqlSource::Files { root: "/data".into() };
            assert_eq!(sufficient_stats_sql(&job, &spec, &files, dialect), Err(error));
        }
        let source = SqlSource::for_dialect(Dialect::DuckDb, "file:///data/x'y", None).expect("files");
        assert_eq!(source, SqlSource::Files { root: "/data/x'y".into() });
        let sql = sufficient_stats_sql(&job, &spec, &source, Dialect::DuckDb).expect("sql");
        assert!(sql.contains("read_parquet('/data/x''y/exposures/*/*.parquet'"), "{sql}");
        let source = SqlSource::for_dialect(Dialect::Spark, "s3://bucket/x`y", None).expect("files");
        let sql = sufficient_stats_sql(&job, &spec, &source, Dialect::Spark).expect("sql");
        assert!(sql.contains("parquet.`s3://bucket/x``y/events`"), "{sql}");
        let tables = Some(("a.b".to_string(), "c".to_string()));
        assert_eq!(
            SqlSource::for_dialect(Dialect::Trino, "s3://x", tables),
            Ok(SqlSource::Tables { exposures: "a.b".into(), events: "c".into() })
        );
    }

    #[test]
    fn errors_name_the_job() {
        let job = hostile_job();
        let source = SqlSource::Files { root: "/data".into() };
        let nothing = Spec::new(&job, &[], nov(20));
        let error = sufficient_stats_sql(&job, &nothing, &source, Dialect::DuckDb).expect_err("no experiments");
        assert_eq!(
            error.to_string(),
            "job `j'ob\nname`: no experiment has started by 2026-11-20: there is nothing to compute"
        );
        let error =
            per_unit_sql(&job, &spec(&job), 3, PerUnitTable::Units, &source, Dialect::DuckDb).expect_err("no such");
        assert_eq!(error, SqlError::NoSuchExperiment { job: "j'ob\nname".into(), index: 3, count: 1 });
    }

    /// The table's columns, in order, with the schema's types spelled for the dialect.
    #[test]
    fn the_query_selects_the_tables_columns_in_order() {
        let job = hostile_job();
        let sql = sufficient_stats_sql(&job, &spec(&job), &SqlSource::Files { root: "/d".into() }, Dialect::DuckDb)
            .expect("sql");
        let select = sql.rsplit("\nSELECT ").next().expect("a final select");
        let names: Vec<&str> = select
            .split("\nFROM")
            .next()
            .expect("columns")
            .split(",\n")
            .map(|c| c.trim().rsplit(' ').next().expect("a name"))
            .collect();
        let schema = crate::sufficient_table::schema();
        let expected: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, expected);
        assert!(sql.contains("CAST(1 AS INTEGER) AS schema_version"));
        assert!(sql.contains("DATE '2026-11-20' AS report_date"));
    }
}
