//! Sufficient statistics of one variant's per-unit values.

/// A difference of terms smaller than this share of their magnitude is rounding noise: double
/// precision carries ~16 digits, and sums of many terms lose a few of them.
pub(crate) const CANCELLATION_FLOOR: f64 = 1e-12;

/// Count, mean and unbiased (n-1) variance of per-unit values.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct Summary {
    pub n: u64,
    pub mean: f64,
    /// Unbiased sample variance; 0 when `n < 2`.
    pub variance: f64,
}

impl Summary {
    /// Two-pass mean and variance: the centred second pass keeps full precision for values
    /// with a large mean, where `Σx² - n·x̄²` would cancel catastrophically.
    pub fn from_values(values: &[f64]) -> Self {
        let n = values.len();
        if n == 0 {
            return Self::default();
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let variance =
            if n < 2 { 0.0 } else { values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1) as f64 };
        Self { n: n as u64, mean, variance }
    }
}

/// The delta-method variance of the relative effect `m_t / m_c - 1`:
/// `v_t / (n_t m_c²) + m_t² v_c / (n_c m_c⁴)`, with `m_t` given separately so that CUPED can use
/// the unadjusted treatment mean as gbstats does (gbstats `frequentist_variance`; Deng et al.
/// 2018, "Applying the Delta Method in Metric Analytics", KDD, §3).
pub fn relative_variance(control: &Summary, treatment: &Summary, mean_t: f64) -> f64 {
    let mc2 = control.mean * control.mean;
    treatment.variance / (treatment.n as f64 * mc2)
        + mean_t * mean_t * control.variance / (control.n as f64 * mc2 * mc2)
}

/// Sufficient statistics of a ratio metric's per-unit numerators and denominators.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct RatioSummary {
    pub n: u64,
    pub mean_numerator: f64,
    pub mean_denominator: f64,
    pub var_numerator: f64,
    pub var_denominator: f64,
    /// Unbiased sample covariance of numerator and denominator.
    pub covariance: f64,
}

impl RatioSummary {
    /// Two-pass moments, as [`Summary::from_values`].
    pub fn from_values(numerators: &[f64], denominators: &[f64]) -> Self {
        debug_assert_eq!(numerators.len(), denominators.len());
        let n = numerators.len();
        if n == 0 {
            return Self::default();
        }
        let mean_numerator = numerators.iter().sum::<f64>() / n as f64;
        let mean_denominator = denominators.iter().sum::<f64>() / n as f64;
        if n < 2 {
            return Self { n: 1, mean_numerator, mean_denominator, ..Self::default() };
        }
        let (mut s_nn, mut s_dd, mut s_nd) = (0.0, 0.0, 0.0);
        for (x, y) in numerators.iter().zip(denominators) {
            let (dx, dy) = (x - mean_numerator, y - mean_denominator);
            s_nn += dx * dx;
            s_dd += dy * dy;
            s_nd += dx * dy;
        }
        let d = (n - 1) as f64;
        Self {
            n: n as u64,
            mean_numerator,
            mean_denominator,
            var_numerator: s_nn / d,
            var_denominator: s_dd / d,
            covariance: s_nd / d,
        }
    }

    /// The ratio `R = Σnumerator / Σdenominator` and the delta-method variance of the per-unit
    /// ratio estimator times n, `(s_nn - 2 R s_nd + R² s_dd) / mean_d²`, as gbstats'
    /// `RatioStatistic.variance` computes it (gbstats/models/statistics.py; Deng et al. 2018,
    /// "Applying the Delta Method in Metric Analytics", KDD, eq. 4). `None` when the
    /// denominator's mean is 0 (the ratio is undefined).
    pub fn to_summary(&self) -> Option<Summary> {
        if self.n == 0 || self.mean_denominator == 0.0 {
            return None;
        }
        let r = self.mean_numerator / self.mean_denominator;
        let terms = [self.var_numerator, -2.0 * r * self.covariance, r * r * self.var_denominator];
        let combined: f64 = terms.iter().sum();
        // When every unit has the same ratio the terms cancel exactly in exact arithmetic, but
        // not in floating point: what is left is rounding noise of the terms' size times ~1e-16,
        // whose sign and size depend on summation order (so engines differ), and which would
        // make a "significant" test of a difference of zero noise. Below this share of the
        // terms' magnitude the difference carries no digits of its own: it is zero.
        let magnitude: f64 = terms.iter().map(|t| t.abs()).sum();
        let combined = if combined <= CANCELLATION_FLOOR * magnitude { 0.0 } else { combined };
        let variance = combined / (self.mean_denominator * self.mean_denominator);
        Some(Summary { n: self.n, mean: r, variance })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::close;

    #[test]
    fn summary_matches_numpy() {
        // numpy: x = [1, 2, 4, 7]; x.mean() = 3.5; x.var(ddof=1) = 7.0
        let s = Summary::from_values(&[1.0, 2.0, 4.0, 7.0]);
        assert_eq!(s.n, 4);
        close(s.mean, 3.5, 1e-12, "mean");
        close(s.variance, 7.0, 1e-12, "variance");
    }

    #[test]
    fn summary_keeps_precision_with_a_large_mean() {
        // x = 1e9 + [0, 1, 2]: variance 1 exactly; Σx² - n·x̄² would lose it.
        let s = Summary::from_values(&[1e9, 1e9 + 1.0, 1e9 + 2.0]);
        close(s.variance, 1.0, 1e-12, "variance");
    }

    #[test]
    fn empty_and_single_values_have_no_nan() {
        assert_eq!(Summary::from_values(&[]), Summary::default());
        let one = Summary::from_values(&[3.0]);
        assert_eq!((one.n, one.mean, one.variance), (1, 3.0, 0.0));
    }

    #[test]
    fn ratio_delta_variance_matches_hand_computation() {
        // numerators [1, 2, 3], denominators [1, 1, 2]: means 2, 4/3; s_nn = 1, s_dd = 1/3,
        // s_nd = 0.5; R = 1.5; var = (1 - 2·1.5·0.5 + 2.25/3) / (16/9) = 0.25 / (16/9) = 0.140625
        let r = RatioSummary::from_values(&[1.0, 2.0, 3.0], &[1.0, 1.0, 2.0]);
        let s = r.to_summary().expect("defined");
        close(s.mean, 1.5, 1e-12, "mean");
        close(s.variance, 0.140625, 1e-12, "variance");
    }

    #[test]
    fn a_ratio_every_unit_shares_has_a_variance_of_exactly_zero() {
        // numerator = 0.1 × denominator for every unit: the delta-method variance is 0 exactly,
        // but its terms (s_nn, -2R·s_nd, R²·s_dd) cancel with rounding noise left over.
        let denominators: Vec<f64> = (1..=37).map(|i| f64::from(i) * 1.7).collect();
        let numerators: Vec<f64> = denominators.iter().map(|d| d * 0.1).collect();
        let s = RatioSummary::from_values(&numerators, &denominators).to_summary().expect("defined");
        close(s.mean, 0.1, 1e-12, "mean");
        assert_eq!(s.variance, 0.0);
        // A real spread well above the floor is kept.
        let mut spread = numerators.clone();
        spread[0] += 1e-3;
        let s = RatioSummary::from_values(&spread, &denominators).to_summary().expect("defined");
        assert!(s.variance > 0.0);
    }

    #[test]
    fn ratio_with_zero_denominator_is_undefined() {
        assert_eq!(RatioSummary::from_values(&[1.0, 2.0], &[0.0, 0.0]).to_summary(), None);
    }
}
