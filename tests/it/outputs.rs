//! What a run leaves behind: every file, complete, matching its manifest, and safe to open.

use sha2::{Digest, Sha256};

use crate::support::*;

const FILES: [&str; 8] = [
    "report.html",
    "report.md",
    "results.json",
    "results.parquet",
    "allocation.parquet",
    "units.parquet",
    "run.log.jsonl",
    "manifest.json",
];

fn assert_complete_set(dir: &std::path::Path) {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut expected: Vec<String> = FILES.iter().map(ToString::to_string).collect();
    expected.sort();
    assert_eq!(names, expected, "exactly the contract's files, no temporaries left");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).expect("manifest")).expect("json");
    let listed = manifest["files"].as_array().expect("files");
    assert_eq!(listed.len(), FILES.len() - 1);
    for entry in listed {
        let bytes = std::fs::read(dir.join(entry["name"].as_str().expect("name"))).expect("listed file");
        assert_eq!(entry["bytes"].as_u64(), Some(bytes.len() as u64));
        let digest: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(entry["sha256"].as_str(), Some(digest.as_str()), "{}", entry["name"]);
    }
}

#[test]
fn the_demo_makes_a_realistic_report_set_on_a_fresh_folder() {
    let s = Scenario::empty();
    let run = abreport(s.path(), &["demo", "--out", "demo"]);
    run.assert_code(0);
    for (experiment, verdict) in [
        ("checkout-redesign", "PROMOTE treatment"),
        ("new-recommendations", "ROLLBACK treatment"),
        ("search-ranking-v2", "CONTINUE"),
        ("pricing-page", "PAUSE"),
    ] {
        let line = run
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with(experiment))
            .unwrap_or_else(|| panic!("{}", run.stdout));
        assert!(line.contains(verdict), "{line}");
        assert!(line.contains(&format!("demo/reports/{experiment}/report.html")), "{line}");
        assert_complete_set(&s.path().join("demo/reports").join(experiment));
    }
}

#[test]
fn results_json_has_every_contract_field() {
    let s = Scenario::generate(&["--units", "2000", "--days", "3", "--experiment", "fields,effect=0.2"]);
    s.run(&[]).assert_code(0);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.out("fields").join("results.json")).expect("json")).expect("parses");
    assert_eq!(json["schema_version"], 1);
    assert_eq!(json["job"], "generated");
    assert_eq!(json["report_date"], REPORT_DATE);
    let e = &json["experiments"][0];
    for key in ["id", "status", "error", "decision", "checks", "variants", "metrics"] {
        assert!(e.get(key).is_some(), "experiment field {key}");
    }
    for key in ["recommendation", "variant", "reasons"] {
        assert!(e["decision"].get(key).is_some(), "decision field {key}");
    }
    for key in ["name", "units", "expected_weight"] {
        assert!(e["variants"][0].get(key).is_some(), "variant field {key}");
    }
    let m = &e["metrics"][0];
    for key in ["name", "kind", "role", "variants", "comparisons"] {
        assert!(m.get(key).is_some(), "metric field {key}");
    }
    for key in ["variant", "units", "mean", "variance"] {
        assert!(m["variants"][0].get(key).is_some(), "metric variant field {key}");
    }
    let c = &m["comparisons"][0];
    for key in [
        "variant",
        "baseline",
        "absolute_effect",
        "relative_effect",
        "ci_absolute",
        "ci_relative",
        "p_value",
        "p_value_adjusted",
        "significant",
    ] {
        assert!(c.get(key).is_some(), "comparison field {key}");
    }
    assert_eq!(c["ci_absolute"].as_array().map(Vec::len), Some(2));
}

