"""pytest-benchmark: compile and load times, each in a fresh interpreter.

``cold``: an empty kernel cache (temporary ``LOGRAD_FAST_CACHE_DIR``): the first call
compiles the operation's driver.  ``cached``: a second process
loads them from the cache.  The child reports its own import and first-call times
(``extra_info``); the benchmark time is the whole child process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ._common import FAMILIES, QUICK

HERE = Path(__file__).resolve().parent
# quick (CI): one small kernel, enough to prove the cold and the cached paths work
OPS = ("sample",) if QUICK else ("sample", "sample_and_score", "log_prob", "score")
QUICK_FAMILY = "Normal" if "Normal" in FAMILIES else FAMILIES[0]

CHILD = """
import json, sys, time
t0 = time.perf_counter()
import lograd_fast
t1 = time.perf_counter()
sys.path.insert(0, {here!r})
from _common import draws_for, make_dist, op_call
d = make_dist({family!r})
call = op_call(d, {op!r}, draws_for(d, 2**14))
t2 = time.perf_counter()
call()
t3 = time.perf_counter()
print("RESULT" + json.dumps({{"import": t1 - t0, "first_call": t3 - t2}}))
"""


def _child(family, op, cache):
    code = CHILD.format(here=str(HERE), family=family, op=op)
    env = dict(os.environ, LOGRAD_FAST_CACHE_DIR=str(cache))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT"):])


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("family", [QUICK_FAMILY] if QUICK else FAMILIES)
def test_first_call(benchmark, tmp_path, family, op):
    cold = benchmark.pedantic(_child, (family, op, tmp_path), rounds=1, iterations=1)
    warm = _child(family, op, tmp_path)
    benchmark.group = "first call (fresh process)"
    benchmark.extra_info.update(family=family, op=op, cold=cold, cached=warm)
    assert cold["first_call"] > 0 and warm["first_call"] > 0
