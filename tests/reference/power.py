"""Reference numbers for src/stats/power.rs (statsmodels 0.15.0).

The power of a two-sided test at alpha to show an effect on its own side is one tail:
statsmodels' NormalIndPower at alpha/2 with alternative='larger'. effect_size = delta / sigma;
ratio = nobs2 / nobs1 (treatment units per control unit).
Run: target/test-venv/bin/python tests/reference/power.py
"""
from statsmodels.stats.power import NormalIndPower

power = NormalIndPower()
for delta, variance, ratio in [(0.005, 0.09, 1.0), (0.005, 0.09, 9.0), (0.2, 1.0, 0.25)]:
    d = delta / variance ** 0.5
    n = power.solve_power(effect_size=d, alpha=0.025, power=0.8, ratio=ratio, alternative="larger")
    print(f"delta={delta} var={variance} ratio={ratio}: nobs1 = {n!r}")
d = 0.005 / 0.3
print("power at nobs1=20000:", repr(power.power(effect_size=d, nobs1=20000, alpha=0.025, ratio=1.0, alternative="larger")))