#[test]
fn results_parquet_holds_the_same_numbers_as_results_json() {
    let s = Scenario::generate(&["--units", "2000", "--days", "3", "--experiment", "same"]);
    s.run(&[]).assert_code(0);
    let result = s.result("same");
    let file = std::fs::File::open(s.out("same").join("results.parquet")).expect("file");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet")
        .build()
        .expect("reader");
    let batch = reader.into_iter().next().expect("a batch").expect("readable");
    let metrics = result["metrics"].as_array().expect("metrics");
    assert_eq!(batch.num_rows(), metrics.len() * 2, "one row per metric x variant");
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .unwrap_or_else(|| panic!("column {name}"))
            .as_any()
            .downcast_ref::<arrow::array::Float64Array>()
            .expect("f64")
            .clone()
    };
    let (mean, p) = (column("mean"), column("p_value"));
    for (i, m) in metrics.iter().enumerate() {
        assert_eq!(mean.value(2 * i), m["variants"][0]["mean"].as_f64().expect("mean"));
        assert_eq!(mean.value(2 * i + 1), m["variants"][1]["mean"].as_f64().expect("mean"));
        if let Some(pv) = m["comparisons"][0]["p_value"].as_f64() {
            assert_eq!(p.value(2 * i + 1), pv);
        }
    }
}

#[test]
fn a_hostile_experiment_name_is_escaped_in_reports_and_sanitized_on_disk() {
    let s = Scenario::generate(&["--units", "1000", "--days", "2", "--experiment", "<script>alert(1)</script>"]);
    s.run(&[]).assert_code(0);
    let dirs: Vec<String> = std::fs::read_dir(s.path().join("out"))
        .expect("out")
        .map(|e| e.expect("e").file_name().to_string_lossy().into_owned())
        .filter(|name| name != "ledger")
        .collect();
    assert_eq!(dirs.len(), 1);
    assert!(dirs[0].starts_with("_script_alert_1___script_-") && !dirs[0].contains('<'), "{dirs:?}");
    let dir = s.path().join("out").join(&dirs[0]);
    let html = std::fs::read_to_string(dir.join("report.html")).expect("html");
    assert!(!html.contains("<script>alert(1)"), "raw script in HTML");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    let markdown = std::fs::read_to_string(dir.join("report.md")).expect("md");
    assert!(!markdown.contains("<script>"), "raw script in Markdown");
    assert!(markdown.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!html.contains("<script"), "the report carries no scripts at all");
}

#[test]
fn the_html_report_is_self_contained_and_puts_the_verdict_first() {
    let s = Scenario::generate(&["--units", "2000", "--days", "3", "--experiment", "look,effect=0.5"]);
    s.run(&[]).assert_code(0);
    let html = std::fs::read_to_string(s.out("look").join("report.html")).expect("html");
    for external in ["http://", "https://", "<link", "<script", "@import"] {
        let allowed = html.matches("http://www.w3.org/2000/svg").count();
        if external == "http://" {
            assert_eq!(html.matches(external).count(), allowed, "only the SVG namespace");
        } else {
            assert!(!html.contains(external), "{external}");
        }
    }
    assert!(html.contains("name=\"viewport\""), "readable on a phone");
    let verdict = html.find("class=\"verdict").expect("verdict");
    let checks = html.find("Data quality checks").expect("checks");
    let chart = html.find("<svg").expect("inline chart");
    let metrics = html.find("<h2>Metrics</h2>").expect("metrics");
    assert!(verdict < checks && checks < chart && chart < metrics);
    assert!(html.contains("Stage timings") && html.contains("read events"));
}

#[test]
fn a_rerun_replaces_the_set_atomically() {
    let s = Scenario::generate(&["--units", "1500", "--days", "2", "--experiment", "again"]);
    s.run(&[]).assert_code(0);
    s.run(&[]).assert_code(0);
    assert_complete_set(&s.out("again"));
    assert_eq!(ledger_record(s.path(), "generated", REPORT_DATE)["attempt"], 2, "both runs are recorded");
}

