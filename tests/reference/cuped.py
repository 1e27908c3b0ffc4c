"""Reference values for src/stats/cuped.rs: CUPED as gbstats 0.8.0 RegressionAdjustedStatistic.

Run: /tmp/refvenv/bin/python tests/reference/cuped.py

Draws per-unit pre-experiment covariates X and metric values Y (seeded), prints each variant's
moments as numpy computes them (two-pass, ddof=1) — the Rust test's inputs — and then:
  * gbstats: compute_theta, RegressionAdjustedStatistic mean/variance, TwoSidedTTest absolute
    and relative on the regression-adjusted statistics (built from sums, as gbstats is fed),
    plus the absolute p-value recomputed with scipy's t.sf (gbstats' 1 - cdf loses digits);
  * numpy directly: theta over all variants' units, per-variant adjusted values
    y - theta (x - mean(x over all units)), their means and variances, and the pooled variance
    reduction 1 - sum (n-1) var_adj / sum (n-1) var_y.
"""
import numpy as np
from scipy import stats
from gbstats.frequentist.tests import FrequentistConfig, TwoSidedTTest
from gbstats.models.statistics import RegressionAdjustedStatistic, SampleMeanStatistic, compute_theta

rng = np.random.default_rng(20240611)


def draw(n, lift):
    x = rng.normal(10.0, 3.0, n)
    y = 2.0 + 0.8 * x + rng.normal(0.0, 2.0, n) + lift
    return x, y


def moments(x, y):
    return len(x), y.mean(), x.mean(), y.var(ddof=1), x.var(ddof=1), np.cov(x, y, ddof=1)[0, 1]


def ra_statistic(x, y):
    n = len(x)
    return RegressionAdjustedStatistic(
        n=n,
        post_statistic=SampleMeanStatistic(n=n, sum=float(y.sum()), sum_squares=float((y * y).sum())),
        pre_statistic=SampleMeanStatistic(n=n, sum=float(x.sum()), sum_squares=float((x * x).sum())),
        post_pre_sum_of_products=float((x * y).sum()),
        theta=0,
    )


variants = [draw(2000, 0.0), draw(2100, 0.3), draw(1900, 0.1)]
for i, (x, y) in enumerate(variants):
    n, my, mx, vy, vx, cxy = moments(x, y)
    print(f"variant {i}: n={n} mean={my!r} mean_covariate={mx!r} variance={vy!r} variance_covariate={vx!r} covariance={cxy!r}")


def numpy_cuped(chosen):
    x_all = np.concatenate([x for x, _ in chosen])
    y_all = np.concatenate([y for _, y in chosen])
    theta = np.cov(x_all, y_all, ddof=1)[0, 1] / x_all.var(ddof=1)
    adjusted = [y - theta * (x - x_all.mean()) for x, y in chosen]
    dof = [len(x) - 1 for x, _ in chosen]
    reduction = 1 - sum(d * a.var(ddof=1) for d, a in zip(dof, adjusted)) / sum(d * y.var(ddof=1) for d, (_, y) in zip(dof, chosen))
    return theta, adjusted, reduction, x_all.mean()


print("== two variants (0 = control, 1 = treatment): gbstats")
a, b = ra_statistic(*variants[0]), ra_statistic(*variants[1])
theta = compute_theta(a, b)
a.theta = b.theta = theta
print(f"theta={theta!r}")
print(f"gbstats mean: control={a.mean!r} treatment={b.mean!r}")
print(f"gbstats variance: control={a.variance!r} treatment={b.variance!r}")
for kind in ("absolute", "relative"):
    test = TwoSidedTTest(ra_statistic(*variants[0]), ra_statistic(*variants[1]), FrequentistConfig(alpha=0.05, difference_type=kind))
    res = test.compute_result()
    print(f"TwoSidedTTest {kind}: expected={res.expected!r} ci=[{res.ci[0]!r}, {res.ci[1]!r}] p_value={res.p_value!r}")
    # gbstats' p-value is 2 * (1 - t.cdf(|t|)), which cancels for small p; the same test with
    # scipy's survival function keeps every digit.
    print(f"  same statistic, 2 * scipy.stats.t.sf(|t|, dof) = {2 * stats.t.sf(abs(test.critical_value), test.dof)!r}")
theta_np, adjusted, reduction, x_mean = numpy_cuped(variants[:2])
print(f"numpy: theta={theta_np!r} pooled covariate mean={x_mean!r}")
for i, adj in enumerate(adjusted):
    print(f"numpy adjusted {i}: mean={adj.mean()!r} variance={adj.var(ddof=1)!r}")
print(f"numpy variance reduction={reduction!r}")

print("== three variants, theta over all units: numpy")
theta_np, adjusted, reduction, x_mean = numpy_cuped(variants)
print(f"numpy: theta={theta_np!r} pooled covariate mean={x_mean!r}")
for i, adj in enumerate(adjusted):
    print(f"numpy adjusted {i}: mean={adj.mean()!r} variance={adj.var(ddof=1)!r}")
print(f"numpy variance reduction={reduction!r}")
