//! `engine = "spark"`: the built binary computing a run on the real Spark Connect server that
//! tests/run.sh starts on loopback (`ABREPORT_TEST_SPARK_REMOTE`; Spark in local mode, so
//! `file://` paths are shared with it). The report names the engine, per-unit exports are
//! Spark's part files listed in the manifest, and Spark's failures end as the contract's exit
//! codes and ledger statuses, with the remote named and its token never shown.
//! (Every scenario computed by Spark equal to the embedded engine: tests/it/engines.rs.)

use arrow::array::RecordBatch;
use serde_json::Value;

use crate::engines;
use crate::support::*;

/// The test server's `sc://` URL. Missing it is a failure, not a skip.
pub(crate) fn spark_remote() -> String {
    std::env::var("ABREPORT_TEST_SPARK_REMOTE").unwrap_or_else(|_| {
        panic!(
            "ABREPORT_TEST_SPARK_REMOTE is not set: run the tests with tests/run.sh (it starts a Spark Connect server)"
        )
    })
}

fn small() -> Scenario {
    Scenario::generate(&[
        "--units",
        "1500",
        "--days",
        "3",
        "--files-per-day",
        "2",
        "--experiment",
        "exp,effect=0.2",
        "--history-days",
        "2",
    ])
}

fn manifest(s: &Scenario, experiment: &str) -> Value {
    let text = std::fs::read_to_string(s.out(experiment).join("manifest.json")).expect("manifest.json");
    serde_json::from_str(&text).expect("manifest parses")
}

#[test]
fn spark_computes_the_report_and_writes_the_per_unit_exports_as_listed_part_files() {
    let s = small();
    let remote = spark_remote();
    let embedded = ["run", "--job", "job.toml", "--date", REPORT_DATE, "--out", "embedded", "--no-deliver"];
    abreport(s.path(), &embedded).assert_code(0);
    s.run(&["--no-deliver", "--engine", "spark", "--spark-remote", &remote, "--spark-output", "spark-out"])
        .assert_code(0);

    let report = std::fs::read_to_string(s.out("exp").join("report.md")).expect("report.md");
    let addr = remote.trim_start_matches("sc://");
    assert!(report.contains(&format!("Spark at {addr}")), "the report names the engine:\n{report}");
    let html = std::fs::read_to_string(s.out("exp").join("report.html")).expect("report.html");
    assert!(html.contains("the per-unit values are in Spark&#39;s part files under file:///"), "says where they are");

    // The per-unit exports are Spark's part files, listed with size and etag, never in `files`.
    let manifest = manifest(&s, "exp");
    let listed: Vec<&str> =
        manifest["files"].as_array().expect("files").iter().filter_map(|f| f["name"].as_str()).collect();
    assert!(!listed.contains(&"allocation.parquet") && !listed.contains(&"units.parquet"), "{listed:?}");
    let parts = manifest["engine_files"].as_array().expect("engine_files");
    let mut by_export: std::collections::BTreeMap<&str, Vec<std::path::PathBuf>> = Default::default();
    for part in parts {
        let name = part["name"].as_str().expect("name");
        let url = part["url"].as_str().expect("url");
        let path = url::Url::parse(url).expect("a URL").to_file_path().expect("a local path");
        assert!(
            path.starts_with(s.path().join("spark-out").join("generated").join(REPORT_DATE).join("exp")),
            "{}",
            path.display()
        );
        assert_eq!(part["bytes"].as_u64(), Some(std::fs::metadata(&path).expect("the part exists").len()), "{name}");
        assert!(part["etag"].as_str().is_some_and(|e| !e.is_empty()), "{name} has an etag");
        by_export.entry(name.split('/').next().expect("export")).or_default().push(path);
    }
    assert_eq!(by_export.keys().copied().collect::<Vec<_>>(), ["allocation", "units"], "{parts:?}");

    // Their rows are the embedded engine's, as sets.
    for export in ["allocation", "units"] {
        let embedded = read_parquet(&s.path().join("embedded/exp").join(format!("{export}.parquet")));
        let spark = spark_export(&manifest, export).expect("the export's parts");
        assert_eq!(engines::compare_rows(&embedded, &spark), Vec::<String>::new(), "{export}: the same rows");
    }
}

#[test]
fn validate_asks_the_spark_server_for_an_answer() {
    let s = small();
    let remote = spark_remote();
    let env = [("ABREPORT_ENGINE", "spark"), ("ABREPORT_SPARK_REMOTE", remote.as_str())];
    let ok = abreport_with_env(s.path(), &["validate", "job.toml", "--date", REPORT_DATE], &env);
    ok.assert_code(0);
    let addr = remote.trim_start_matches("sc://");
    assert!(ok.stdout.contains(&format!("Spark at {addr} answers")), "{}", ok.stdout);
    let closed = format!("sc://127.0.0.1:{}", free_port());
    let env = [("ABREPORT_ENGINE", "spark"), ("ABREPORT_SPARK_REMOTE", closed.as_str())];
    let down = abreport_with_env(s.path(), &["validate", "job.toml", "--date", REPORT_DATE], &env);
    down.assert_code(3);
    assert!(down.stderr.contains("unreachable"), "{}", down.stderr);
}

