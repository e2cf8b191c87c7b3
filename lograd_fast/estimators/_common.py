"""What the streaming estimators share: argument checks, lane buffers, the user's
functions behind C function pointers, and the finish of term-moment estimators."""

from __future__ import annotations

import functools
import math
import sys
import time
from types import SimpleNamespace
from typing import Any

import numba
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .._engine import cpu
from ..distribution import Distribution, check_n
from .result import Estimate, _result

MAX_LANES = 64
_LANE_FLOATS = 2**22  # memory cap of one call's per-lane buffers (float64 words)


def _check_dist(dist: Any) -> Distribution:
    if not isinstance(dist, Distribution):
        raise TypeError(f"dist must be a lograd_fast distribution, got {type(dist).__name__}")
    return dist


def _as_dispatcher(f: Any, name: str = "f", what: str = "of one draw (a 1-D array)"):
    if not isinstance(f, numba.core.registry.CPUDispatcher):
        raise TypeError(f"{name} must be a @numba.njit function {what} returning a float; "
                        f"got {type(f).__name__}")
    return f


def _check_draws(dist: Distribution, n: Any, what: str = "n") -> int:
    n = check_n(n)
    if n is None:
        raise ValueError(f"{what} is required with f")
    if n < 2:
        raise ValueError(f"{what} must be at least 2 to estimate a variance, got {n}")
    if dist._B == 0:
        raise ValueError(f"dist has no elements (batch_shape {dist.batch_shape}, event_shape "
                         f"{dist.event_shape}): there is no gradient to estimate")
    if n * dist._B > 2**62:
        raise ValueError(f"{what}={n} draws {n * dist._B} atoms, more than 2**62")
    return n


def _cpu_only(dist: Distribution, name: str) -> None:
    if dist.backend != "cpu":
        raise NotImplementedError(f"{name} runs on backend='cpu' only (the distribution has "
                                  f"backend={dist.backend!r}); build it with backend='cpu'")


