//! Bayesian comparison of one variant against the control on the relative effect, computed
//! exactly as GrowthBook's gbstats 0.8.0 `EffectBayesianABTest` with
//! `difference_type="relative"` (gbstats/bayesian/tests.py): a Gaussian approximation to the
//! likelihood of the lift, combined with a flat or a Gaussian prior, giving the chance to win,
//! the risk and an equal-tailed credible interval. It takes per-variant [`Summary`] values and
//! does no IO.

use super::{Summary, normal};

/// A proper Gaussian prior `N(mean, variance)` on the relative effect `mean_t / mean_c - 1` —
/// gbstats' `GaussianPrior(mean, variance, proper=True)` with `prior_type="relative"`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct GaussianPrior {
    pub mean: f64,
    /// Must be positive.
    pub variance: f64,
}

/// Posterior summary of the relative effect of one variant against the control.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct BayesianComparison {
    /// Posterior mean of the relative effect (gbstats `expected`).
    pub relative_effect: f64,
    /// Posterior standard deviation of the relative effect (gbstats `uplift.stddev`).
    pub posterior_sd: f64,
    /// Posterior probability that the treatment is better than the control: `P(effect > 0)`
    /// when higher is better, `P(effect < 0)` when lower is better.
    pub chance_to_win: f64,
    /// `[expected loss of choosing the control, expected loss of choosing the treatment]`, in
    /// relative-effect units (gbstats `risk`, `risk_type="relative"`), in that order whichever
    /// direction is better.
    pub risk: [f64; 2],
    /// Equal-tailed credible interval of the relative effect at level `1 - alpha`.
    pub ci_relative: [f64; 2],
}

/// Compares `treatment` to `control` on the relative effect, as gbstats'
/// `EffectBayesianABTest` with `difference_type="relative"`, `prior_type="relative"` and
/// `inverse = !higher_is_better`.
///
/// Likelihood: the lift `d = (m_t - m_c)/m_c` is taken as `N(Δ, V)` with the delta-method
/// `V = v_t/(n_t m_c²) + m_t² v_c/(n_c m_c⁴)` (gbstats `frequentist_diff` and
/// `frequentist_variance`). Posterior: with a flat prior, `N(d, V)`; with the prior `N(μ₀, σ₀²)`,
/// the conjugate normal update: precision `1/V + 1/σ₀²`, mean `(d/V + μ₀/σ₀²) / precision`
/// (Gelman et al., *Bayesian Data Analysis*, 3rd ed., §2.5).
///
/// With posterior `N(μ, σ²)` and `z = μ/σ`: chance to win `Φ(z)` (`Φ(-z)` when lower is better);
/// credible interval `μ + σ·Φ⁻¹(α/2)` to `μ + σ·Φ⁻¹(1-α/2)`; risk as gbstats' `get_risk`:
/// loss of choosing control `P(X>0)·E[X | X>0] = μΦ(z) + σφ(z)`, loss of choosing treatment
/// `-P(X<0)·E[X | X<0] = σφ(z) - μΦ(-z)` (truncated-normal means, Johnson, Kotz & Balakrishnan,
/// *Continuous Univariate Distributions*, vol. 1, 2nd ed., ch. 13), swapped when lower is better so the
/// order stays [control, treatment]. `Φ` is the full-precision one of `normal.rs`: the loss of
/// choosing the better variant cancels (by about `z²`), and statrs' `Φ` is only good to 1e-10.
/// gbstats' lower-is-better chance to win, `1 - sf`, loses digits when it is tiny; `Φ(-z)`
/// does not.
///
/// `None`, as gbstats' default output: a control mean of 0, a variant with fewer than 2 units or
/// a variance of 0 in either variant, `alpha` outside (0, 1), a prior variance that is not
/// positive, or an interval that overflows (an `alpha` so small that `1 - α/2` rounds to 1).
pub fn compare_bayesian(
    control: &Summary,
    treatment: &Summary,
    alpha: f64,
    prior: Option<&GaussianPrior>,
    higher_is_better: bool,
) -> Option<BayesianComparison> {
    compare_bayesian_with(control, treatment, treatment.mean, alpha, prior, higher_is_better)
}

