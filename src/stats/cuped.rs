//! CUPED: variance reduction with a pre-experiment covariate (Deng, Xu, Kohavi & Walker 2013,
//! "Improving the sensitivity of online controlled experiments by utilizing pre-experiment
//! data", WSDM), computed as GrowthBook's gbstats 0.8.0 `RegressionAdjustedStatistic` and
//! `compute_theta` (gbstats/models/statistics.py).
//!
//! Takes per-variant moments of the metric and its covariate and returns regression-adjusted
//! [`Summary`] values that the Welch [`compare`](super::compare) accepts unchanged. No IO.

use super::{Comparison, Summary, compare, student_t};

/// Moments of one variant's per-unit metric values `Y` (during the experiment) and
/// pre-experiment covariate `X` (usually the same metric before the experiment started).
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct CovariateSummary {
    pub n: u64,
    /// Mean of `Y`.
    pub mean: f64,
    /// Mean of `X`.
    pub mean_covariate: f64,
    /// Unbiased (n-1) variance of `Y`.
    pub variance: f64,
    /// Unbiased (n-1) variance of `X`.
    pub variance_covariate: f64,
    /// Unbiased (n-1) covariance of `X` and `Y`.
    pub covariance: f64,
}

/// CUPED over a set of variants.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Cuped {
    /// The regression coefficient `θ` shared by all variants; 0 when the covariate or the
    /// metric does not vary (then nothing is adjusted, as gbstats falls back to the raw metric).
    pub theta: f64,
    /// Mean of the covariate over all units of all variants: the centre of the adjustment.
    pub mean_covariate: f64,
    /// Per variant, in input order: `n`, the adjusted mean and the adjusted variance.
    pub adjusted: Vec<Summary>,
    /// `1 - Σ(n_v-1)·var_adj_v / Σ(n_v-1)·var_v`: the share of the within-variant variance
    /// removed. `None` when the metric does not vary within any variant.
    pub variance_reduction: Option<f64>,
}

/// Regression-adjusts every variant with one `θ` pooled over all of them.
///
/// `θ = S_xy / S_xx`, where `S_xy` and `S_xx` are the co-moment and second moment of `X` and `Y`
/// over the units of all variants taken together, about the overall means (so between-variant
/// differences of the means count too): `S_xy = Σ_v [(n_v-1) cov_v + n_v (x̄_v - x̄)(ȳ_v - ȳ)]`,
/// likewise `S_xx`. This is gbstats' `compute_theta`, which builds a joint statistic from the
/// sums of both variants; given exactly a control and a treatment it is gbstats' θ. gbstats
/// pools only the two variants of each comparison, so with more variants pass the pair to get
/// its numbers, or all variants for one shared θ (Deng et al. estimate θ from the pooled
/// units of the variants: one `θ` for all keeps the difference of adjusted means unbiased).
/// `θ = 0` when `S_xx` or `S_yy` is 0.
///
/// Adjusted variant: mean `ȳ_v - θ(x̄_v - x̄)` (Deng et al.'s control-variate estimator
/// `Ȳ - θ(X̄ - E X)` with `E X` estimated by the overall covariate mean `x̄`), variance
/// `var_v + θ² var_x,v - 2θ cov_v` (the variance of `Y - θX`; gbstats
/// `RegressionAdjustedStatistic.variance`). gbstats' adjusted mean is `ȳ_v - θ x̄_v`,
/// which is this one minus the constant `θ x̄`: differences between variants, and so every
/// absolute result of [`compare`](super::compare), are the same; centring keeps the means on
/// the metric's own scale so that relative effects stay meaningful.
///
/// `None` when all variants together have fewer than 2 units, or an input is not finite.
pub fn cuped(variants: &[CovariateSummary]) -> Option<Cuped> {
    let n_total: u64 = variants.iter().map(|v| v.n).sum();
    if n_total < 2 {
        return None;
    }
    let n = n_total as f64;
    let mean_x = variants.iter().map(|v| v.n as f64 * v.mean_covariate).sum::<f64>() / n;
    let mean_y = variants.iter().map(|v| v.n as f64 * v.mean).sum::<f64>() / n;
    let (mut s_xx, mut s_yy, mut s_xy) = (0.0, 0.0, 0.0);
    for v in variants {
        let (dof, n_v) = (v.n.saturating_sub(1) as f64, v.n as f64);
        let (dx, dy) = (v.mean_covariate - mean_x, v.mean - mean_y);
        s_xx += dof * v.variance_covariate + n_v * dx * dx;
        s_yy += dof * v.variance + n_v * dy * dy;
        s_xy += dof * v.covariance + n_v * dx * dy;
    }
    if !(s_xx.is_finite() && s_yy.is_finite() && s_xy.is_finite()) {
        return None;
    }
    let theta = if s_xx > 0.0 && s_yy > 0.0 { s_xy / s_xx } else { 0.0 };
    let adjusted: Vec<Summary> = variants.iter().map(|v| adjust(v, theta, mean_x)).collect();
    let (mut raw, mut reduced) = (0.0, 0.0);
    for (v, a) in variants.iter().zip(&adjusted) {
        let dof = v.n.saturating_sub(1) as f64;
        raw += dof * v.variance;
        reduced += dof * a.variance;
    }
    let variance_reduction = (raw > 0.0).then(|| 1.0 - reduced / raw);
    Some(Cuped { theta, mean_covariate: mean_x, adjusted, variance_reduction })
}

