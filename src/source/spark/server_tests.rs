//! Tests against the real Spark Connect server that tests/run.sh starts on loopback
//! (tests/servers/spark_connect.sh) and names in `ABREPORT_TEST_SPARK_REMOTE`: a query over a
//! Parquet file, a command that makes Spark write Parquet, an analysis error, an unreachable
//! server and a deadline that passes mid-query. The server runs Spark in local mode on this
//! machine, so `file://` paths are shared with it.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema};

use super::{SparkError, SparkSession};
use crate::test_support::runtime;

/// The test server's `sc://` URL. Missing it is a failure, not a skip.
fn spark_remote() -> String {
    std::env::var("ABREPORT_TEST_SPARK_REMOTE").unwrap_or_else(|_| {
        panic!(
            "ABREPORT_TEST_SPARK_REMOTE is not set: run the tests with tests/run.sh (it starts a Spark Connect server)"
        )
    })
}

fn in_secs(seconds: u64) -> Instant {
    Instant::now() + Duration::from_secs(seconds)
}

/// A new session on the test server (each test its own, as Spark sessions are cheap).
fn session() -> SparkSession {
    runtime().block_on(SparkSession::connect(&spark_remote(), in_secs(30))).expect("connect to the test Spark server")
}

fn sql(session: &SparkSession, query: &str) -> Result<Vec<RecordBatch>, SparkError> {
    runtime().block_on(session.sql(query, in_secs(120)))
}

/// `variant`, `value`: a: 1, 2, 3; b: 10, 20 (and a null value in b, which `sum` skips).
fn write_values(path: &Path) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("variant", DataType::Utf8, false),
        Field::new("value", DataType::Float64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["b", "a", "a", "b", "a", "b"])),
            Arc::new(Float64Array::from(vec![Some(10.0), Some(1.0), Some(2.0), Some(20.0), Some(3.0), None])),
        ],
    )
    .expect("batch");
    let file = std::fs::File::create(path).expect("create parquet file");
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
}

/// One column of all batches, cast to `to` (Spark's Arrow types are not ours to pin).
fn column(batches: &[RecordBatch], name: &str, to: &DataType) -> Vec<Arc<dyn Array>> {
    batches
        .iter()
        .map(|batch| {
            let array = batch.column_by_name(name).unwrap_or_else(|| panic!("no column `{name}` in {batch:?}"));
            cast(array, to).expect("cast")
        })
        .collect()
}

fn strings(batches: &[RecordBatch], name: &str) -> Vec<String> {
    column(batches, name, &DataType::Utf8)
        .iter()
        .flat_map(|a| {
            let a = a.as_any().downcast_ref::<StringArray>().expect("utf8").clone();
            (0..a.len()).map(move |i| a.value(i).to_string()).collect::<Vec<_>>()
        })
        .collect()
}

fn int64s(batches: &[RecordBatch], name: &str) -> Vec<i64> {
    column(batches, name, &DataType::Int64)
        .iter()
        .flat_map(|a| a.as_any().downcast_ref::<Int64Array>().expect("int64").values().to_vec())
        .collect()
}

fn float64s(batches: &[RecordBatch], name: &str) -> Vec<f64> {
    column(batches, name, &DataType::Float64)
        .iter()
        .flat_map(|a| a.as_any().downcast_ref::<Float64Array>().expect("float64").values().to_vec())
        .collect()
}

#[test]
fn a_query_over_a_parquet_file_returns_its_rows_as_arrow() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("values.parquet");
    write_values(&file);
    let query = format!(
        "SELECT variant, count(*) AS n, sum(value) AS s FROM parquet.`file://{}` GROUP BY variant ORDER BY variant",
        file.display()
    );
    let batches = sql(&session(), &query).expect("query");
    assert_eq!(strings(&batches, "variant"), ["a", "b"]);
    assert_eq!(int64s(&batches, "n"), [3, 3]);
    assert_eq!(float64s(&batches, "s"), [6.0, 30.0]);
}

#[test]
fn the_server_runs_its_sessions_in_utc() {
    let batches = sql(&session(), "SELECT current_timezone() AS tz").expect("query");
    assert_eq!(strings(&batches, "tz"), ["UTC"]);
}

