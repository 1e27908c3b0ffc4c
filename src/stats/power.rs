//! Sample size: how many units per variant a comparison needs to detect the minimum
//! detectable effect.

use statrs::distribution::{ContinuousCDF, Normal};

use super::Summary;

/// Sample size of one comparison.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct SampleSize {
    /// The absolute effect that the relative MDE amounts to at the control's mean.
    pub mde_absolute: f64,
    /// Units per variant needed for `power` at `alpha` (rounded up).
    pub required_per_variant: u64,
    /// Power of the current sample against the MDE.
    pub power_at_current_n: f64,
}

/// Power of a two-sided z-test of level `alpha` for a true difference `delta` measured with
/// standard error `se`: `Φ(δ/se - z) + Φ(-δ/se - z)`, `z = Φ⁻¹(1-α/2)` — the same function as
/// statsmodels' `NormalIndPower.power` (statsmodels/stats/power.py, `normal_power`).
fn power(delta: f64, se: f64, alpha: f64) -> f64 {
    let normal = Normal::standard();
    let z = normal.inverse_cdf(1.0 - alpha / 2.0);
    normal.cdf(delta / se - z) + normal.cdf(-delta / se - z)
}

/// Units per variant (equal allocation) to detect a relative effect `mde` over the control's
/// mean, given both variants' per-unit variances, at two-sided `alpha` with `target_power`;
/// and the power of the current sample sizes.
///
/// Starts from the textbook bound `n = (z_{1-α/2} + z_{power})² (v_c + v_t) / δ²` (Chow, Shao
/// & Wang 2008, *Sample Size Calculations in Clinical Research*, §3.2.1) and solves the exact
/// two-tailed power equation by bisection, so it equals statsmodels'
/// `NormalIndPower().solve_power(effect_size=δ/σ, alpha, power, ratio=1)` when `v_c = v_t = σ²`.
/// `None` when the effect is 0 (a control mean of 0) or the metric has no variance.
pub fn required_units(
    control: &Summary,
    treatment: &Summary,
    mde: f64,
    alpha: f64,
    target_power: f64,
) -> Option<SampleSize> {
    let (mean_c, var_c, var_t) = (control.mean, control.variance, treatment.variance);
    let (n_c, n_t) = (control.n, treatment.n);
    let delta = (mde * mean_c).abs();
    let var_sum = var_c + var_t;
    if !(delta > 0.0 && var_sum > 0.0 && delta.is_finite() && var_sum.is_finite()) {
        return None;
    }
    let normal = Normal::standard();
    let z = normal.inverse_cdf(1.0 - alpha / 2.0) + normal.inverse_cdf(target_power);
    let upper = z * z * var_sum / (delta * delta);
    let power_at = |n: f64| power(delta, (var_sum / n).sqrt(), alpha);
    // The one-tailed bound over-estimates by the tiny other tail; the exact n lies just below.
    let (mut lo, mut hi) = (upper / 2.0, upper);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if power_at(mid) < target_power {
            lo = mid
        } else {
            hi = mid
        }
        if hi - lo <= 1e-10 * hi {
            break;
        }
    }
    let current_se = if n_c > 0 && n_t > 0 { (var_c / n_c as f64 + var_t / n_t as f64).sqrt() } else { f64::INFINITY };
    let power_at_current_n =
        if current_se.is_finite() && current_se > 0.0 { power(delta, current_se, alpha) } else { 0.0 };
    Some(SampleSize { mde_absolute: delta, required_per_variant: hi.ceil() as u64, power_at_current_n })
}

/// Units per variant (equal allocation) for the always-valid test of
/// [`compare_sequential`](super::compare_sequential) to detect the relative effect `mde` with
/// `target_power`, and the power of the current sample sizes — the counterpart of
/// [`required_units`] that is consistent with the sequential bounds.
///
/// The always-valid test rejects when `|d| > h(N)`, the confidence sequence's half-width at the
/// total sample `N` (Waudby-Smith et al., arXiv:2103.06476, eq. 9, with ρ from the `tuning`). With
/// a true effect `δ` and `d ~ N(δ, V)`, the power is `Φ((δ - h(N)) / √V)` (the far tail is
/// negligible). With `n` units per variant, `V = (v_c + v_t)/n` and `N = 2n`; `n` is found by
/// bisection. Larger than the fixed-horizon `n`: that is the price of reading results daily.
pub fn sequential_required_units(
    control: &Summary,
    treatment: &Summary,
    mde: f64,
    alpha: f64,
    target_power: f64,
    tuning: f64,
) -> Option<SampleSize> {
    let delta = (mde * control.mean).abs();
    let var_sum = control.variance + treatment.variance;
    if !(delta > 0.0 && var_sum > 0.0 && delta.is_finite() && var_sum.is_finite() && tuning > 0.0) {
        return None;
    }
    let normal = Normal::standard();
    let rho2 = super::sequential::rho_squared(alpha, tuning);
    let power_of = |variance: f64, n_total: f64| {
        let h = super::sequential::half_width(variance, n_total, alpha, rho2);
        normal.cdf((delta - h) / variance.sqrt())
    };
    let power_at_n = |n: f64| power_of(var_sum / n, 2.0 * n);
    let (mut lo, mut hi) = (1.0f64, 2.0f64);
    while power_at_n(hi) < target_power {
        hi *= 2.0;
        if hi > 1e15 {
            return None;
        }
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if power_at_n(mid) < target_power {
            lo = mid
        } else {
            hi = mid
        }
        if hi - lo <= 1e-9 * hi {
            break;
        }
    }
    let (n_c, n_t) = (control.n as f64, treatment.n as f64);
    let power_at_current_n = if n_c > 0.0 && n_t > 0.0 {
        power_of(control.variance / n_c + treatment.variance / n_t, n_c + n_t)
    } else {
        0.0
    };
    Some(SampleSize { mde_absolute: delta, required_per_variant: hi.ceil() as u64, power_at_current_n })
}

