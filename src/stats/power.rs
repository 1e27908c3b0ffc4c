//! Sample size and power of the tests a recommendation needs — on the test's own scale, with
//! its own interval (always-valid or fixed-horizon), at any allocation ratio — and the effect a
//! given sample can detect.

use super::inference::Method;
use super::normal;
use super::sequential::{half_width, rho_squared};

/// What one planned test must detect: an effect `distance` away from the test's null, with
/// per-unit variance terms such that, with `n_c` control units and `ratio·n_c` treatment
/// units, the estimate's variance is `V(n_c) = unit_variance_control/n_c +
/// unit_variance_treatment/(ratio·n_c)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Contrast {
    pub distance: f64,
    pub unit_variance_control: f64,
    pub unit_variance_treatment: f64,
    /// Treatment units per control unit (the configured weights' ratio).
    pub ratio: f64,
}

impl Contrast {
    /// A relative effect over the control mean `mean_c`, per-unit variances `var_c`, `var_t`,
    /// when the true relative effect is `true_effect`: the delta-method variance
    /// `v_t/(n_t m_c²) + m_t² v_c/(n_c m_c⁴)` with `m_t = (1 + true_effect)·m_c` (as
    /// [`relative_variance`](super::relative_variance)). A success test has
    /// `true_effect = distance = MDE`; a non-inferiority test has `true_effect = 0` and
    /// `distance = margin` (the hope: the guardrail is unchanged).
    pub fn relative(mean_c: f64, var_c: f64, var_t: f64, true_effect: f64, distance: f64, ratio: f64) -> Option<Self> {
        let m2 = mean_c * mean_c;
        Self::checked(Contrast {
            distance,
            unit_variance_control: (1.0 + true_effect).powi(2) * var_c / m2,
            unit_variance_treatment: var_t / m2,
            ratio,
        })
    }

    /// An absolute difference `distance` between means. Like every contrast, `None` unless the
    /// distance, the ratio and both variances are positive and finite: a variant without
    /// variance yet (no events) cannot size a test.
    pub fn absolute(var_c: f64, var_t: f64, distance: f64, ratio: f64) -> Option<Self> {
        Self::checked(Contrast { distance, unit_variance_control: var_c, unit_variance_treatment: var_t, ratio })
    }

    fn checked(self) -> Option<Self> {
        let finite_positive = |x: f64| x.is_finite() && x > 0.0;
        (finite_positive(self.distance)
            && finite_positive(self.ratio)
            && finite_positive(self.unit_variance_control)
            && finite_positive(self.unit_variance_treatment))
        .then_some(self)
    }

    /// `V(n_c)`.
    pub fn variance(&self, n_control: f64) -> f64 {
        self.unit_variance_control / n_control + self.unit_variance_treatment / (self.ratio * n_control)
    }
}

/// Half-width of the level-`1 - alpha` interval with `n_control` control units.
fn interval_half_width(contrast: &Contrast, n_control: f64, alpha: f64, method: Method) -> f64 {
    let variance = contrast.variance(n_control);
    match method {
        Method::FixedHorizon => normal::quantile(1.0 - alpha / 2.0) * variance.sqrt(),
        Method::AlwaysValid { tuning } => {
            half_width(variance, n_control * (1.0 + contrast.ratio), alpha, rho_squared(alpha, tuning))
        }
    }
}

