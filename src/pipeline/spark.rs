//! The Spark engine's reading stage: the run's SQL (`crate::sql`, Spark dialect) runs on a
//! Spark cluster through Spark Connect, and only the small sufficient-statistics table comes
//! back, as Arrow. With `spark_output` set, Spark also writes each experiment's per-unit
//! exports (`allocation/`, `units/`: directories of Parquet part files) straight to that
//! location; abreport lists them for the manifest and never reads their bytes.
//!
//! Every call is bounded by the run's deadline (a passed deadline interrupts the Spark
//! operation, `source::spark`); transient failures (an unreachable server, a lost executor)
//! are retried with backoff while the deadline leaves room for another attempt.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use serde_json::json;

use super::error::RunError;
use super::read::{Computed, Work, missing_partitions};
use crate::aggregate::Spec;
use crate::aggregate::sufficient;
use crate::config::{Job, safe_path_component};
use crate::export::{EngineFile, run_prefix};
use crate::runlog::{Deadline, RunLog};
use crate::source::ScanStats;
use crate::source::spark::{SparkError, SparkRemote, SparkSession};
use crate::sql::{self, Dialect, PerUnitTable, SqlSource};

/// Attempts of one Spark call, the first included, when its failures are transient.
const ATTEMPTS: u32 = 3;
/// The wait before the second attempt; doubled before each next one.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// What the Spark engine needs beyond the job: where the cluster is and where its per-unit
/// exports go.
pub(super) struct SparkEngine<'a> {
    pub remote: &'a str,
    /// An absolute URL (`file://`, `s3://`, ...), or `None`: no per-unit exports.
    pub output: Option<&'a str>,
    /// The run's count of retried requests to the data source.
    pub retries: &'a AtomicU32,
}

/// Computes the run's statistics on Spark (see the module doc).
pub(super) async fn spark(
    engine: &SparkEngine<'_>,
    job: &Job,
    spec: &Spec,
    deadline: &Deadline,
    log: &RunLog,
) -> Result<Computed, RunError> {
    if spec.experiments.is_empty() {
        return Ok(Computed { allocation: None, work: Vec::new(), missing: Vec::new(), read: ScanStats::default() });
    }
    let remote = SparkRemote::parse(engine.remote)?;
    let at = remote.display_addr();
    let source = SqlSource::Files { root: spark_location(&job.source.url) };
    let query = sql::sufficient_stats_sql(job, spec, &source, Dialect::Spark)?;

    let started = Instant::now();
    let session = attempts(engine, deadline, log, "connect to Spark", || {
        SparkSession::connect_to(remote.clone(), instant(deadline))
    })
    .await?;
    // The SQL compares timestamps as instants; a session in UTC reads naive timestamps as UTC,
    // as the contract says they are.
    attempts(engine, deadline, log, "configure the Spark session", || {
        session.sql("SET spark.sql.session.timeZone=UTC", instant(deadline))
    })
    .await?;
    log.stage_done("connect to Spark", started.elapsed(), json!({ "remote": at }));

    let started = Instant::now();
    let batches =
        attempts(engine, deadline, log, "sufficient statistics on Spark", || session.sql(&query, instant(deadline)))
            .await?;
    let rows: usize = batches.iter().map(arrow::array::RecordBatch::num_rows).sum();
    log.stage_done(
        "sufficient statistics on Spark",
        started.elapsed(),
        json!({ "remote": at, "rows": rows, "sql_bytes": query.len() }),
    );
    let table = sufficient::read(&batches, job, spec)
        .map_err(|cause| RunError::EngineResult { engine: format!("Spark at {at}"), cause })?;
    let missing = missing_partitions(spec, &table.partitions, log);

    let mut parts = vec![Vec::new(); spec.experiments.len()];
    match engine.output {
        Some(output) => {
            let started = Instant::now();
            let run = SparkRun { engine, session: &session, job, spec, source: &source, deadline, log };
            for (index, files) in parts.iter_mut().enumerate() {
                *files = per_unit_exports(&run, output, index).await?;
            }
            log.stage_done(
                "per-unit exports on Spark",
                started.elapsed(),
                json!({ "files": parts.iter().map(Vec::len).sum::<usize>(), "output": crate::store::display_url(output) }),
            );
        }
        None => log.info(
            "per-unit exports on Spark",
            None,
            "no per-unit exports: set `[source] spark_output` (or --spark-output) for Spark to write them",
            json!({}),
        ),
    }
    let work = table
        .experiments
        .into_iter()
        .zip(parts)
        .map(|(stats, engine_files)| Work::Computed { stats: Box::new(stats), engine_files })
        .collect();
    let read = ScanStats { files: 0, bytes: 0, rows: rows as u64 };
    Ok(Computed { allocation: None, work, missing, read })
}