#[test]
fn a_command_makes_spark_write_parquet_files_and_returns_no_rows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("values.parquet");
    write_values(&file);
    let out = dir.path().join("out");
    let command = format!(
        "INSERT OVERWRITE DIRECTORY 'file://{}' USING parquet \
         SELECT variant, sum(value) * 2 AS doubled FROM parquet.`file://{}` GROUP BY variant",
        out.display(),
        file.display()
    );
    let batches = sql(&session(), &command).expect("command");
    assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 0, "{batches:?}");

    let parts: Vec<_> = std::fs::read_dir(&out)
        .expect("Spark wrote the output folder")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "parquet"))
        .collect();
    assert!(!parts.is_empty(), "no part files in {}", out.display());
    let mut doubled: Vec<(String, f64)> = Vec::new();
    for part in parts {
        let file = std::fs::File::open(&part).expect("open part file");
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("a Parquet file")
            .build()
            .expect("reader");
        let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().expect("read part file");
        doubled.extend(strings(&batches, "variant").into_iter().zip(float64s(&batches, "doubled")));
    }
    doubled.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(doubled, [("a".to_string(), 12.0), ("b".to_string(), 60.0)]);
}

#[test]
fn an_unknown_column_is_a_permanent_analysis_error_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("values.parquet");
    write_values(&file);
    let query = format!("SELECT no_such_column FROM parquet.`file://{}`", file.display());
    let error = sql(&session(), &query).expect_err("an unknown column");
    assert!(matches!(error, SparkError::Analysis { .. }), "{error:?}");
    assert!(!error.is_transient());
    let message = error.to_string();
    assert!(message.contains("no_such_column"), "{message}");
    assert!(message.contains("127.0.0.1:"), "{message}");
}

#[test]
fn a_closed_port_is_unreachable_within_the_deadline() {
    // a port that was free a moment ago: nothing listens on it
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let started = Instant::now();
    let result = runtime().block_on(SparkSession::connect(&format!("sc://127.0.0.1:{port}"), in_secs(3)));
    let error = result.expect_err("nothing listens there");
    assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());
    assert!(matches!(error, SparkError::Unreachable { .. } | SparkError::Timeout { .. }), "{error:?}");
    assert!(error.is_transient());
    assert!(error.to_string().contains(&format!("127.0.0.1:{port}")), "{error}");
}

#[test]
fn a_deadline_that_passes_mid_query_is_a_timeout_and_the_session_stays_usable() {
    let session = session();
    let started = Instant::now();
    let slow = "SELECT sum(hash(id)) AS h FROM range(10000000000)";
    let error = runtime().block_on(session.sql(slow, Instant::now() + Duration::from_secs(1))).expect_err("too slow");
    assert!(matches!(error, SparkError::Timeout { .. }), "{error:?}");
    assert!(error.is_transient());
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    // the interrupt sent after the deadline stops the slow operation and frees both of the
    // server's task slots, so a small query that needs tasks runs soon (else it would queue
    // behind ten billion rows)
    let batches = runtime()
        .block_on(session.sql("SELECT sum(id) AS s FROM range(1000)", in_secs(60)))
        .expect("a small query after a timeout");
    assert_eq!(int64s(&batches, "s"), [499_500]);
}

#[test]
fn a_result_of_many_arrow_batches_arrives_whole() {
    // Spark sends at most `spark.sql.execution.arrow.maxRecordsPerBatch` (10 000) rows per batch
    let batches = sql(&session(), "SELECT id FROM range(250000)").expect("query");
    let ids = int64s(&batches, "id");
    assert_eq!(ids.len(), 250_000);
    assert_eq!(ids.iter().sum::<i64>(), 250_000 * 249_999 / 2);
}

#[test]
fn a_division_by_zero_is_a_permanent_execution_error() {
    // ANSI mode (Spark 4's default) fails the query at run time with SQLSTATE 22012
    let error = sql(&session(), "SELECT 1 / (id - 3) AS x FROM range(5)").expect_err("division by zero");
    assert!(matches!(&error, SparkError::Execution { sql_state: Some(state), .. } if state == "22012"), "{error:?}");
    assert!(!error.is_transient());
    assert!(error.to_string().contains("DIVIDE_BY_ZERO"), "{error}");
}
