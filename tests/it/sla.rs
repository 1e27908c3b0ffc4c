//! A run that passes its deadline stops, publishes nothing as complete, and says which stage
//! was running.

use crate::support::*;

#[test]
fn a_run_over_its_sla_exits_with_the_sla_code_and_publishes_nothing() {
    let s = Scenario::generate(&["--units", "4000", "--days", "3", "--experiment", "slow"]);
    s.edit_job(|job| job.replace("sla_seconds = 60", "sla_seconds = 0.000001"));
    let run = s.run(&[]);
    run.assert_code(6);
    assert!(run.stderr.contains("SLA exceeded"), "{}", run.stderr);
    assert!(run.stderr.contains("during stage `"), "names the stage: {}", run.stderr);
    assert!(!s.path().join("out").exists(), "nothing was written");
}
