"""Reference values for src/stats/sequential.rs: gbstats 0.8.0 SequentialTwoSidedTTest.

Run: /tmp/refvenv/bin/python tests/reference/sequential.py

Each case is a pair of sufficient statistics (n, mean, unbiased variance). gbstats' tests only
read `n`, `mean`, `unadjusted_mean` and `variance` of a statistic, so the cases pass an exact
statistic with those attributes: gbstats then applies its formulas to exactly the numbers the
Rust test uses (a SampleMeanStatistic would first round the variance through sums of squares;
the script checks that this changes nothing beyond 1e-9).
"""
import gbstats
from gbstats.frequentist.tests import SequentialConfig, SequentialTwoSidedTTest
from gbstats.models.statistics import SampleMeanStatistic


class Exact:
    """A statistic given by its sufficient statistics, as gbstats' tests read them."""

    def __init__(self, n, mean, variance):
        self.n, self.mean, self.unadjusted_mean, self.variance = n, mean, mean, variance
        self._has_zero_variance = variance <= 0


def sample_mean(n, mean, variance):
    return SampleMeanStatistic(n=n, sum=n * mean, sum_squares=(n - 1) * variance + n * mean * mean)


CASES = [
    # (control, treatment, alpha, tuning)
    ((1000, 10.0, 4.0), (1100, 10.3, 4.5), 0.05, 5000),
    ((1000, 10.0, 4.0), (1100, 10.3, 4.5), 0.05, 2100),
    ((25000, 0.12, 0.1056), (24800, 0.125, 0.109375), 0.1, 5000),
    ((25000, 0.12, 0.1056), (24800, 0.13, 0.1131), 0.1, 5000),
    ((40, 3.5, 2.25), (45, 4.6, 3.0), 0.01, 100),
    ((200000, 5.0, 16.0), (200000, 5.1, 17.0), 0.05, 5000),
    ((500000, 2.0, 9.0), (500000, 2.0, 9.0), 0.05, 5000),
]

print("gbstats", gbstats.__version__ if hasattr(gbstats, "__version__") else "0.8.0")
for control, treatment, alpha, tuning in CASES:
    out = {}
    for kind in ("absolute", "relative"):
        config = SequentialConfig(alpha=alpha, sequential_tuning_parameter=tuning, difference_type=kind)
        res = SequentialTwoSidedTTest(Exact(*control), Exact(*treatment), config).compute_result()
        rounded = SequentialTwoSidedTTest(sample_mean(*control), sample_mean(*treatment), config).compute_result()
        for a, b in zip(res.ci + [res.p_value], rounded.ci + [rounded.p_value]):
            assert abs(a - b) <= 1e-9 * abs(a), (a, b)
        out[kind] = res
    print(f"control={control} treatment={treatment} alpha={alpha} tuning={tuning}")
    print(f"  ci_absolute=[{out['absolute'].ci[0]!r}, {out['absolute'].ci[1]!r}] p_value={out['absolute'].p_value!r}")
    print(f"  ci_relative=[{out['relative'].ci[0]!r}, {out['relative'].ci[1]!r}] p_value_relative={out['relative'].p_value!r}")

# How the tuning parameter relates to the sample size: for a fixed total N, the half-width of
# the confidence sequence (in units of the per-unit standard deviation) is smallest when the
# tuning parameter is close to N (eq. 161 picks rho to minimise the width at N).
import numpy as np


def half_width(N, tuning, alpha=0.05):
    rho2 = (-2 * np.log(alpha) + np.log(-2 * np.log(alpha) + 1)) / tuning
    return np.sqrt(2 * (N * rho2 + 1) * np.log(np.sqrt(N * rho2 + 1) / alpha) / (N * N * rho2))


for N in (1000, 20000, 1000000):
    grid = np.exp(np.linspace(np.log(N / 100), np.log(N * 100), 200001))
    best = grid[np.argmin(half_width(N, grid))]
    print(f"N={N}: width minimised at tuning={best:.6g} (tuning/N={best / N:.4f})")
