"""What the streaming estimators share: argument checks, lane buffers, the user's
functions behind C function pointers, and the finish of term-moment estimators."""

from __future__ import annotations

import functools
import math
from types import SimpleNamespace
from typing import Any

import numba
import numpy as np

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


@functools.lru_cache(maxsize=256)
def _as_cfunc(f, sample_dtype: np.dtype):
    """``f`` behind a C function pointer of a fixed signature.

    The streaming driver then has a type that does not depend on *which* ``f`` it
    calls, so it is compiled once and loaded from the on-disk cache by every later
    process; only this small wrapper is compiled per ``f``.  (Passing ``f`` itself
    would specialise, and recompile, the whole driver for every function object.)
    """
    elem = numba.from_dtype(sample_dtype)

    def reward(x):
        return np.float64(f(x))

    return numba.cfunc(numba.types.float64(elem[::1]))(reward)


@functools.lru_cache(maxsize=256)
def _as_scalar_cfunc(f):
    """A scalar njit function ``float -> float`` behind a ``float64(float64)`` pointer."""

    def scalar(x):
        return np.float64(f(x))

    return numba.cfunc(numba.types.float64(numba.types.float64))(scalar)


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
    except Exception as exc:
        raise TypeError(f"f could not be called on one draw (a 1-D {d._sample_dtype} array of "
                        f"{probe.size} elements) returning a float: {exc}") from exc


def _check_scalar_f(d: Distribution, fn, name: str, key: tuple) -> None:
    x0 = float(_probe(d, key)[0])
    try:
        value = float(fn(x0))
    except Exception as exc:
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