/// Control units (unrounded) at which the level-`1 - alpha` interval is no wider than
/// `2·target` on either side: then it cannot hold both 0 and an effect `2·target` away. By
/// bisection; `None` when no sample below 10¹⁵ units gets there.
pub fn control_units_for_half_width(contrast: &Contrast, target: f64, alpha: f64, method: Method) -> Option<f64> {
    if !(target > 0.0 && alpha > 0.0 && alpha < 1.0) {
        return None;
    }
    let narrow_enough = |n: f64| interval_half_width(contrast, n, alpha, method) <= target;
    let (mut lo, mut hi) = (0.5f64, 1.0f64);
    while !narrow_enough(hi) {
        lo = hi;
        hi *= 2.0;
        if hi > 1e15 {
            return None;
        }
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if narrow_enough(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
        if hi - lo <= 1e-10 * hi {
            break;
        }
    }
    Some(hi)
}

/// Power of the level-`1 - alpha` two-sided interval to exclude the null on the side of the
/// effect, with `n_control` control units: `Φ((δ - h)/√V)`, where `h` is the interval's
/// half-width — `z(1-α/2)·√V` for a fixed horizon (the one tail of statsmodels'
/// `NormalIndPower` at `alpha/2`), or the confidence sequence's half-width at `N = n_c(1 +
/// ratio)` (Waudby-Smith et al., arXiv:2103.06476, eq. 9). The far tail (an interval on the
/// wrong side) is not power: it would not promote, nor show non-inferiority.
pub fn power(contrast: &Contrast, n_control: f64, alpha: f64, method: Method) -> f64 {
    if n_control.is_nan() || n_control <= 0.0 {
        return 0.0;
    }
    let h = interval_half_width(contrast, n_control, alpha, method);
    normal::cdf((contrast.distance - h) / contrast.variance(n_control).sqrt())
}

/// Control units (unrounded) for [`power`] to reach `target`: the smallest `n_c` by bisection.
/// `None` when `alpha` or `target` lie outside (0, 1), or no sample below 10¹⁵ units reaches
/// it.
pub fn required_control_units(contrast: &Contrast, alpha: f64, target: f64, method: Method) -> Option<f64> {
    if !(alpha > 0.0 && alpha < 1.0 && target > 0.0 && target < 1.0) {
        return None;
    }
    let reaches = |n: f64| power(contrast, n, alpha, method) >= target;
    let (mut lo, mut hi) = (0.5f64, 1.0f64);
    while !reaches(hi) {
        lo = hi;
        hi *= 2.0;
        if hi > 1e15 {
            return None;
        }
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if reaches(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
        if hi - lo <= 1e-10 * hi {
            break;
        }
    }
    Some(hi)
}

/// The smallest distance `δ` that `n_control` control units detect with power `target`:
/// [`power`] solved for `δ` by bisection, with the contrast's variance terms. `None` when
/// none below 100× the contrast's own distance is detectable.
pub fn detectable_distance(
    contrast: &Contrast,
    n_control: f64,
    alpha: f64,
    target: f64,
    method: Method,
) -> Option<f64> {
    let at = |distance: f64| power(&Contrast { distance, ..*contrast }, n_control, alpha, method);
    let (mut lo, mut hi) = (0.0, 100.0 * contrast.distance);
    if n_control.is_nan() || n_control <= 0.0 || at(hi) < target {
        return None;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if at(mid) >= target { hi = mid } else { lo = mid }
    }
    Some(hi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::close;

    #[test]
    fn fixed_horizon_sample_size_matches_statsmodels() {
        // statsmodels 0.15.0 (tests/reference/power.py; brentq, so 1e-8): the one tail of a two-sided test at
        // alpha is NormalIndPower at alpha/2, alternative='larger';
        // solve_power(effect_size=d, alpha=0.025, power=0.8, ratio=r, alternative='larger'),
        // d = delta / sigma:
        //   d = 0.05·0.1/0.3, r = 1  -> nobs1 = 56511.93408731529
        //   d = 0.05·0.1/0.3, r = 9  -> nobs1 = 31395.518937668898
        //   d = 0.2,          r = 0.25 -> nobs1 = 981.1099646142563
        let cases = [
            (0.005, 0.09, 1.0, 56511.93408731529),
            (0.005, 0.09, 9.0, 31395.518937668898),
            (0.2, 1.0, 0.25, 981.1099646142563),
        ];
        for (delta, variance, ratio, expected) in cases {
            let contrast = Contrast::absolute(variance, variance, delta, ratio).expect("defined");
            let n = required_control_units(&contrast, 0.05, 0.8, Method::FixedHorizon).expect("defined");
            close(n, expected, 1e-8, "nobs1");
            close(power(&contrast, expected, 0.05, Method::FixedHorizon), 0.8, 1e-8, "power at nobs1");
        }
        // NormalIndPower().power(effect_size=0.05·0.1/0.3, nobs1=20000, alpha=0.025, ratio=1,
        // alternative='larger') = 0.38464745179032317
        let contrast = Contrast::absolute(0.09, 0.09, 0.005, 1.0).expect("defined");
        close(power(&contrast, 20_000.0, 0.05, Method::FixedHorizon), 0.38464745179032317, 1e-9, "power");
    }

    #[test]
    fn reading_daily_costs_units_but_not_unboundedly() {
        let contrast = Contrast::relative(0.1, 0.09, 0.09, 0.05, 0.05, 1.0).expect("defined");
        let fixed = required_control_units(&contrast, 0.05, 0.8, Method::FixedHorizon).expect("defined");
        let tuning = 2.0 * fixed * 1.4;
        let always_valid =
            required_control_units(&contrast, 0.05, 0.8, Method::AlwaysValid { tuning }).expect("defined");
        assert!(always_valid > fixed && always_valid < 2.0 * fixed, "{always_valid} vs {fixed}");
        close(power(&contrast, always_valid, 0.05, Method::AlwaysValid { tuning }), 0.8, 1e-6, "power");
    }

    #[test]
    fn a_detectable_distance_inverts_the_sample_size() {
        for method in [Method::FixedHorizon, Method::AlwaysValid { tuning: 100_000.0 }] {
            let contrast = Contrast::relative(0.1, 0.09, 0.09, 0.0, 0.05, 0.5).expect("defined");
            let n = required_control_units(&contrast, 0.025, 0.9, method).expect("defined");
            let distance = detectable_distance(&contrast, n, 0.025, 0.9, method).expect("defined");
            close(distance, 0.05, 1e-6, "distance");
        }
    }

    #[test]
    fn the_sample_for_a_narrow_interval_makes_it_that_narrow() {
        // Fixed horizon: z(0.975)·sqrt(2·0.09/n) = 0.005 exactly at n = 1.96²·0.18/0.005².
        let contrast = Contrast::absolute(0.09, 0.09, 0.01, 1.0).expect("defined");
        let n = control_units_for_half_width(&contrast, 0.005, 0.05, Method::FixedHorizon).expect("defined");
        let z = normal::quantile(0.975);
        close(n, z * z * 0.18 / 0.005f64.powi(2), 1e-8, "n");
        let always_valid = Method::AlwaysValid { tuning: 20_000.0 };
        let n = control_units_for_half_width(&contrast, 0.005, 0.05, always_valid).expect("defined");
        close(interval_half_width(&contrast, n, 0.05, always_valid), 0.005, 1e-8, "half-width");
    }

    #[test]
    fn no_effect_or_no_variance_has_no_sample_size() {
        assert_eq!(Contrast::relative(0.1, 0.09, 0.09, 0.0, 0.0, 1.0), None);
        assert_eq!(Contrast::relative(0.0, 0.09, 0.09, 0.05, 0.05, 1.0), None);
        assert_eq!(Contrast::absolute(0.0, 0.0, 0.1, 1.0), None);
        assert_eq!(Contrast::absolute(0.09, 0.0, 0.1, 1.0), None, "a variant without variance yet");
        let contrast = Contrast::absolute(1.0, 1.0, 0.1, 1.0).expect("defined");
        assert_eq!(required_control_units(&contrast, 0.05, 1.0, Method::FixedHorizon), None);
    }
}
