import numpy as np
from scipy import stats

from lograd_fast.families.exponential import Exponential

from . import FamilyCase


def _scipy(p, kwargs):
    return stats.expon(scale=np.exp(-p["log_rate"]))


CASES = [
    FamilyCase("exponential-std", Exponential, {"log_rate": np.array(0.0)}, scipy=_scipy,
               kl_to={"log_rate": np.array(0.7)}),
    FamilyCase("exponential-batch", Exponential,
               {"log_rate": np.array([[-1.5, 0.2, 2.5], [0.0, -0.3, 1.0]])}, scipy=_scipy,
               kl_to={"log_rate": np.array([[0.0, 0.0, 0.0], [1.0, -1.0, 0.5]])}),
    FamilyCase("exponential-event", Exponential, {"log_rate": np.array([0.3, -0.8, 1.2])},
               kwargs={"event_ndims": 1}, scipy=_scipy,
               kl_to={"log_rate": np.array([0.0, 0.0, 0.0])}),
    FamilyCase("exponential-extreme", Exponential,
               {"log_rate": np.array([-80.0, 80.0, 1e-9, -20.0])}, scipy=_scipy, stat=False,
               fd_step=1e-7, kl_to={"log_rate": np.array([-79.0, 85.0, 0.0, 20.0])}),
]
