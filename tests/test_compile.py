"""``lograd-fast compile`` / :mod:`lograd_fast.precompile`: the kernel cache filled ahead
of time, and the sweep runner and Dask workers that use it (issue 16.3).

"Compiled" is counted with Numba's event API (``numba:compile`` fires only when a
function is compiled, not when it is loaded from the cache), restricted to functions
of lograd_fast (:func:`lograd_fast.precompile.kernel_compiles`).  Each cold compile
costs seconds, so one test walks one empty cache through every step.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest


def _env(cache) -> dict:
    return {**os.environ, "LOGRAD_FAST_CACHE_DIR": str(cache)}


def _python(code: str, cache) -> dict:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=_env(cache),
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.splitlines()[-1])


def _cli(*args, cache) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lograd_fast.cli", "compile", *args],
                          env=_env(cache), capture_output=True, text=True, timeout=900)


SWEEPS = """
    import json, sys, numpy as np
    from distributed import Client, LocalCluster
    import lograd_fast as lf
    from lograd_fast import precompile

    def listen():                      # on a Dask worker: record what Numba compiles there
        from lograd_fast import precompile
        sys.lograd_compiles = precompile.kernel_compiles()
        sys.lograd_names = sys.lograd_compiles.__enter__()

    def compiled():
        return list(sys.lograd_names)

    spec = {"seed": 3, "replicates": 2, "n": 500, "estimators": ["score"],
            "baselines": ["none", "loo"], "dtype": "float64",
            "distribution": {"family": "bernoulli", "logits": [-0.5, 0.5]},
            "f": {"name": "exp(-k x^2)", "k": 0.5}}
    out = {}
    # local scheduler, empty cache: the runner compiles in worker processes first
    with precompile.kernel_compiles() as names:
        out["local_rows"] = len(lf.sweep(spec, quiet=True, plot=False))
    out["local"] = names
    d = lf.Bernoulli(np.zeros(2))
    x = d.sample(3)
    x.flags.writeable = False
    with precompile.kernel_compiles() as names:   # the counter does see a compile:
        d.log_prob(x)                              # a read-only x is a new signature
    out["control"] = len(names)
    # Dask, float32 (not compiled yet): the first worker compiles, the other waits, loads
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.run(listen)
        out["dask_rows"] = len(lf.sweep({**spec, "dtype": "float32"}, quiet=True, plot=False,
                                        dask=client))
        out["dask"] = client.run(compiled)
    out["done"] = [precompile.is_done("Bernoulli", d) for d in ("float32", "float64")]
    print(json.dumps(out))
"""

@pytest.mark.slow
def test_sweeps_and_compile_fill_the_cache_and_later_processes_never_compile(tmp_path):
    cache = tmp_path / "cache"
    out = _python(SWEEPS, cache)
    assert out["local_rows"] > 0 and out["dask_rows"] > 0 and out["done"] == [True, True]
    assert out["local"] == [] and out["control"] > 0, out
    assert len(out["dask"]) == 2 and all(v == [] for v in out["dask"].values()), out["dask"]
    # the command, in new processes: every kernel of both targets is loaded, none compiled
    proc = _cli("--families", "bernoulli", "--no-shared", "--jobs", "2", cache=cache)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "compiled 0 kernels for 2 of 2 targets" in proc.stdout, proc.stdout
    assert "Bernoulli:float32" in proc.stderr  # the progress (tqdm bar or plain lines)


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
    assert set(m["cold"]["Bernoulli"]) >= {"numba init", "import + build", "sample_and_score",
                                           "sample", "log_prob", "score", "entropy", "kl"}
    assert all(t > 0 for t in row["times"].values())
    assert m["second"] and m["compile"]["ok"]
    assert "for 1 of 1 targets" in m["compile"]["summary"]


LOCATORS = """
    import json, sys
    from numba.core.dispatcher import Dispatcher
    import lograd_fast.estimators, lograd_fast.families  # every module with kernels

    def dispatchers(value):
        if isinstance(value, Dispatcher):
            yield value
        elif isinstance(value, dict):  # e.g. rng._FILL, the vectorised variate passes
            for v in value.values():
                yield from dispatchers(v)

    # the torch adapter's raw-pointer update calls are Numba cfuncs, cached alike
    import numpy as np
    from lograd_fast._engine import cpu
    from lograd_fast.families import FAMILY_CLASSES
    fam = FAMILY_CLASSES["Normal"].family
    cpu.checked_log_prob_score_raw(fam.params_cls, fam.scores_cls, np.float64)
    cfuncs = [c for _, c in cpu._RAW.values() if c is not None]
    assert cfuncs

    seen, wrong = 0, []
    for c in cfuncs:
        seen += 1
        locator = type(c._cache._impl._locator).__name__
        if locator != "PackageHashLocator":
            wrong.append(f"cfunc {c._pyfunc.__name__} -> {locator}")
    for name, module in list(sys.modules.items()):
        if name.startswith("lograd_fast"):
            for attr, value in list(vars(module).items()):
                for d in dispatchers(value):
                    if type(d._cache).__name__ == "NullCache":
                        continue
                    seen += 1
                    locator = type(d._cache._impl._locator).__name__
                    if locator != "PackageHashLocator":
                        wrong.append(f"{name}.{attr}: {d.py_func.__name__} -> {locator}")
    print(json.dumps({"seen": seen, "wrong": sorted(set(wrong))}))
