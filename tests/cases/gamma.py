import numpy as np
from scipy import stats

from lograd_fast.families.gamma import Gamma

from . import FamilyCase


def _scipy(p, kwargs):
    return stats.gamma(np.exp(p["log_concentration"]), scale=np.exp(-p["log_rate"]))


CASES = [
    FamilyCase("gamma-std", Gamma,
               {"log_concentration": np.array(np.log(2.5)), "log_rate": np.array(0.0)},
               scipy=_scipy,
               kl_to={"log_concentration": np.array(0.3), "log_rate": np.array(-0.4)}),
    FamilyCase("gamma-batch", Gamma,
               {"log_concentration": np.log(np.array([0.3, 1.0, 7.0])),
                "log_rate": np.array([[0.5], [-1.0]])},
               scipy=_scipy,
               kl_to={"log_concentration": np.log(np.array([0.5, 2.0, 5.0])),
                      "log_rate": np.array([[0.0], [0.3]])}),
    FamilyCase("gamma-event", Gamma,
               {"log_concentration": np.array([[0.2, -0.7, 1.5]]),
                "log_rate": np.array([0.0, 2.0, -2.0])},
               kwargs={"event_ndims": 1}, scipy=_scipy,
               kl_to={"log_concentration": np.zeros((1, 3)), "log_rate": np.zeros(3)}),
    # small and large shapes, extreme rates (tiny shapes are in tests/test_gamma_family.py:
    # their draws underflow to 0, where finite differences and scipy's KS are meaningless)
    FamilyCase("gamma-extreme", Gamma,
               {"log_concentration": np.log(np.array([0.1, 1e4, 0.5, 30.0])),
                "log_rate": np.array([20.0, -15.0, 0.0, 9.0])},
               scipy=_scipy, stat=False, fd_step=1e-7),
]