#[test]
fn a_delivered_date_is_not_sent_again_without_force() {
    let s = Scenario::generate(&["--units", "1000", "--days", "2", "--experiment", "once"]);
    s.edit_job(|job| format!("{job}\n[[deliver]]\nkind = \"dir\"\npath = \"shared\"\n"));
    s.run(&[]).assert_code(0);
    let delivered = s.path().join("shared/generated").join(REPORT_DATE).join("once/manifest.json");
    let first = std::fs::read_to_string(&delivered).expect("manifest");

    let again = s.run(&[]);
    again.assert_code(0);
    assert!(again.stdout.contains("already delivered") && again.stdout.contains("--force"), "{}", again.stdout);
    assert_eq!(std::fs::read_to_string(&delivered).expect("manifest"), first, "not sent again");

    s.run(&["--force"]).assert_code(0);
    assert_ne!(std::fs::read_to_string(&delivered).expect("manifest"), first, "sent again when asked");
    let record = ledger_record(s.path(), "generated", REPORT_DATE);
    assert_eq!(record["attempt"], 2);
    assert_eq!(record["deliveries"][0]["ok"], true);
}

#[test]
fn the_run_log_records_stages_with_timings() {
    let s = Scenario::generate(&["--units", "1500", "--days", "2", "--experiment", "logged"]);
    s.run(&[]).assert_code(0);
    let log = std::fs::read_to_string(s.out("logged").join("run.log.jsonl")).expect("log");
    let entries: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    for stage in ["list", "read exposures", "read events"] {
        let entry = entries
            .iter()
            .find(|e| e["stage"] == stage && e["fields"]["seconds"].is_number())
            .unwrap_or_else(|| panic!("{stage}"));
        assert!(entry["elapsed_ms"].as_f64().expect("ms") >= 0.0);
    }
    assert!(entries.iter().any(|e| e["stage"] == "analyze" && e["experiment"] == "logged"));
}

#[test]
fn a_dir_delivery_gets_the_same_set_under_job_and_date_and_no_deliver_skips_it() {
    let s = Scenario::generate(&["--units", "1000", "--days", "2", "--experiment", "shipped"]);
    s.edit_job(|job| format!("{job}\n[[deliver]]\nkind = \"dir\"\npath = \"shared\"\n"));
    s.run(&["--no-deliver"]).assert_code(0);
    assert!(!s.path().join("shared").exists());
    s.run(&[]).assert_code(0);
    assert_complete_set(&s.path().join("shared/generated").join(REPORT_DATE).join("shipped"));
}

#[test]
fn the_report_reads_one_test_and_keeps_the_contract_figures_in_their_own_section() {
    let s = Scenario::generate(&["--units", "2000", "--days", "3", "--experiment", "one,effect=0.5"]);
    s.run(&[]).assert_code(0);
    let html = std::fs::read_to_string(s.out("one").join("report.html")).expect("html");
    let markdown = std::fs::read_to_string(s.out("one").join("report.md")).expect("md");
    let title = "Fixed-horizon figures (results.json contract fields; valid for one look at a planned sample)";
    for report in [&html, &markdown] {
        assert!(report.contains("| always-valid 95% CI |") || report.contains(">always-valid 95% CI</th>"));
        assert!(report.contains(title), "the contract figures are still there");
        assert!(!report.contains("valid only when read once"), "no fixed-horizon warning by default");
    }
    let metrics = html.find("<h2>Metrics</h2>").expect("metrics");
    let fixed = html.find(title).expect("fixed-horizon section");
    assert!(metrics < fixed, "the test's figures come first");
    assert!(!html[..fixed].contains("adj. p"), "no adjusted p-value beside the test's figures");
}

#[test]
fn a_fixed_horizon_job_warns_that_its_figures_hold_for_one_look_only() {
    let s = Scenario::generate(&["--units", "2000", "--days", "3", "--experiment", "once-only,effect=0.5"]);
    s.edit_job(|job| job.replace("[stats]\n", "[stats]\nsequential = false\n"));
    s.run(&[]).assert_code(0);
    let html = std::fs::read_to_string(s.out("once-only").join("report.html")).expect("html");
    let markdown = std::fs::read_to_string(s.out("once-only").join("report.md")).expect("md");
    assert!(html.contains("<p class=\"warning\">This job uses fixed-horizon inference"), "{html}");
    assert!(html.contains("valid only when read once, at the planned sample — not daily"));
    assert!(markdown.contains("> **Warning:** This job uses fixed-horizon inference"));
    assert!(html.contains(">fixed-horizon 95% CI</th>"));
}
