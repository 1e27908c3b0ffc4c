//! Always-valid inference: confidence sequences and p-values that stay valid however often the
//! results are looked at, computed exactly as GrowthBook's gbstats 0.8.0
//! `SequentialTwoSidedTTest` (gbstats/frequentist/tests.py).
//!
//! The method is the asymptotic confidence sequence of Waudby-Smith, Arbour, Sinha, Kennedy &
//! Ramdas, "Time-uniform central limit theory and asymptotic confidence sequences"
//! (arXiv:2103.06476v7): the interval is eq. 9, its tuning ρ is eq. 161 and the p-value is the
//! reciprocal of the e-value of eq. 155. Like the fixed-horizon Welch test, it takes the
//! per-variant [`Summary`] and nothing else; it does no IO.

use super::Summary;

/// gbstats' default `sequential_tuning_parameter`.
pub const DEFAULT_TUNING: f64 = 5000.0;

/// Always-valid results of one variant against the control on one metric. Fields are `None`
/// when undefined; `notes` then say why, in words a report can show.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SequentialComparison {
    /// Confidence sequence for `mean_t - mean_c` at level `1 - alpha` (gbstats
    /// `difference_type="absolute"`).
    pub ci_absolute: Option<[f64; 2]>,
    /// Confidence sequence for `mean_t / mean_c - 1` (gbstats `difference_type="relative"`).
    pub ci_relative: Option<[f64; 2]>,
    /// Always-valid p-value of "no absolute difference", the counterpart of the fixed-horizon
    /// Welch `p_value`.
    pub p_value: Option<f64>,
    /// Always-valid p-value of "no relative difference"; differs from `p_value` because the
    /// relative effect's delta-method variance is not the absolute one scaled.
    pub p_value_relative: Option<f64>,
    pub notes: Vec<&'static str>,
}

/// The squared tuning `ρ² = (-2 ln α + ln(1 - 2 ln α)) / tuning` (Waudby-Smith et al. eq. 161),
/// the value that makes the confidence sequence narrowest around a total sample of `tuning`.
pub(super) fn rho_squared(alpha: f64, tuning: f64) -> f64 {
    let two_log_alpha = -2.0 * alpha.ln();
    (two_log_alpha + two_log_alpha.ln_1p()) / tuning
}

/// Half-width of the confidence sequence for an estimate with variance `variance` after
/// `n_total` units: `sqrt(s²) · sqrt(2(Nρ² + 1) ln(sqrt(Nρ² + 1)/α) / (Nρ)²)` with
/// `s² = variance · N` (Waudby-Smith et al. eq. 9; gbstats `confidence_interval`).
pub(super) fn half_width(variance: f64, n_total: f64, alpha: f64, rho2: f64) -> f64 {
    let n_rho2 = n_total * rho2;
    let s2 = variance * n_total;
    s2.sqrt() * (2.0 * (n_rho2 + 1.0) * ((n_rho2 + 1.0).sqrt() / alpha).ln() / (n_rho2 * n_total)).sqrt()
}

