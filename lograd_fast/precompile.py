"""Fill the on-disk kernel cache ahead of time (``lograd-fast compile``).

A *target* is one family in one dtype.  Warming it (:func:`warm`) calls, on a tiny
distribution, every operation (``sample``, ``log_prob``, ``score``,
``sample_and_score``, ``entropy``, ``kl``) and every streaming estimator the family
supports (score function, antithetic, pathwise, measure-valued), so that each kernel
of the target is compiled and saved, or loaded when already cached.  The target
``"shared"`` holds what no family owns: ``rloo``/``batched_score_function`` and the
RL helpers.  Each kernel's signature depends only on the family's parameter record
and the dtype, never on shapes or sizes, so one small call stands for all of them.

:func:`precompile` warms targets in ``jobs`` parallel *subprocesses* (not
``multiprocessing``: a Dask worker is a daemonic process and may not fork children
that way), each serving targets from a queue, with a progress bar.
:func:`ensure_compiled` is what the sweep runner and Dask workers call: under an
exclusive lock on the cache directory it warms only targets that carry no
"done" marker there yet, so the first process on a host compiles and every later
one (on the same cache) returns at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

__all__ = ["DTYPES", "SHARED", "targets", "warm", "precompile", "ensure_compiled",
           "kernel_compiles"]

DTYPES = ("float32", "float64")
SHARED = "shared"
_MARKERS = "precompiled"  # subdirectory of the kernel cache: one file per warmed target


# ----------------------------------------------------------------------------- targets
def family_names() -> tuple[str, ...]:
    from .families import FAMILY_CLASSES

    return tuple(FAMILY_CLASSES)


def _names(value, allowed: Iterable[str], what: str) -> list[str]:
    allowed = list(allowed)
    if value is None:
        return allowed
    items = value.split(",") if isinstance(value, str) else list(value)
    names = [str(v).strip() for v in items if str(v).strip()]
    if not names:
        raise ValueError(f"{what} is empty; choose from {', '.join(allowed)}")
    lookup = {a.lower(): a for a in allowed}
    unknown = [v for v in names if v.lower() not in lookup]
    if unknown:
        raise ValueError(f"{what}: unknown {', '.join(map(repr, unknown))}; choose from "
                         f"{', '.join(allowed)}")
    return list(dict.fromkeys(lookup[v.lower()] for v in names))


def targets(families=None, dtypes=None, shared: bool = True) -> list[tuple[str, str]]:
    """``[(family, dtype), ...]`` to warm: ``families`` and ``dtypes`` are lists or
    comma-separated strings (default: all); ``shared`` adds ``("shared", dtype)``."""
    fams = _names(families, family_names(), "families")
    dts = _names(dtypes, DTYPES, "dtypes")
    out = [(f, d) for f in fams for d in dts]
    return out + ([(SHARED, d) for d in dts] if shared else [])


# ----------------------------------------------------------------------------- warming
def _reward(x):
    return np.sum(x) * 1.0


def _scalar_f(x):
    return x * x


def _scalar_df(x):
    return 2.0 * x


_JITTED: dict = {}


def _jitted():
    """The njit functions the estimators are warmed with (any ``f`` stands for all:
    the streaming kernels see ``f`` behind a C function pointer of a fixed type)."""
    if not _JITTED:
        import numba

        _JITTED.update(f=numba.njit(_reward), scalar=numba.njit(_scalar_f),
                       dscalar=numba.njit(_scalar_df))
    return _JITTED


def example(family: str, dtype: str = "float64"):
    """A tiny distribution of ``family`` (2 batch elements, 3 categories or dims)."""
    from .families import FAMILY_CLASSES

    cls = FAMILY_CLASSES[family]
    fam = cls.family
    if family == "MultiCategorical":
        return cls([np.zeros((2, 2), dtype), np.zeros((2, 3), dtype)])
    params = {name: np.zeros((2,) + (3,) * k, dtype)
              for name, k in zip(fam.param_names, fam.param_event_ndims)}
    return cls(**params)


def _warm_family(family: str, dtype: str) -> None:
    import lograd_fast as lf
    from lograd_fast._engine.dispatch import supports

    fns = _jitted()
    d, q = example(family, dtype), example(family, dtype)
    x = d.sample(4, seed=1)
    d.log_prob(x)
    d.score(x)
    d._log_prob_and_score(x)  # the torch and JAX adapters' call
    d.sample_and_score(4, seed=1)
    d.entropy()
    with contextlib.suppress(NotImplementedError):  # no closed form (StudentT)
        d.kl(q)
    lf.score_function(d, fns["f"], 4, seed=1)
    lf.score_function(d, fns["f"], 4, seed=1, baseline="optimal")
    lf.score_function(d, rewards=np.ones(4), x=x, baseline="loo")
    record = type(d._record)
    if supports(record, "reflect1"):
        lf.antithetic(d, fns["f"], 4, seed=1)
    if supports(record, "reparam1"):
        try:
            lf.pathwise(d, fns["scalar"], fns["dscalar"], 4, seed=1)
        except TypeError:  # a parameter layout the pathwise estimator does not take
            pass
    if family == "Normal":
        lf.measure_valued(d, fns["f"], 4, seed=1)
    if supports(record, "prepare1"):  # the torch adapter's one-call update
        from .distribution import log_prob_and_score_flat

        fam = type(d).family  # writeable arrays, as the adapter's tensors give
        log_prob_and_score_flat(fam, [np.array(getattr(d._record, name))
                                      for name in fam.param_names], np.array(x[0]))
        from ._engine import cpu  # its call on raw pointers (a cfunc: cached at creation)

        cpu.checked_log_prob_score_raw(fam.params_cls, fam.scores_cls, d.dtype)
        cpu.checked_sample_score_raw(fam.params_cls, fam.scores_cls, d.dtype)  # rollout
    if family == "Categorical":  # the torch adapter's update calls
        from .families import categorical

        categorical.update_terms(d._record.logits, x[0])
        categorical.entropy_and_grad(d.tables, d.dtype)


def _warm_shared(dtype: str) -> None:
    import lograd_fast as lf

    rewards = np.linspace(0.0, 1.0, 12).reshape(3, 4)
    scores = np.ones((3, 4, 2), dtype)
    lf.rloo(rewards, scores)
    for baseline in (None, "mean", "loo", "optimal"):
        lf.batched_score_function(rewards, scores, baseline=baseline)
    r = np.ones((3, 4), dtype)
    dones = np.zeros((3, 4), bool)
    lf.returns(r, gamma=0.9, dones=dones)
    lf.advantages(r, gamma=0.9, dones=dones, baseline="loo")


#: modules whose jitted functions play the user's ``f`` (the stand-ins above, the
#: sweep's built-in test functions): like a user's ``f``, each process compiles them
_NOT_KERNELS = (__name__, "lograd_fast.sweep.functions")


class _CompileCounter:
    """Counts Numba compilations of lograd_fast's own functions (cache misses that
    were compiled), through Numba's event API."""

    def __init__(self):
        import numba.core.event as ev

        class Listener(ev.Listener):
            def on_start(inner, event):
                disp = event.data.get("dispatcher")
                module = getattr(getattr(disp, "py_func", None), "__module__", "") or ""
                if module.split(".")[0] == "lograd_fast" and module not in _NOT_KERNELS:
                    self.names.append(f"{module}.{disp.py_func.__name__}")

            def on_end(inner, event):
                pass

        self.names: list[str] = []
        self._listener = Listener()
        self._ev = ev

    def __enter__(self):
        self._ev.register("numba:compile", self._listener)
        return self

    def __exit__(self, *exc):
        self._ev.unregister("numba:compile", self._listener)


