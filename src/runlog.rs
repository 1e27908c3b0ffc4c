//! The run's structured log: every stage with its timing, every warning, as JSON lines.
//!
//! Entries go to `tracing` as they happen (for the terminal or the service's log) and are kept
//! so each experiment's `run.log.jsonl` holds the run-wide entries plus its own.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value};

/// One log entry.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub ts: String,
    pub elapsed_ms: f64,
    pub level: Level,
    pub stage: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiment: Option<String>,
    pub message: String,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub fields: Map<String, Value>,
}

/// How much an entry matters; `run.log.jsonl` writes it in lowercase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// A stage's name and how long it took.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct StageTiming {
    pub stage: String,
    pub seconds: f64,
}

/// The log of one run.
pub struct RunLog {
    started: Instant,
    entries: Mutex<Vec<Entry>>,
}

impl Default for RunLog {
    fn default() -> Self {
        Self::new(Instant::now())
    }
}

impl RunLog {
    pub fn new(started: Instant) -> Self {
        Self { started, entries: Mutex::new(Vec::new()) }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn push(&self, level: Level, stage: &str, experiment: Option<&str>, message: String, fields: Map<String, Value>) {
        match level {
            Level::Warn => {
                tracing::warn!(stage, experiment, fields = %serde_json::Value::Object(fields.clone()), "{message}");
            }
            Level::Error => {
                tracing::error!(stage, experiment, fields = %serde_json::Value::Object(fields.clone()), "{message}");
            }
            Level::Info => {
                tracing::info!(stage, experiment, fields = %serde_json::Value::Object(fields.clone()), "{message}");
            }
        }
        let entry = Entry {
            ts: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            elapsed_ms: (self.started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
            level,
            stage: stage.to_string(),
            experiment: experiment.map(str::to_string),
            message,
            fields,
        };
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(entry);
    }

    pub fn info(&self, stage: &str, experiment: Option<&str>, message: impl Into<String>, fields: Value) {
        self.push(Level::Info, stage, experiment, message.into(), object(fields));
    }

    pub fn warn(&self, stage: &str, experiment: Option<&str>, message: impl Into<String>, fields: Value) {
        self.push(Level::Warn, stage, experiment, message.into(), object(fields));
    }

    pub fn error(&self, stage: &str, experiment: Option<&str>, message: impl Into<String>, fields: Value) {
        self.push(Level::Error, stage, experiment, message.into(), object(fields));
    }

    /// Records that `stage` finished after `took`, with the process's peak memory so far.
    pub fn stage_done(&self, stage: &str, took: Duration, fields: Value) {
        let mut fields = object(fields);
        fields.insert("seconds".into(), Value::from((took.as_secs_f64() * 1e4).round() / 1e4));
        if let Some(peak) = peak_rss_mib() {
            fields.insert("peak_rss_mib".into(), Value::from(peak));
        }
        self.push(Level::Info, stage, None, format!("{stage} done"), fields);
    }

    /// Every stage timing so far, in order.
    pub fn timings(&self) -> Vec<StageTiming> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|e| e.experiment.is_none())
            .filter_map(|e| Some(StageTiming { stage: e.stage.clone(), seconds: e.fields.get("seconds")?.as_f64()? }))
            .collect()
    }

    /// The JSON-lines log for one experiment: run-wide entries and the experiment's own.
    pub fn jsonl_for(&self, experiment: &str) -> String {
        let entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = String::new();
        for e in entries.iter().filter(|e| e.experiment.as_deref().is_none_or(|x| x == experiment)) {
            out.push_str(&serde_json::to_string(e).expect("log entries serialize"));
            out.push('\n');
        }
        out
    }

    /// Entries at warn level or above.
    pub fn warnings(&self) -> Vec<Entry> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|e| e.level != Level::Info)
            .cloned()
            .collect()
    }
}

/// The process's peak resident memory so far in MiB (`VmHWM` in /proc/self/status), where the
/// platform tells it.
pub fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

fn object(fields: Value) -> Map<String, Value> {
    match fields {
        Value::Object(map) => map,
        Value::Null => Map::new(),
        other => Map::from_iter([("value".to_string(), other)]),
    }
}

/// The run's deadline.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    started: Instant,
    budget: Duration,
}

/// The run passed its deadline while `stage` was running.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "SLA exceeded: the run took longer than {budget:.1?} (stopped after {elapsed:.1?}, during stage `{stage}`); nothing was published as complete"
)]
pub struct SlaExceeded {
    pub stage: String,
    pub elapsed: Duration,
    pub budget: Duration,
}

impl Deadline {
    pub fn new(started: Instant, budget: Duration) -> Self {
        Self { started, budget }
    }

    pub fn budget(&self) -> Duration {
        self.budget
    }

    pub fn remaining(&self) -> Duration {
        self.budget.saturating_sub(self.started.elapsed())
    }

    fn exceeded(&self, stage: &str) -> SlaExceeded {
        SlaExceeded { stage: stage.to_string(), elapsed: self.started.elapsed(), budget: self.budget }
    }

    /// Fails when the deadline has passed (for synchronous stages, checked after them).
    pub fn check(&self, stage: &str) -> Result<(), SlaExceeded> {
        if self.started.elapsed() > self.budget { Err(self.exceeded(stage)) } else { Ok(()) }
    }

    /// Runs `future`, abandoning it when the deadline passes.
    pub async fn within<T>(&self, stage: &str, future: impl Future<Output = T>) -> Result<T, SlaExceeded> {
        tokio::time::timeout(self.remaining(), future).await.map_err(|_| self.exceeded(stage))
    }
}
