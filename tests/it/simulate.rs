//! `abreport simulate` as a calibration guard: a seeded, CI-sized run of the eight standard
//! scenarios (four designs, each A/A and with a true effect equal to the MDE) read daily
//! through the real analyze and decide. The bounds are loose on purpose: at this size a
//! correct rule clears them by a wide margin whatever the seed (see the rates below), while a
//! broken one does not — a rule that promotes or rolls back more than a quarter of A/A tests
//! (the old harm-test bug rolled back 47.5%; testing harm with the fixed-horizon p-value read
//! daily rolls back 30–65% of them here), that rarely promotes a true win, or that says "stop
//! and keep the control" while the interval still holds the MDE.

use serde_json::Value;

use crate::support::*;

/// Experiments per scenario and daily looks. The debug binary (what these tests run) took
/// 25.5 s for `simulate --experiments 20 --days 21 --json` on this 2-core machine, and this
/// test 28 s under `cargo test`, both with a release build busy on the other core (about 1.3 s
/// per experiment of all eight scenarios); 28 looks would add a third for nothing the bounds
/// need (the median PROMOTE day is 8–13).
///
/// At 100 experiments (seed 7, 21 looks) the rates were: A/A PROMOTE ≤ 1%, ROLLBACK ≤ 3%; A/B
/// PROMOTE by the last look 83–94%, ROLLBACK 0%. With 20 experiments, a bound of 25% is 5
/// false verdicts where about 0.6 are expected, and 50% is 10 promotions where 16 or more are.
const EXPERIMENTS: u32 = 20;
const DAYS: u32 = 21;

fn rate(report: &Value, field: &str) -> f64 {
    report[field].as_f64().unwrap_or_else(|| panic!("`{field}` is a rate: {report}"))
}

#[test]
fn simulated_decisions_keep_their_error_rates() {
    let dir = Scenario::empty();
    let (experiments, days) = (EXPERIMENTS.to_string(), DAYS.to_string());
    let run =
        abreport(dir.path(), &["simulate", "--experiments", &experiments, "--days", &days, "--seed", "1", "--json"]);
    run.assert_code(0);
    let reports: Vec<Value> = serde_json::from_str(&run.stdout).expect("a JSON list of scenario reports");
    assert_eq!(reports.len(), 8, "four designs, each A/A and A/B: {}", run.stdout);
    let aa = reports.iter().filter(|r| r["truth"] == "A/A").count();
    assert_eq!(aa, 4, "half of the scenarios are A/A: {}", run.stdout);

    for report in &reports {
        let scenario =
            format!("{} ({})", report["name"].as_str().unwrap_or("?"), report["truth"].as_str().unwrap_or("?"));
        assert_eq!(
            (report["experiments"].as_u64(), report["days"].as_u64()),
            (Some(u64::from(EXPERIMENTS)), Some(u64::from(DAYS))),
            "{scenario}"
        );
        // PRIMARY_NO_EFFECT needs every interval's favourable end below the MDE, so no look
        // may say it while an interval still holds the MDE.
        assert_eq!(report["stop_with_mde_in_interval"], 0, "{scenario}: {report}");
        if report["truth"] == "A/A" {
            assert!(rate(report, "ever_promote") <= 0.25, "{scenario}: false PROMOTE on any look: {report}");
            assert!(rate(report, "ever_rollback") <= 0.25, "{scenario}: false ROLLBACK on any look: {report}");
        } else {
            assert!(rate(report, "promote_by_end") >= 0.5, "{scenario}: a true win at the MDE is promoted: {report}");
            assert!(rate(report, "ever_rollback") <= 0.15, "{scenario}: a true win is rolled back: {report}");
        }
    }
}