"""


def test_every_cached_kernel_uses_the_package_hash_locator(tmp_path):
    """Numba picks a function's cache locator when it is decorated: the RNG's variate
    passes, decorated before ``_engine/cache.py`` was imported, went to Numba's
    per-file ``__pycache__`` locator, which cannot see an edit of ``maths.py``."""
    out = _python(LOCATORS, tmp_path / "cache")
    assert out["seen"] >= 10 and out["wrong"] == [], out


GAMMA_KERNEL = """
    import json, sys
    import numpy as np
    import lograd_fast as lf
    from lograd_fast import precompile
    from lograd_fast._engine import cpu, rng

    family = sys.argv[1]
    d = {"Gamma": lambda: lf.Gamma(np.zeros(2), np.zeros(2)),
         "Beta": lambda: lf.Beta(np.zeros(2), np.zeros(2))}[family]()
    with precompile.kernel_compiles() as names:
        d.sample_and_score(64, seed=0)
    kernel = rng._std_gamma_log_kernel_f64
    inlined = []
    for (driver, *_), fn in cpu._SPECIALISED.items():
        for sig in fn.signatures:  # the kernel is inlined by LLVM: no copy left to call
            module = fn.overloads[sig].library._final_module
            inlined.append(not any("_std_gamma_log_kernel" in f.name
                                   for f in module.functions if not f.is_declaration))
    print(json.dumps({"compiled": names, "kernel_hits": kernel.stats.cache_hits and
                      sum(kernel.stats.cache_hits.values()), "inlined": inlined}))
"""


def test_gamma_sampler_is_one_cached_kernel_inlined_into_the_drivers(tmp_path):
    """The gamma rejection sampler is compiled once per dtype (``rng.jitable_outline``):
    the first Gamma process compiles it, a Beta process loads it from the cache (its
    driver compiles without typing the sampler again) and LLVM inlines it into the
    drivers (``jit.always_inline``; run time as with the sampler inlined in the IR)."""
    cache = tmp_path / "cache"
    code = textwrap.dedent(GAMMA_KERNEL)
    first, second = ({**json.loads(subprocess.run(
        [sys.executable, "-c", code, family], env=_env(cache), capture_output=True,
        text=True, timeout=900, check=True).stdout.splitlines()[-1]), "family": family}
        for family in ("Gamma", "Beta"))
    kernel = "lograd_fast._engine.rng._std_gamma_log_kernel_f64"
    assert first["compiled"].count(kernel) == 1, first
    assert kernel not in second["compiled"] and second["kernel_hits"] >= 1, second
    assert "lograd_fast._engine.cpu._sample_score_range__BetaParams" in second["compiled"]
    assert first["inlined"] and all(first["inlined"]) and all(second["inlined"]), (first,
                                                                                   second)


def _in_turn(code: str, families: tuple, cache) -> list:
    """The JSON printed by ``code`` run for each family in turn, in fresh processes on
    one cache."""
    return [json.loads(subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), family], env=_env(cache),
        capture_output=True, text=True, timeout=900, check=True).stdout.splitlines()[-1])
        for family in families]


POISSON_KERNELS = """
    import json, sys
    import numpy as np
    import lograd_fast as lf
    from lograd_fast import precompile
    from lograd_fast._engine import cpu

    family = sys.argv[1]
    d = {"Poisson": lambda: lf.Poisson(np.log([3.0, 40.0, 900.0])),
         "Gamma": lambda: lf.Gamma(np.log([0.5, 40.0]), np.zeros(2))}[family]()
    with precompile.kernel_compiles() as names:
        x, lp, _ = d.sample_and_score(64, seed=0)
        d.log_prob(x)
    defined = []
    for (driver, *_), fn in cpu._SPECIALISED.items():
        for sig in fn.signatures:
            module = fn.overloads[sig].library._final_module
            defined += [f.name for f in module.functions if not f.is_declaration
                        and ("_ptrs_kernel" in f.name or "_log_pmf_loader_kernel" in f.name)]
    print(json.dumps({"compiled": names, "defined": defined, "drivers": len(cpu._SPECIALISED),
                      "finite": bool(np.isfinite(lp).all())}))
