//! Non-inferiority of a variant against the control with a relative margin — the question a
//! guardrail metric asks ("is the treatment no more than δ worse?") — and the sample size that
//! question needs. Takes per-variant [`Summary`] values; no IO.

use super::{Summary, normal, student_t};

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

/// Sample size of a non-inferiority test.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct NonInferiorityUnits {
    /// The margin in metric units, `δ·mean_c`: the distance between "no effect" and the
    /// non-inferiority bound.
    pub margin_absolute: f64,
    /// Units per variant (equal allocation) for `target_power` at one-sided `alpha`, rounded up.
    pub required_per_variant: u64,
    /// Power of the current sample sizes.
    pub power_at_current_n: f64,
}

/// Units per variant that the test of [`noninferiority`] needs to show non-inferiority with
/// probability `target_power` at one-sided level `alpha` when the treatment truly equals the
/// control (the hope for a guardrail), and the power of the current sample.
///
/// Normal approximation, one-sided: with `Δ = δ·m_c` (the distance of the true contrast
/// `μ_t - kμ_c` from 0 when `μ_t = μ_c`) and per-unit contrast variance `v_t + k² v_c`,
/// `n = (z_{1-α} + z_{power})² (v_t + k² v_c) / Δ²` exactly (no second tail to solve for),
/// and power `Φ(Δ / sqrt(v_t/n_t + k² v_c/n_c) - z_{1-α})` (Chow, Shao & Wang 2008, *Sample Size
/// Calculations in Clinical Research*, §3.2.2, non-inferiority). Equals statsmodels'
/// `NormalIndPower().solve_power(effect_size=Δ/σ, alpha, power, ratio=1,
/// alternative='larger')` with `σ² = (v_t + k² v_c)/2`.
///
/// `None` when `Δ ≤ 0` (a margin of 0, or a control mean ≤ 0, where a relative margin points
/// the wrong way), the metric has no variance, or `alpha`/`target_power` lie outside (0, 1).
pub fn noninferiority_units(
    control: &Summary,
    treatment: &Summary,
    margin: f64,
    alpha: f64,
    target_power: f64,
    higher_is_better: bool,
) -> Option<NonInferiorityUnits> {
    if !(alpha > 0.0 && alpha < 1.0 && target_power > 0.0 && target_power < 1.0 && margin.is_finite()) {
        return None;
    }
    let k = k_factor(margin, higher_is_better);
    let delta = margin * control.mean;
    let unit_variance = treatment.variance + k * k * control.variance;
    if !(delta > 0.0 && delta.is_finite() && unit_variance > 0.0 && unit_variance.is_finite()) {
        return None;
    }
    let z_alpha = normal::quantile(1.0 - alpha);
    let z = z_alpha + normal::quantile(target_power);
    if !z.is_finite() {
        // `1 - alpha` or `target_power` rounded to 1.
        return None;
    }
    let required = (z * z * unit_variance / (delta * delta)).ceil();
    let (n_c, n_t) = (control.n as f64, treatment.n as f64);
    let power_at_current_n = if n_c > 0.0 && n_t > 0.0 {
        let se = (treatment.variance / n_t + k * k * control.variance / n_c).sqrt();
        normal::cdf(delta / se - z_alpha)
    } else {
        0.0
    };
    Some(NonInferiorityUnits { margin_absolute: delta, required_per_variant: required as u64, power_at_current_n })
}

/// The unrounded solution, for tests against statsmodels.
#[cfg(test)]
fn required_exact(mean_c: f64, var_c: f64, var_t: f64, margin: f64, alpha: f64, power: f64, higher: bool) -> f64 {
    let k = k_factor(margin, higher);
    let z = normal::quantile(1.0 - alpha) + normal::quantile(power);
    z * z * (var_t + k * k * var_c) / (margin * mean_c).powi(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64, tolerance: f64, what: &str) {
        let err = (actual - expected).abs() / expected.abs().max(1e-300);
        assert!(err <= tolerance, "{what}: {actual} vs {expected} (rel err {err:e})");
    }

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

    #[test]
    fn sample_size_matches_statsmodels() {
        // tests/reference/noninferiority.py, statsmodels 0.15.0
        // NormalIndPower().solve_power(effect_size=δ·m_c/σ, alpha, power, ratio=1,
        // alternative='larger'), σ² = (v_t + k² v_c)/2. statsmodels solves numerically (brentq);
        // its answers differ from the closed form by up to 1.4e-11 relative, hence 1e-10.
        let cases = [
            (20.0, 16.0, 16.0, 0.02, true, 0.05, 0.8, 1212.028519766515),
            (0.1, 0.09, 0.09, 0.05, false, 0.025, 0.9, 79530.68515313402),
            (5.0, 4.0, 6.25, 0.01, true, 0.1, 0.8, 18338.70686366516),
        ];
        for (mean_c, var_c, var_t, margin, higher, alpha, power, expected) in cases {
            let exact = required_exact(mean_c, var_c, var_t, margin, alpha, power, higher);
            close(exact, expected, 1e-10, "nobs1");
            let control = Summary { n: 0, mean: mean_c, variance: var_c };
            let treatment = Summary { n: 0, mean: mean_c, variance: var_t };
            let got = noninferiority_units(&control, &treatment, margin, alpha, power, higher).expect("defined");
            assert_eq!(got.required_per_variant, expected.ceil() as u64);
            assert_eq!(got.power_at_current_n, 0.0);
            close(got.margin_absolute, margin * mean_c, 1e-15, "margin");
        }
    }

    #[test]
    fn power_at_current_n_matches_statsmodels() {
        // tests/reference/noninferiority.py: NormalIndPower().power(effect_size, nobs1=n,
        // alpha, ratio=1, alternative='larger').
        let cases = [
            (20.0, 16.0, 16.0, 0.02, true, 0.05, 1000, 0.7302884731500376),
            (0.1, 0.09, 0.09, 0.05, false, 0.025, 20000, 0.3690271168681388),
            (5.0, 4.0, 6.25, 0.01, true, 0.1, 5000, 0.4313559008944252),
        ];
        for (mean_c, var_c, var_t, margin, higher, alpha, n, expected) in cases {
            let control = Summary { n, mean: mean_c, variance: var_c };
            let treatment = Summary { n, mean: mean_c, variance: var_t };
            let got = noninferiority_units(&control, &treatment, margin, alpha, 0.8, higher).expect("defined");
            close(got.power_at_current_n, expected, 1e-9, "power");
        }
    }

    #[test]
    fn no_distance_to_the_margin_has_no_sample_size() {
        let zero_mean = Summary { n: 10, mean: 0.0, variance: 1.0 };
        let negative_mean = Summary { n: 10, mean: -1.0, variance: 1.0 };
        let constant = Summary { n: 10, mean: 1.0, variance: 0.0 };
        assert_eq!(noninferiority_units(&zero_mean, &zero_mean, 0.02, 0.05, 0.8, true), None);
        assert_eq!(noninferiority_units(&negative_mean, &negative_mean, 0.02, 0.05, 0.8, true), None);
        assert_eq!(noninferiority_units(&constant, &constant, 0.02, 0.05, 0.8, true), None);
        let varied = Summary { n: 10, mean: 1.0, variance: 1.0 };
        assert_eq!(noninferiority_units(&varied, &varied, 0.0, 0.05, 0.8, true), None);
        assert_eq!(noninferiority_units(&varied, &varied, 0.02, 0.0, 0.8, true), None);
        assert_eq!(noninferiority_units(&varied, &varied, 0.02, 1e-300, 0.8, true), None);
    }
}
