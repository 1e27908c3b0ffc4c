//! Helpers: run the binary, generate datasets, read outputs, write hand-made Parquet.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{Field, Schema};
use serde_json::Value;

pub const REPORT_DATE: &str = "2026-11-20";

/// The outcome of one `abreport` invocation.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "exit code\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
}

/// Runs the built binary in `dir` with `args`.
pub fn abreport(dir: &Path, args: &[&str]) -> Run {
    abreport_env(dir, args, &[])
}

/// Runs the built binary in `dir` with `args` and extra environment variables.
pub fn abreport_env(dir: &Path, args: &[&str], envs: &[(&str, String)]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_abreport"))
        .args(args)
        .current_dir(dir)
        .env_remove("ABREPORT_LOG")
        .env_remove("ABREPORT_LOG_FORMAT")
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("the abreport binary runs");
    Run::from(output)
}

/// A folder with a generated dataset (`data/`, `job.toml`) and room for outputs.
pub struct Scenario {
    dir: tempfile::TempDir,
}

impl Scenario {
    /// `abreport generate --out <dir> --end-date REPORT_DATE <args>`, in a fresh temp folder
    /// under cargo's target/tmp (removed when the scenario is dropped).
    pub fn generate(args: &[&str]) -> Self {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
        let out = dir.path().to_str().expect("utf-8 path").to_string();
        let mut full = vec!["generate", "--out", &out, "--end-date", REPORT_DATE];
        full.extend_from_slice(args);
        abreport(dir.path(), &full).assert_code(0);
        Self { dir }
    }

    /// An empty folder (for hand-made data).
    pub fn empty() -> Self {
        Self { dir: tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir") }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn job(&self) -> PathBuf {
        self.path().join("job.toml")
    }

    /// Rewrites the job file with `edit`.
    pub fn edit_job(&self, edit: impl FnOnce(String) -> String) {
        let text = std::fs::read_to_string(self.job()).expect("job file");
        std::fs::write(self.job(), edit(text)).expect("job file written");
    }

    /// `abreport run --job job.toml --date REPORT_DATE --out out <extra>`.
    pub fn run(&self, extra: &[&str]) -> Run {
        let mut args = vec!["run", "--job", "job.toml", "--date", REPORT_DATE, "--out", "out"];
        args.extend_from_slice(extra);
        abreport(self.path(), &args)
    }

    pub fn out(&self, experiment: &str) -> PathBuf {
        self.path().join("out").join(experiment)
    }

    /// The experiment entry of `out/<experiment>/results.json`.
    pub fn result(&self, experiment: &str) -> Value {
        let path = self.out(experiment).join("results.json");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let json: Value = serde_json::from_str(&text).expect("results.json parses");
        json["experiments"][0].clone()
    }
}

/// A check of an experiment result by name.
pub fn check<'a>(result: &'a Value, name: &str) -> &'a Value {
    result["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("check {name} missing"))
}

pub fn recommendation(result: &Value) -> &str {
    result["decision"]["recommendation"].as_str().expect("recommendation")
}

pub fn metric<'a>(result: &'a Value, name: &str) -> &'a Value {
    result["metrics"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["name"] == name))
        .unwrap_or_else(|| panic!("metric {name} missing"))
}

/// Writes one Parquet file with the given columns.
pub fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("partition folder");
    let fields: Vec<Field> = columns.iter().map(|(n, a)| Field::new(*n, a.data_type().clone(), true)).collect();
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns.into_iter().map(|(_, a)| a).collect())
        .expect("valid batch");
    let file = std::fs::File::create(path).expect("file");
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
}

/// The Python interpreter with scipy, statsmodels, gbstats and pyarrow, set up by the test
/// command (`.ci/run`). Missing it is a failure, not a skip: the reference checks are part of
/// the suite.
pub fn python() -> String {
    std::env::var("ABREPORT_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("ABREPORT_TEST_PYTHON is not set: run the tests with ./.ci/run (it installs the reference packages)")
    })
}

/// The run ledger record of `job` and `date` under `<dir>/out/ledger`.
pub fn ledger_record(dir: &Path, job: &str, date: &str) -> Value {
    let path = dir.join("out/ledger").join(job).join(format!("{date}.json"));
    try_ledger_record(dir, job, date).unwrap_or_else(|| panic!("no ledger record {}", path.display()))
}

/// The run ledger record of `job` and `date` under `<dir>/out/ledger`, if there is one yet.
pub fn try_ledger_record(dir: &Path, job: &str, date: &str) -> Option<Value> {
    let path = dir.join("out/ledger").join(job).join(format!("{date}.json"));
    let text = std::fs::read_to_string(&path).ok()?;
    Some(serde_json::from_str(&text).expect("a ledger record is JSON (written atomically)"))
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
