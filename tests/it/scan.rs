//! `abreport scan`, the decode floor: it reads every row of the files a run reads (the window,
//! the CUPED lookback's event partitions, nothing after the report date), and fails as `run`
//! does.

use std::path::Path;

use parquet::file::reader::{FileReader, SerializedFileReader};

use crate::support::*;

const SOURCE: i32 = 3;

/// Two experiments over 3 days with 2 days of event history before them (CUPED lookback).
fn with_history() -> Scenario {
    Scenario::generate(&["--units", "1000", "--days", "3", "--history-days", "2", "--experiments", "2"])
}

/// Files and rows of `dataset`'s partitions dated `to` or earlier, counted from the Parquet
/// footers.
fn counted(data: &Path, dataset: &str, to: &str) -> (u64, u64) {
    let (mut files, mut rows) = (0, 0);
    for partition in std::fs::read_dir(data.join(dataset)).expect("dataset folder") {
        let partition = partition.expect("partition").path();
        let name = partition.file_name().and_then(|n| n.to_str()).expect("utf-8 name").to_string();
        let date = name.strip_prefix("date=").expect("a date= folder");
        if date > to {
            continue;
        }
        for file in std::fs::read_dir(&partition).expect("partition folder") {
            let file = std::fs::File::open(file.expect("file").path()).expect("open");
            let reader = SerializedFileReader::new(file).expect("a Parquet file");
            files += 1;
            rows += reader.metadata().file_metadata().num_rows() as u64;
        }
    }
    (files, rows)
}

/// The files and rows of the line of `scan`'s output that starts with `label`.
fn reported(stdout: &str, label: &str) -> (u64, u64) {
    let line = stdout.lines().find(|l| l.starts_with(label)).unwrap_or_else(|| panic!("no `{label}` line:\n{stdout}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let before = |unit: &str| -> u64 {
        let at = words.iter().position(|w| *w == unit).unwrap_or_else(|| panic!("no `{unit}` in `{line}`"));
        words[at - 1].replace(',', "").parse().unwrap_or_else(|_| panic!("a number before `{unit}` in `{line}`"))
    };
    (before("files"), before("rows"))
}

#[test]
fn scan_reads_every_row_of_the_files_a_run_reads() {
    let s = with_history();
    let data = s.path().join("data");
    for date in [REPORT_DATE, "2026-11-19"] {
        let scan = abreport(s.path(), &["scan", "--job", "job.toml", "--date", date]);
        scan.assert_code(0);
        let exposures = counted(&data, "exposures", date);
        let events = counted(&data, "events", date);
        assert_eq!(reported(&scan.stdout, "exposures"), exposures, "{date}\n{}", scan.stdout);
        assert_eq!(reported(&scan.stdout, "events"), events, "{date}\n{}", scan.stdout);
        assert_eq!(reported(&scan.stdout, "total"), (exposures.0 + events.0, exposures.1 + events.1), "{date}");
        assert!(exposures.1 > 0 && events.1 > 0, "the dataset has rows");
    }
    // The lookback's event partitions are read, and nothing is written.
    let scan = abreport(s.path(), &["scan", "--job", "job.toml", "--date", REPORT_DATE]);
    assert_eq!(reported(&scan.stdout, "events").0, 10, "5 days of events, 2 files each\n{}", scan.stdout);
    assert!(!s.path().join("out").exists(), "scan writes nothing");
}

#[test]
fn scan_of_missing_data_is_the_source_error_a_run_gives() {
    let s = with_history();
    std::fs::rename(s.path().join("data"), s.path().join("moved")).expect("move");
    let scan = abreport(s.path(), &["scan", "--job", "job.toml", "--date", REPORT_DATE]);
    scan.assert_code(SOURCE);
    let data = s.path().join("data");
    let folder = data.to_str().expect("utf-8 path");
    assert!(scan.stderr.contains(&format!("folder `{folder}/` does not exist")), "{}", scan.stderr);
    assert!(scan.stdout.is_empty(), "{}", scan.stdout);
    let run = s.run(&[]);
    run.assert_code(SOURCE);
    let first_error = |stderr: &str| stderr.lines().find(|l| l.starts_with("error: ")).map(str::to_string);
    assert_eq!(first_error(&scan.stderr), first_error(&run.stderr), "the same error as `run`");
}
