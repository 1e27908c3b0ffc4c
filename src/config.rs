//! Job files: TOML in, a checked [`Job`] out.
//!
//! [`raw`] mirrors the file; [`job`] checks it and collects *all* problems, each with the file
//! and line, so a user fixes a job file in one pass. The rest of the program only sees [`Job`].
//! This module reads the job file and nothing else.

mod job;
mod model;
pub mod raw;

use std::path::{Path, PathBuf};

pub use job::{check, safe_path_component};
pub use model::*;

/// Reads and checks one job file.
pub fn load(file: &Path) -> Result<Job, ConfigError> {
    load_with(file, &EngineOverride::default())
}

/// [`load`], with engine settings from the command line over the environment's and the file's.
pub fn load_with(file: &Path, command_line: &EngineOverride) -> Result<Job, ConfigError> {
    let text =
        std::fs::read_to_string(file).map_err(|source| ConfigError::Read { file: file.to_path_buf(), source })?;
    // A job file is input: whatever it holds must not take the process down (`serve` reloads
    // job files beside other jobs' runs). `check` does not panic on any text or number (its
    // property tests); this keeps a bug in it from being fatal all the same.
    let mut job = std::panic::catch_unwind(|| check(&text, file)).unwrap_or_else(|_| {
        Err(ConfigError::Invalid {
            file: file.to_path_buf(),
            problems: vec![Problem {
                line: None,
                message: "internal error while checking this file (a bug in abreport); the file is not used".into(),
            }],
        })
    })?;
    let overrides = EngineOverride::from_environment().or(command_line.clone());
    job.source.apply(&overrides).map_err(|message| ConfigError::Invalid {
        file: job.file.clone(),
        problems: vec![Problem { line: None, message: format!("[source] engine: {message}") }],
    })?;
    Ok(job)
}

/// Job files of a folder, each with its outcome.
pub type JobFiles = Vec<(PathBuf, Result<Job, ConfigError>)>;

/// Reads every `*.toml` file of a folder (or the one file given), in name order.
/// Each entry is the file and its outcome, so one bad file does not hide the others.
pub fn load_all(path: &Path) -> Result<JobFiles, ConfigError> {
    if path.is_file() {
        return Ok(vec![(path.to_path_buf(), load(path))]);
    }
    let entries = std::fs::read_dir(path).map_err(|source| ConfigError::Read { file: path.to_path_buf(), source })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|ext| ext == "toml") && p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(ConfigError::NoJobs { dir: path.to_path_buf() });
    }
    Ok(files
        .into_iter()
        .map(|f| {
            let job = load(&f);
            (f, job)
        })
        .collect())
}
