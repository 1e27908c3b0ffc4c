//! Every number abreport writes, checked against an independent implementation: the
//! contract's attribution redone in pandas from the raw Parquet, and the statistics from
//! scipy, statsmodels and gbstats (tests/reference/check_run.py).

use std::process::Command;

use crate::support::*;

pub fn reference_check(s: &Scenario, experiment: &str) {
    let script = repo_root().join("tests/reference/check_run.py");
    let output = Command::new(python())
        .arg(script)
        .args([s.job().to_str().expect("path"), REPORT_DATE, experiment, s.out(experiment).to_str().expect("path")])
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{experiment}:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("comparisons match scipy, gbstats and statsmodels"), "{stdout}");
}

#[test]
fn generated_experiments_match_scipy_statsmodels_and_gbstats() {
    let s = Scenario::generate(&[
        "--units",
        "12000",
        "--days",
        "6",
        "--seed",
        "3",
        "--nan-rate",
        "0.01",
        "--experiment",
        "strong,effect=0.2,revenue_effect=0.1",
        "--experiment",
        "switchers,multi_variant_rate=0.003,coverage=0.6",
        "--experiment",
        "skewed,treatment_share=0.47",
    ]);
    s.run(&[]).assert_code(0);
    for experiment in ["strong", "switchers", "skewed"] {
        reference_check(&s, experiment);
    }
}

#[test]
fn per_experiment_overrides_and_bh_correction_match_statsmodels() {
    let s = Scenario::generate(&["--units", "6000", "--days", "4", "--seed", "5", "--experiment", "tuned,effect=0.1"]);
    s.edit_job(|job| job.replace("margin = 0.2 }]", "margin = 0.2 }]\nalpha = 0.1\ncorrection = \"bh\""));
    s.run(&[]).assert_code(0);
    let result = s.result("tuned");
    assert_eq!(result["settings"]["correction"], "bh");
    assert_eq!(result["settings"]["alpha"], 0.1);
    reference_check(&s, "tuned");
}
