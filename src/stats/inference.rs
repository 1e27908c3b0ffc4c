//! The test a recommendation reads: one effect per comparison on one scale, its interval at the
//! decision's level and two-sided p-values against any null, always-valid or fixed-horizon.
//!
//! The scale is relative (`m_t / m_c - 1`, what MDEs and margins are written in) unless the
//! control mean is 0, then absolute. Both methods use the same estimate and delta-method
//! variance as [`compare`](super::compare) and
//! [`compare_sequential_with`](super::compare_sequential_with), so the interval here is the
//! one those print, and `p < a` holds exactly when the level-`1 - a` interval excludes the null
//! (for the always-valid p-value, with the tuning `ρ` of the level the interval is drawn at).
//! No IO.

use super::sequential::{half_width, p_value as always_valid_p, rho_squared};
use super::{Summary, relative_variance, student_t};

/// How intervals and p-values are computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// Confidence sequences (Waudby-Smith et al., arXiv:2103.06476, as gbstats): valid however
    /// often the results are read. `tuning` is the total units of the pair at which the
    /// sequence is narrowest.
    AlwaysValid { tuning: f64 },
    /// Welch t intervals: valid when read once, at a sample fixed in advance.
    FixedHorizon,
}

/// The scale an effect is tested on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// `m_t / m_c - 1`.
    Relative,
    /// `m_t - m_c`, when the control mean is 0.
    Absolute,
}

/// One comparison's effect estimate, ready to test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Effect {
    pub scale: Scale,
    pub estimate: f64,
    /// Variance of `estimate` (delta method on the relative scale).
    pub variance: f64,
    /// Units of both variants.
    pub n_total: f64,
    /// Welch–Satterthwaite degrees of freedom of the absolute difference (fixed-horizon only).
    pub df: f64,
}

