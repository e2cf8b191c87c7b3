import numpy as np
from scipy import special, stats

from lograd_fast.families.bernoulli import Bernoulli

from . import FamilyCase


class _Bernoulli:
    """A scipy-like frozen Bernoulli in logits (scipy's own rounds p to 0/1 for
    |logits| > ~37 and then returns log p = -inf where the true value is finite)."""

    def __init__(self, logit):
        self.logit = float(logit)

    def logpmf(self, x):
        x = np.asarray(x)
        return np.where(x == 1, special.log_expit(self.logit),
                        np.where(x == 0, special.log_expit(-self.logit), -np.inf))

    def pmf(self, k):
        return np.exp(self.logpmf(k))

    def entropy(self):
        return stats.bernoulli(special.expit(self.logit)).entropy()


def _ref(p, kwargs):
    return _Bernoulli(p["logits"])


CASES = [
    FamilyCase("bernoulli-single", Bernoulli, {"logits": np.array(0.3)}, scipy=_ref,
               kind="discrete", kl_to={"logits": np.array(-1.0)}),
    FamilyCase("bernoulli-batch", Bernoulli,
               {"logits": np.array([[-2.0, 0.5, 4.0], [1.0, -1.0, 0.0]])}, scipy=_ref,
               kind="discrete",
               kl_to={"logits": np.array([[0.0, 0.0, 3.0], [-1.0, 1.0, 2.0]])}),
    FamilyCase("bernoulli-event", Bernoulli, {"logits": np.array([0.2, -3.0, 1.5, 0.0])},
               kwargs={"event_ndims": 1}, scipy=_ref, kind="discrete",
               kl_to={"logits": np.zeros(4)}),
    # probabilities exactly 0/1 (but finite log-probabilities), -inf logits; one
    # ordinary atom so that different seeds give different samples
    FamilyCase("bernoulli-extreme", Bernoulli,
               {"logits": np.array([800.0, -800.0, 1e3, -1e3, 40.0, -40.0, -np.inf, 0.0])},
               scipy=_ref, kind="discrete", stat=False,
               kl_to={"logits": np.array([790.0, -700.0, 1e3, 0.0, 35.0, -45.0, -np.inf,
                                          0.5])}),
]