/// What every Spark call of one run shares.
struct SparkRun<'a> {
    engine: &'a SparkEngine<'a>,
    session: &'a SparkSession,
    job: &'a Job,
    spec: &'a Spec,
    source: &'a SqlSource,
    deadline: &'a Deadline,
    log: &'a RunLog,
}

/// Has Spark write experiment `index`'s `allocation/` and `units/` under
/// `<output>/<job>/<date>/<experiment>/`, and lists the part files it wrote.
async fn per_unit_exports(run: &SparkRun<'_>, output: &str, index: usize) -> Result<Vec<EngineFile>, RunError> {
    let SparkRun { engine, session, job, spec, source, deadline, log } = *run;
    let experiment = &spec.experiments[index];
    let folder = format!(
        "{}/{}/{}",
        output.trim_end_matches('/'),
        run_prefix(&job.name, spec.report_date),
        safe_path_component(&experiment.id)
    );
    let mut files = Vec::new();
    for (table, name) in [(PerUnitTable::Allocation, "allocation"), (PerUnitTable::Units, "units")] {
        let select = sql::per_unit_sql(job, spec, index, table, source, Dialect::Spark)?;
        let directory = format!("{folder}/{name}");
        let statement = format!(
            "INSERT OVERWRITE DIRECTORY {} USING parquet {select}",
            Dialect::Spark.string(&spark_location(&directory))
        );
        let what = "per-unit exports on Spark";
        attempts(engine, deadline, log, what, || session.sql(&statement, instant(deadline))).await?;
        let listed = deadline.within(what, list_parts(&directory, name, deadline)).await?;
        let listed =
            listed.map_err(|cause| RunError::EngineOutput { url: crate::store::display_url(&directory), cause })?;
        if listed.is_empty() {
            return Err(RunError::EngineOutput {
                url: crate::store::display_url(&directory),
                cause: "Spark wrote no part files there; is the location reachable from the Spark cluster?".into(),
            });
        }
        files.extend(listed);
    }
    Ok(files)
}