@contextlib.contextmanager
def kernel_compiles():
    """``with kernel_compiles() as names:`` lists the lograd_fast functions that Numba
    compiled (rather than loaded from the cache) inside the block."""
    with _CompileCounter() as counter:
        yield counter.names


def warm(family: str, dtype: str) -> dict:
    """Call every kernel of one target in this process (compiling what the cache
    lacks); ``{"target", "seconds", "cpu_seconds", "compiled"}``."""
    t0, c0 = time.perf_counter(), time.process_time()
    with kernel_compiles() as names:
        if family == SHARED:
            _warm_shared(dtype)
        else:
            _warm_family(family, dtype)
    return {"target": f"{family}:{dtype}", "seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - c0, "compiled": len(names)}


# ----------------------------------------------------------------------------- markers
def _marker_dir() -> Path:
    from ._engine import cache

    return cache.cache_dir() / _MARKERS


def _marker(family: str, dtype: str) -> Path:
    return _marker_dir() / f"{family}-{dtype}"


def _mark_done(family: str, dtype: str) -> None:
    from ._engine import cache

    if cache.fallback_in_use():
        return  # a private directory of this process: nothing to tell others
    with contextlib.suppress(OSError):
        _marker_dir().mkdir(mode=0o700, exist_ok=True)
        _marker(family, dtype).touch()


def is_done(family: str, dtype: str) -> bool:
    return _marker(family, dtype).exists()


# ----------------------------------------------------------------------------- the pool
def _serve() -> int:
    """Worker loop: read ``[family, dtype]`` lines on stdin, warm each, write one JSON
    result line to stdout."""
    for line in sys.stdin:
        family, dtype = json.loads(line)
        try:
            result = warm(family, dtype)
            _mark_done(family, dtype)
        except Exception:  # reported to the parent, which decides
            result = {"target": f"{family}:{dtype}", "error": traceback.format_exc()}
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()
    return 0


class _Progress:
    """tqdm bar over targets, or one plain line per target without tqdm."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.done, self.bar = total, 0, None
        self.enabled = enabled
        if enabled:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, unit="target", desc="compile", file=sys.stderr,
                                dynamic_ncols=True)
            except ModuleNotFoundError:
                pass

    def update(self, result: dict) -> None:
        self.done += 1
        if not self.enabled:
            return
        status = "FAILED" if "error" in result else (
            f"{result['seconds']:.1f} s, {result['compiled']} kernels compiled")
        if self.bar is not None:
            self.bar.set_postfix_str(f"{result['target']} {status}", refresh=False)
            self.bar.update(1)
        else:
            print(f"compile: [{self.done}/{self.total}] {result['target']} {status}",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _worker_env() -> dict:
    import site

    env = dict(os.environ)
    # a worker must import *this* lograd_fast (a checkout, a copy in tests); an installed
    # one is found anyway (and site-packages must not go before the standard library)
    root = Path(__file__).resolve().parent.parent
    installed = {Path(p).resolve() for p in site.getsitepackages() + [site.getusersitepackages()]}
    if root not in installed:
        env["PYTHONPATH"] = os.pathsep.join([str(root)] + [
            p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(root)])
    env.setdefault("NUMBA_NUM_THREADS", "1")  # compiling needs no thread pool
    return env


def precompile(families=None, dtypes=None, jobs: int | None = None, *, shared: bool = True,
               progress: bool = True,
               on_result: Callable[[dict], None] | None = None) -> list[dict]:
    """Compile and cache every kernel of ``targets(families, dtypes, shared)`` in
    ``jobs`` parallel processes (default: the cores this process may use).

    Returns one dict per target: ``target``, ``seconds`` and ``cpu_seconds`` (in its
    worker), ``compiled`` (kernels compiled, 0 when all were cached), or ``error`` (a
    traceback).  Raises ``ValueError`` for unknown names, a bad ``jobs`` or an
    unusable cache directory (nothing could be kept).
    """
    return run(targets(families, dtypes, shared), jobs, progress=progress,
               on_result=on_result)


def run(pairs: list, jobs: int | None = None, *, progress: bool = False,
        on_result: Callable[[dict], None] | None = None) -> list[dict]:
    """Warm the ``(family, dtype)`` targets ``pairs`` in ``jobs`` worker processes;
    the results in the order of ``pairs`` (see :func:`precompile`)."""
    from ._engine import cache

    pairs = [tuple(p) for p in pairs]
    jobs = _check_jobs(jobs, len(pairs))
    if cache.fallback_in_use():
        raise ValueError(f"the kernel cache directory {cache.cache_root()} is not usable, so "
                         "nothing compiled now could be kept: set LOGRAD_FAST_CACHE_DIR to a "
                         "writable directory")
    bar = _Progress(len(pairs), progress)
    results: list[dict] = []

    def done(result: dict) -> None:
        results.append(result)
        bar.update(result)
        if on_result is not None:
            on_result(result)

    try:
        _run_pool(pairs, jobs, done)
    finally:
        bar.close()
    order = {f"{f}:{d}": i for i, (f, d) in enumerate(pairs)}
    return sorted(results, key=lambda r: order[r["target"]])


def _check_jobs(jobs, n_targets: int) -> int:
    if jobs is None:
        try:
            jobs = len(os.sched_getaffinity(0))
        except AttributeError:  # macOS, Windows
            jobs = os.cpu_count() or 1
    elif isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive int, got {jobs!r}")
    return max(1, min(jobs, n_targets))


def _run_pool(todo: list, jobs: int, done: Callable[[dict], None]) -> None:
    queue = list(todo)
    sel = selectors.DefaultSelector()
    env = _worker_env()
    workers = []
    for _ in range(jobs):
        err = tempfile.TemporaryFile(mode="w+")
        proc = subprocess.Popen([sys.executable, "-m", "lograd_fast.precompile", "--serve"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                text=True, env=env)
        worker = {"proc": proc, "err": err, "target": None}
        workers.append(worker)
        sel.register(proc.stdout, selectors.EVENT_READ, worker)

    def feed(worker) -> None:
        if queue:
            worker["target"] = queue.pop(0)
            worker["proc"].stdin.write(json.dumps(worker["target"]) + "\n")
            worker["proc"].stdin.flush()
        else:
            worker["target"] = None
            worker["proc"].stdin.close()

    try:
        for worker in workers:
            feed(worker)
        while sel.get_map():
            for key, _ in sel.select():
                worker = key.data
                line = worker["proc"].stdout.readline()
                if line:
                    done(json.loads(line))
                    feed(worker)
                    continue
                sel.unregister(key.fileobj)  # the worker exited
                code = worker["proc"].wait()
                if worker["target"] is not None:
                    worker["err"].seek(0)
                    tail = worker["err"].read()[-3000:]
                    family, dtype = worker["target"]
                    done({"target": f"{family}:{dtype}",
                          "error": f"worker exited with code {code}\n{tail}"})
                    worker["target"] = None
                if not sel.get_map() and queue:  # every worker died: say so for the rest
                    for family, dtype in queue:
                        done({"target": f"{family}:{dtype}", "error": "no worker left"})
                    queue.clear()
    finally:
        for worker in workers:
            if worker["proc"].poll() is None:
                worker["proc"].kill()
                worker["proc"].wait()
            worker["err"].close()
        sel.close()


# ----------------------------------------------------------------------------- on demand
def ensure_compiled(pairs: Iterable[tuple[str, str]], jobs: int | None = None) -> list[dict]:
    """Warm the ``(family, dtype)`` targets of ``pairs`` that this cache has not seen
    warmed yet, in parallel processes, then return (quietly; ``[]`` when all were).

    Holds an exclusive lock on the cache directory meanwhile, so the Dask workers of
    one host (or several sweeps) compile each kernel once: the first one compiles,
    the others wait and then find every target done.  With an unusable cache
    directory it does nothing (each process compiles what it uses, as before).
    """
    from ._engine import cache

    pairs = list(dict.fromkeys((_names([f], family_names() + (SHARED,), "families")[0],
                                _names([d], DTYPES, "dtypes")[0]) for f, d in pairs))
    if not pairs or cache.fallback_in_use():
        return []
    if all(is_done(f, d) for f, d in pairs):  # the common case: no lock, no process
        return []
    with cache._locked(str(cache.cache_dir() / "precompile.lock")):
        missing = [(f, d) for f, d in pairs if not is_done(f, d)]
        return run(missing, jobs) if missing else []


if __name__ == "__main__":  # the worker of :func:`precompile`
    if sys.argv[1:] != ["--serve"]:
        sys.exit("usage: python -m lograd_fast.precompile --serve (a worker of "
                 "lograd-fast compile; run `lograd-fast compile` instead)")
    sys.exit(_serve())
