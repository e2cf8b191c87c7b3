import numpy as np
from scipy import stats

import lograd_fast as lf

from . import FamilyCase


def _scipy(p, kwargs):
    return stats.norm(p["loc"], np.exp(p["log_scale"]))


CASES = [
    FamilyCase("normal-std", lf.Normal, {"loc": np.array(0.0), "log_scale": np.array(0.0)},
               scipy=_scipy, kl_to={"loc": np.array(0.5), "log_scale": np.array(-0.3)}),
    FamilyCase("normal-batch", lf.Normal,
               {"loc": np.array([-2.0, 0.0, 3.5]), "log_scale": np.array([[0.3], [-1.2]])},
               scipy=_scipy,
               kl_to={"loc": np.array([1.0, 0.0, -1.0]), "log_scale": np.array([[0.0], [0.5]])}),
    FamilyCase("normal-event", lf.Normal,
               {"loc": np.array([[1.0, -1.0, 0.5, 2.0]]),
                "log_scale": np.array([0.1, -0.4, 0.0, 0.7])},
               kwargs={"event_ndims": 1}, scipy=_scipy,
               kl_to={"loc": np.zeros((1, 4)), "log_scale": np.zeros(4)}),
    FamilyCase("normal-extreme", lf.Normal,
               {"loc": np.array([1e3, -1e-8, 0.0]), "log_scale": np.array([-5.0, 10.0, 3.0])},
               scipy=_scipy, stat=False, fd_step=1e-7),
]
