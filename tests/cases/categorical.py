import numpy as np
from scipy import special, stats

import lograd_fast as lf

from . import FamilyCase


def _scipy(p, kwargs):
    return _Discrete(p["logits"], p.get("mask"))


class _Discrete:
    """A scipy-like frozen categorical (scipy has none): pmf from logits by log-sum-exp."""

    def __init__(self, logits, mask):
        allowed = np.isfinite(logits) if mask is None else (mask & np.isfinite(logits))
        z = np.where(allowed, logits, -np.inf)
        z = z - z[allowed].max()
        self.z = z
        w = np.exp(z)
        self.p = w / w.sum()
        self.dist = stats.rv_discrete(values=(np.arange(len(logits)), self.p))

    def logpmf(self, x):
        # in log space: an allowed class whose probability underflows keeps its value
        return (self.z - special.logsumexp(self.z))[np.asarray(x, dtype=int)]

    def pmf(self, k):
        return self.p[np.asarray(k, dtype=int)]

    def entropy(self):
        return stats.entropy(self.p)


CASES = [
    FamilyCase("categorical-3", lf.Categorical, {"logits": np.log(np.array([0.2, 0.3, 0.5]))},
               scipy=_scipy, kind="discrete",
               kl_to={"logits": np.array([0.0, 1.0, -1.0])}),
    FamilyCase("categorical-batch", lf.Categorical,
               {"logits": np.array([[1.0, -0.5, 0.0, 2.0, 0.3], [0.0, 0.0, 0.0, 0.0, 0.0]])},
               scipy=_scipy, kind="discrete",
               kl_to={"logits": np.array([[0.0, 0.5, 1.0, -1.0, 0.0], [3.0, 0.0, 0.0, 0.0, 1.0]])}),
    FamilyCase("categorical-masked", lf.Categorical,
               {"logits": np.array([[0.5, 2.0, -1.0, 0.0], [1e30, -1e30, 0.0, 1.0]])},
               kwargs={"mask": np.array([[True, False, True, True], [False, True, True, True]])},
               scipy=_scipy, kind="discrete",
               kl_to={"logits": np.array([[0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 2.0, 3.0]])}),
    # allowed classes whose probability underflows to 0 (not masked: finite log_prob,
    # a defined score), and a -inf logit (masked)
    FamilyCase("categorical-underflow", lf.Categorical,
               {"logits": np.array([[0.0, -800.0, 1.0, -np.inf], [-745.5, 2.0, 0.5, 0.0]])},
               scipy=_scipy, kind="discrete",
               kl_to={"logits": np.array([[-800.0, 0.0, 1.0, 0.5], [0.0, 1.0, 2.0, 3.0]])}),
]
