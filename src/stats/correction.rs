//! Multiple-comparison corrections over the comparisons of one experiment.

use crate::results::Correction;

/// Adjusted p-values in the input order, as statsmodels' `multipletests` computes them:
/// Holm (Holm 1979, Scand. J. Statist. 6) `p̃(i) = max_{j≤i} min(1, (m-j+1)·p(j))` over
/// ascending p-values; Benjamini–Hochberg (1995, JRSS-B 57) `p̃(i) = min_{j≥i} min(1, m/j·p(j))`.
pub fn adjust(p_values: &[f64], correction: Correction) -> Vec<f64> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    let mut adjusted = vec![0.0; m];
    match correction {
        Correction::None => adjusted.copy_from_slice(p_values),
        Correction::Holm => {
            let mut running = 0.0f64;
            for (rank, &i) in order.iter().enumerate() {
                running = running.max(((m - rank) as f64 * p_values[i]).min(1.0));
                adjusted[i] = running;
            }
        }
        Correction::BenjaminiHochberg => {
            let mut running = 1.0f64;
            for (rank, &i) in order.iter().enumerate().rev() {
                running = running.min((m as f64 / (rank + 1) as f64 * p_values[i]).min(1.0));
                adjusted[i] = running;
            }
        }
    }
    adjusted
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: [f64; 5] = [0.01, 0.04, 0.03, 0.005, 0.2];

    fn check(correction: Correction, expected: [f64; 5]) {
        let got = adjust(&P, correction);
        for (g, e) in got.iter().zip(expected) {
            assert!((g - e).abs() <= 1e-12 * e, "{correction:?}: {got:?} vs {expected:?}");
        }
    }

    #[test]
    fn holm_matches_statsmodels() {
        // statsmodels.stats.multitest.multipletests(P, method="holm")[1]
        check(Correction::Holm, [0.04, 0.09, 0.09, 0.025, 0.2]);
    }

    #[test]
    fn bh_matches_statsmodels() {
        // statsmodels.stats.multitest.multipletests(P, method="fdr_bh")[1]
        check(Correction::BenjaminiHochberg, [0.025, 0.05, 0.05, 0.025, 0.2]);
    }

    #[test]
    fn none_is_identity_and_empty_is_empty() {
        check(Correction::None, P);
        assert!(adjust(&[], Correction::Holm).is_empty());
    }
}
