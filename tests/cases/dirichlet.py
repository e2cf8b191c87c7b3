import numpy as np
from scipy import stats

from lograd_fast.families.dirichlet import Dirichlet

from . import FamilyCase


class _Dirichlet:
    """scipy.stats.dirichlet of one parameter row, taking rows x of shape (n, K)
    (scipy's own logpdf wants the components on the first axis)."""

    def __init__(self, alpha):
        self.dist = stats.dirichlet(alpha)

    def logpdf(self, x):
        return self.dist.logpdf(np.asarray(x, np.float64).T)

    def entropy(self):
        return self.dist.entropy()


def _scipy(p, kwargs):
    return _Dirichlet(np.exp(p["log_concentration"]))


CASES = [
    FamilyCase("dirichlet-3", Dirichlet,
               {"log_concentration": np.log(np.array([2.0, 0.7, 4.5]))},
               scipy=_scipy, kind="multivariate",
               kl_to={"log_concentration": np.log(np.array([1.0, 1.0, 1.0]))}),
    FamilyCase("dirichlet-batch", Dirichlet,
               {"log_concentration": np.log(np.array([[1.0, 1.0, 1.0, 1.0],
                                                      [0.6, 3.0, 9.0, 1.5]]))},
               scipy=_scipy, kind="multivariate",
               kl_to={"log_concentration": np.log(np.array([[2.0, 0.5, 1.0, 1.0],
                                                            [1.0, 1.0, 1.0, 1.0]]))}),
    FamilyCase("dirichlet-broadcast", Dirichlet,
               {"log_concentration": np.array([[[0.0, 0.5]], [[-0.3, 1.0]]]) +
                np.zeros((2, 3, 2))},
               scipy=_scipy, kind="multivariate",
               kl_to={"log_concentration": np.zeros((2, 3, 2))}),
    # large and lopsided concentrations; tiny ones (draws rounding to 0) are in
    # tests/test_gamma_family.py
    FamilyCase("dirichlet-extreme", Dirichlet,
               {"log_concentration": np.log(np.array([[1e4, 3e3, 2e4],
                                                      [0.5, 40.0, 700.0]]))},
               scipy=_scipy, kind="multivariate", stat=False, fd_step=1e-7),
]
