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


def _run(args, env_extra, cwd=None, stderr=False):
    env = {**os.environ, **env_extra}
    proc = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                          timeout=900, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return (proc.stdout, proc.stderr) if stderr else proc.stdout


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
                      "misses": sum(stats.cache_misses.values()),
                      "path": stats.cache_path}))
""")
NORMAL_LOG_PROB = "return -0.5 * z * z - log_scale - HALF_LOG_2PI"


def _copy_package(tmp_path):
    """A private copy of the package (to edit), and the environment that imports it."""
    import shutil

    pkg = tmp_path / "src" / "lograd_fast"
    shutil.copytree(ROOT / "lograd_fast", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    return pkg, {"PYTHONPATH": str(tmp_path / "src")}


def _edit_normal_log_prob(pkg):
    """Add 1 to Normal's log-density formula in the copy ``pkg``."""
    normal = pkg / "families" / "normal.py"
    text = normal.read_text()
    assert NORMAL_LOG_PROB in text
    normal.write_text(text.replace(NORMAL_LOG_PROB, NORMAL_LOG_PROB + " + 1.0"))


@pytest.mark.slow
def test_kernel_cache_is_reused_and_invalidated_by_edits_anywhere(tmp_path):
    """A second process loads the compiled kernels; an edit in another file than the
    driver's (here the family's maths) invalidates them (Numba alone would not)."""
    import json

    pkg, env = _copy_package(tmp_path)
    env["LOGRAD_FAST_CACHE_DIR"] = str(tmp_path / "cache")
    first = json.loads(_run(["-c", CACHE_PROBE], env, cwd=tmp_path))
    second = json.loads(_run(["-c", CACHE_PROBE], env, cwd=tmp_path))
    assert first["misses"] >= 1 and first["hits"] == 0
    assert second["hits"] >= 1 and second["misses"] == 0
    assert second["lp"] == first["lp"]
    # every directory the cache created is private (issue 15.23)
    for d in (tmp_path / "cache", Path(first["path"])):
        assert d.is_dir() and d.stat().st_mode & 0o077 == 0, oct(d.stat().st_mode)
    _edit_normal_log_prob(pkg)
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


FORK_WHILE_COMPILING = textwrap.dedent("""
    import os, signal, threading, numpy as np, lograd_fast as lf
    from numba.core.compiler_lock import global_compiler_lock
    lock = global_compiler_lock._lock
    d = lf.Exponential(np.zeros(3))
    worker = threading.Thread(target=d.entropy)   # compiles a kernel (empty cache)
    worker.start()
    while lock.acquire(blocking=False):           # until the worker is inside Numba's compiler
        lock.release()
        if not worker.is_alive():
            raise SystemExit("the kernel compiled before the fork: nothing tested")
    pid = os.fork()
    if pid == 0:
        signal.alarm(30)                          # a hung child dies instead of hanging the test
        os._exit(0 if np.isfinite(d.entropy()).all() else 3)
    _, status = os.waitpid(pid, 0)
    worker.join()
    print(os.waitstatus_to_exitcode(status))
""")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_while_another_thread_compiles_does_not_hang_the_child(tmp_path):
    """Issue 15.18: a fork while a thread holds Numba's compiler lock left the child's
    lock owned by a thread that does not exist there (the child hung on its first
    compile, here killed by SIGALRM: exit code -14)."""
    out = _run(["-c", FORK_WHILE_COMPILING], {"LOGRAD_FAST_CACHE_DIR": str(tmp_path)})
    assert out.strip() == "0"


@pytest.mark.slow
def test_unusable_cache_dir_never_falls_back_to_a_stale_cache(tmp_path):
    """Issue 15.21: when the cache directory cannot be created, kernels went to Numba's
    per-file ``__pycache__``, which does not see edits of the family files: after an
    edit of ``families/normal.py`` the old formula kept running.  Now a private
    temporary directory, one warning, and the edit takes effect."""
    import json

    pkg, env = _copy_package(tmp_path)
    (tmp_path / "a_file").write_text("not a directory")
    env["LOGRAD_FAST_CACHE_DIR"] = str(tmp_path / "a_file" / "cache")  # even root can't mkdir
    out, err = _run(["-c", CACHE_PROBE], env, cwd=tmp_path, stderr=True)
    first = json.loads(out)
    assert err.count("cannot use the kernel cache directory") == 1, err
    assert not Path(first["path"]).exists()  # the private directory is removed at exit
    assert first["misses"] >= 1
    _edit_normal_log_prob(pkg)
    second = json.loads(_run(["-c", CACHE_PROBE], env, cwd=tmp_path))
    assert second["lp"] == pytest.approx(first["lp"] + 1.0, abs=1e-12)
    assert not list(pkg.rglob("*.nbi")), "kernels were cached next to the sources"


def test_cache_key_covers_the_toolchain(monkeypatch):
    """Issue 16.4: the directory key changes with the Numba and llvmlite versions and
    the CPU (name and features, as Numba's code generator reads them)."""
    import llvmlite
    import numba

    from lograd_fast._engine import cache

    base = cache.toolchain()
    assert base["numba"] == numba.__version__ and base["llvmlite"] == llvmlite.__version__
    assert base["cpu"] and base["triple"]
    keys = {cache.toolchain_hash(base)}
    for field, value in (("numba", "0.0.0"), ("llvmlite", "0.0.0"), ("cpu", "generic"),
                         ("features", "-avx2"), ("python", "2.7")):
        keys.add(cache.toolchain_hash({**base, field: value}))
    assert len(keys) == 6
    monkeypatch.setattr(numba, "__version__", "0.0.0+other")
    monkeypatch.setattr(numba.core.config, "CPU_NAME", "generic")
    other = cache.toolchain()
    assert other["numba"] == "0.0.0+other" and other["cpu"] == "generic"
    assert cache.CACHE_KEY.endswith(cache.toolchain_hash(base))
    assert not cache.CACHE_KEY.endswith(cache.toolchain_hash(other))


@pytest.mark.slow
def test_a_cache_of_another_cpu_is_never_loaded(tmp_path):
    """Kernels compiled for another CPU live in another directory; index files copied
    from there into ours are stale (their stamp names the other toolchain)."""
    import json
    import shutil

    env = {"LOGRAD_FAST_CACHE_DIR": str(tmp_path / "cache")}
    generic = {**env, "NUMBA_CPU_NAME": "generic", "NUMBA_CPU_FEATURES": ""}
    host = json.loads(_run(["-c", CACHE_PROBE], env))
    other = json.loads(_run(["-c", CACHE_PROBE], generic))
    assert other["path"] != host["path"] and other["misses"] >= 1 and other["hits"] == 0
    for index in Path(other["path"]).glob("*.nbi"):  # a foreign index in our directory
        shutil.copy(index, Path(host["path"]) / index.name)
    again = json.loads(_run(["-c", CACHE_PROBE], env))
    assert again["path"] == host["path"] and again["hits"] == 0 and again["misses"] >= 1
    assert again["lp"] == host["lp"] == other["lp"]
