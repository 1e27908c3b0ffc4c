"""Reference values for src/stats/noninferiority.rs.

Run: /tmp/refvenv/bin/python tests/reference/noninferiority.py

Test: non-inferiority with a relative margin d is the one-sided Welch test of the contrast
mean_t - k mean_c, k = 1 - d (higher is better, H1: mean_t > k mean_c) or k = 1 + d (lower is
better, H1: mean_t < k mean_c). On raw arrays that is Welch's test of t against k * c, which
statsmodels and scipy compute directly:
  statsmodels.stats.weightstats.ttest_ind(t, k * c, usevar='unequal', alternative='larger'/'smaller')
  scipy.stats.ttest_ind(t, k * c, equal_var=False, alternative='greater'/'less')
The Rust test gets each array's (n, mean, ddof=1 variance) as numpy prints them. For comparison
only, the script also prints the test with the margin fixed at the observed control mean,
ttest_ind(t, c, value=-d * mean(c)) (Rust does not implement that one).

Power: one-sided normal approximation, against
  statsmodels.stats.power.NormalIndPower().solve_power(effect_size, alpha=, power=, ratio=1,
      alternative='larger') and .power(...), with effect_size = d * mean_c / sigma,
  sigma^2 = (var_t + k^2 var_c) / 2 (so that 2 sigma^2 / n is the contrast's variance).
"""
import numpy as np
import scipy
import statsmodels
from scipy import stats
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.weightstats import ttest_ind

print(f"scipy {scipy.__version__}, statsmodels {statsmodels.__version__}")
rng = np.random.default_rng(7)

CASES = [
    # (name, control draw, treatment draw, margin, higher_is_better)
    ("higher_is_better", (40, 20.0, 4.0), (45, 19.8, 5.0), 0.05, True),
    ("lower_is_better", (60, 3.0, 1.0), (55, 3.05, 1.2), 0.03, False),
    ("clearly_non_inferior", (500, 10.0, 3.0), (520, 10.1, 3.0), 0.02, True),
    ("clearly_inferior", (500, 10.0, 3.0), (520, 9.5, 3.0), 0.02, True),
]

for name, (n_c, m_c, s_c), (n_t, m_t, s_t), margin, higher in CASES:
    c = rng.normal(m_c, s_c, n_c)
    t = rng.normal(m_t, s_t, n_t)
    k = 1 - margin if higher else 1 + margin
    alternative = "larger" if higher else "smaller"
    tstat, p, df = ttest_ind(t, k * c, usevar="unequal", alternative=alternative)
    sp = stats.ttest_ind(t, k * c, equal_var=False, alternative="greater" if higher else "less")
    assert abs(sp.pvalue - p) <= 1e-12 * p and abs(sp.statistic - tstat) <= 1e-12 * abs(tstat)
    _, p_fixed, _ = ttest_ind(t, c, usevar="unequal", alternative=alternative, value=(-margin if higher else margin) * c.mean())
    print(f"{name}: margin={margin} higher_is_better={higher}")
    print(f"  control   n={n_c} mean={c.mean()!r} variance={c.var(ddof=1)!r}")
    print(f"  treatment n={n_t} mean={t.mean()!r} variance={t.var(ddof=1)!r}")
    print(f"  statsmodels: t={tstat!r} p={p!r} df={df!r} (scipy p={sp.pvalue!r})")
    print(f"  (margin fixed at the control mean instead: p={p_fixed!r})")

print("== power")
for mean_c, var_c, var_t, margin, higher, alpha, power, n_now in [
    (20.0, 16.0, 16.0, 0.02, True, 0.05, 0.8, 1000),
    (0.1, 0.09, 0.09, 0.05, False, 0.025, 0.9, 20000),
    (5.0, 4.0, 6.25, 0.01, True, 0.1, 0.8, 5000),
]:
    k = 1 - margin if higher else 1 + margin
    sigma = np.sqrt((var_t + k * k * var_c) / 2)
    es = margin * mean_c / sigma
    n = NormalIndPower().solve_power(effect_size=es, alpha=alpha, power=power, ratio=1, alternative="larger")
    p_now = NormalIndPower().power(effect_size=es, nobs1=n_now, alpha=alpha, ratio=1, alternative="larger")
    print(f"mean_c={mean_c} var_c={var_c} var_t={var_t} margin={margin} higher_is_better={higher} alpha={alpha} power={power}")
    print(f"  solve_power nobs1={n!r}; power at nobs1={n_now}: {p_now!r}")
