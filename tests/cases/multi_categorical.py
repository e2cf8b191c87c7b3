import numpy as np
from scipy import stats

from lograd_fast.families.multi_categorical import MultiCategorical

from . import FamilyCase


class MultiDiscreteReference:
    """Independent finite pmfs, one per sub-action, from flat logits by log-sum-exp
    (scipy has no multi-categorical); ``logpdf`` of rows ``(..., m)``."""

    def __init__(self, logits, mask, nvec):
        edges = np.cumsum([0, *nvec])
        mask = np.ones(edges[-1], bool) if mask is None else np.asarray(mask)
        self.p = []
        for lo, hi in zip(edges[:-1], edges[1:]):
            allowed = mask[lo:hi] & np.isfinite(logits[lo:hi])
            z = np.where(allowed, logits[lo:hi], -np.inf)
            w = np.exp(z - z[allowed].max())
            self.p.append(w / w.sum())

    def logpdf(self, x):
        x = np.asarray(x, dtype=int)
        with np.errstate(divide="ignore"):
            return sum(np.log(p[x[..., j]]) for j, p in enumerate(self.p))

    def entropy(self):
        return sum(stats.entropy(p) for p in self.p)


def reference(p, kwargs):
    return MultiDiscreteReference(p["logits"], p.get("mask"), kwargs["nvec"])


_rng = np.random.default_rng(7)

CASES = [
    FamilyCase("multicat-3-5-2", MultiCategorical,
               {"logits": _rng.normal(size=(2, 10))}, kwargs={"nvec": (3, 5, 2)},
               scipy=reference, kind="multivariate",
               kl_to={"logits": _rng.normal(size=(2, 10))}),
    # a one-class sub-action (score exactly 0), masks and -inf logits
    FamilyCase("multicat-masked", MultiCategorical,
               {"logits": np.array([[0.3, 1.0, -0.5, 2.0, 0.0, -np.inf, 1.5],
                                    [0.0, 1e30, 0.0, -1e30, 1.0, 0.2, 0.1]])},
               kwargs={"nvec": (1, 4, 2),
                       "mask": np.array([[True, True, False, True, True, True, True],
                                         [True, False, True, True, True, True, False]])},
               scipy=reference, kind="multivariate",
               kl_to={"logits": np.array([[0.0, 0.0, 0.0, 1.0, -1.0, 0.5, 0.0],
                                          [0.0, 0.3, 0.0, 0.0, 0.2, 0.0, 2.0]])}),
]
