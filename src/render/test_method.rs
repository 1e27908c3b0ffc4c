//! The test an experiment's intervals come from ([`Test`]): shared by every screen (report,
//! e-mail, chart), so each labels its intervals the same way.

use crate::numbers::level;
use crate::results::{ExperimentResult, InferenceMethod};

/// How an experiment's comparisons are tested: the method and level of their [`Inference`],
/// the one test the recommendation reads. Every screen labels its intervals with it, so a
/// figure and the verdict beside it always come from the same test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Test {
    pub method: InferenceMethod,
    /// Confidence level of the intervals: `1 - alpha / k` for `k` treatment variants.
    pub level: f64,
}

impl Test {
    /// The test of the first comparison that has one; when none has (nothing is testable yet),
    /// the one the settings call for.
    pub fn of(result: &ExperimentResult) -> Test {
        let first = result.metrics.iter().flat_map(|m| &m.comparisons).find_map(|c| c.inference.as_ref());
        match first {
            Some(i) => Test { method: i.method, level: i.level },
            None => {
                let k = result.variants.len().saturating_sub(1).max(1);
                let method = if result.settings.sequential {
                    InferenceMethod::AlwaysValid
                } else {
                    InferenceMethod::FixedHorizon
                };
                Test { method, level: 1.0 - result.settings.alpha / k as f64 }
            }
        }
    }

    /// `always-valid` or `fixed-horizon`.
    pub fn method_name(self) -> &'static str {
        match self.method {
            InferenceMethod::AlwaysValid => "always-valid",
            InferenceMethod::FixedHorizon => "fixed-horizon",
        }
    }

    /// `always-valid 95% CI`; `always-valid 97.5% CI` with two treatment variants.
    pub fn interval_label(self) -> String {
        format!("{} {} CI", self.method_name(), level(self.level))
    }
}
