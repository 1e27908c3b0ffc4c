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
    assert!(!s.out("slow").exists(), "nothing was published");

    // The ledger beside the outputs records the miss and the stage it happened in.
    let record = ledger_record(s.path(), "generated", REPORT_DATE);
    assert_eq!(record["status"], "sla_missed");
    let stage = record["sla_missed_stage"].as_str().expect("a stage");
    assert!(run.stderr.contains(&format!("during stage `{stage}`")), "{stage} vs {}", run.stderr);
    assert_eq!(record["exit_code"], 6);
    assert!(record["error"].as_str().expect("error").contains("SLA exceeded"));
    assert!(run.stderr.contains("admin notice") && run.stderr.contains("sla_missed"), "{}", run.stderr);
}
