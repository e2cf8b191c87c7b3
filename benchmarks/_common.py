"""What the asv and pytest-benchmark suites share: sizes, the case table, timing.

The families benchmarked are those of the shared table ``tests/cases`` (the one the
correctness tests run on): one case per family class, its parameters *cycled* to a
benchmark-sized batch, so every benchmarked path is also a tested one.  A family
added to ``tests/cases`` is benchmarked without touching this directory.

``LOGRAD_BENCH_QUICK=1`` shrinks every size (the CI run that only checks that the
benchmarks still work).
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import pkgutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

QUICK = os.environ.get("LOGRAD_BENCH_QUICK", "").strip().lower() not in ("", "0", "false", "no")
TESTS_DIR = Path(__file__).resolve().parent.parent / "tests"

OPS = ("sample", "log_prob", "score", "sample_and_score")
DTYPES = ("float64", "float32")
BATCH = 8  # atoms per draw (D of a Normal, rows of a Categorical)
K_DISCRETE = 16  # classes of a categorical-like family (an event axis of categories)


def size(full: int, quick: int) -> int:
    return quick if QUICK else full


# ----------------------------------------------------------------------------- the case table
def load_cases() -> list:
    """``ALL_CASES`` of ``tests/cases``; modules that fail to import are left out (a
    benchmark of an older commit with ``asv continuous`` may lack a newer family)."""
    if str(TESTS_DIR) not in sys.path:
        sys.path.insert(0, str(TESTS_DIR))
    try:
        from cases import ALL_CASES
    except Exception:
        cases = _cases_package_without_collect()
        ALL_CASES = []
        for info in sorted(pkgutil.iter_modules(cases.__path__), key=lambda m: m.name):
            try:
                module = importlib.import_module(f"cases.{info.name}")
            except Exception:
                continue
            ALL_CASES.extend(getattr(module, "CASES", []))
        cases.ALL_CASES = ALL_CASES
    return list(ALL_CASES)


def _cases_package_without_collect():
    """The ``cases`` package with its ``ALL_CASES = _collect()`` line (which imports every
    module and fails on the first one that cannot be imported) replaced by ``[]``."""
    init = TESTS_DIR / "cases" / "__init__.py"
    source = init.read_text(encoding="utf-8")
    if "ALL_CASES = _collect()" not in source:
        raise ImportError(f"cannot load the case table in {init}")
    spec = importlib.util.spec_from_file_location(
        "cases", init, submodule_search_locations=[str(init.parent)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["cases"] = module
    code = compile(source.replace("ALL_CASES = _collect()", "ALL_CASES = []"), str(init), "exec")
    exec(code, module.__dict__)
    return module


def family_cases() -> dict:
    """One case per family class, keyed by the class name: the first case of the table
    that is in the statistical tests (a typical, not an extreme, parameter setting)."""
    chosen: dict = {}
    for case in load_cases():
        name = case.cls.__name__
        if name not in chosen or (case.stat and not chosen[name].stat):
            chosen[name] = case
    return dict(sorted(chosen.items()))


FAMILY_CASES = family_cases()
FAMILIES = tuple(FAMILY_CASES)


def _cycle_rows(arr: np.ndarray, rows: int) -> np.ndarray:
    return arr[np.arange(rows) % arr.shape[0]]


def scaled_inputs(case, batch: int = BATCH, K: int | None = None) -> tuple[dict, dict]:
    """The case's parameters and array kwargs with the batch cycled to ``batch`` atoms.

    Parameters with event dims keep them; for a discrete family whose parameters
    have one event axis (categories), ``K`` cycles that axis too.  Raises
    ``NotImplementedError`` (asv's "skip") when ``K`` cannot apply to the family.
    """
    load_cases()  # puts tests/ on sys.path
    from cases import broadcast_params

    d0 = case.make("numpy")
    full = broadcast_params(case, d0)
    B0 = math.prod(d0.full_shape)
    params, tails = {}, set()
    for name, arr in full.items():
        tail = arr.shape[len(d0.full_shape):]
        tails.add(tail)
        params[name] = _cycle_rows(arr.reshape((B0,) + tail), batch)
    kwargs = {}
    for key, value in case.kwargs.items():
        if key == "event_ndims":
            kwargs[key] = min(int(value), 1)
        elif isinstance(value, np.ndarray) and value.ndim >= 1 and \
                any(t and value.shape[-1] == t[-1] for t in tails):
            arr = np.broadcast_to(value, d0.full_shape + value.shape[-1:])
            kwargs[key] = _cycle_rows(arr.reshape((B0,) + value.shape[-1:]), batch)
        else:
            kwargs[key] = value
    if K is not None:
        event = [t for t in tails if t]
        if case.kind != "discrete" or len(event) != 1 or len(event[0]) != 1:
            raise NotImplementedError(f"K does not apply to {case.cls.__name__}")
        cyc = np.arange(K) % event[0][0]
        params = {k: (v[:, cyc] if v.ndim == 2 else v) for k, v in params.items()}
        kwargs = {k: (v[:, cyc] if isinstance(v, np.ndarray) and v.ndim == 2 else v)
                  for k, v in kwargs.items()}
    return params, kwargs


def make_inputs(family: str, dtype: str = "float64", batch: int = BATCH,
                K: int | None = None) -> tuple[dict, dict]:
    """Constructor inputs of a benchmark-sized ``family``: ``(params, kwargs)``.

    ``K`` defaults to :data:`K_DISCRETE` for discrete families with a category axis.
    A family this checkout does not have raises ``NotImplementedError`` (asv: skip)."""
    if family not in FAMILY_CASES:
        raise NotImplementedError(f"no {family} in this version of lograd_fast")
    case = FAMILY_CASES[family]
    if K is None and case.kind == "discrete":
        try:
            params, kwargs = scaled_inputs(case, batch, K_DISCRETE)
        except NotImplementedError:
            params, kwargs = scaled_inputs(case, batch)
    else:
        params, kwargs = scaled_inputs(case, batch, K)
    return {k: np.asarray(v, dtype=dtype) for k, v in params.items()}, kwargs


def make_dist(family: str, backend: str = "cpu", dtype: str = "float64", batch: int = BATCH,
              K: int | None = None):
    """A benchmark-sized distribution of ``family`` built from its table case."""
    params, kwargs = make_inputs(family, dtype, batch, K)
    return FAMILY_CASES[family].cls(**params, **kwargs, backend=backend)


def draws_for(dist, atoms: int) -> int:
    """Draws ``n`` such that one call handles about ``atoms`` atoms."""
    return max(1, atoms // math.prod(dist.full_shape))


def op_call(dist, op: str, n: int, x=None, out=None, seed: int = 0) -> Callable[[], object]:
    """A no-argument callable running ``op`` on ``dist`` (``x``: the sample to evaluate)."""
    if op == "sample":
        return lambda: dist.sample(n, seed=seed, out=out)
    if op == "sample_and_score":
        return lambda: dist.sample_and_score(n, seed=seed, out=out)
    if x is None:
        x = dist.sample(n, seed=seed)
    if op == "log_prob":
        return lambda: dist.log_prob(x, out=out)
    if op == "score":
        return lambda: dist.score(x, out=out)
    if op == "entropy":
        return dist.entropy
    raise ValueError(f"unknown op {op!r}")


def out_buffers(dist, op: str, n: int):
    """Preallocated ``out=`` for ``op`` (the shapes the call would allocate)."""
    like = dist.sample_and_score(1, seed=0)
    x, lp, s = like

    def grow(a):
        return np.empty((n,) + a.shape[1:], a.dtype)

    if op == "sample":
        return grow(x)
    if op == "log_prob":
        return grow(lp)
    if op == "score":
        return {k: grow(v) for k, v in s.items()}
    return grow(x), grow(lp), {k: grow(v) for k, v in s.items()}


# ----------------------------------------------------------------------------- timing
#: speed-ups over idiomatic numpy measured by the pytest-benchmark suite in this session
#: (``benchmarks/conftest.py`` prints them after the run)
SPEEDUPS: dict[str, float] = {}


def min_times(fns: dict[str, Callable[[], object]], repeats: int = 3) -> dict[str, float]:
    """Seconds of each callable, the minimum of ``repeats`` round-robin rounds after one
    warm-up call each (side by side, so load from other processes hits all alike)."""
    for fn in fns.values():
        fn()
    best = dict.fromkeys(fns, math.inf)
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best