/// [`compare_bayesian`] for regression-adjusted (CUPED) variants: the likelihood's
/// delta-method variance uses `variance_mean_t`, the treatment's unadjusted mean, as gbstats
/// does (see [`compare_sequential_with`](super::sequential::compare_sequential_with)).
pub fn compare_bayesian_with(
    control: &Summary,
    treatment: &Summary,
    variance_mean_t: f64,
    alpha: f64,
    prior: Option<&GaussianPrior>,
    higher_is_better: bool,
) -> Option<BayesianComparison> {
    if control.mean == 0.0 || control.n < 2 || treatment.n < 2 {
        return None;
    }
    if !(control.variance > 0.0 && treatment.variance > 0.0 && alpha > 0.0 && alpha < 1.0) {
        return None;
    }
    let data_mean = (treatment.mean - control.mean) / control.mean;
    let data_variance = super::relative_variance(control, treatment, variance_mean_t);
    let (mean, precision) = match prior {
        None => (data_mean, 1.0 / data_variance),
        Some(prior) => {
            if prior.variance.is_nan() || prior.variance <= 0.0 {
                return None;
            }
            let precision = 1.0 / data_variance + 1.0 / prior.variance;
            ((data_mean / data_variance + prior.mean / prior.variance) / precision, precision)
        }
    };
    let sd = (1.0 / precision).sqrt();
    if !(mean.is_finite() && sd.is_finite() && sd > 0.0) {
        return None;
    }
    let z = mean / sd;
    let density = normal::pdf(z);
    let loss_control = mean * normal::cdf(z) + sd * density;
    let loss_treatment = sd * density - mean * normal::cdf(-z);
    let (chance_to_win, risk) = if higher_is_better {
        (normal::cdf(z), [loss_control, loss_treatment])
    } else {
        (normal::cdf(-z), [loss_treatment, loss_control])
    };
    let ci_relative = [mean + sd * normal::quantile(alpha / 2.0), mean + sd * normal::quantile(1.0 - alpha / 2.0)];
    if !(ci_relative[0].is_finite() && ci_relative[1].is_finite()) {
        return None;
    }
    Some(BayesianComparison {
        relative_effect: mean,
        posterior_sd: sd,
        chance_to_win,
        // Rounding can leave a vanishing loss a hair below 0.
        risk: risk.map(|loss| loss.max(0.0)),
        ci_relative,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::close;

    const CONTROL: Summary = Summary { n: 1000, mean: 10.0, variance: 4.0 };
    const TREATMENT: Summary = Summary { n: 1100, mean: 10.3, variance: 4.5 };

    /// Checks [expected, stddev, chance_to_win, risk[0], risk[1], ci low, ci high] against
    /// gbstats 0.8.0 `EffectBayesianABTest`, as printed by tests/reference/bayesian.py.
    fn check(
        control: &Summary,
        treatment: &Summary,
        alpha: f64,
        prior: Option<&GaussianPrior>,
        higher_is_better: bool,
        expected: [f64; 7],
    ) {
        let got = compare_bayesian(control, treatment, alpha, prior, higher_is_better).expect("defined");
        close(got.relative_effect, expected[0], 1e-9, "expected");
        close(got.posterior_sd, expected[1], 1e-9, "stddev");
        close(got.chance_to_win, expected[2], 1e-9, "chance_to_win");
        close(got.risk[0], expected[3], 1e-9, "risk[0] (control)");
        close(got.risk[1], expected[4], 1e-9, "risk[1] (treatment)");
        close(got.ci_relative[0], expected[5], 1e-9, "ci low");
        close(got.ci_relative[1], expected[6], 1e-9, "ci high");
    }

    #[test]
    fn flat_prior_matches_gbstats() {
        // tests/reference/bayesian.py, prior=None, inverse=False.
        check(
            &CONTROL,
            &TREATMENT,
            0.05,
            None,
            true,
            [
                0.030000000000000072,
                0.009129353257985525,
                0.9994920816765885,
                0.03000122475797095,
                1.2247579708798387e-06,
                0.012106796412205034,
                0.047893203587795107,
            ],
        );
    }

    #[test]
    fn lower_is_better_flips_chance_to_win_and_swaps_risk() {
        // tests/reference/bayesian.py, prior=None, inverse=True: gbstats' chance_to_win is
        // 1 - sf = 0.0005079183234114604, the risks come swapped, the interval is unchanged.
        check(
            &CONTROL,
            &TREATMENT,
            0.05,
            None,
            false,
            [
                0.030000000000000072,
                0.009129353257985525,
                0.0005079183234114604,
                1.2247579708798387e-06,
                0.03000122475797095,
                0.012106796412205034,
                0.047893203587795107,
            ],
        );
    }

    #[test]
    fn proper_prior_matches_gbstats() {
        // tests/reference/bayesian.py, prior=(0.0, 0.0004), alpha=0.1, inverse=False.
        check(
            &CONTROL,
            &TREATMENT,
            0.1,
            Some(&GaussianPrior { mean: 0.0, variance: 0.0004 }),
            true,
            [
                0.024826982265259062,
                0.008305032799245686,
                0.9986023247491831,
                0.024830277111015327,
                3.294845756263076e-06,
                0.011166418943468853,
                0.03848754558704927,
            ],
        );
    }

    #[test]
    fn proper_prior_lower_is_better_matches_gbstats() {
        // tests/reference/bayesian.py, prior=(0.01, 0.0009), inverse=True.
        check(
            &CONTROL,
            &TREATMENT,
            0.05,
            Some(&GaussianPrior { mean: 0.01, variance: 0.0009 }),
            false,
            [
                0.028304865877104523,
                0.008733901506789469,
                0.0005959648274259655,
                1.3896462345973406e-06,
                0.02830625552333912,
                0.01118673347927705,
                0.04542299827493199,
            ],
        );
    }

    #[test]
    fn losing_variant_matches_gbstats() {
        // tests/reference/bayesian.py, a conversion rate going down, prior=None.
        check(
            &Summary { n: 25000, mean: 0.12, variance: 0.1056 },
            &Summary { n: 24800, mean: 0.118, variance: 0.104076 },
            0.05,
            None,
            true,
            [
                -0.016666666666666684,
                0.023980585661112205,
                0.24352556493398153,
                0.0034553981200747238,
                0.020122064786741407,
                -0.06366775089062426,
                0.030334417557290883,
            ],
        );
    }

    #[test]
    fn tiny_risk_keeps_its_precision() {
        // tests/reference/bayesian.py: z ≈ 7.7. gbstats' risk[1] is 2.0532627508330773e-18,
        // mpmath's closed form at 50 digits 2.0532627508321643e-18 (gbstats is 4.4e-13 off);
        // gbstats' chance_to_win 0.9999999999999937.
        let control = Summary { n: 200000, mean: 5.0, variance: 16.0 };
        let treatment = Summary { n: 200000, mean: 5.1, variance: 17.0 };
        let got = compare_bayesian(&control, &treatment, 0.05, None, true).expect("defined");
        close(got.risk[1], 2.0532627508321643e-18, 1e-9, "risk[1] vs mpmath");
        close(got.risk[0], 0.01999999999999993, 1e-9, "risk[0]");
        close(got.chance_to_win, 0.9999999999999937, 1e-9, "chance_to_win");
        close(got.ci_relative[0], 0.014915685689011613, 1e-9, "ci low");
        close(got.ci_relative[1], 0.02508431431098824, 1e-9, "ci high");
    }

    #[test]
    fn degenerate_inputs_are_none() {
        let zero_mean = Summary { n: 100, mean: 0.0, variance: 1.0 };
        let constant = Summary { n: 100, mean: 1.0, variance: 0.0 };
        let single = Summary { n: 1, mean: 1.0, variance: 0.0 };
        assert_eq!(compare_bayesian(&zero_mean, &TREATMENT, 0.05, None, true), None);
        assert_eq!(compare_bayesian(&CONTROL, &constant, 0.05, None, true), None);
        assert_eq!(compare_bayesian(&single, &TREATMENT, 0.05, None, true), None);
        assert_eq!(compare_bayesian(&CONTROL, &TREATMENT, 1.0, None, true), None);
        // 1 - α/2 rounds to 1: the interval would be infinite.
        assert_eq!(compare_bayesian(&CONTROL, &TREATMENT, 1e-300, None, true), None);
        let flat = GaussianPrior { mean: 0.0, variance: 0.0 };
        assert_eq!(compare_bayesian(&CONTROL, &TREATMENT, 0.05, Some(&flat), true), None);
    }
}
