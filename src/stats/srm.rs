//! Sample-ratio mismatch: does the observed split of units match the configured weights?

use statrs::distribution::{ChiSquared, ContinuousCDF};

/// Pearson's chi-square goodness-of-fit p-value of `units` against `weights` (normalised),
/// with `k - 1` degrees of freedom — scipy.stats.chisquare(units, expected). `None` when there
/// are no units or fewer than two variants.
pub fn srm_p_value(units: &[u64], weights: &[f64]) -> Option<f64> {
    let total: u64 = units.iter().sum();
    let weight_sum: f64 = weights.iter().sum();
    if total == 0 || units.len() < 2 || units.len() != weights.len() || weight_sum.is_nan() || weight_sum <= 0.0 {
        return None;
    }
    let statistic: f64 = units
        .iter()
        .zip(weights)
        .map(|(&observed, &weight)| {
            let expected = total as f64 * weight / weight_sum;
            let d = observed as f64 - expected;
            d * d / expected
        })
        .sum();
    let chi2 = ChiSquared::new((units.len() - 1) as f64).expect("k - 1 >= 1");
    Some(chi2.sf(statistic))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_split_passes() {
        // scipy.stats.chisquare([5000, 5000]).pvalue == 1.0
        assert_eq!(srm_p_value(&[5000, 5000], &[0.5, 0.5]), Some(1.0));
    }

    #[test]
    fn p_values_match_scipy() {
        // scipy 1.17.1: chisquare([5100, 4900]).pvalue, chisquare([5300, 4700]).pvalue,
        // chisquare([300, 330, 370], [300, 300, 400]).pvalue
        for (units, weights, expected) in [
            (&[5100u64, 4900][..], &[0.5, 0.5][..], 0.04550026389635857),
            (&[5300, 4700], &[1.0, 1.0], 1.9731752900753933e-09),
            (&[300, 330, 370], &[0.3, 0.3, 0.4], 0.07243975703425146),
        ] {
            let p = srm_p_value(units, weights).expect("tested");
            assert!((p - expected).abs() <= 1e-9 * expected, "{units:?}: {p} vs {expected}");
        }
    }

    #[test]
    fn no_units_has_no_test() {
        assert_eq!(srm_p_value(&[0, 0], &[0.5, 0.5]), None);
    }
}