impl Effect {
    /// The effect of `treatment` against `control`. `variance_mean_t` is the treatment mean in
    /// the relative variance (the unadjusted one under CUPED, as gbstats). `Err` says why the
    /// effect cannot be tested: fewer than 2 units in a variant, or no variance — for the
    /// always-valid method in *either* variant, as gbstats' `_has_zero_variance`.
    pub fn new(
        control: &Summary,
        treatment: &Summary,
        variance_mean_t: f64,
        method: Method,
    ) -> Result<Effect, &'static str> {
        if control.n < 2 || treatment.n < 2 {
            return Err("a variant has fewer than 2 units, so there is no variance to test with");
        }
        let (n_c, n_t) = (control.n as f64, treatment.n as f64);
        let (a, b) = (treatment.variance / n_t, control.variance / n_c);
        let absolute_variance = a + b;
        let no_variance = match method {
            Method::AlwaysValid { .. } => !(control.variance > 0.0 && treatment.variance > 0.0),
            Method::FixedHorizon => absolute_variance.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater),
        };
        if no_variance || !absolute_variance.is_finite() {
            return Err("the metric does not vary within a variant yet, so it cannot be tested");
        }
        let df = absolute_variance * absolute_variance / (a * a / (n_t - 1.0) + b * b / (n_c - 1.0));
        let difference = treatment.mean - control.mean;
        let (scale, estimate, variance) = if control.mean != 0.0 {
            (Scale::Relative, difference / control.mean, relative_variance(control, treatment, variance_mean_t))
        } else {
            (Scale::Absolute, difference, absolute_variance)
        };
        if !(estimate.is_finite() && variance.is_finite() && variance > 0.0) {
            return Err("the effect's variance is undefined");
        }
        Ok(Effect { scale, estimate, variance, n_total: n_c + n_t, df })
    }

    /// Half-width of the level-`1 - alpha` interval: `t(1-α/2, df)·√V` (fixed horizon), or the
    /// confidence sequence's `√(V·N)·√(2(Nρ²+1) ln(√(Nρ²+1)/α) / (Nρ)²)` (eq. 9).
    pub fn half_width(&self, alpha: f64, method: Method) -> f64 {
        match method {
            Method::FixedHorizon => student_t::quantile(1.0 - alpha / 2.0, self.df) * self.variance.sqrt(),
            Method::AlwaysValid { tuning } => {
                half_width(self.variance, self.n_total, alpha, rho_squared(alpha, tuning))
            }
        }
    }

    /// The level-`1 - alpha` interval of the effect.
    pub fn interval(&self, alpha: f64, method: Method) -> [f64; 2] {
        let h = self.half_width(alpha, method);
        [self.estimate - h, self.estimate + h]
    }

    /// Two-sided p-value of "the effect equals `null`": `2·sf(|d - null|/√V, df)` (Welch), or
    /// the always-valid `min(1, √(Nρ²+1)·exp(-ρ²(d-null)²N/V / (2(Nρ²+1))))` (eq. 155) with
    /// `ρ` tuned for `alpha`, so that `p < alpha` exactly when [`Effect::interval`] excludes
    /// `null`.
    pub fn p_value(&self, null: f64, alpha: f64, method: Method) -> f64 {
        let distance = self.estimate - null;
        match method {
            Method::FixedHorizon => (2.0 * student_t::sf((distance / self.variance.sqrt()).abs(), self.df)).min(1.0),
            Method::AlwaysValid { tuning } => {
                always_valid_p(distance, self.variance, self.n_total, rho_squared(alpha, tuning))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{compare, compare_sequential_with};
    use super::*;
    use crate::test_support::close;

    const CONTROL: Summary = Summary { n: 25_000, mean: 0.12, variance: 0.1056 };
    const TREATMENT: Summary = Summary { n: 24_800, mean: 0.13, variance: 0.1131 };

    #[test]
    fn always_valid_interval_and_p_are_the_sequential_comparisons() {
        // compare_sequential_with is checked against gbstats 0.8.0 in sequential.rs; this is the
        // same test read on the relative scale.
        for (alpha, tuning) in [(0.1, 5000.0), (0.05, 49_800.0), (0.0125, 20_000.0)] {
            let method = Method::AlwaysValid { tuning };
            let effect = Effect::new(&CONTROL, &TREATMENT, TREATMENT.mean, method).expect("testable");
            assert_eq!(effect.scale, Scale::Relative);
            let sequential = compare_sequential_with(&CONTROL, &TREATMENT, TREATMENT.mean, alpha, tuning);
            let [lo, hi] = effect.interval(alpha, method);
            let expected = sequential.ci_relative.expect("defined");
            close(lo, expected[0], 1e-12, "lower");
            close(hi, expected[1], 1e-12, "upper");
            close(effect.p_value(0.0, alpha, method), sequential.p_value_relative.expect("defined"), 1e-12, "p");
        }
    }

    #[test]
    fn fixed_horizon_interval_is_welchs_relative_interval() {
        let effect = Effect::new(&CONTROL, &TREATMENT, TREATMENT.mean, Method::FixedHorizon).expect("testable");
        let welch = compare(&CONTROL, &TREATMENT, 0.05);
        let [lo, hi] = effect.interval(0.05, Method::FixedHorizon);
        let expected = welch.ci_relative.expect("defined");
        close(lo, expected[0], 1e-12, "lower");
        close(hi, expected[1], 1e-12, "upper");
        close(effect.df, welch.df.expect("defined"), 1e-12, "df");
    }

    #[test]
    fn p_below_alpha_exactly_when_the_interval_excludes_the_null() {
        for method in [Method::FixedHorizon, Method::AlwaysValid { tuning: 30_000.0 }] {
            let effect = Effect::new(&CONTROL, &TREATMENT, TREATMENT.mean, method).expect("testable");
            for alpha in [0.2, 0.05, 0.01] {
                let [lo, hi] = effect.interval(alpha, method);
                for null in [lo - 1e-9, lo + 1e-9, 0.0, 0.05, hi - 1e-9, hi + 1e-9] {
                    let inside = lo < null && null < hi;
                    let p = effect.p_value(null, alpha, method);
                    assert_eq!(p >= alpha, inside, "{method:?} alpha {alpha} null {null}: p {p}, [{lo}, {hi}]");
                }
            }
        }
    }

    #[test]
    fn zero_control_mean_tests_the_absolute_difference() {
        let control = Summary { n: 100, mean: 0.0, variance: 1.0 };
        let treatment = Summary { n: 100, mean: 0.5, variance: 1.0 };
        let effect = Effect::new(&control, &treatment, 0.5, Method::FixedHorizon).expect("testable");
        assert_eq!((effect.scale, effect.estimate, effect.variance), (Scale::Absolute, 0.5, 0.02));
    }

    #[test]
    fn too_little_data_is_a_reason_not_a_number() {
        let constant = Summary { n: 100, mean: 0.0, variance: 0.0 };
        let varied = Summary { n: 100, mean: 0.1, variance: 0.09 };
        let one = Summary { n: 1, mean: 0.1, variance: 0.0 };
        let always_valid = Method::AlwaysValid { tuning: 5000.0 };
        assert!(Effect::new(&constant, &varied, 0.1, always_valid).is_err());
        assert!(Effect::new(&constant, &varied, 0.1, Method::FixedHorizon).is_ok());
        assert!(Effect::new(&constant, &constant, 0.0, Method::FixedHorizon).is_err());
        assert!(Effect::new(&one, &varied, 0.1, Method::FixedHorizon).is_err());
    }
}
