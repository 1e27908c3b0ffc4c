//! Helpers: run the binary, generate datasets, read outputs, write hand-made Parquet.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{Field, Schema};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub(crate) const REPORT_DATE: &str = "2026-11-20";

/// The outcome of one `abreport` invocation.
pub(crate) struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8(output.stdout)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            stderr: String::from_utf8(output.stderr)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        }
    }

    #[track_caller]
    pub(crate) fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "exit code\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
}

/// Runs the built binary in `dir` with `args`.
pub(crate) fn abreport(dir: &Path, args: &[&str]) -> Run {
    abreport_with_env(dir, args, &[])
}

/// Settings the tests never inherit from the machine: every `ABREPORT_*` variable the
/// binary reads and the object-store variables that could send a request off the machine.
const HERMETIC: [&str; 19] = [
    "ABREPORT_LOG",
    "ABREPORT_CHAT_WEBHOOK",
    "ABREPORT_CHAT_TIMEOUT_SECONDS",
    "ABREPORT_THREADS",
    "ABREPORT_LOG_FORMAT",
    "ABREPORT_SMTP_HOST",
    "ABREPORT_SMTP_PORT",
    "ABREPORT_SMTP_TLS",
    "ABREPORT_SMTP_USERNAME",
    "ABREPORT_SMTP_PASSWORD",
    "ABREPORT_SMTP_FROM",
    "ABREPORT_SMTP_CA_FILE",
    "ABREPORT_SMTP_TIMEOUT_SECONDS",
    "ABREPORT_RETRY_DELAY_MS",
    "AWS_ENDPOINT",
    "AWS_ENDPOINT_URL",
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
];

/// Runs the built binary in `dir` with `args` and extra environment variables.
pub(crate) fn abreport_env(dir: &Path, args: &[&str], envs: &[(&str, String)]) -> Run {
    let pairs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    abreport_with_env(dir, args, &pairs)
}

/// Runs the built binary in `dir` with `args` and extra environment variables (on top of a
/// hermetic environment: see [`HERMETIC`]).
pub(crate) fn abreport_with_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_abreport"));
    command.args(args).current_dir(dir);
    for key in HERMETIC {
        command.env_remove(key);
    }
    command.envs(env.iter().copied());
    Run::from(command.output().expect("the abreport binary runs"))
}

/// A folder with a generated dataset (`data/`, `job.toml`) and room for outputs.
pub(crate) struct Scenario {
    dir: tempfile::TempDir,
}

impl Scenario {
    /// `abreport generate --out <dir> --end-date REPORT_DATE <args>`, in a fresh temp folder
    /// under cargo's target/tmp (removed when the scenario is dropped).
    pub(crate) fn generate(args: &[&str]) -> Self {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
        let out = dir.path().to_str().expect("utf-8 path").to_string();
        let mut full = vec!["generate", "--out", &out, "--end-date", REPORT_DATE];
        full.extend_from_slice(args);
        abreport(dir.path(), &full).assert_code(0);
        Self { dir }
    }

