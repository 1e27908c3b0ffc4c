//! Welch's two-sample t-test and the delta-method interval for the relative effect.

use super::Summary;
use super::student_t;

/// One variant against the control on one metric. Fields are `None` when undefined; `notes`
/// then say why, in words a report can show.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Comparison {
    /// `mean_t - mean_c`.
    pub absolute_effect: Option<f64>,
    /// `mean_t / mean_c - 1`.
    pub relative_effect: Option<f64>,
    pub ci_absolute: Option<[f64; 2]>,
    pub ci_relative: Option<[f64; 2]>,
    /// Two-sided Welch p-value.
    pub p_value: Option<f64>,
    /// Standard error of the absolute effect.
    pub standard_error: Option<f64>,
    /// Welch–Satterthwaite degrees of freedom.
    pub df: Option<f64>,
    pub notes: Vec<&'static str>,
}

/// Compares `treatment` to `control` at level `1 - alpha`.
///
/// Absolute effect: Welch's t-test, `se = sqrt(v_t/n_t + v_c/n_c)`, Welch–Satterthwaite
/// `df = se⁴ / ((v_t/n_t)²/(n_t-1) + (v_c/n_c)²/(n_c-1))`, two-sided `p = 2·sf(|d|/se)`,
/// CI `d ± t(1-α/2, df)·se` (Welch 1947, Biometrika 34; scipy.stats.ttest_ind with
/// `equal_var=False`).
///
/// Relative effect: delta method, `var = v_t/(n_t·m_c²) + m_t²·v_c/(n_c·m_c⁴)`, CI
/// `r ± t(1-α/2, df)·sqrt(var)` with the same quantile and df as the absolute CI — gbstats'
/// `frequentist_variance_relative` and `TwoSidedTTest` (gbstats/frequentist/tests.py).
pub fn compare(control: &Summary, treatment: &Summary, alpha: f64) -> Comparison {
    let mut out = Comparison::default();
    if control.n == 0 || treatment.n == 0 {
        out.notes.push("a variant has no units");
        return out;
    }
    let diff = treatment.mean - control.mean;
    out.absolute_effect = Some(diff);
    if control.mean != 0.0 {
        out.relative_effect = Some(treatment.mean / control.mean - 1.0);
    } else {
        out.notes.push("the control mean is 0, so the relative effect is undefined");
    }
    if control.n < 2 || treatment.n < 2 {
        out.notes.push("a variant has fewer than 2 units, so there is no variance to test with");
        return out;
    }
    let (nc, nt) = (control.n as f64, treatment.n as f64);
    let (vc, vt) = (control.variance / nc, treatment.variance / nt);
    let se2 = vc + vt;
    if se2.is_nan() || se2 <= 0.0 {
        out.notes.push("the metric does not vary within either variant, so a t-test is undefined");
        return out;
    }
    let se = se2.sqrt();
    let df = se2 * se2 / (vc * vc / (nc - 1.0) + vt * vt / (nt - 1.0));
    let q = student_t::quantile(1.0 - alpha / 2.0, df);
    out.standard_error = Some(se);
    out.df = Some(df);
    out.p_value = Some((2.0 * student_t::sf((diff / se).abs(), df)).min(1.0));
    out.ci_absolute = Some([diff - q * se, diff + q * se]);
    if let Some(relative) = out.relative_effect {
        let var_rel = super::relative_variance(control, treatment, treatment.mean);
        let half = q * var_rel.sqrt();
        out.ci_relative = Some([relative - half, relative + half]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_rel(actual: f64, expected: f64, what: &str) {
        let err = (actual - expected).abs() / expected.abs().max(1e-300);
        assert!(err <= 1e-9, "{what}: {actual} vs {expected} (rel err {err:e})");
    }

    #[test]
    fn welch_matches_scipy_on_raw_values() {
        // a = [1..=10], b = [2, 4, 5, 7, 9, 10, 12, 15]; scipy 1.17.1:
        // r = scipy.stats.ttest_ind(b, a, equal_var=False)
        //   r.statistic 1.381698559415515, r.pvalue 0.1920795569864873, r.df 12.08192697146364
        //   r.confidence_interval(0.95) = (-1.439309558082157, 6.439309558082157)
        let a = Summary::from_values(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]);
        let b = Summary::from_values(&[2.0, 4.0, 5.0, 7.0, 9.0, 10.0, 12.0, 15.0]);
        let c = compare(&a, &b, 0.05);
        check_rel(c.absolute_effect.expect("defined"), 2.5, "effect");
        check_rel(2.5 / c.standard_error.expect("defined"), 1.381698559415515, "t");
        check_rel(c.df.expect("defined"), 12.08192697146364, "df");
        check_rel(c.p_value.expect("defined"), 0.1920795569864873, "p");
        let [lo, hi] = c.ci_absolute.expect("defined");
        check_rel(lo, -1.439309558082157, "ci lo");
        check_rel(hi, 6.439309558082157, "ci hi");
    }

    #[test]
    fn zero_variance_is_a_note_not_a_nan() {
        let a = Summary { n: 100, mean: 1.0, variance: 0.0 };
        let c = compare(&a, &a, 0.05);
        assert_eq!(c.p_value, None);
        assert_eq!(c.absolute_effect, Some(0.0));
        assert_eq!(c.relative_effect, Some(0.0));
        assert!(c.notes[0].contains("does not vary"));
    }

    #[test]
    fn zero_control_mean_leaves_the_relative_effect_undefined() {
        let control = Summary { n: 100, mean: 0.0, variance: 0.0 };
        let treatment = Summary { n: 100, mean: 0.1, variance: 0.09 };
        let c = compare(&control, &treatment, 0.05);
        assert_eq!(c.relative_effect, None);
        assert_eq!(c.ci_relative, None);
        assert!(c.p_value.is_some_and(|p| p < 0.01));
    }

    #[test]
    fn one_unit_or_empty_variant_is_handled() {
        let one = Summary { n: 1, mean: 2.0, variance: 0.0 };
        let many = Summary { n: 50, mean: 1.0, variance: 1.0 };
        let c = compare(&many, &one, 0.05);
        assert_eq!(c.p_value, None);
        assert_eq!(c.absolute_effect, Some(1.0));
        let empty = compare(&many, &Summary::default(), 0.05);
        assert_eq!(empty.absolute_effect, None);
        assert_eq!(empty.notes, vec!["a variant has no units"]);
    }
}
