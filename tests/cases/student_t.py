import numpy as np
from scipy import stats

from lograd_fast.families.student_t import StudentT

from . import FamilyCase


def _scipy(p, kwargs):
    return stats.t(np.exp(p["log_df"]), p["loc"], np.exp(p["log_scale"]))


# no kl_to: the KL between two t's has no closed form (StudentT.kl raises)
CASES = [
    FamilyCase("student_t-std", StudentT,
               {"loc": np.array(0.0), "log_scale": np.array(0.0), "log_df": np.array(np.log(4.0))},
               scipy=_scipy),
    FamilyCase("student_t-batch", StudentT,
               {"loc": np.array([-2.0, 0.0, 3.5]), "log_scale": np.array([[0.3], [-1.2]]),
                "log_df": np.log(np.array([1.5, 7.0, 30.0]))},
               scipy=_scipy),
    FamilyCase("student_t-event", StudentT,
               {"loc": np.array([[1.0, -1.0, 0.5]]), "log_scale": np.array([0.1, -0.4, 0.0]),
                "log_df": np.array(np.log(2.5))},
               kwargs={"event_ndims": 1}, scipy=_scipy),
    # nearly Cauchy, nearly normal (the series branch of the nu-only terms), tiny and
    # huge scales; nu <= 1 (no mean, far heavier tails) is in tests/test_gamma_family.py
    # (not bitwise: a draw x = loc + scale sqrt(nu) a near 0 cancels, and the last-bit
    # differences of libm and numpy in a grow by |loc| / |x|: 128 ulp seen at x = 0.057)
    FamilyCase("student_t-extreme", StudentT,
               {"loc": np.array([1e3, -1e-8, 0.0, 5.0]),
                "log_scale": np.array([-5.0, 10.0, 0.0, 3.0]),
                "log_df": np.log(np.array([1.05, 1e4, 60.0, 20.0]))},
               scipy=_scipy, stat=False, fd_step=1e-7, bitwise=False),
]