    /// An empty folder (for hand-made data).
    pub(crate) fn empty() -> Self {
        Self { dir: tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir") }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn job(&self) -> PathBuf {
        self.path().join("job.toml")
    }

    /// Rewrites the job file with `edit`.
    pub(crate) fn edit_job(&self, edit: impl FnOnce(String) -> String) {
        let text = std::fs::read_to_string(self.job()).expect("job file");
        std::fs::write(self.job(), edit(text)).expect("job file written");
    }

    /// `abreport run --job job.toml --date REPORT_DATE --out out <extra>`.
    pub(crate) fn run(&self, extra: &[&str]) -> Run {
        self.run_with_env(extra, &[])
    }

    /// [`Scenario::run`] with extra environment variables.
    pub(crate) fn run_with_env(&self, extra: &[&str], env: &[(&str, &str)]) -> Run {
        let mut args = vec!["run", "--job", "job.toml", "--date", REPORT_DATE, "--out", "out"];
        args.extend_from_slice(extra);
        abreport_with_env(self.path(), &args, env)
    }

    /// Puts top-level keys (`admin = …`) before the job file's first table, where TOML wants them.
    pub(crate) fn prepend_to_job(&self, lines: &str) {
        self.edit_job(|job| format!("{lines}\n{job}"));
    }

    /// Rewrites the `[[experiments]]` table of experiment `id` with `edit` (the table's text,
    /// from its `id = …` line to the next table).
    pub(crate) fn edit_experiment(&self, id: &str, edit: impl FnOnce(String) -> String) {
        self.edit_job(|job| {
            let start = job.find(&format!("id = \"{id}\"\n")).unwrap_or_else(|| panic!("no experiment {id}"));
            let end = job[start..].find("\n[[").map_or(job.len(), |i| start + i + 1);
            format!("{}{}\n\n{}", &job[..start], edit(job[start..end].to_string()).trim_end(), &job[end..])
        });
    }

    /// Appends a table (`[[deliver]]` …) to the job file.
    pub(crate) fn append_to_job(&self, table: &str) {
        self.edit_job(|job| format!("{job}\n{table}\n"));
    }

    pub(crate) fn out(&self, experiment: &str) -> PathBuf {
        self.path().join("out").join(experiment)
    }

    /// The experiment entry of `out/<experiment>/results.json`.
    pub(crate) fn result(&self, experiment: &str) -> Value {
        let path = self.out(experiment).join("results.json");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let json: Value = serde_json::from_str(&text).expect("results.json parses");
        json["experiments"][0].clone()
    }
}

/// A check of an experiment result by name.
pub(crate) fn check<'a>(result: &'a Value, name: &str) -> &'a Value {
    result["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("check {name} missing"))
}

pub(crate) fn recommendation(result: &Value) -> &str {
    result["decision"]["recommendation"].as_str().expect("recommendation")
}

/// The decision's reason codes.
pub(crate) fn reason_codes(result: &Value) -> Vec<&str> {
    result["decision"]["reason_codes"]
        .as_array()
        .expect("reason codes")
        .iter()
        .map(|c| c.as_str().expect("a code"))
        .collect()
}

pub(crate) fn metric<'a>(result: &'a Value, name: &str) -> &'a Value {
    result["metrics"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["name"] == name))
        .unwrap_or_else(|| panic!("metric {name} missing"))
}

/// Writes one Parquet file with the given columns.
pub(crate) fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) {
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
pub(crate) fn python() -> String {
    std::env::var("ABREPORT_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("ABREPORT_TEST_PYTHON is not set: run the tests with ./.ci/run (it installs the reference packages)")
    })
}

/// The run ledger record of `job` and `date` under `<dir>/out/ledger`.
pub(crate) fn ledger_record(dir: &Path, job: &str, date: &str) -> Value {
    let path = dir.join("out/ledger").join(job).join(format!("{date}.json"));
    try_ledger_record(dir, job, date).unwrap_or_else(|| panic!("no ledger record {}", path.display()))
}

/// The run ledger record of `job` and `date` under `<dir>/out/ledger`, if there is one yet.
pub(crate) fn try_ledger_record(dir: &Path, job: &str, date: &str) -> Option<Value> {
    let path = dir.join("out/ledger").join(job).join(format!("{date}.json"));
    let text = std::fs::read_to_string(&path).ok()?;
    Some(serde_json::from_str(&text).expect("a ledger record is JSON (written atomically)"))
}

pub(crate) fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A test server (`tests/servers/<script>`) run by the reference Python: started with its
/// arguments, ready once it printed `READY <port>`, killed when dropped. Its stderr goes to a
/// log file beside the test's data, named in failures.
pub(crate) struct Server {
    child: Child,
    /// The loopback port it listens on.
    pub port: u16,
    log: PathBuf,
}

