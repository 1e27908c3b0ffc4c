//! The story over time: consecutive daily runs with one ledger tell what each day's report
//! said, in results.json's `trend` and as charts in report.html; a run that misses its SLA
//! adds nothing to the story.

use std::path::Path;

use serde_json::Value;

use crate::support::*;

const DAYS: [&str; 3] = ["2026-11-18", "2026-11-19", "2026-11-20"];

/// `abreport run` of `date` with the scenario's one ledger, outputs under `out`.
fn run_day(dir: &Path, date: &str, extra: &[&str]) -> Run {
    let mut args = vec!["run", "--job", "job.toml", "--date", date, "--out", "out", "--no-deliver"];
    args.extend_from_slice(extra);
    abreport(dir, &args)
}

/// Per metric and variant: the test's estimate, interval ends and significance.
type Effects = Vec<(String, String, f64, f64, f64, bool)>;

/// What the metric tables of one day's results.json show: per metric and variant the test's
/// estimate, interval and significance; and the units per variant.
fn shown(result: &Value) -> (Effects, Vec<u64>) {
    let mut effects = Vec::new();
    for m in result["metrics"].as_array().expect("metrics") {
        for c in m["comparisons"].as_array().expect("comparisons") {
            let i = &c["inference"];
            if i.is_null() {
                continue;
            }
            effects.push((
                m["name"].as_str().expect("name").to_string(),
                c["variant"].as_str().expect("variant").to_string(),
                i["estimate"].as_f64().expect("estimate"),
                i["ci"][0].as_f64().expect("lower"),
                i["ci"][1].as_f64().expect("upper"),
                i["significant"].as_bool().expect("significant"),
            ));
        }
    }
    let units = result["variants"].as_array().expect("variants").iter().map(|v| v["units"].as_u64().expect("units"));
    (effects, units.collect())
}

/// The same of one point of a `trend`.
fn point(point: &Value) -> (Effects, Vec<u64>) {
    let effects = point["effects"]
        .as_array()
        .expect("effects")
        .iter()
        .map(|e| {
            (
                e["metric"].as_str().expect("metric").to_string(),
                e["variant"].as_str().expect("variant").to_string(),
                e["estimate"].as_f64().expect("estimate"),
                e["ci"][0].as_f64().expect("lower"),
                e["ci"][1].as_f64().expect("upper"),
                e["significant"].as_bool().expect("significant"),
            )
        })
        .collect();
    let units = point["units"].as_array().expect("units").iter().map(|u| u["units"].as_u64().expect("units"));
    (effects, units.collect())
}

#[test]
fn three_daily_runs_tell_each_days_numbers_and_a_missed_sla_adds_nothing() {
    let s = Scenario::generate(&["--units", "3000", "--days", "3", "--experiment", "story,effect=0.2"]);
    let mut each_day = Vec::new();
    for (n, date) in DAYS.iter().enumerate() {
        run_day(s.path(), date, &[]).assert_code(0);
        let result = s.result("story");
        let trend = result["trend"].as_array().expect("a trend");
        assert_eq!(trend.len(), n + 1, "one point per day so far: {trend:?}");
        assert_eq!(trend[n]["report_date"], *date);
        assert_eq!(point(&trend[n]), shown(&result), "today's point is what today's tables show");
        each_day.push(shown(&result));
    }
    let trend = s.result("story")["trend"].as_array().expect("a trend").clone();
    let dates: Vec<&str> = trend.iter().map(|p| p["report_date"].as_str().expect("date")).collect();
    assert_eq!(dates, DAYS);
    for (p, day) in trend.iter().zip(&each_day) {
        assert_eq!(&point(p), day, "{} as reported that day", p["report_date"]);
    }
    assert!(each_day[0] != each_day[2], "the days tell different numbers");

    let html = std::fs::read_to_string(s.out("story").join("report.html")).expect("report.html");
    assert!(html.contains("The story so far"));
    assert!(html.contains(r#"aria-label="Cumulative relative effect on conversion against the control by report date from 2026-11-18 to 2026-11-20"#));
    assert!(html.contains("<title>2026-11-19 · treatment: "), "the middle day is a point of the chart");
    let markdown = std::fs::read_to_string(s.out("story").join("report.md")).expect("report.md");
    assert!(markdown.contains("## The story so far") && markdown.contains("| 2026-11-18 | treatment |"), "{markdown}");

    // Re-running an earlier day replaces that day's point and keeps the later ones.
    run_day(s.path(), DAYS[1], &[]).assert_code(0);
    let rerun = s.result("story");
    assert_eq!(rerun["trend"].as_array().expect("a trend").len(), 2, "the story as of that day");
    let history_file = s.path().join("out/ledger/.history/generated/story.json");
    let history: Value = serde_json::from_slice(&std::fs::read(&history_file).expect("history")).expect("json");
    assert_eq!(history["points"].as_array().expect("points").len(), 3, "later days kept in the history");

    // A run past its SLA publishes nothing, and so adds no point.
    let before = std::fs::read(&history_file).expect("history");
    s.edit_job(|job| job.replace("sla_seconds = 60", "sla_seconds = 0.000001"));
    run_day(s.path(), "2026-11-21", &[]).assert_code(6);
    assert_eq!(std::fs::read(&history_file).expect("history"), before, "the history is unchanged");
}

#[test]
fn an_unreadable_history_is_a_warning_and_is_left_as_it_is() {
    let s = Scenario::generate(&["--units", "2000", "--days", "2", "--experiment", "story,effect=0.2"]);
    let history_file = s.path().join("out/ledger/.history/generated/story.json");
    std::fs::create_dir_all(history_file.parent().expect("folder")).expect("folder");
    std::fs::write(&history_file, "not json").expect("written");
    run_day(s.path(), REPORT_DATE, &[]).assert_code(0);
    let result = s.result("story");
    assert_eq!(result["trend"].as_array().expect("a trend").len(), 1, "only this run's point");
    let log = std::fs::read_to_string(s.out("story").join("run.log.jsonl")).expect("run log");
    assert!(log.contains("not an experiment history") && log.contains("the history is not updated"), "{log}");
    assert_eq!(std::fs::read_to_string(&history_file).expect("history"), "not json", "not replaced");
}
