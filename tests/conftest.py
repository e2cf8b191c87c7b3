import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from cases import ALL_CASES  # noqa: E402


@pytest.fixture(params=ALL_CASES, ids=str)
def case(request):
    return request.param


@pytest.fixture(params=[c for c in ALL_CASES if c.stat], ids=str)
def stat_case(request):
    return request.param


@pytest.fixture(params=[c for c in ALL_CASES if c.scipy is not None], ids=str)
def scipy_case(request):
    """Cases with a scipy reference for log_prob and entropy."""
    return request.param


@pytest.fixture(params=[c for c in ALL_CASES if c.stat and c.scipy is not None
                        and c.kind != "multivariate"], ids=str)
def univariate_stat_case(request):
    """Cases whose samples are checked atom by atom with KS (continuous) or chi2."""
    return request.param


@pytest.fixture(params=[c for c in ALL_CASES if c.kl_to is not None], ids=str)
def kl_case(request):
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