/// One variant adjusted with `theta` about the covariate centre `centre`: mean
/// `ȳ - θ(x̄ - centre)`, variance `var_y + θ² var_x - 2θ cov`.
pub fn adjust(v: &CovariateSummary, theta: f64, centre: f64) -> Summary {
    let variance = if v.n < 2 {
        0.0
    } else {
        // Non-negative in exact arithmetic (Cauchy–Schwarz); rounding can dip below 0.
        (v.variance + theta * theta * v.variance_covariate - 2.0 * theta * v.covariance).max(0.0)
    };
    Summary { n: v.n, mean: v.mean - theta * (v.mean_covariate - centre), variance }
}

/// Compares `treatment` to `control` after CUPED with a given `theta` (from [`cuped`]), the
/// way gbstats' `TwoSidedTTest` does on two `RegressionAdjustedStatistic`s.
///
/// The absolute fields are Welch's test on the adjusted variants ([`compare`](super::compare)).
/// The relative effect divides the adjusted difference by the *unadjusted* control mean,
/// `(adj_t - adj_c) / ȳ_c`, with the delta-method variance
/// `var_adj,t/(n_t ȳ_c²) + ȳ_t² var_adj,c/(n_c ȳ_c⁴)` and the Welch quantile of the absolute
/// test (gbstats `frequentist_diff` and `frequentist_variance`, which use `unadjusted_mean`).
/// `p_value` stays the absolute test's.
pub fn compare_cuped(control: &CovariateSummary, treatment: &CovariateSummary, theta: f64, alpha: f64) -> Comparison {
    let n_pair = (control.n + treatment.n).max(1) as f64;
    let centre = (control.n as f64 * control.mean_covariate + treatment.n as f64 * treatment.mean_covariate) / n_pair;
    let (adj_c, adj_t) = (adjust(control, theta, centre), adjust(treatment, theta, centre));
    let mut out = compare(&adj_c, &adj_t, alpha);
    // Replace Welch's relative effect of the adjusted means by gbstats' definition.
    out.relative_effect = None;
    out.ci_relative = None;
    out.notes.retain(|note| !note.contains("control mean is 0"));
    if control.n == 0 || treatment.n == 0 {
        return out;
    }
    if control.mean == 0.0 {
        out.notes.push("the control mean is 0, so the relative effect is undefined");
        return out;
    }
    let relative = (adj_t.mean - adj_c.mean) / control.mean;
    out.relative_effect = Some(relative);
    if let Some(df) = out.df {
        let var_rel = super::relative_variance(&Summary { mean: control.mean, ..adj_c }, &adj_t, treatment.mean);
        let half = student_t::quantile(1.0 - alpha / 2.0, df) * var_rel.sqrt();
        out.ci_relative = Some([relative - half, relative + half]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::close;

    // Moments of the seeded draws in tests/reference/cuped.py, as numpy prints them.
    const VARIANT_0: CovariateSummary = CovariateSummary {
        n: 2000,
        mean: 9.868438519868631,
        mean_covariate: 9.931931703755552,
        variance: 9.875937522325028,
        variance_covariate: 9.280079166040943,
        covariance: 7.304038200205376,
    };
    const VARIANT_1: CovariateSummary = CovariateSummary {
        n: 2100,
        mean: 10.369898438446807,
        mean_covariate: 10.094331832336021,
        variance: 9.814144925063871,
        variance_covariate: 8.878038662044048,
        covariance: 7.189657096176579,
    };
    const VARIANT_2: CovariateSummary = CovariateSummary {
        n: 1900,
        mean: 10.06438604896941,
        mean_covariate: 9.948172049261805,
        variance: 9.593623322601909,
        variance_covariate: 9.347943679231472,
        covariance: 7.298477377103445,
    };

    #[test]
    fn two_variants_match_gbstats_regression_adjusted_statistic() {
        // tests/reference/cuped.py, gbstats 0.8.0: compute_theta = 0.8001334821744706;
        // RegressionAdjustedStatistic mean (ȳ - θx̄) 1.9215674210236786 / 2.293085559215182,
        // variance 4.128759276041755 / 3.992615186797151. gbstats reads sums of squares, numpy
        // two-pass moments: they agree to 3e-15, well inside 1e-9.
        let got = cuped(&[VARIANT_0, VARIANT_1]).expect("defined");
        close(got.theta, 0.8001334821744706, 1e-9, "theta");
        let gbstats_mean = |i: usize| got.adjusted[i].mean - got.theta * got.mean_covariate;
        close(gbstats_mean(0), 1.9215674210236786, 1e-9, "gbstats mean 0");
        close(gbstats_mean(1), 2.293085559215182, 1e-9, "gbstats mean 1");
        close(got.adjusted[0].variance, 4.128759276041755, 1e-9, "variance 0");
        close(got.adjusted[1].variance, 3.992615186797151, 1e-9, "variance 1");
        // numpy on the raw units: mean of y - θ(x - mean(x)) = 9.93499406592034 /
        // 10.306512204111845; covariate mean 10.01511225741872; reduction 0.5876769939007214.
        close(got.adjusted[0].mean, 9.93499406592034, 1e-9, "centred mean 0");
        close(got.adjusted[1].mean, 10.306512204111845, 1e-9, "centred mean 1");
        close(got.mean_covariate, 10.01511225741872, 1e-9, "covariate mean");
        close(got.variance_reduction.expect("defined"), 0.5876769939007214, 1e-9, "variance reduction");
        assert_eq!((got.adjusted[0].n, got.adjusted[1].n), (2000, 2100));
    }

    #[test]
    fn comparisons_match_gbstats_two_sided_t_test() {
        // tests/reference/cuped.py, gbstats 0.8.0 TwoSidedTTest on RegressionAdjustedStatistic:
        //   absolute: expected 0.3715181381915036, ci [0.24805629630019602, 0.4949799800828112],
        //             p_value 3.938901871336498e-09 — gbstats computes 2·(1 - t.cdf(|t|)), which
        //             cancels at this size (2e-8 off); the same statistic through
        //             2·scipy.stats.t.sf(|t|, dof) gives 3.938901792574313e-09, checked at 1e-9.
        //   relative: expected 0.037647104700860946,
        //             ci [0.024801459573407646, 0.05049274982831425]
        let theta = cuped(&[VARIANT_0, VARIANT_1]).expect("defined").theta;
        let got = compare_cuped(&VARIANT_0, &VARIANT_1, theta, 0.05);
        close(got.absolute_effect.expect("defined"), 0.3715181381915036, 1e-9, "absolute effect");
        let [lo, hi] = got.ci_absolute.expect("defined");
        close(lo, 0.24805629630019602, 1e-9, "ci_absolute low");
        close(hi, 0.4949799800828112, 1e-9, "ci_absolute high");
        close(got.p_value.expect("defined"), 3.938901792574313e-09, 1e-9, "p_value");
        close(got.relative_effect.expect("defined"), 0.037647104700860946, 1e-9, "relative effect");
        let [lo, hi] = got.ci_relative.expect("defined");
        close(lo, 0.024801459573407646, 1e-9, "ci_relative low");
        close(hi, 0.05049274982831425, 1e-9, "ci_relative high");
        assert!(got.notes.is_empty());

        // The adjusted summaries go through the plain Welch compare with the same absolute
        // results.
        let adjusted = cuped(&[VARIANT_0, VARIANT_1]).expect("defined").adjusted;
        let welch = compare(&adjusted[0], &adjusted[1], 0.05);
        close(welch.p_value.expect("defined"), 3.938901792574313e-09, 1e-9, "Welch p_value");
        close(welch.ci_absolute.expect("defined")[0], 0.24805629630019602, 1e-9, "Welch ci_absolute low");
    }

    #[test]
    fn three_variants_share_one_theta_over_all_units() {
        // tests/reference/cuped.py, numpy on all 6000 units: θ = cov(x, y)/var(x) =
        // 0.7938879569527622; covariate mean 9.993914524835697; adjusted means
        // 9.917645935062115 / 10.290178347352679 / 10.100700449448727, variances
        // 4.127606547276862 / 3.9940362325726615 / 3.8968938468762033; reduction
        // 0.5895714637887206.
        let got = cuped(&[VARIANT_0, VARIANT_1, VARIANT_2]).expect("defined");
        close(got.theta, 0.7938879569527622, 1e-9, "theta");
        close(got.mean_covariate, 9.993914524835697, 1e-9, "covariate mean");
        let expected = [
            (9.917645935062115, 4.127606547276862),
            (10.290178347352679, 3.9940362325726615),
            (10.100700449448727, 3.8968938468762033),
        ];
        for (i, (mean, variance)) in expected.into_iter().enumerate() {
            close(got.adjusted[i].mean, mean, 1e-9, "adjusted mean");
            close(got.adjusted[i].variance, variance, 1e-9, "adjusted variance");
        }
        close(got.variance_reduction.expect("defined"), 0.5895714637887206, 1e-9, "variance reduction");
    }

    #[test]
    fn constant_covariate_adjusts_nothing() {
        // S_xx = 0, so θ = 0 (gbstats reverts to the unadjusted statistics).
        let flat = |n, mean, variance| CovariateSummary {
            n,
            mean,
            mean_covariate: 1.0,
            variance,
            variance_covariate: 0.0,
            covariance: 0.0,
        };
        let got = cuped(&[flat(100, 2.0, 4.0), flat(120, 2.5, 5.0)]).expect("defined");
        assert_eq!(got.theta, 0.0);
        assert_eq!(
            got.adjusted,
            vec![Summary { n: 100, mean: 2.0, variance: 4.0 }, Summary { n: 120, mean: 2.5, variance: 5.0 }]
        );
        assert_eq!(got.variance_reduction, Some(0.0));
    }

    #[test]
    fn degenerate_inputs_are_none_not_nan() {
        assert_eq!(cuped(&[]), None);
        let one = CovariateSummary { n: 1, mean: 1.0, mean_covariate: 1.0, ..CovariateSummary::default() };
        assert_eq!(cuped(&[one, CovariateSummary::default()]), None);
        let nan = CovariateSummary { n: 10, mean: f64::NAN, ..CovariateSummary::default() };
        assert_eq!(cuped(&[nan, nan]), None);
        // No variance anywhere: θ = 0 and no reduction to report.
        let constant = CovariateSummary { n: 10, mean: 1.0, mean_covariate: 1.0, ..CovariateSummary::default() };
        let got = cuped(&[constant, constant]).expect("defined");
        assert_eq!((got.theta, got.variance_reduction), (0.0, None));
    }

    #[test]
    fn zero_control_mean_leaves_the_relative_effect_undefined() {
        let control = CovariateSummary { mean: 0.0, ..VARIANT_0 };
        let got = compare_cuped(&control, &VARIANT_1, 0.8, 0.05);
        assert!(got.p_value.is_some());
        assert_eq!((got.relative_effect, got.ci_relative), (None, None));
        assert_eq!(got.notes, vec!["the control mean is 0, so the relative effect is undefined"]);
    }
}