def _lanes(n: int, B: int, per_lane_floats: int) -> int:
    """Number of lanes: a function of the problem size only (never of the threads):
    at least ``CHUNK`` atoms per lane, at most ``MAX_LANES`` and the memory cap."""
    per_lane_draws = -(-cpu.CHUNK // max(B, 1))
    lanes = min(MAX_LANES, n // per_lane_draws, max(1, _LANE_FLOATS // per_lane_floats))
    return max(1, lanes)


def _stream_buffers(d: Distribution, coord: np.ndarray, sizes: list, P: int, W: int):
    """Per-lane buffers: one draw's atoms ``x_atoms`` (W*B, *event) and its scores
    (or reparameterisation derivatives) ``s`` (a record of views into ``s_flat``)."""
    ev = d.sample_event_shape
    x_atoms = np.zeros((W * d._B,) + ev, d._sample_dtype)
    field_off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    s_flat = np.zeros(W * int(field_off[-1]), d.dtype)
    views = {}
    for k, name in enumerate(d.family.param_names):
        lo = int(field_off[k]) * W
        views[name] = s_flat[lo:lo + W * sizes[k]].reshape((W * d._B,) + d._param_tail[name])
    tails = np.array([max(1, size // max(d._B, 1)) for size in sizes], np.int64)
    return SimpleNamespace(x_atoms=x_atoms, x_rows=x_atoms.reshape(W, -1),
                           s=d.family.scores_cls(**views), s_flat=s_flat, field_off=field_off,
                           coord=coord, tails=tails, g=np.zeros((W, 2, P)),
                           weight=np.zeros((W, max(d._B, 1) * math.prod(ev))))


# --------------------------------------------------------------------------- user functions
_CAPTURE = 4096  # elements of a draw kept for replaying the exception of f (per function)


@intrinsic
def _voidptr(typingctx, address):
    """An integer address as a ``void*`` (for ``numba.carray``)."""
    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return types.voidptr(address), codegen


class Failures:
    """What a wrapped user function records when it raises inside a kernel.

    A C callback cannot carry a Python exception out of a kernel (Numba prints
    "Exception ignored" and returns 0.0, so every draw that raised would enter the
    estimate).  The wrapper catches the exception instead, returns NaN, counts it in
    ``state[0]`` and keeps a copy of the first failing input (``state[1]``: a copy
    is held; ``state[2]``: its length, -1 when longer than ``_CAPTURE``;
    ``state[3:]``: the values).  The estimator checks the count after each window
    and calls ``f`` on that input from Python, which raises the user's exception
    itself, with its message and traceback.  The state is shared by every call
    with the same ``f`` (the wrapper is compiled once per function): a call compares
    the count with its value at the start, and another call's failure at the same
    time can only make it raise f's exception too."""

    def __init__(self):
        self.state = np.zeros(3 + _CAPTURE)

    @property
    def address(self) -> int:
        return self.state.ctypes.data

    def count(self) -> float:
        return float(self.state[0])

    def raise_if_any(self, since: float, f, name: str, estimator: str, arg_of) -> None:
        """Re-raise ``f``'s exception if it raised since the count was ``since``.

        ``arg_of(values)`` turns the captured float64 values back into f's argument."""
        if self.state[0] <= since:
            return
        held, length = self.state[1], int(self.state[2])
        values = self.state[3:3 + length].copy() if held and length >= 0 else None
        self.state[1] = 0.0  # the next failure may be captured again
        where = f"{name} raised an exception on a draw inside lograd_fast.{estimator}"
        if values is not None:
            try:
                f(arg_of(values))
            except Exception as exc:
                if hasattr(exc, "add_note"):  # Python >= 3.11
                    exc.add_note(f"({where}; no estimate was returned)")
                raise
        why = ("calling it again from Python on the captured input did not raise"
               if values is not None else
               f"its input, a draw of more than {_CAPTURE} elements, was not kept")
        raise RuntimeError(f"{where}; no estimate was returned.  The compiled kernel cannot "
                           f"carry the exception out and {why}: run the call with "
                           "backend='numpy' to see it")


@numba.njit(cache=True)
def _record_failure(address, size, x):
    """What the wrappers below do when ``f`` raised on ``x`` (a 1-D array): count it
    in the :class:`Failures` state at ``address`` and keep ``x`` if none is kept.
    Returns NaN, the wrapper's value.  (Out of line: code in an ``except`` block
    is slow to compile, and this is compiled once, not once per ``f``.)"""
    state = numba.carray(_voidptr(address), (size,), np.float64)
    if state[1] == 0.0:
        state[1] = 1.0
        if x.shape[0] <= size - 3:
            state[2] = x.shape[0]
            for i in range(x.shape[0]):
                state[3 + i] = np.float64(x[i])
        else:
            state[2] = -1.0
    state[0] += 1.0
    return np.nan


@numba.njit(cache=True)
def _record_scalar_failure(address, size, x):
    """:func:`_record_failure` of a scalar function's argument ``x``."""
    state = numba.carray(_voidptr(address), (size,), np.float64)
    if state[1] == 0.0:
        state[1] = 1.0
        state[2] = 1.0
        state[3] = x
    state[0] += 1.0
    return np.nan


@functools.lru_cache(maxsize=256)
def _as_cfunc(f, sample_dtype: np.dtype):
    """``(cfunc, failures)``: ``f`` behind a C function pointer of a fixed signature.

    The streaming driver then has a type that does not depend on *which* ``f`` it
    calls, so it is compiled once and loaded from the on-disk cache by every later
    process; only this small wrapper is compiled per ``f``.  (Passing ``f`` itself
    would specialise, and recompile, the whole driver for every function object.)
    An exception raised by ``f`` is recorded in ``failures`` (see :class:`Failures`).
    """
    elem = numba.from_dtype(sample_dtype)
    failures = Failures()
    address, size = failures.address, failures.state.size

    def reward(x):
        try:
            return np.float64(f(x))
        except Exception:
            # np.int64(): a closure's ints are typed as literals, which would give
            # _record_failure a new specialisation (and cache entry) per f
            return _record_failure(np.int64(address), np.int64(size), x)

    return numba.cfunc(types.float64(elem[::1]))(reward), failures


@functools.lru_cache(maxsize=256)
def _as_scalar_cfunc(f):
    """``(cfunc, failures)``: a scalar njit function ``float -> float`` behind a
    ``float64(float64)`` pointer; exceptions recorded as in :func:`_as_cfunc`."""
    failures = Failures()
    address, size = failures.address, failures.state.size

    def scalar(x):
        try:
            return np.float64(f(x))
        except Exception:
            return _record_scalar_failure(np.int64(address), np.int64(size), x)

    return numba.cfunc(types.float64(types.float64))(scalar), failures


def _watch(estimator: str, *functions) -> Any:
    """``check()`` raising the exception of any of ``functions`` -- ``(f, failures,
    name, arg_of)`` -- that raised inside a kernel since this call."""
    since = [failures.count() for _, failures, _, _ in functions]

    def check() -> None:
        for (f, failures, name, arg_of), start in zip(functions, since):
            failures.raise_if_any(start, f, name, estimator, arg_of)

    return check


def _reward_of(f, sample_dtype: np.dtype, estimator: str):
    """``(cfunc, check)`` of a user function of one draw (see :func:`_watch`)."""
    cfunc, failures = _as_cfunc(f, sample_dtype)
    return cfunc, _watch(estimator, (f, failures, "f", lambda v: v.astype(sample_dtype)))


# --------------------------------------------------------------------------- long calls
WINDOW_S = 0.25  # target seconds of one window of a long call (Ctrl-C latency)
_FIRST_WINDOW_ATOMS = 2**14  # atoms of the first window, over all lanes


def _check_progress(progress: Any) -> Any:
    if progress is None or isinstance(progress, bool) or callable(progress):
        return progress
    raise TypeError("progress must be True/False or a callable progress(done, total, "
                    f"elapsed_s), got {type(progress).__name__}")


class Progress:
    """Reports of a long call: ``progress(done_draws, total_draws, elapsed_s)`` if
    ``progress`` is callable, a line on stderr about once a second (with the time
    left) if it is True, nothing otherwise."""

    def __init__(self, progress: Any, what: str, total: int):
        self.report = (progress if callable(progress)
                       else self._print if progress else None)
        self.what, self.total = what, total
        self.start = time.perf_counter()
        self._last = -math.inf

    def update(self, done: int) -> None:
        if self.report is not None:
            self.report(done, self.total, time.perf_counter() - self.start)

    def _print(self, done: int, total: int, elapsed: float) -> None:
        if done < total and elapsed - self._last < 1.0:
            return
        self._last = elapsed
        left = elapsed * (total - done) / done if done else math.inf
        end = "\n" if done >= total or not sys.stderr.isatty() else ""
        print(f"\r{self.what}: {done:,} of {total:,} draws ({100 * done / total:.1f}%), "
              f"{_duration(elapsed)} elapsed, about {_duration(left)} left", end=end,
              file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "? s"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


def _run_windows(launch, n: int, W: int, B: int, checks, progress: Progress) -> None:
    """Call ``launch(done, todo)`` until each of the ``W`` lanes has walked its share
    of the ``n`` draws, ``todo`` draws per lane at a time.

    Each window lasts about :data:`WINDOW_S` (its size follows the measured rate),
    and between windows Python handles signals (Ctrl-C stops the call), runs
    ``checks()`` (a user function's exception ends it) and reports progress.  A
    lane walks its draws in the same order whatever the windows, so they never
    change a result; a small call is one window."""
    q, r = divmod(n, W)
    per_lane = q + (1 if r else 0)
    done = 0
    todo = max(1, _FIRST_WINDOW_ATOMS // max(W * B, 1))
    while done < per_lane:
        todo = min(todo, per_lane - done)
        tic = time.perf_counter()
        launch(done, todo)
        took = time.perf_counter() - tic
        done += todo
        checks()
        progress.update(min(done, q) * W + (r if done > q else 0))
        # grow at most 4x a window, aiming at WINDOW_S
        todo = max(1, min(4 * todo, int(todo * WINDOW_S / max(took, 1e-6))))


def _probe(d: Distribution, key: tuple) -> np.ndarray:
    """The first draw of the stream, as a flat array (for calling ``f`` from Python)."""
    probe = d.sample(None, seed=int(key[0]) | (int(key[1]) << 32), stream=int(key[2]))
    if d.backend == "cuda":
        probe = probe.copy_to_host()
    return np.ascontiguousarray(probe).reshape(-1)


def _check_f(d: Distribution, f, key: tuple) -> None:
    """Call f once from Python: a clear error instead of a failed compilation inside."""
    probe = _probe(d, key)
    try:
        float(f(probe))
    except (numba.core.errors.NumbaError, TypeError) as exc:  # f's own exceptions propagate
        raise TypeError(f"f could not be called on one draw (a 1-D {d._sample_dtype} array of "
                        f"{probe.size} elements) returning a float: {exc}") from exc


def _check_scalar_f(d: Distribution, fn, name: str, key: tuple) -> None:
    x0 = float(_probe(d, key)[0])
    try:
        value = float(fn(x0))
    except (numba.core.errors.NumbaError, TypeError) as exc:  # fn's own exceptions propagate
        raise TypeError(f"{name} could not be called on one element (a float) returning a "
                        f"float: {exc}") from exc
    if not math.isfinite(value):
        raise ValueError(f"{name} returned NaN or inf ({value}) at x={x0}")


def _shift_of(racc: np.ndarray) -> float:
    shift = float(racc[..., 1].sum() / racc[..., 0].sum())
    if not math.isfinite(shift):
        raise ValueError("f returned NaN or inf on the first draws")
    return shift


def _check_finite_rewards(racc: np.ndarray) -> None:
    if not np.isfinite(racc[..., 1:]).all():
        raise ValueError("f returned NaN or inf for some draws")


def _finish_terms(acc, racc, shift, n, layout, dtype, name, what) -> Estimate:
    acc = acc.sum(axis=(0, 1))
    if not (np.isfinite(acc).all() and np.isfinite(shift).all()):
        raise ValueError(f"{what} returned NaN or inf for some draws")
    dev, dev2 = acc
    grad = shift + dev / n
    var = (dev2 - dev * dev / n) / (n - 1)
    extra = {}
    if racc is not None:
        racc = racc.sum(axis=(0, 1))
        extra["objective"] = float(racc[1] / racc[0])
    return _result(grad, var, n, layout, dtype, estimator=name, baseline=None, extra=extra)
