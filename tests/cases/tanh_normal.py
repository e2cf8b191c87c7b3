import numpy as np
from scipy import integrate, stats

from lograd_fast.families.tanh_normal import TanhNormal

from . import FamilyCase


def log_sech2(u):
    """log(1 - tanh(u)**2) = 2 log 2 - 2 log(e^u + e^-u)."""
    return 2 * np.log(2.0) - 2 * np.logaddexp(u, -u)


class _TanhNormal:
    """A scipy-like frozen tanh-squashed normal (scipy has none): the change of
    variables with scipy.stats.norm, entropy by adaptive quadrature."""

    def __init__(self, loc, log_scale):
        self.loc = float(loc)
        self.scale = float(np.exp(log_scale))
        self.base = stats.norm(self.loc, self.scale)

    def logpdf(self, x):
        x = np.asarray(x, dtype=np.float64)
        inside = np.abs(x) < 1.0
        xi = np.where(inside, x, 0.0)
        # log|dx/du| = log(1 - x**2), written exactly for x near +-1
        lp = self.base.logpdf(np.arctanh(xi)) - np.log1p(-xi) - np.log1p(xi)
        return np.where(inside, lp, -np.inf)

    def cdf(self, x):
        x = np.asarray(x, dtype=np.float64)
        with np.errstate(divide="ignore"):
            return self.base.cdf(np.arctanh(np.clip(x, -1.0, 1.0)))

    def mean_log_sech2(self):
        """E[log(1 - tanh^2 U)], integrated in z over [-40, 40] split at u = 0."""
        def f(z):
            return log_sech2(self.loc + self.scale * z) * stats.norm.pdf(z)
        z0 = float(np.clip(-self.loc / self.scale, -40.0, 40.0))
        parts = [integrate.quad(f, a, b, epsabs=1e-14, epsrel=1e-13, limit=500)[0]
                 for a, b in ((-40.0, z0), (z0, 40.0)) if b > a]
        return sum(parts)

    def entropy(self):
        return self.base.entropy() + self.mean_log_sech2()

    def mean(self):
        def f(z):
            return np.tanh(self.loc + self.scale * z) * stats.norm.pdf(z)
        z0 = float(np.clip(-self.loc / self.scale, -40.0, 40.0))
        return sum(integrate.quad(f, a, b, epsabs=1e-14, epsrel=1e-13, limit=500)[0]
                   for a, b in ((-40.0, z0), (z0, 40.0)) if b > a)


def _ref(p, kwargs):
    return _TanhNormal(p["loc"], p["log_scale"])


CASES = [
    FamilyCase("tanh_normal-std", TanhNormal, {"loc": np.array(0.0), "log_scale": np.array(0.0)},
               scipy=_ref, kl_to={"loc": np.array(0.5), "log_scale": np.array(-0.3)}),
    FamilyCase("tanh_normal-batch", TanhNormal,
               {"loc": np.array([-2.0, 0.0, 1.5]), "log_scale": np.array([[0.3], [-1.2]])},
               scipy=_ref,
               kl_to={"loc": np.array([1.0, 0.0, -1.0]), "log_scale": np.array([[0.0], [0.5]])}),
    FamilyCase("tanh_normal-event", TanhNormal,
               {"loc": np.array([[1.0, -1.0, 0.5]]), "log_scale": np.array([0.1, -0.4, 0.0])},
               kwargs={"event_ndims": 1}, scipy=_ref,
               kl_to={"loc": np.zeros((1, 3)), "log_scale": np.zeros(3)}),
    # samples piled up against +-1 (many clipped to the largest float below 1).  No
    # KL check: once |u| > ~19 the float x no longer tells u apart, so a Monte Carlo
    # log-ratio at the stored x cannot estimate the KL of the real distributions
    FamilyCase("tanh_normal-extreme", TanhNormal,
               {"loc": np.array([5.0, -8.0, 0.0, 25.0, 0.0]),
                "log_scale": np.array([-3.0, 1.0, 2.5, 0.0, -9.0])},
               scipy=_ref, stat=False, fd_step=1e-7),
]
