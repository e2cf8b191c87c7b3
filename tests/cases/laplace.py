import numpy as np
from scipy import stats

from lograd_fast.families.laplace import Laplace

from . import FamilyCase


def _scipy(p, kwargs):
    return stats.laplace(loc=p["loc"], scale=np.exp(p["log_scale"]))


CASES = [
    FamilyCase("laplace-std", Laplace, {"loc": np.array(0.0), "log_scale": np.array(0.0)},
               scipy=_scipy, kl_to={"loc": np.array(0.5), "log_scale": np.array(-0.3)}),
    FamilyCase("laplace-batch", Laplace,
               {"loc": np.array([-2.0, 0.0, 3.5]), "log_scale": np.array([[0.3], [-1.2]])},
               scipy=_scipy,
               kl_to={"loc": np.array([1.0, 0.0, -1.0]), "log_scale": np.array([[0.0], [0.5]])}),
    FamilyCase("laplace-event", Laplace,
               {"loc": np.array([[1.0, -1.0, 0.5, 2.0]]),
                "log_scale": np.array([0.1, -0.4, 0.0, 0.7])},
               kwargs={"event_ndims": 1}, scipy=_scipy,
               kl_to={"loc": np.zeros((1, 4)), "log_scale": np.zeros(4)}),
    FamilyCase("laplace-extreme", Laplace,
               {"loc": np.array([1e3, -1e-8, 0.0]), "log_scale": np.array([-5.0, 10.0, 3.0])},
               scipy=_scipy, stat=False, fd_step=1e-7,
               kl_to={"loc": np.array([1e3 + 1.0, 0.0, 0.0]),
                      "log_scale": np.array([-5.0, 9.0, 3.0])}),
]