/// Always-valid p-value of "the effect is 0": the reciprocal of the e-value
/// `exp(ρ² S² / (2(Nρ² + 1))) / sqrt(Nρ² + 1)` with `S² = estimate² · N / variance`, capped at
/// 1 (Waudby-Smith et al. eq. 155; gbstats `p_value`). Written as `sqrt(·)·exp(-·)` so a huge
/// e-value gives 0 rather than overflowing.
pub(super) fn p_value(estimate: f64, variance: f64, n_total: f64, rho2: f64) -> f64 {
    let st2 = estimate * estimate * n_total / variance;
    let tr2p1 = n_total * rho2 + 1.0;
    (tr2p1.sqrt() * (-rho2 * st2 / (2.0 * tr2p1)).exp()).min(1.0)
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

fn interval(estimate: f64, half_width: f64) -> Option<[f64; 2]> {
    let ci = [estimate - half_width, estimate + half_width];
    (ci[0].is_finite() && ci[1].is_finite()).then_some(ci)
}

/// Compares `treatment` to `control` with always-valid inference at level `1 - alpha`, as
/// gbstats' `SequentialTwoSidedTTest` with `test_value = 0`.
///
/// With `N = n_c + n_t` and `ρ² = (-2 ln α + ln(1 - 2 ln α)) / tuning` (eq. 161), the confidence
/// sequence for an estimate `d` with variance `V` is `d ± sqrt(V·N) · sqrt(2(Nρ²+1)
/// ln(sqrt(Nρ²+1)/α) / (Nρ)²)` (eq. 9) and the p-value is `min(1, sqrt(Nρ²+1) ·
/// exp(-ρ² (d²N/V) / (2(Nρ²+1))))` (eq. 155), Waudby-Smith et al., arXiv:2103.06476v7.
/// Absolute: `d = m_t - m_c`, `V = v_t/n_t + v_c/n_c`. Relative: `d = m_t/m_c - 1` and the
/// delta-method `V = v_t/(n_t m_c²) + m_t² v_c/(n_c m_c⁴)` (gbstats `frequentist_variance`).
///
/// `tuning` is gbstats' `sequential_tuning_parameter` ([`DEFAULT_TUNING`] = 5000): the total
/// sample (both variants' units) at which the sequence is tightest. For a fixed `N`, the
/// half-width is smallest at `tuning ≈ 0.97 N` (α = 0.05; measured in
/// tests/reference/sequential.py), so set it to the planned total sample, as GrowthBook's docs
/// recommend; a wrong guess only costs width, never validity.
///
/// Undefined (with a note), as gbstats refuses them: a variant with fewer than 2 units, a
/// variance of 0 in *either* variant (gbstats `_has_zero_variance`), `alpha` outside (0, 1) or
/// a non-positive `tuning`; a control mean of 0 leaves only the relative results undefined
/// (gbstats then refuses the whole test; the absolute difference is still well defined).
pub fn compare_sequential(control: &Summary, treatment: &Summary, alpha: f64, tuning: f64) -> SequentialComparison {
    compare_sequential_with(control, treatment, treatment.mean, alpha, tuning)
}

/// [`compare_sequential`] for regression-adjusted (CUPED) variants: the relative variance's
/// delta method uses `variance_mean_t`, the treatment's *unadjusted* mean, as gbstats'
/// `frequentist_variance` does with `unadjusted_mean` (the control's adjusted mean is its
/// unadjusted one when the adjustment is centred on the control's covariate mean).
pub fn compare_sequential_with(
    control: &Summary,
    treatment: &Summary,
    variance_mean_t: f64,
    alpha: f64,
    tuning: f64,
) -> SequentialComparison {
    let mut out = SequentialComparison::default();
    if !(alpha > 0.0 && alpha < 1.0 && tuning > 0.0 && tuning.is_finite()) {
        out.notes.push("alpha must lie in (0, 1) and the sequential tuning must be positive");
        return out;
    }
    if control.n < 2 || treatment.n < 2 {
        out.notes.push("a variant has fewer than 2 units, so there is no variance to test with");
        return out;
    }
    if !(control.variance > 0.0 && treatment.variance > 0.0) {
        out.notes.push("the metric does not vary within a variant, so a sequential test is undefined");
        return out;
    }
    let (n_c, n_t) = (control.n as f64, treatment.n as f64);
    let n_total = n_c + n_t;
    let rho2 = rho_squared(alpha, tuning);

    let diff = treatment.mean - control.mean;
    let var_abs = treatment.variance / n_t + control.variance / n_c;
    out.ci_absolute = interval(diff, half_width(var_abs, n_total, alpha, rho2));
    out.p_value = finite(p_value(diff, var_abs, n_total, rho2));

    if control.mean == 0.0 {
        out.notes.push("the control mean is 0, so the relative effect is undefined");
        return out;
    }
    let relative = diff / control.mean;
    let var_rel = super::relative_variance(control, treatment, variance_mean_t);
    out.ci_relative = interval(relative, half_width(var_rel, n_total, alpha, rho2));
    out.p_value_relative = finite(p_value(relative, var_rel, n_total, rho2));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::close;

    /// Checks every output against gbstats 0.8.0 `SequentialTwoSidedTTest` (absolute and
    /// relative), as printed by tests/reference/sequential.py.
    fn check(control: (u64, f64, f64), treatment: (u64, f64, f64), alpha: f64, tuning: f64, expected: [f64; 6]) {
        let summary = |(n, mean, variance)| Summary { n, mean, variance };
        let got = compare_sequential(&summary(control), &summary(treatment), alpha, tuning);
        let [abs_lo, abs_hi] = got.ci_absolute.expect("defined");
        let [rel_lo, rel_hi] = got.ci_relative.expect("defined");
        close(abs_lo, expected[0], 1e-9, "ci_absolute low");
        close(abs_hi, expected[1], 1e-9, "ci_absolute high");
        close(got.p_value.expect("defined"), expected[2], 1e-9, "p_value");
        close(rel_lo, expected[3], 1e-9, "ci_relative low");
        close(rel_hi, expected[4], 1e-9, "ci_relative high");
        close(got.p_value_relative.expect("defined"), expected[5], 1e-9, "p_value_relative");
        assert!(got.notes.is_empty());
    }

    // Expected: [ci_absolute, p_value, ci_relative, p_value_relative] from gbstats 0.8.0 via
    // tests/reference/sequential.py.
    #[test]
    fn matches_gbstats_default_tuning() {
        check(
            (1000, 10.0, 4.0),
            (1100, 10.3, 4.5),
            0.05,
            DEFAULT_TUNING,
            [
                0.01992329785066599,
                0.5800767021493354,
                0.028865429920483604,
                0.0015738308732156508,
                0.05842616912678449,
                0.03271027324039997,
            ],
        );
    }

    #[test]
    fn matches_gbstats_tuned_to_the_sample() {
        check(
            (1000, 10.0, 4.0),
            (1100, 10.3, 4.5),
            0.05,
            2100.0,
            [
                0.026984527285255355,
                0.5730154727147461,
                0.021400257358644467,
                0.0022905049150416697,
                0.05770949508495847,
                0.02472392173688539,
            ],
        );
    }

    #[test]
    fn matches_gbstats_on_a_conversion_rate() {
        check(
            (25000, 0.12, 0.1056),
            (24800, 0.13, 0.1131),
            0.1,
            DEFAULT_TUNING,
            [
                0.0011561340644356804,
                0.018843865935564336,
                0.029503402322144223,
                0.006619893076396086,
                0.16004677359027075,
                0.04543150249038084,
            ],
        );
    }

    #[test]
    fn matches_gbstats_small_sample_strict_alpha() {
        check(
            (40, 3.5, 2.25),
            (45, 4.6, 3.0),
            0.01,
            100.0,
            [
                -0.15297571628740947,
                2.3529757162874088,
                0.03776011668805918,
                -0.09901470709289262,
                0.727586135664321,
                0.11519879105010987,
            ],
        );
    }

    #[test]
    fn matches_gbstats_tiny_p_value() {
        check(
            (200000, 5.0, 16.0),
            (200000, 5.1, 17.0),
            0.05,
            DEFAULT_TUNING,
            [
                0.054646872609466386,
                0.1453531273905329,
                1.8278854553625723e-12,
                0.010840968189328216,
                0.02915903181067164,
                3.2687672670251336e-12,
            ],
        );
    }

    #[test]
    fn p_value_is_capped_at_one() {
        // gbstats 0.8.0 (tests/reference/sequential.py): p_value = p_value_relative = 1.0 and
        // ci_absolute = [-0.0037679314654740746, 0.013767931465474084].
        let control = Summary { n: 25000, mean: 0.12, variance: 0.1056 };
        let treatment = Summary { n: 24800, mean: 0.125, variance: 0.109375 };
        let got = compare_sequential(&control, &treatment, 0.1, DEFAULT_TUNING);
        assert_eq!(got.p_value, Some(1.0));
        assert_eq!(got.p_value_relative, Some(1.0));
        let [lo, hi] = got.ci_absolute.expect("defined");
        close(lo, -0.0037679314654740746, 1e-9, "ci_absolute low");
        close(hi, 0.013767931465474084, 1e-9, "ci_absolute high");
        // Identical variants: gbstats gives ci_absolute = ±0.021939218797108837, p = 1.0.
        let same = Summary { n: 500000, mean: 2.0, variance: 9.0 };
        let got = compare_sequential(&same, &same, 0.05, DEFAULT_TUNING);
        close(got.ci_absolute.expect("defined")[1], 0.021939218797108837, 1e-9, "ci_absolute high");
        assert_eq!(got.p_value, Some(1.0));
    }

    #[test]
    fn sequence_is_wider_than_the_fixed_horizon_interval() {
        // Same data as matches_gbstats_default_tuning; Welch's fixed-horizon CI is narrower.
        let control = Summary { n: 1000, mean: 10.0, variance: 4.0 };
        let treatment = Summary { n: 1100, mean: 10.3, variance: 4.5 };
        let fixed = super::super::compare(&control, &treatment, 0.05).ci_absolute.expect("defined");
        let sequential = compare_sequential(&control, &treatment, 0.05, DEFAULT_TUNING).ci_absolute.expect("defined");
        assert!(sequential[0] < fixed[0] && sequential[1] > fixed[1]);
    }

    #[test]
    fn degenerate_inputs_are_none_not_nan() {
        let varied = Summary { n: 100, mean: 1.0, variance: 1.0 };
        let constant = Summary { n: 100, mean: 1.0, variance: 0.0 };
        let single = Summary { n: 1, mean: 1.0, variance: 0.0 };
        for (c, t) in [(&varied, &constant), (&constant, &varied), (&single, &varied), (&varied, &Summary::default())] {
            let got = compare_sequential(c, t, 0.05, DEFAULT_TUNING);
            assert_eq!((got.ci_absolute, got.p_value, got.ci_relative), (None, None, None));
            assert_eq!(got.notes.len(), 1);
        }
        let bad_alpha = compare_sequential(&varied, &varied, 0.0, DEFAULT_TUNING);
        assert_eq!(bad_alpha.p_value, None);
        let bad_tuning = compare_sequential(&varied, &varied, 0.05, 0.0);
        assert_eq!(bad_tuning.p_value, None);
    }

    #[test]
    fn zero_control_mean_keeps_the_absolute_results() {
        let control = Summary { n: 100, mean: 0.0, variance: 1.0 };
        let treatment = Summary { n: 100, mean: 0.5, variance: 1.0 };
        let got = compare_sequential(&control, &treatment, 0.05, DEFAULT_TUNING);
        assert!(got.ci_absolute.is_some() && got.p_value.is_some());
        assert_eq!((got.ci_relative, got.p_value_relative), (None, None));
        assert!(got.notes[0].contains("control mean is 0"));
    }
}
