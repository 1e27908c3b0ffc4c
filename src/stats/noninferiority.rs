//! Non-inferiority of a variant against the control with a relative margin — the question a
//! guardrail metric asks ("is the treatment no more than δ worse?"), as a fixed-horizon Welch
//! test. Takes per-variant [`Summary`] values; no IO. (The sample size of the question, on the
//! interval the recommendation reads, is [`power`](super::power)'s.)

use super::{Summary, student_t};

/// One-sided Welch test of non-inferiority.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct NonInferiority {
    /// `mean_t - k·mean_c`, with `k = 1 - margin` when higher is better and `k = 1 + margin`
    /// when lower is better: how far the treatment lies from the margin (positive = better
    /// side when higher is better, negative = better side when lower is better).
    pub estimate: f64,
    /// `sqrt(v_t/n_t + k² v_c/n_c)`.
    pub standard_error: f64,
    /// `estimate / standard_error`, as statsmodels' `ttest_ind` reports it.
    pub t: f64,
    /// Welch–Satterthwaite degrees of freedom of the contrast.
    pub df: f64,
    /// One-sided p-value of "the treatment is inferior by at least the margin".
    pub p_value: f64,
}

fn k_factor(margin: f64, higher_is_better: bool) -> f64 {
    if higher_is_better { 1.0 - margin } else { 1.0 + margin }
}

/// Tests non-inferiority of `treatment` to `control` with the relative `margin` δ (0.02 = 2 %).
///
/// Higher is better: `H0: μ_t ≤ (1-δ)μ_c` against `H1: μ_t > (1-δ)μ_c`. Lower is better:
/// `H0: μ_t ≥ (1+δ)μ_c` against `H1: μ_t < (1+δ)μ_c`. With `k` the factor above, the hypothesis
/// is about the linear contrast `μ_t - kμ_c`, tested with Welch's unequal-variance t statistic
/// `t = (m_t - k m_c) / sqrt(v_t/n_t + k² v_c/n_c)`, Welch–Satterthwaite
/// `df = (a + b)² / (a²/(n_t-1) + b²/(n_c-1))` with `a = v_t/n_t`, `b = k² v_c/n_c` (Welch 1947,
/// Biometrika 34), and `p = sf(t, df)` (higher is better) or `p = sf(-t, df)` (lower is better).
/// This is the ratio-of-means formulation of non-inferiority (Hauschke, Kieser & Hothorn 1999,
/// Biometrical Journal 41; with Welch's df as in Hasler, Vonk & Hothorn 2008, Statistics in
/// Medicine 27): it is Welch's test of the treatment's values against `k ×` the control's,
/// i.e. statsmodels' `ttest_ind(t, k*c, usevar='unequal', alternative='larger'|'smaller')`.
///
/// Why not the margin fixed at the observed control mean (`ttest_ind(t, c, value=-δ·mean(c))`)?
/// It has the same estimate but treats `δ·m_c` as known; its standard error
/// `sqrt(v_t/n_t + v_c/n_c)` overstates the contrast's when higher is better (conservative) and
/// understates it when lower is better (anti-conservative). The contrast accounts for the
/// control mean's own noise in the margin.
///
/// `None` when a variant has fewer than 2 units, neither variant varies, or the margin is
/// negative or not finite.
pub fn noninferiority(
    control: &Summary,
    treatment: &Summary,
    margin: f64,
    higher_is_better: bool,
) -> Option<NonInferiority> {
    if control.n < 2 || treatment.n < 2 || !(margin >= 0.0 && margin.is_finite()) {
        return None;
    }
    let k = k_factor(margin, higher_is_better);
    let (n_c, n_t) = (control.n as f64, treatment.n as f64);
    let a = treatment.variance / n_t;
    let b = k * k * control.variance / n_c;
    let se2 = a + b;
    if !(se2 > 0.0 && se2.is_finite()) {
        return None;
    }
    let standard_error = se2.sqrt();
    let estimate = treatment.mean - k * control.mean;
    let t = estimate / standard_error;
    let df = se2 * se2 / (a * a / (n_t - 1.0) + b * b / (n_c - 1.0));
    let p_value = if higher_is_better { student_t::sf(t, df) } else { student_t::sf(-t, df) };
    if !(t.is_finite() && p_value.is_finite()) {
        return None;
    }
    Some(NonInferiority { estimate, standard_error, t, df, p_value })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::close;

    /// Checks t, df and p against statsmodels 0.15.0 `ttest_ind(t, k*c, usevar='unequal',
    /// alternative=...)` on the raw arrays of tests/reference/noninferiority.py; the summaries
    /// are numpy's moments of those arrays.
    fn check(control: (u64, f64, f64), treatment: (u64, f64, f64), margin: f64, higher: bool, expected: [f64; 3]) {
        let summary = |(n, mean, variance)| Summary { n, mean, variance };
        let got = noninferiority(&summary(control), &summary(treatment), margin, higher).expect("defined");
        close(got.t, expected[0], 1e-9, "t");
        close(got.p_value, expected[1], 1e-9, "p");
        close(got.df, expected[2], 1e-9, "df");
        close(got.estimate / got.standard_error, got.t, 1e-15, "t = estimate / se");
    }

    #[test]
    fn higher_is_better_matches_statsmodels() {
        // scipy.stats.ttest_ind(t, 0.95*c, equal_var=False, alternative='greater') agrees:
        // p = 0.0019746970689640355.
        check(
            (40, 18.41925935866616, 10.778102945700411),
            (45, 19.910847757797765, 18.776866977461424),
            0.05,
            true,
            [2.968645591764424, 0.001974697068964012, 79.69282260848368],
        );
    }

    #[test]
    fn lower_is_better_matches_statsmodels() {
        check(
            (60, 2.840158427332898, 0.8506872721151298),
            (55, 3.0065355434766183, 1.020915884775891),
            0.03,
            false,
            [0.44280732625270436, 0.6706147936921005, 110.5406034798662],
        );
    }

    #[test]
    fn large_samples_match_statsmodels() {
        check(
            (500, 9.701083594075364, 8.213714956306012),
            (520, 10.002736619631987, 8.648284823142495),
            0.02,
            true,
            [2.753399039628194, 0.003001488938482878, 1017.9540441974593],
        );
        check(
            (500, 10.03370889689496, 9.906829802507744),
            (520, 9.52034963568668, 9.233151917693412),
            0.02,
            true,
            [-1.630313754973028, 0.9483272753012385, 1015.0113676065313],
        );
    }

    #[test]
    fn degenerate_inputs_are_none() {
        let varied = Summary { n: 50, mean: 1.0, variance: 1.0 };
        let constant = Summary { n: 50, mean: 1.0, variance: 0.0 };
        let single = Summary { n: 1, mean: 1.0, variance: 0.0 };
        assert_eq!(noninferiority(&constant, &constant, 0.02, true), None);
        assert_eq!(noninferiority(&single, &varied, 0.02, true), None);
        assert_eq!(noninferiority(&varied, &varied, -0.02, true), None);
        assert_eq!(noninferiority(&varied, &varied, f64::NAN, false), None);
        // One constant variant still has a defined test.
        assert!(noninferiority(&constant, &varied, 0.02, true).is_some());
    }
}
