"""Same seed -> bitwise-identical results whatever the thread count; the kernel cache."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _run(args, env_extra, cwd=None):
    env = {**os.environ, **env_extra}
    proc = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                          timeout=900, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout


@pytest.mark.slow
def test_one_and_two_threads_agree_bitwise(tmp_path):
    script = HERE / "scripts" / "backend_outputs.py"
    _run([str(script), str(tmp_path / "t1.npz"), "cpu", "2"], {"NUMBA_NUM_THREADS": "1"})
    _run([str(script), str(tmp_path / "t2.npz"), "cpu", "2"], {"NUMBA_NUM_THREADS": "2"})
    one, two = np.load(tmp_path / "t1.npz"), np.load(tmp_path / "t2.npz")
    # the sizes the script draws do reach the two-thread split
    parts = _run(["-c", "from lograd_fast._engine import threads as k; "
                  "print(k.n_parts(-(-(2 * k.MIN_CHUNKS + 1) * k.CHUNK // k.CHUNK)))"],
                 {"NUMBA_NUM_THREADS": "2"})
    assert parts.strip() == "2"
    assert set(one.files) == set(two.files) and len(one.files) > 0
    for key in one.files:
        np.testing.assert_array_equal(one[key], two[key], err_msg=key)


@pytest.mark.slow
def test_streaming_estimate_independent_of_threads():
    code = textwrap.dedent("""
        import numba, numpy as np, lograd_fast as lf
        @numba.njit
        def f(x):
            return np.sum((x - 0.5) ** 2)
        d = lf.Normal(np.array([0.0, 1.0, -1.0]), np.array([0.0, 0.3, -0.2]))
        est = lf.score_function(d, f, 50_000, seed=5, baseline="loo")
        print(repr([est.grad[k].tolist() for k in est.grad] +
                   [est.var[k].tolist() for k in est.var]))
    """)
    outs = [_run(["-c", code], {"NUMBA_NUM_THREADS": t}) for t in ("1", "2")]
    assert outs[0] == outs[1] and outs[0].strip()


CACHE_PROBE = textwrap.dedent("""
    import json, numpy as np, lograd_fast as lf
    from lograd_fast._engine import cpu
    d = lf.Normal(np.zeros(3), np.zeros(3))
    lp = d.log_prob(np.ones((2, 3)))
    stats = cpu._for(cpu._log_prob_range, d._record).stats  # the driver compiled for Normal
    print(json.dumps({"lp": float(lp[0, 0]), "hits": sum(stats.cache_hits.values()),
                      "misses": sum(stats.cache_misses.values())}))
""")


@pytest.mark.slow
def test_kernel_cache_is_reused_and_invalidated_by_edits_anywhere(tmp_path):
    """A second process loads the compiled kernels; an edit in another file than the
    driver's (here the family's maths) invalidates them (Numba alone would not)."""
    import json
    import shutil

    pkg = tmp_path / "src" / "lograd_fast"
    shutil.copytree(ROOT / "lograd_fast", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    env = {"LOGRAD_FAST_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": str(tmp_path / "src")}
    first = json.loads(_run(["-c", CACHE_PROBE], env, cwd=tmp_path))
    second = json.loads(_run(["-c", CACHE_PROBE], env, cwd=tmp_path))
    assert first["misses"] >= 1 and first["hits"] == 0
    assert second["hits"] >= 1 and second["misses"] == 0
    assert second["lp"] == first["lp"]
    normal = pkg / "families" / "normal.py"
    text = normal.read_text()
    assert "return -0.5 * z * z - log_scale - HALF_LOG_2PI" in text
    normal.write_text(text.replace("return -0.5 * z * z - log_scale - HALF_LOG_2PI",
                                   "return -0.5 * z * z - log_scale - HALF_LOG_2PI + 1.0"))
    third = json.loads(_run(["-c", CACHE_PROBE], env, cwd=tmp_path))
    assert third["hits"] == 0 and third["misses"] >= 1
    assert third["lp"] == pytest.approx(first["lp"] + 1.0, abs=1e-12)


FORK_PROBE = textwrap.dedent("""
    import os, signal, numpy as np, lograd_fast as lf
    d = lf.Normal(np.zeros(8), np.zeros(8))
    x = d.sample(2**16, seed=1)          # large enough to use the driver's thread pool
    pid = os.fork()
    if pid == 0:
        signal.alarm(60)                 # a hung child dies instead of hanging the test
        y = d.sample(2**16, seed=1)
        os._exit(0 if np.array_equal(x, y) else 3)
    _, status = os.waitpid(pid, 0)
    print(os.waitstatus_to_exitcode(status))
""")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_after_a_threaded_call_samples_identically():
    """The drivers' thread pool does not survive fork(); a child (RL environment workers)
    must get a new one instead of waiting forever on the parent's dead threads."""
    out = _run(["-c", FORK_PROBE], {"NUMBA_NUM_THREADS": "2"})
    assert out.strip() == "0"
