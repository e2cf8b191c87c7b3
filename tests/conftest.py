import os
import sys
import time
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


_PRECOMPILED: list = []  # what pytest_sessionstart did, for the terminal summary


def pytest_sessionstart(session):
    """``LOGRAD_FAST_TEST_PRECOMPILE=1``: compile every kernel once, before the xdist
    workers start (``lograd-fast compile``'s machinery, one compiler process per worker).

    Off by default, because it does not make the suite faster (measured, issue 16.5 in
    docs/benchmarks.md): the workers already share the on-disk kernel cache, so a
    kernel is compiled by whichever worker needs it first and loaded by the other
    (2 s of 339 s of compile CPU was compiled twice in a cold ``-n 2`` run), and
    precompiling every family and dtype compiles kernels no test uses.  Use it to see
    the tests' own cost without the compile time in ``--durations``.
    """
    config = session.config
    workers = getattr(config.option, "numprocesses", None)
    if hasattr(config, "workerinput") or not isinstance(workers, int) or workers < 1 \
            or os.environ.get("LOGRAD_FAST_TEST_PRECOMPILE", "0") != "1":
        return
    from lograd_fast import precompile

    start = time.perf_counter()
    results = precompile.ensure_compiled(precompile.targets(), jobs=workers)
    if results:
        failed = [r["target"] for r in results if "error" in r]
        _PRECOMPILED.append(
            f"lograd_fast: compiled {sum(r.get('compiled', 0) for r in results)} kernels of "
            f"{len(results)} targets in {time.perf_counter() - start:.0f} s with {workers} "
            f"processes before the tests" + (f"; FAILED: {', '.join(failed)}" if failed else ""))


def pytest_terminal_summary(terminalreporter):
    for line in _PRECOMPILED:
        terminalreporter.write_line(line)