"""


def test_poisson_sampler_and_loader_log_mass_are_cached_kernels_inlined(tmp_path):
    """Poisson's PTRS sampler and Loader's log-mass (shared with Gamma's log-density)
    are compiled once each (``jit.jitable_outline``): a Poisson process compiles them,
    a Gamma process loads the log-mass kernel from the cache, and LLVM inlines both
    into the drivers (no copy of either left to call)."""
    first, second = _in_turn(POISSON_KERNELS, ("Poisson", "Gamma"), tmp_path / "cache")
    ptrs = "lograd_fast.families.poisson._ptrs_kernel"
    loader = "lograd_fast.families.poisson._log_pmf_loader_kernel"
    assert first["compiled"].count(ptrs) == 1 and first["compiled"].count(loader) == 1, first
    assert loader not in second["compiled"] and ptrs not in second["compiled"], second
    assert "lograd_fast._engine.cpu._sample_score_range__GammaParams" in second["compiled"]
    assert first["drivers"] >= 2 and second["drivers"] >= 2
    assert first["defined"] == [] and second["defined"] == [], (first, second)
    assert first["finite"] and second["finite"]


BOX_MULLER = """
    import json, re, sys
    import numpy as np
    import lograd_fast as lf
    from lograd_fast import precompile
    from lograd_fast._engine import rng

    family = sys.argv[1]
    with precompile.kernel_compiles() as names:
        for dtype in (np.float64, np.float32):
            d = getattr(lf, family)(np.zeros(2, dtype), np.zeros(2, dtype))
            d.sample_and_score(64, seed=0)
    fills = {}
    for bits in (64, 32):
        fn = rng._FILL["normal", bits]
        for sig in fn.signatures:  # compiled in this process (the Normal one)
            module = fn.overloads[sig].library._final_module
            fills[bits] = {
                "defined": [f.name for f in module.functions if not f.is_declaration
                            and "_box_muller_kernel" in f.name],
                "packed": len(re.findall(r"\\bv?(mul|add|sub)p[sd]\\b", fn.inspect_asm(sig)))}
    print(json.dumps({"compiled": names, "fills": fills}))
"""


def test_box_muller_is_one_cached_kernel_per_dtype_inlined_into_the_variate_pass(tmp_path):
    """The Box-Muller transform is typed once per dtype (``rng._box_muller_kernel_*``):
    a Normal process compiles it with the variate passes, which still vectorise (packed
    arithmetic in their assembly: LLVM inlined the kernel, no copy of it is left), and a
    Gamma process then loads it for its sampler's rejected proposals."""
    first, second = _in_turn(BOX_MULLER, ("Normal", "Gamma"), tmp_path / "cache")
    kernels = [f"lograd_fast._engine.rng._box_muller_kernel_f{bits}" for bits in (64, 32)]
    assert all(first["compiled"].count(k) == 1 for k in kernels), first["compiled"]
    assert set(first["fills"]) == {"64", "32"}, first["fills"]
    for fill in first["fills"].values():
        assert fill["defined"] == [] and fill["packed"] > 0, first["fills"]
    assert not any(k in second["compiled"] for k in kernels), second["compiled"]
    assert "lograd_fast._engine.rng._std_gamma_log_kernel_f64" in second["compiled"]


TORCH_UPDATE = """
    import json
    import torch
    from lograd_fast import precompile
    import lograd_fast.torch as lft
    from lograd_fast._engine import cpu

    m = torch.randn(8, 3, dtype=torch.float64, requires_grad=True)
    s = torch.rand(8, 3, dtype=torch.float64) + 0.5
    with precompile.kernel_compiles() as names:
        lft.Normal(m, s).log_prob(torch.randn(8, 3, dtype=torch.float64)).sum().backward()
        with torch.no_grad():  # a rollout step
            d = lft.Normal(m, s)
            d.log_prob(d.sample())
    raw = [c for _, c in cpu._RAW.values() if c is not None]
    print(json.dumps({"compiled": names, "raw_hits": [c._cache_hits for c in raw]}))
"""


@pytest.mark.slow
def test_precompile_covers_the_torch_update(tmp_path):
    """After ``lograd-fast compile`` of Normal, the torch adapter's update and rollout
    compile nothing: their drivers and their raw-pointer ``cfunc``s (which Numba's
    compile events do not report: their own cache hits are checked) come from the
    cache."""
    pytest.importorskip("torch")
    cache = tmp_path / "cache"
    proc = _cli("--families", "Normal", "--dtypes", "float64", "--no-shared", cache=cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = _python(TORCH_UPDATE, cache)
    assert out["compiled"] == [] and out["raw_hits"] == [1, 1], out