/// The Parquet part files under `directory`, named `<name>/<file>`, with their size and the
/// store's etag (Spark does not hash what it writes; reading the parts back to hash them would
/// move every per-unit row through abreport).
async fn list_parts(directory: &str, name: &str, deadline: &Deadline) -> Result<Vec<EngineFile>, String> {
    let (store, prefix) = crate::store::open(directory, crate::store::Limits::within(deadline.remaining()))?;
    let objects: Vec<object_store::ObjectMeta> =
        store.list(Some(&prefix)).try_collect().await.map_err(|e| crate::store::describe_error(&e))?;
    let base = directory.trim_end_matches('/');
    let mut files: Vec<EngineFile> = objects
        .into_iter()
        .filter_map(|object| {
            let file = object.location.filename()?.to_string();
            // Spark's markers (`_SUCCESS`) and checksums (`.crc`) are not exports.
            (file.ends_with(".parquet") && !file.starts_with(['_', '.'])).then(|| EngineFile {
                name: format!("{name}/{file}"),
                url: format!("{base}/{file}"),
                bytes: object.size,
                etag: object.e_tag,
            })
        })
        .collect();
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

/// A source or output URL as Spark names it: [`sql::engine_location`] (a local path for
/// `file://`: Spark in local mode, or a path every node mounts), with `s3a://` for `s3://`
/// (Hadoop's S3 connector).
fn spark_location(url: &str) -> String {
    let location = sql::engine_location(url);
    match location.strip_prefix("s3://") {
        Some(rest) => format!("s3a://{rest}"),
        None => location,
    }
}

/// The deadline as the Spark client takes it.
fn instant(deadline: &Deadline) -> Instant {
    Instant::now() + deadline.remaining()
}

/// Runs `call` until it succeeds, fails permanently, or the deadline leaves no room for another
/// attempt after the backoff. A timeout once the deadline has passed is the SLA's.
async fn attempts<T, F, Fut>(
    engine: &SparkEngine<'_>,
    deadline: &Deadline,
    log: &RunLog,
    stage: &str,
    mut call: F,
) -> Result<T, RunError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SparkError>>,
{
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 1;
    loop {
        let error = match call().await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        deadline.check(stage)?;
        if !error.is_transient() || attempt == ATTEMPTS || deadline.remaining() <= backoff {
            return Err(error.into());
        }
        engine.retries.fetch_add(1, Ordering::Relaxed);
        log.warn(
            stage,
            None,
            format!("{error}; retrying in {:.1} s (attempt {} of {ATTEMPTS})", backoff.as_secs_f64(), attempt + 1),
            json!({ "attempt": attempt, "backoff_seconds": backoff.as_secs_f64() }),
        );
        tokio::time::sleep(backoff).await;
        backoff *= 2;
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{Duration, Instant};

    use super::{SparkEngine, attempts, spark_location};
    use crate::pipeline::RunError;
    use crate::runlog::{Deadline, RunLog};
    use crate::source::spark::SparkError;
    use crate::test_support::runtime;

    fn unreachable() -> SparkError {
        SparkError::Unreachable { remote: "127.0.0.1:1".into(), cause: "connection refused".into() }
    }

    /// Runs `attempts` over `outcomes` (one per call, the last repeated) within `budget`:
    /// the result, the calls made and the retries counted.
    fn run(outcomes: &[Result<u8, SparkError>], budget: Duration) -> (Result<u8, RunError>, usize, u32) {
        let retries = AtomicU32::new(0);
        let engine = SparkEngine { remote: "sc://127.0.0.1:1", output: None, retries: &retries };
        let started = Instant::now();
        let (deadline, log) = (Deadline::new(started, budget), RunLog::new(started));
        let calls = Cell::new(0);
        let result = runtime().block_on(attempts(&engine, &deadline, &log, "test", || {
            let call = calls.get();
            calls.set(call + 1);
            let outcome = outcomes[call.min(outcomes.len() - 1)].clone();
            async move { outcome }
        }));
        (result, calls.get(), retries.load(Ordering::Relaxed))
    }

    #[test]
    fn transient_failures_are_retried_and_counted_until_one_succeeds() {
        let (result, calls, retries) = run(&[Err(unreachable()), Err(unreachable()), Ok(7)], Duration::from_secs(30));
        assert_eq!((result.expect("the third attempt succeeds"), calls, retries), (7, 3, 2));
    }

    #[test]
    fn a_permanent_failure_is_not_retried() {
        let analysis = SparkError::Analysis { remote: "h:1".into(), message: "UNRESOLVED_COLUMN `amount`".into() };
        let (result, calls, retries) = run(&[Err(analysis)], Duration::from_secs(30));
        assert!(matches!(result, Err(RunError::Spark(SparkError::Analysis { .. }))));
        assert_eq!((calls, retries), (1, 0));
    }

    #[test]
    fn retries_stop_after_three_attempts_and_when_the_deadline_leaves_no_room() {
        let (result, calls, _) = run(&[Err(unreachable())], Duration::from_secs(30));
        assert!(matches!(result, Err(RunError::Spark(SparkError::Unreachable { .. }))));
        assert_eq!(calls, 3);
        // 200 ms of budget: less than the first backoff, so no second attempt.
        let (result, calls, retries) = run(&[Err(unreachable())], Duration::from_millis(200));
        assert!(matches!(result, Err(RunError::Spark(SparkError::Unreachable { .. }))));
        assert_eq!((calls, retries), (1, 0));
    }

    #[test]
    fn locations_are_named_as_spark_names_them() {
        assert_eq!(spark_location("file:///data/xp/"), "/data/xp");
        assert_eq!(spark_location("file:///data/my%20xp/"), "/data/my xp");
        assert_eq!(spark_location("s3://bucket/prefix/"), "s3a://bucket/prefix");
        assert_eq!(spark_location("gs://bucket/p"), "gs://bucket/p");
    }
}
