"""Reference values for src/stats/normal.rs: the standard normal distribution.

Needs mpmath besides tests/reference/requirements.txt. Run: /tmp/refvenv/bin/python tests/reference/normal.py

Prints scipy's norm.cdf / norm.sf / norm.ppf and the same quantities from mpmath at 40 digits
(the reference the Rust test uses, since statrs 0.19's erfc is only good to about 1e-10).
"""
import mpmath
import scipy
from scipy.stats import norm

mpmath.mp.dps = 40
print(f"scipy {scipy.__version__}, mpmath {mpmath.__version__}")
print("// (x, Φ(x) from mpmath, 1 - Φ(x) from mpmath; scipy cdf, sf for comparison)")
for x in [-37.5, -12.0, -8.3, -5.0, -3.2861035335398823, -2.0, -1.0, -0.3, 0.0, 0.25, 1.1, 1.959963984540054, 2.7, 4.4, 6.0, 9.5]:
    c = mpmath.ncdf(x)
    print(f"({x!r}, {float(c)!r}, {float(1 - c)!r}),  # scipy {norm.cdf(x)!r} {norm.sf(x)!r}")
print("// (p, Φ⁻¹(p) from mpmath; scipy ppf for comparison)")
for p in [1e-300, 1e-12, 0.001, 0.025, 0.05, 0.2, 0.5, 0.8, 0.9, 0.95, 0.975, 0.999, 0.999999]:
    q = mpmath.sqrt(2) * mpmath.erfinv(2 * mpmath.mpf(p) - 1) if p > 1e-100 else None
    if q is None:
        # erfinv at 2p - 1 = -1 + tiny loses p; solve Φ(x) = p directly.
        q = mpmath.findroot(lambda x: mpmath.ncdf(x) - mpmath.mpf(p), -37.0)
    print(f"({p!r}, {float(q)!r}),  # scipy {norm.ppf(p)!r}")