/// The exact (unrounded) solution, for tests against statsmodels.
#[cfg(test)]
fn required_exact(mean_c: f64, var: f64, mde: f64, alpha: f64, target_power: f64) -> f64 {
    let delta = mde * mean_c;
    let power_at = |n: f64| power(delta, (2.0 * var / n).sqrt(), alpha);
    let (mut lo, mut hi) = (1e-6, 1e12);
    for _ in 0..400 {
        let mid = 0.5 * (lo + hi);
        if power_at(mid) < target_power { lo = mid } else { hi = mid }
    }
    hi
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bisection_agrees_with_the_bounded_search() {
        let exact = required_exact(0.1, 0.09, 0.05, 0.05, 0.8);
        let got = required_units(
            &Summary { n: 0, mean: 0.1, variance: 0.09 },
            &Summary { n: 0, mean: 0.1, variance: 0.09 },
            0.05,
            0.05,
            0.8,
        )
        .expect("defined");
        assert_eq!(got.required_per_variant, exact.ceil() as u64);
        assert_eq!(got.power_at_current_n, 0.0);
    }

    #[test]
    fn sample_size_and_power_match_statsmodels() {
        // statsmodels 0.15.0, effect size d = 0.05 * 0.1 / sqrt(0.09):
        //   NormalIndPower().solve_power(effect_size=d, alpha=0.05, power=0.8, ratio=1)
        //     = 56511.79566715043
        //   NormalIndPower().power(effect_size=d, nobs1=20000, alpha=0.05, ratio=1)
        //     = 0.3847910235713455
        let exact = required_exact(0.1, 0.09, 0.05, 0.05, 0.8);
        assert!((exact - 56511.79566715043).abs() <= 1e-9 * 56511.79566715043, "{exact}");
        let s = Summary { n: 20_000, mean: 0.1, variance: 0.09 };
        let got = required_units(&s, &s, 0.05, 0.05, 0.8).expect("defined");
        assert_eq!(got.required_per_variant, 56_512);
        assert!((got.power_at_current_n - 0.3847910235713455).abs() <= 1e-9 * 0.3847910235713455);
    }

    #[test]
    fn reading_daily_costs_units_but_not_unboundedly() {
        // The always-valid test needs more units than the fixed-horizon one for the same
        // effect and power, and its own power at that sample is the target.
        let s = Summary { n: 10_000, mean: 0.1, variance: 0.09 };
        let fixed = required_units(&s, &s, 0.05, 0.05, 0.8).expect("defined");
        let sequential = sequential_required_units(&s, &s, 0.05, 0.05, 0.8, 100_000.0).expect("defined");
        assert!(sequential.required_per_variant > fixed.required_per_variant);
        assert!(sequential.required_per_variant < 4 * fixed.required_per_variant, "{sequential:?} vs {fixed:?}");
        let n = sequential.required_per_variant;
        let at = Summary { n, ..s };
        let check = sequential_required_units(&at, &at, 0.05, 0.05, 0.8, 100_000.0).expect("defined");
        assert!((check.power_at_current_n - 0.8).abs() < 1e-3, "{}", check.power_at_current_n);
    }

    #[test]
    fn no_effect_or_no_variance_has_no_sample_size() {
        let zero_mean = Summary { n: 10, mean: 0.0, variance: 1.0 };
        let constant = Summary { n: 10, mean: 1.0, variance: 0.0 };
        assert_eq!(required_units(&zero_mean, &zero_mean, 0.05, 0.05, 0.8), None);
        assert_eq!(required_units(&constant, &constant, 0.05, 0.05, 0.8), None);
    }
}