impl Server {
    /// Starts `script` with `args`, waiting up to 60 s for its ready line.
    pub(crate) fn start(script: &str, args: &[&str], log_dir: &Path) -> Self {
        let log = log_dir.join(format!("{script}.log"));
        let stderr = std::fs::File::create(&log).expect("server log");
        let mut child = Command::new(python())
            .arg(repo_root().join("tests/servers").join(script))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("the test server starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = sender.send(line);
        });
        let line = receiver.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let port = line.trim().strip_prefix("READY ").and_then(|p| p.parse::<u16>().ok());
        match port {
            Some(port) => Self { child, port, log },
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{script} did not get ready (said {line:?}); its log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        }
    }

    /// What the server wrote to stderr so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nothing listens on (it was free a moment ago).
pub(crate) fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

pub(crate) fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of an output with its documented time-stamped parts taken out, or `None` for a
/// file that is all time stamps (`run.log.jsonl`).
pub(crate) fn without_timestamps(name: &str, bytes: Vec<u8>) -> Option<Vec<u8>> {
    let text = || String::from_utf8(bytes.clone()).expect("UTF-8 text");
    match name {
        "run.log.jsonl" => None,
        "results.json" => {
            let mut json: Value = serde_json::from_slice(&bytes).expect("results.json parses");
            let generated_at = json["generated_at"].as_str().expect("generated_at");
            assert!(chrono::DateTime::parse_from_rfc3339(generated_at).is_ok(), "{generated_at}");
            json["generated_at"] = Value::Null;
            Some(serde_json::to_vec_pretty(&json).expect("json"))
        }
        "report.html" => {
            let text = text();
            let start = text.find("<!-- abreport:timestamped -->").expect("the time-stamped block starts");
            let end = text.find("<!-- /abreport:timestamped -->").expect("the time-stamped block ends");
            let block = &text[start..end];
            assert!(block.contains("Generated by abreport at") && block.contains("Run time:"), "{block}");
            Some(format!("{}{}", &text[..start], &text[end..]).into_bytes())
        }
        "report.md" => {
            let text = text();
            let start = text.find("\n- Run time: ").expect("the time-stamped block starts");
            assert!(text[start..].contains("Generated by abreport at"));
            Some(text.as_bytes()[..start].to_vec())
        }
        "manifest.json" => {
            // The manifest vouches for every file, time-stamped ones too: compare the entries
            // of the others.
            let mut json: Value = serde_json::from_slice(&bytes).expect("manifest parses");
            let files = json["files"].as_array_mut().expect("files");
            files.retain(|f| {
                !["run.log.jsonl", "results.json", "report.html", "report.md"]
                    .contains(&f["name"].as_str().unwrap_or(""))
            });
            Some(serde_json::to_vec_pretty(&json).expect("json"))
        }
        _ => Some(bytes),
    }
}

/// The sha256 of each output in an experiment's folder, its time-stamped parts taken out
/// (`run.log.jsonl`, all time stamps, is left out).
pub(crate) fn output_hashes(dir: &Path) -> std::collections::BTreeMap<String, String> {
    let mut hashes = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).expect("name").to_string();
        if let Some(bytes) = without_timestamps(&name, std::fs::read(&path).expect("output")) {
            hashes.insert(name, sha256(&bytes));
        }
    }
    hashes
}

/// Every row of a Parquet file, as one batch (with the file's schema when it has no rows).
pub(crate) fn read_parquet(path: &Path) -> RecordBatch {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet")
        .build()
        .expect("reader");
    let schema = arrow::array::RecordBatchReader::schema(&reader);
    let batches: Vec<_> = reader.collect::<Result<_, _>>().expect("batches");
    arrow::compute::concat_batches(&schema, &batches).expect("one batch")
}

/// A Utf8 column of a batch, as strings.
pub(crate) fn strings(batch: &RecordBatch, column: &str) -> Vec<String> {
    let array = batch.column_by_name(column).unwrap_or_else(|| panic!("no column {column}"));
    let array = array.as_any().downcast_ref::<arrow::array::StringArray>().expect("a Utf8 column");
    array.iter().map(|v| v.unwrap_or_default().to_string()).collect()
}
