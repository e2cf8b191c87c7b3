import numpy as np
from scipy import stats

from lograd_fast.families.multivariate_normal import MultivariateNormal

from . import FamilyCase


def scale_tril(raw):
    """L from the unconstrained parameter: strictly-lower part, exp of the diagonal."""
    raw = np.asarray(raw, dtype=np.float64)
    return np.tril(raw, -1) + np.diag(np.exp(np.diag(raw)))


def _scipy(p, kwargs):
    tril = scale_tril(p["scale_tril_unconstrained"])
    return stats.multivariate_normal(p["loc"], tril @ tril.T)


def random_raw(rng, D, off=0.3, log_diag=0.5):
    raw = rng.normal(scale=off, size=(D, D))
    raw[np.diag_indices(D)] = rng.uniform(-log_diag, log_diag, size=D)
    return raw


_rng = np.random.default_rng(20240611)
_RAW8, _RAW8_Q = random_raw(_rng, 8), random_raw(_rng, 8)

CASES = [
    FamilyCase("mvn-1", MultivariateNormal,
               {"loc": np.array([0.5]), "scale_tril_unconstrained": np.array([[0.3]])},
               scipy=_scipy, kind="multivariate",
               kl_to={"loc": np.array([-0.2]), "scale_tril_unconstrained": np.array([[-0.1]])}),
    # the 5.0 above the diagonal is ignored (its score is exactly 0)
    FamilyCase("mvn-2-batch", MultivariateNormal,
               {"loc": np.array([[0.0, 1.0], [-2.0, 0.5], [3.0, -1.0]]),
                "scale_tril_unconstrained": np.array([[0.2, 5.0], [0.7, -0.3]])},
               scipy=_scipy, kind="multivariate",
               kl_to={"loc": np.array([[0.5, 1.0], [-2.0, 0.0], [2.0, -1.5]]),
                      "scale_tril_unconstrained": np.array([[0.0, 0.0], [-0.4, 0.3]])}),
    FamilyCase("mvn-8", MultivariateNormal,
               {"loc": np.stack([np.linspace(-1.0, 1.0, 8), np.zeros(8)]),
                "scale_tril_unconstrained": _RAW8},
               scipy=_scipy, kind="multivariate",
               kl_to={"loc": np.stack([np.zeros(8), np.full(8, 0.3)]),
                      "scale_tril_unconstrained": _RAW8_Q}),
]
