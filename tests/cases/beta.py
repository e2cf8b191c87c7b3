import numpy as np
from scipy import stats

from lograd_fast.families.beta import Beta

from . import FamilyCase


def _scipy(p, kwargs):
    return stats.beta(np.exp(p["log_alpha"]), np.exp(p["log_beta"]))


CASES = [
    FamilyCase("beta-std", Beta, {"log_alpha": np.array(np.log(2.0)),
                                  "log_beta": np.array(np.log(5.0))},
               scipy=_scipy, kl_to={"log_alpha": np.array(0.0), "log_beta": np.array(0.5)}),
    FamilyCase("beta-batch", Beta,
               {"log_alpha": np.log(np.array([0.5, 1.0, 3.0])),
                "log_beta": np.log(np.array([[0.7], [1.0], [12.0]]))},
               scipy=_scipy,
               kl_to={"log_alpha": np.log(np.array([1.0, 2.0, 0.8])),
                      "log_beta": np.array([[0.0], [0.4], [1.0]])}),
    FamilyCase("beta-event", Beta,
               {"log_alpha": np.array([[0.3, -0.2, 1.0, 0.0]]),
                "log_beta": np.array([0.0, 0.6, -0.3, 2.0])},
               kwargs={"event_ndims": 1}, scipy=_scipy,
               kl_to={"log_alpha": np.zeros((1, 4)), "log_beta": np.zeros(4)}),
    # U-shaped, very peaked and very lopsided; shapes down to 1e-3 (whose draws round
    # to exactly 0 or 1) are in tests/test_gamma_family.py
    FamilyCase("beta-extreme", Beta,
               {"log_alpha": np.log(np.array([0.6, 1e4, 2e3, 0.8])),
                "log_beta": np.log(np.array([0.6, 1e4, 1.5, 300.0]))},
               scipy=_scipy, stat=False, fd_step=1e-7),
]
