//! The words a report uses that a reader may not know, in plain language: the fixed terms of
//! every report and the meaning of each reason code the decision quotes. The report lists the
//! terms and only the codes its own decision carries, so the glossary stays short.

use serde::Serialize;

use crate::results::{CheckName, Decision, Horizon, ReasonCode};

/// One entry: the term as the report writes it, and what it means.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(super) struct Entry {
    pub term: String,
    pub meaning: &'static str,
}

/// The terms every report uses.
const TERMS: [(&str, &str); 9] = [
    (
        "always-valid interval and p-value",
        "A confidence sequence: an interval that stays valid however often it is looked at, so the report can be read every day without inflating false wins. It is wider than a one-look interval early on and narrows as units come in.",
    ),
    (
        "significant",
        "The interval of the test the recommendation reads excludes no effect (0): the difference is unlikely to be noise.",
    ),
    (
        "pp (percentage points)",
        "The absolute difference of two percentages: 14.6% to 17.6% is +3.0 pp, and +20.5% relative.",
    ),
    (
        "MDE (minimum detectable effect)",
        "The smallest relative effect the experiment is sized to detect with the planned power; smaller true effects may go unnoticed.",
    ),
    (
        "non-inferior",
        "A guardrail metric is shown not to be worse than its margin allows: the worst plausible change (the interval's bad end) is within the margin.",
    ),
    (
        "CUPED",
        "A variance reduction: each unit's value is adjusted by what it did before the experiment, which narrows intervals without moving the effect.",
    ),
    (
        "chance to win and risk",
        "The Bayesian view: the probability that the variant is better than the control, and the expected loss of shipping it (ship) or of keeping the control (keep), relative to the control.",
    ),
    (
        "SRM (sample ratio mismatch)",
        "The units are not split between the variants as configured. Something in the assignment or logging is broken, so no effect can be trusted until it is fixed.",
    ),
    ("capping", "Values above a high percentile are lowered to it, so a few extreme units cannot swing a mean."),
];

/// What a reason code says, in plain words.
pub(super) fn reason_meaning(code: &ReasonCode) -> &'static str {
    use ReasonCode::*;
    match code {
        MissingVariant => "A configured variant has no units: the experiment is not running as designed.",
        DataQualityFailed(CheckName::Srm) => {
            "The split of units between variants does not match the configuration (SRM): the results cannot be trusted."
        }
        DataQualityFailed(_) => {
            "A data-quality check that breaks the allocation failed: the results cannot be trusted."
        }
        NoPrimaryMetric => "The experiment has no primary metric to decide on.",
        TooEarly => "Too little data yet to test the primary metric.",
        PrimaryNotTestable => "The primary metric cannot be tested (no events or no variance).",
        PrimarySignificantWin => "The primary metric is significantly better in the variant.",
        PrimarySignificantLoss => "The primary metric is significantly worse in the variant.",
        PrimaryWorseNotYetHarmful => "The primary metric looks worse, but not yet beyond the harm threshold.",
        PrimaryNotSignificant => "No significant effect on the primary metric yet.",
        PrimaryNoEffect => {
            "The interval rules out an effect as large as the MDE: the variant makes no meaningful difference."
        }
        GuardrailNonInferior(_) => "The guardrail is shown to be within its margin.",
        GuardrailNoHarm(_) => "The guardrail shows no significant harm.",
        GuardrailNotTestable(_) => "The guardrail cannot be tested yet.",
        GuardrailNotYetNonInferior(_) => "The guardrail is not yet shown to be within its margin: more data is needed.",
        GuardrailWorseNotYetHarmful(_) => "The guardrail looks worse, but not yet beyond the harm threshold.",
        GuardrailSignificantLoss(_) => "The guardrail is significantly harmed.",
        GuardrailWithinMarginLoss(_) => "The guardrail is significantly worse, though within its margin.",
        SecondarySignificantLoss(_) => "A secondary metric is significantly worse.",
        TradeOff => {
            "The primary metric wins while another metric loses: a trade-off for the metrics' owners to decide."
        }
        OtherVariantHarmful(_) => "Another variant significantly harms a metric.",
        HorizonReached(Horizon::Sample) => "The planned sample is in without a verdict.",
        HorizonReached(Horizon::MaxDays) => "The experiment reached its last day (max_days) without a verdict.",
        HoldRollout => "Keep the rollout at its current exposure until the verdict.",
        NotFeasibleByLastDay => "At this traffic the planned sample arrives only after the experiment's last day.",
        CheckWarning(_) => "A data-quality check warned: read the caveat.",
        NoData => "The experiment has no analysable data.",
    }
}

/// The report's glossary: the fixed terms, then each of the decision's reason codes once.
pub(super) fn entries(decision: &Decision) -> Vec<Entry> {
    let mut out: Vec<Entry> = TERMS.iter().map(|&(term, meaning)| Entry { term: term.to_string(), meaning }).collect();
    for code in &decision.reason_codes {
        let term = code.to_string();
        if !out.iter().any(|e| e.term == term) {
            out.push(Entry { term, meaning: reason_meaning(code) });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::sample_result;

    #[test]
    fn lists_the_terms_then_each_code_of_the_decision_once() {
        let mut decision = sample_result().decision;
        decision.reason_codes = vec![
            ReasonCode::PrimarySignificantWin,
            ReasonCode::GuardrailNonInferior("error_rate".into()),
            ReasonCode::PrimarySignificantWin,
        ];
        let entries = entries(&decision);
        let terms: Vec<&str> = entries.iter().map(|e| e.term.as_str()).collect();
        assert_eq!(terms.len(), TERMS.len() + 2, "{terms:?}");
        assert_eq!(&terms[TERMS.len()..], ["PRIMARY_SIGNIFICANT_WIN", "GUARDRAIL_NON_INFERIOR:error_rate"]);
        assert!(entries.iter().any(|e| e.term.starts_with("always-valid")));
        assert!(entries.iter().all(|e| !e.meaning.is_empty()));
    }
}
