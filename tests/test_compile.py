"""``lograd-fast compile`` / :mod:`lograd_fast.precompile`: the kernel cache filled ahead
of time, and the sweep runner and Dask workers that use it (issue 16.3).

"Compiled" is counted with Numba's event API (``numba:compile`` fires only when a
function is compiled, not when it is loaded from the cache), restricted to functions
of lograd_fast (:func:`lograd_fast.precompile.kernel_compiles`).
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _python(code: str, cache: Path, timeout: int = 900, **env_extra) -> str:
    env = {**os.environ, "LOGRAD_FAST_CACHE_DIR": str(cache), **env_extra}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout


def _cli(*args, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "LOGRAD_FAST_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, "-m", "lograd_fast.cli", "compile", *args],
                          env=env, capture_output=True, text=True, timeout=900)


WARM_AGAIN = """
    import json
    from lograd_fast import precompile
    print(json.dumps([precompile.warm(f, d) for f, d in {pairs!r}]))
"""


@pytest.mark.slow
def test_compile_fills_the_cache_and_a_new_process_compiles_nothing(tmp_path):
    cache = tmp_path / "cache"
    proc = _cli("--families", "bernoulli", "--dtypes", "float64", "--jobs", "2", cache=cache)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "for 2 of 2 targets" in proc.stdout  # Bernoulli:float64 and shared:float64
    assert "Bernoulli:float64" in proc.stderr  # the progress (tqdm bar or plain lines)
    pairs = [("Bernoulli", "float64"), ("shared", "float64")]
    cold = json.loads(_python(WARM_AGAIN.format(pairs=pairs), tmp_path / "empty"))
    warm = json.loads(_python(WARM_AGAIN.format(pairs=pairs), cache))
    # the same calls compile kernels on an empty cache and none on the filled one
    assert all(r["compiled"] > 0 for r in cold), cold
    assert [r["compiled"] for r in warm] == [0, 0], warm


def test_compile_rejects_bad_arguments(tmp_path):
    cache = tmp_path / "cache"
    for args, message in ((("--families", "Normal,Gausian"), "families: unknown 'Gausian'"),
                          (("--dtypes", "float16"), "dtypes: unknown 'float16'"),
                          (("--jobs", "0"), "jobs must be a positive int")):
        proc = _cli(*args, cache=cache)
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)
    assert not cache.exists() or not any(cache.rglob("*.nbi"))


def test_targets_and_names():
    from lograd_fast import precompile
    from lograd_fast.families import FAMILY_CLASSES

    every = precompile.targets()
    assert len(every) == 2 * len(FAMILY_CLASSES) + 2
    assert precompile.targets("normal, CATEGORICAL", "float32", shared=False) == [
        ("Normal", "float32"), ("Categorical", "float32")]
    with pytest.raises(ValueError, match="families is empty"):
        precompile.targets(",", None)
    with pytest.raises(ValueError, match="jobs must be a positive int"):
        precompile.precompile("Normal", jobs=-1)


def test_every_family_has_a_small_example():
    """The distributions the targets are warmed with build for every family, dtype."""
    import numpy as np

    from lograd_fast import precompile

    for family, dtype in precompile.targets(shared=False):
        d = precompile.example(family, dtype)
        assert type(d).__name__ == family and d.dtype == np.dtype(dtype)


SWEEP_PROBE = """
    import json, os, numpy as np, lograd_fast as lf
    from lograd_fast import precompile
    spec = {"seed": 3, "replicates": 2, "n": 500, "estimators": ["score"],
            "baselines": ["none", "loo"], "dtype": "float64",
            "distribution": {"family": "bernoulli", "logits": [-0.5, 0.5]},
            "f": {"name": "exp(-k x^2)", "k": 0.5}}
    with precompile.kernel_compiles() as in_sweep:
        table = lf.sweep(spec, quiet=True, plot=False)
    with precompile.kernel_compiles() as afterwards:   # not precompiled: compiles here
        lf.Bernoulli(np.zeros(2, np.float32)).sample(3)
    print(json.dumps({"in_sweep": in_sweep, "afterwards": len(afterwards),
                      "rows": len(table), "done": precompile.is_done("Bernoulli", "float64")}))
"""


@pytest.mark.slow
def test_local_sweep_precompiles_and_then_never_compiles_in_process(tmp_path):
    out = json.loads(_python(SWEEP_PROBE, tmp_path / "cache"))
    assert out["rows"] > 0 and out["done"]
    assert out["in_sweep"] == [] and out["afterwards"] > 0, out


DASK_PROBE = """
    import json, sys, numpy as np
    from distributed import Client, LocalCluster
    import lograd_fast as lf

    def listen():                      # on the worker: record what Numba compiles there
        from lograd_fast import precompile
        sys.lograd_compiles = precompile.kernel_compiles()
        sys.lograd_names = sys.lograd_compiles.__enter__()

    def compiled():
        return list(sys.lograd_names)

    spec = {"seed": 3, "replicates": 2, "n": 500, "estimators": ["score"],
            "baselines": ["none", "loo"], "dtype": "float64",
            "distribution": {"family": "bernoulli", "logits": [-0.5, 0.5]},
            "f": {"name": "exp(-k x^2)", "k": 0.5}}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.run(listen)
        table = lf.sweep(spec, quiet=True, plot=False, dask=client)
        names = client.run(compiled)
    print(json.dumps({"rows": len(table), "names": names}))
"""


@pytest.mark.slow
def test_dask_workers_find_a_warm_cache_and_never_compile(tmp_path):
    out = json.loads(_python(DASK_PROBE, tmp_path / "cache"))
    assert out["rows"] > 0 and len(out["names"]) == 2
    assert all(names == [] for names in out["names"].values()), out["names"]


@pytest.mark.slow
def test_bench_compile_row_quick(tmp_path):
    """The `compile` row of `lograd-fast bench` runs end to end (quick: Bernoulli only)."""
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "lograd_fast.cli", "bench", "--quick",
                           "--no-optional", "--cases", "compile", "--json", str(out)],
                          capture_output=True, text=True, timeout=1800, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    (row,) = json.loads(out.read_text())["rows"]
    m = row["extra"]
    assert set(m["cold"]["Bernoulli"]) >= {"numba init", "import", "sample_and_score", "sample",
                                           "log_prob", "score", "entropy", "kl"}
    assert all(t > 0 for t in row["times"].values())
    assert len(m["second"]) == 5 and m["compile"]["ok"]
    assert "for 1 of 1 targets" in m["compile"]["summary"]
