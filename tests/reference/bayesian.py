"""Reference values for src/stats/bayesian.rs: gbstats 0.8.0 EffectBayesianABTest.

Needs mpmath besides tests/reference/requirements.txt. Run: /tmp/refvenv/bin/python tests/reference/bayesian.py

Each case is a pair of sufficient statistics (n, mean, unbiased variance). gbstats' tests only
read `n`, `mean`, `unadjusted_mean` and `variance` of a statistic, so the cases pass an exact
statistic with those attributes (a SampleMeanStatistic would first round the variance through
sums of squares; the script checks that this changes nothing beyond 1e-9). The risk is also
computed with mpmath at 50 digits from its closed form, to show how close gbstats' own
(scipy truncnorm) value is.
"""
import mpmath
from gbstats.bayesian.tests import EffectBayesianABTest, EffectBayesianConfig, GaussianPrior
from gbstats.models.statistics import SampleMeanStatistic

mpmath.mp.dps = 50


class Exact:
    """A statistic given by its sufficient statistics, as gbstats' tests read them."""

    def __init__(self, n, mean, variance):
        self.n, self.mean, self.unadjusted_mean, self.variance = n, mean, mean, variance
        self._has_zero_variance = variance <= 0


def sample_mean(n, mean, variance):
    return SampleMeanStatistic(n=n, sum=n * mean, sum_squares=(n - 1) * variance + n * mean * mean)


def exact_risk(mu, sigma):
    """[loss of choosing control, loss of choosing treatment] = [E max(X,0), E max(-X,0)]."""
    mu, sigma = mpmath.mpf(mu), mpmath.mpf(sigma)
    z = mu / sigma
    pdf = mpmath.npdf(z)
    return [mu * mpmath.ncdf(z) + sigma * pdf, sigma * pdf - mu * mpmath.ncdf(-z)]


CASES = [
    # (control, treatment, alpha, prior (mean, variance) or None, inverse)
    ((1000, 10.0, 4.0), (1100, 10.3, 4.5), 0.05, None, False),
    ((1000, 10.0, 4.0), (1100, 10.3, 4.5), 0.05, None, True),
    ((1000, 10.0, 4.0), (1100, 10.3, 4.5), 0.1, (0.0, 0.0004), False),
    ((1000, 10.0, 4.0), (1100, 10.3, 4.5), 0.05, (0.01, 0.0009), True),
    ((25000, 0.12, 0.1056), (24800, 0.118, 0.104076), 0.05, None, False),
    ((200000, 5.0, 16.0), (200000, 5.1, 17.0), 0.05, None, False),
]

for control, treatment, alpha, prior, inverse in CASES:
    gaussian = GaussianPrior() if prior is None else GaussianPrior(mean=prior[0], variance=prior[1], proper=True)
    config = EffectBayesianConfig(alpha=alpha, inverse=inverse, prior_effect=gaussian, difference_type="relative")
    res = EffectBayesianABTest(Exact(*control), Exact(*treatment), config).compute_result()
    rounded = EffectBayesianABTest(sample_mean(*control), sample_mean(*treatment), config).compute_result()
    values = [res.chance_to_win] + res.risk + res.ci + [res.expected, res.uplift.stddev]
    for a, b in zip(values, [rounded.chance_to_win] + rounded.risk + rounded.ci):
        assert abs(a - b) <= 1e-9 * abs(a), (a, b)
    assert res.error_message is None
    risk = exact_risk(res.uplift.mean, res.uplift.stddev)
    if inverse:
        risk = [risk[1], risk[0]]
    print(f"control={control} treatment={treatment} alpha={alpha} prior={prior} inverse={inverse}")
    print(f"  expected={res.expected!r} stddev={res.uplift.stddev!r}")
    print(f"  chance_to_win={res.chance_to_win!r}")
    print(f"  risk={res.risk!r} (mpmath: [{mpmath.nstr(risk[0], 17)}, {mpmath.nstr(risk[1], 17)}])")
    print(f"  ci=[{res.ci[0]!r}, {res.ci[1]!r}]")