#[test]
fn an_unreachable_spark_server_is_source_unavailable_naming_the_host_and_never_the_token() {
    let s = small();
    let port = free_port();
    let remote = format!("sc://127.0.0.1:{port}/;token=s3cr3t-t0ken;use_ssl=true");
    let run = s.run(&["--no-deliver", "--engine", "spark", "--spark-remote", &remote]);
    run.assert_code(3);
    assert!(run.stderr.contains(&format!("127.0.0.1:{port}")), "names the server:\n{}", run.stderr);
    assert!(run.stderr.contains("unreachable"), "says what happened:\n{}", run.stderr);
    assert!(!run.stderr.contains("s3cr3t") && !run.stdout.contains("s3cr3t"), "the token never shows");
    assert!(!s.out("exp").join("manifest.json").exists(), "nothing is published");
    let record = ledger_record(s.path(), "generated", REPORT_DATE);
    assert_eq!(record["status"], "source_unavailable", "{record}");
    assert!(!record.to_string().contains("s3cr3t"), "nor in the ledger");
}

#[test]
fn sql_that_spark_rejects_fails_the_run_naming_the_column() {
    let s = small();
    // The events have no column `amount`: Spark's analysis rejects the SQL.
    s.edit_job(|job| job.replace("[source]\n", "[source]\ncolumns = { value = \"amount\" }\n"));
    let run = s.run(&["--no-deliver", "--engine", "spark", "--spark-remote", &spark_remote()]);
    run.assert_code(3);
    assert!(run.stderr.contains("amount"), "names the column:\n{}", run.stderr);
    assert!(run.stderr.contains("rejected the SQL"), "says Spark rejected it:\n{}", run.stderr);
    let record = ledger_record(s.path(), "generated", REPORT_DATE);
    assert_eq!(record["status"], "failed", "the same SQL fails again: not a source outage\n{record}");
}

/// The part files of one per-unit export in a Spark run's manifest, read as one batch.
fn spark_export(manifest: &Value, export: &str) -> Option<RecordBatch> {
    let batches: Vec<RecordBatch> = manifest["engine_files"]
        .as_array()?
        .iter()
        .filter(|f| f["name"].as_str().is_some_and(|n| n.starts_with(&format!("{export}/"))))
        .map(|f| {
            let url = url::Url::parse(f["url"].as_str().expect("url")).expect("a URL");
            read_parquet(&url.to_file_path().expect("a local path"))
        })
        .collect();
    let first = batches.first()?;
    Some(arrow::compute::concat_batches(&first.schema(), &batches).expect("the parts share a schema"))
}

/// Every scenario of tests/it/engines.rs, computed by `abreport run --engine spark` on the test
/// server with Spark writing the per-unit exports: the same results.json as the embedded
/// engine (every count equal, every float to 1e-9 relative) and the same per-unit rows. This is
/// the whole engine path — the Spark dialect's SQL, the Arrow result read back, the part files
/// Spark writes — not the SQL alone.
#[test]
fn every_engine_scenario_computed_by_spark_equals_the_embedded_engine() {
    let remote = spark_remote();
    let mut failures = Vec::new();
    for scenario in engines::scenarios() {
        let embedded_code = engines::run_embedded(&scenario);
        let args = ["run", "--job", "job.toml", "--date", REPORT_DATE, "--out", "spark", "--no-deliver"];
        let env = [
            ("ABREPORT_ENGINE", "spark"),
            ("ABREPORT_SPARK_REMOTE", remote.as_str()),
            ("ABREPORT_SPARK_OUTPUT", "spark-units"),
        ];
        let run = abreport_with_env(scenario.path(), &args, &env);
        assert_eq!(run.code, embedded_code, "{}: exit codes\n{}\n{}", scenario.name, run.stdout, run.stderr);
        for experiment in &scenario.experiments {
            let expected = engines::results_json(&scenario.path().join("embedded"), experiment);
            let actual = engines::results_json(&scenario.path().join("spark"), experiment);
            for difference in engines::compare_results(&expected, &actual) {
                failures.push(format!("{} / {experiment}: results.json{difference}", scenario.name));
            }
            let embedded = engines::experiment_dir(&scenario.path().join("embedded"), experiment);
            let spark = engines::experiment_dir(&scenario.path().join("spark"), experiment);
            let manifest: Value =
                serde_json::from_str(&std::fs::read_to_string(spark.join("manifest.json")).expect("manifest.json"))
                    .expect("manifest parses");
            for export in ["allocation", "units"] {
                let Some(parts) = spark_export(&manifest, export) else {
                    failures.push(format!("{} / {experiment}: no {export} parts in the manifest", scenario.name));
                    continue;
                };
                let expected = read_parquet(&embedded.join(format!("{export}.parquet")));
                for difference in engines::compare_rows(&expected, &parts) {
                    failures.push(format!("{} / {experiment} / {export}: {difference}", scenario.name));
                }
            }
        }
    }
    assert!(failures.is_empty(), "Spark and the embedded engine differ:\n{}", failures.join("\n"));
}
