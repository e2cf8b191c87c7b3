import math
from decimal import Decimal, localcontext

import numpy as np
from scipy import stats

from lograd_fast.families.poisson import Poisson

from . import FamilyCase

LN_2PI = Decimal("1.8378770664093454835606594728112352797227949472755668256343")


def log_factorial_exact(k: int) -> Decimal:
    """log(k!) to ~45 significant digits (Decimal): exact factorial for small k,
    the Stirling series with 5 Bernoulli terms (error < k**-11) for large k."""
    with localcontext() as ctx:
        ctx.prec = 50
        if k < 1000:
            return Decimal(math.factorial(k)).ln()
        kd = Decimal(k)
        series = sum(Decimal(num) / (Decimal(den) * kd ** (2 * j - 1))
                     for j, (num, den) in enumerate(
                         [(1, 12), (-1, 360), (1, 1260), (-1, 1680), (1, 1188)], start=1))
        return (kd + Decimal("0.5")) * kd.ln() - kd + LN_2PI / 2 + series


def log_pmf_exact(k: int, log_rate: float) -> float:
    """log p(k) in 50-digit decimal arithmetic for the rate ``float(exp(log_rate))``
    (the float64 rate the distribution holds: log p's sensitivity to the rate,
    ``k - rate``, makes even the rounding of exp(log_rate) visible at rate ~1e15);
    from log_rate itself when that rate is subnormal or 0 (rounded to few bits)."""
    if k < 0:
        return -math.inf
    with localcontext() as ctx:
        ctx.prec = 50
        rate = math.exp(log_rate)
        if rate >= np.finfo(np.float64).tiny:
            rate_d = Decimal(rate)
            log_rate_d = rate_d.ln()
        else:
            log_rate_d = Decimal(float(log_rate))
            rate_d = log_rate_d.exp()
        return float(k * log_rate_d - rate_d - log_factorial_exact(k))


def entropy_series(rate: float) -> float:
    """Asymptotic entropy (Evans, Boersma, Blachman & Jagers, SIAM Review 1988)."""
    return (0.5 * math.log(2 * math.pi * math.e * rate) - 1 / (12 * rate)
            - 1 / (24 * rate**2) - 19 / (360 * rate**3) - 9 / (80 * rate**4))


def entropy_by_sum(log_rate: float) -> float:
    """-sum p log p, walking k away from the mode with log p(k +- 1) - log p(k) =
    +-log(rate/k...) from an exact anchor (fsum of the terms)."""
    rate = math.exp(log_rate)
    mode = int(rate)
    anchor = log_pmf_exact(mode, log_rate)
    terms = [-math.exp(anchor) * anchor]
    lp = anchor
    for k in range(mode + 1, mode + int(40 * math.sqrt(rate)) + 60):
        lp += log_rate - math.log(k)
        terms.append(-math.exp(lp) * lp)
    lp = anchor
    for k in range(mode, 0, -1):
        lp -= log_rate - math.log(k)
        terms.append(-math.exp(lp) * lp)
        if lp < anchor - 900:
            break
    return math.fsum(terms)


class _Poisson:
    """A scipy-like frozen Poisson: exact log-mass (decimal arithmetic), the pmf from
    scipy, entropy by summation (rate <= 1e5) or the asymptotic series."""

    def __init__(self, log_rate):
        self.log_rate = float(log_rate)
        self.dist = stats.poisson(math.exp(self.log_rate))

    def logpmf(self, k):
        k = np.asarray(k)
        return np.array([log_pmf_exact(int(v), self.log_rate) for v in k.ravel()]).reshape(
            k.shape)

    def pmf(self, k):
        return self.dist.pmf(k)

    def entropy(self):
        if self.log_rate > math.log(1e5):
            return entropy_series(math.exp(self.log_rate))
        return entropy_by_sum(self.log_rate)


def _ref(p, kwargs):
    return _Poisson(p["log_rate"])


CASES = [
    FamilyCase("poisson-small", Poisson, {"log_rate": np.log(np.array(3.5))}, scipy=_ref,
               kind="discrete", kl_to={"log_rate": np.log(np.array(2.0))}),
    # both samplers (inversion below 10, PTRS from 10 on)
    FamilyCase("poisson-batch", Poisson,
               {"log_rate": np.log(np.array([[0.5, 9.99, 10.0], [40.0, 1e3, 1e-3]]))},
               scipy=_ref, kind="discrete",
               kl_to={"log_rate": np.log(np.array([[1.0, 12.0, 8.0], [45.0, 990.0, 1e-2]]))}),
    FamilyCase("poisson-event", Poisson, {"log_rate": np.log(np.array([0.2, 4.0, 25.0]))},
               kwargs={"event_ndims": 1}, scipy=_ref, kind="discrete",
               kl_to={"log_rate": np.zeros(3)}),
    FamilyCase("poisson-extreme", Poisson,
               {"log_rate": np.array([math.log(1e-6), math.log(1e5), math.log(1e7),
                                      50 * math.log(2), -800.0])},
               scipy=_ref, kind="discrete", stat=False, fd_step=1e-10),
]
