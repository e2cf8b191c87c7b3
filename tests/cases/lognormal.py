import numpy as np
from scipy import stats

from lograd_fast.families.lognormal import LogNormal

from . import FamilyCase


def _scipy(p, kwargs):
    return stats.lognorm(s=np.exp(p["log_scale"]), scale=np.exp(p["loc"]))


CASES = [
    FamilyCase("lognormal-std", LogNormal, {"loc": np.array(0.0), "log_scale": np.array(0.0)},
               scipy=_scipy, kl_to={"loc": np.array(0.5), "log_scale": np.array(-0.3)}),
    FamilyCase("lognormal-batch", LogNormal,
               {"loc": np.array([-2.0, 0.0, 3.5]), "log_scale": np.array([[0.3], [-1.2]])},
               scipy=_scipy,
               kl_to={"loc": np.array([1.0, 0.0, -1.0]), "log_scale": np.array([[0.0], [0.5]])}),
    FamilyCase("lognormal-event", LogNormal,
               {"loc": np.array([[1.0, -1.0, 0.5]]), "log_scale": np.array([0.1, -0.4, 0.0])},
               kwargs={"event_ndims": 1}, scipy=_scipy,
               kl_to={"loc": np.zeros((1, 3)), "log_scale": np.zeros(3)}),
    # exp(loc) near the float32 limits; tiny and large spread of log x
    FamilyCase("lognormal-extreme", LogNormal,
               {"loc": np.array([80.0, -80.0, 0.0, 5.0]),
                "log_scale": np.array([-3.0, -3.0, -12.0, 1.0])},
               scipy=_scipy, stat=False, fd_step=1e-7),
]
