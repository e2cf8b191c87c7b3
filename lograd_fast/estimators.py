r"""Score-function (REINFORCE) gradient estimators with baselines.

.. math::

    \nabla_\theta \mathbb E_{x\sim p_\theta}[f(x)]
      \approx \frac1n \sum_{i=1}^n (r_i - b_i)\,\nabla_\theta \log p_\theta(x_i)

Two entry points share one result type:

* ``score_function(d, f, n, seed=...)``: ``f`` is an ``@numba.njit`` function of one
  draw (a 1-D array of all batch and event elements, C order).  Samples, scores and
  ``f`` are fused in one parallel kernel and only O(threads x parameters) memory is
  used, whatever ``n``.
* ``score_function(d, rewards=r, x=x)``: rewards from outside (an environment),
  broadcastable to ``(n, *batch_shape)`` (one reward per draw or per batch element).

Baselines ``b_i``
-----------------
``None``      no baseline (``b = 0``).
``float``     a constant.
``"mean"``    the batch mean of the rewards, *including* ``r_i``: biased by the known
              factor ``(n-1)/n`` (``E[grad] = (n-1)/n * true gradient``); kept because
              it is the classic form.  Use ``"loo"`` for the unbiased version.
``"loo"``     leave-one-out mean ``(sum_j r_j - r_i)/(n-1)`` (RLOO), unbiased.  Equal
              to ``n/(n-1)`` times the ``"mean"`` estimate.

Streaming algebra
-----------------
With ``rho_i = r_i - c`` (``c``: the mean of ``f`` over a short pilot of the same draws,
which only improves the rounding) and any baseline of the form ``b_i = c + beta``,
the per-draw terms are ``t_ij = (rho_i - beta) g_ij`` (``g``: the draw's score reduced to
parameter coordinates), so ``sum t`` and ``sum t^2`` follow from the moments
``sum g, sum g^2, sum rho g, sum rho^2 g^2, sum rho g^2``, accumulated per fixed chunk of
draws and combined in chunk order: the result does not depend on the thread count.
``var`` is the sample variance (ddof=1) of the per-draw terms, ``stderr = sqrt(var/n)``.
"""

from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numba
import numpy as np

from . import _estimator_kernels as _ek
from . import _kernels
from ._base import Distribution, check_n, check_seed

__all__ = ["Estimate", "score_function", "BASELINES"]

BASELINES = (None, "mean", "loo")


@dataclass
class Estimate:
    """A gradient estimate: per-parameter mean, single-sample variance, standard error."""

    grad: dict[str, np.ndarray]
    var: dict[str, np.ndarray]
    stderr: dict[str, np.ndarray]
    n: int
    estimator: str = "score_function"
    baseline: Any = None
    extra: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        parts = ", ".join(f"{k}: {np.array2string(np.asarray(v), precision=4)} "
                          f"± {np.array2string(np.asarray(self.stderr[k]), precision=2)}"
                          for k, v in self.grad.items())
        return f"Estimate({self.estimator}, baseline={self.baseline!r}, n={self.n}, {parts})"


def _check_baseline(baseline: Any) -> Any:
    if baseline is None or baseline in ("mean", "loo"):
        return baseline
    if isinstance(baseline, numbers.Real) and not isinstance(baseline, bool):
        if not math.isfinite(float(baseline)):
            raise ValueError(f"baseline must be finite, got {baseline}")
        return float(baseline)
    raise ValueError(f"baseline must be None, a float, 'mean' or 'loo'; got {baseline!r}")


def _coords(d: Distribution) -> tuple[np.ndarray, list, list]:
    """Map every score entry of one draw to its parameter coordinate.

    Returns (coord, per-parameter (name, shape, offset), per-field sizes)."""
    coord, layout, sizes = [], [], []
    offset = 0
    for name in d.family.param_names:
        shape = d.params[name].shape
        tail = d._param_tail[name]
        idx = np.arange(math.prod(shape), dtype=np.int64).reshape(shape)
        coord.append(offset + np.broadcast_to(idx, d.full_shape + tail).ravel())
        sizes.append(d._B * math.prod(tail))
        layout.append((name, shape, offset))
        offset += idx.size
    return np.concatenate(coord), layout, sizes


def _finish(moments: np.ndarray, r_moments: np.ndarray, shift: float, baseline: Any,
            n: int, layout: list, dtype: np.dtype) -> tuple[dict, dict, dict]:
    """grad/var/stderr per parameter from the summed moments (see module docstring)."""
    s1, s2, r1, r2, q = moments
    count, sum_rho, _ = r_moments
    scale = 1.0
    if baseline is None:
        beta = -shift
    elif isinstance(baseline, float):
        beta = baseline - shift
    else:  # "mean" / "loo"
        beta = sum_rho / count
        if baseline == "loo":
            scale = n / (n - 1.0)
    sum_t = scale * (r1 - beta * s1)
    sum_t2 = scale * scale * (r2 - 2.0 * beta * q + beta * beta * s2)
    grad = sum_t / n
    var = np.maximum(sum_t2 - sum_t * grad, 0.0) / (n - 1)
    out = ({}, {}, {})
    for name, shape, off in layout:
        size = math.prod(shape)
        for dst, src in zip(out, (grad, var, np.sqrt(var / n))):
            dst[name] = src[off:off + size].reshape(shape).astype(dtype)
    return out


def _as_dispatcher(f: Any):
    if not isinstance(f, numba.core.registry.CPUDispatcher):
        raise TypeError("f must be a @numba.njit function of one draw (a 1-D array) "
                        f"returning a float; got {type(f).__name__}")
    return f


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


def _stream_buffers(d: Distribution, coord: np.ndarray, sizes: list, P: int):
    T = numba.get_num_threads()
    ev = d.sample_event_shape
    x_atoms = np.zeros((T * d._B,) + ev, d._sample_dtype)
    x_rows = x_atoms.reshape(T, -1)
    field_off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    s_flat = np.zeros(T * int(field_off[-1]), d.dtype)
    views = {}
    for k, name in enumerate(d.family.param_names):
        lo = int(field_off[k]) * T
        views[name] = s_flat[lo:lo + T * sizes[k]].reshape((T * d._B,) + d._param_tail[name])
    return SimpleNamespace(x_atoms=x_atoms, x_rows=x_rows, s=d.family.scores_cls(**views),
                           s_flat=s_flat, field_off=field_off, coord=coord,
                           g=np.zeros((T, P)))


def _chunking(n: int, B: int) -> tuple[int, int]:
    """Draws per chunk and number of chunks: a function of (n, B) only."""
    per = max(-(-_kernels.CHUNK // max(B, 1)), -(-n // 2048))
    return per, -(-n // per)


@numba.njit(cache=True)
def _apply_rows(f, rows, out):
    for i in range(rows.shape[0]):
        out[i] = f(rows[i])


def _numpy_moments(d: Distribution, f, n: int, key: tuple, shift_draws: int, coord, P: int,
                   shift: float):
    """The numpy baseline of the streaming pass: batches of draws, same moments."""
    moments = np.zeros((_ek.N_MOMENTS, P))
    r_moments = np.zeros(3)
    per = max(1, 2**16 // d._B)
    stop = min(n, shift_draws) if shift_draws else n
    for lo in range(0, stop, per):
        m = min(per, stop - lo)
        key_lo = key[:3] + (np.int64(lo * d._B),)
        x, _, s = d.family.numpy_ops.sample_score(d._record, key_lo, m * d._B, d._B, d.dtype)
        rho = np.empty(m)
        _apply_rows(f, np.ascontiguousarray(x).reshape(m, -1), rho)
        rho -= shift
        g = np.zeros((m, P))
        entries = np.concatenate([np.asarray(s[k], np.float64).reshape(m, -1)
                                  for k in d.family.param_names], axis=1)
        np.add.at(g, (slice(None), coord), entries)
        g2 = g * g
        moments += np.stack([g.sum(0), g2.sum(0), rho @ g, (rho * rho) @ g2, rho @ g2])
        r_moments += [m, rho.sum(), rho @ rho]
    return moments, r_moments


def _check_f(d: Distribution, f, key: tuple) -> None:
    """Call f once from Python: a clear error instead of a failed compilation inside."""
    probe = d.sample(None, seed=int(key[0]) | (int(key[1]) << 32), stream=int(key[2]))
    if d.backend == "cuda":
        probe = probe.copy_to_host()
    try:
        float(f(np.ascontiguousarray(probe).reshape(-1)))
    except Exception as exc:
        raise TypeError(f"f could not be called on one draw (a 1-D {d._sample_dtype} array of "
                        f"{probe.size} elements) returning a float: {exc}") from exc


def _streaming(d: Distribution, f, n: int, key: tuple, baseline: Any) -> Estimate:
    if d.backend == "cuda":
        raise NotImplementedError("streaming estimation with f on backend='cuda' is not "
                                  "available yet; sample on the GPU and pass rewards= and x=")
    _check_f(d, f, key)
    coord, layout, sizes = _coords(d)
    P = layout[-1][2] + math.prod(layout[-1][1])
    if d.backend == "numpy":
        pilot, pilot_r = _numpy_moments(d, f, n, key, min(n, 64), coord, P, 0.0)
        shift = pilot_r[1] / pilot_r[0]
        if not math.isfinite(shift):
            raise ValueError("f returned NaN or inf on the first draws")
        moments, r_moments = _numpy_moments(d, f, n, key, 0, coord, P, shift)
        if not np.isfinite(r_moments[1]):
            raise ValueError("f returned NaN or inf for some draws")
        grad, var, stderr = _finish(moments, r_moments, shift, baseline, n, layout, d.dtype)
        return Estimate(grad, var, stderr, n, "score_function", baseline)
    bufs = _stream_buffers(d, coord, sizes, P)
    # pilot: the mean of f over the first draws, used as the shift c
    m = min(n, 64)
    pilot = np.zeros((1, 1, _ek.N_MOMENTS, P))
    pilot_r = np.zeros((1, 1, 3))
    reward = _as_cfunc(f, d._sample_dtype)
    _ek.stream(d._record, key, d._B, reward, bufs, 0.0, pilot, pilot_r, m, m)
    shift = pilot_r[0, 0, 1] / pilot_r[0, 0, 0]
    if not math.isfinite(shift):
        raise ValueError("f returned NaN or inf on the first draws")
    per, n_chunks = _chunking(n, d._B)
    stats = np.zeros((n_chunks, 1, _ek.N_MOMENTS, P))
    r_stats = np.zeros((n_chunks, 1, 3))
    _ek.stream(d._record, key, d._B, reward, bufs, shift, stats, r_stats, n, per)
    moments = stats.sum(axis=(0, 1))
    r_moments = r_stats.sum(axis=(0, 1))
    if not np.isfinite(r_moments[1]):
        raise ValueError("f returned NaN or inf for some draws")
    grad, var, stderr = _finish(moments, r_moments, shift, baseline, n, layout, d.dtype)
    return Estimate(grad, var, stderr, n, "score_function", baseline)


def _from_rewards(d: Distribution, rewards: Any, x: Any, baseline: Any) -> Estimate:
    x, n = d._check_x(x)
    if n is None:
        raise ValueError("x must have a leading sample axis: shape (n, *batch_shape, *event_shape)")
    if n < 2:
        raise ValueError(f"need at least 2 samples to estimate a variance, got n={n}")
    r = np.asarray(rewards, dtype=np.float64)
    try:
        r = np.broadcast_to(r, (n,) + d.batch_shape) if r.ndim != 1 or r.shape[0] != n else \
            np.broadcast_to(r.reshape((n,) + (1,) * len(d.batch_shape)), (n,) + d.batch_shape)
    except ValueError:
        raise ValueError(f"rewards of shape {np.shape(rewards)} do not broadcast to "
                         f"(n, *batch_shape) = {(n,) + d.batch_shape}") from None
    if not np.isfinite(r).all():
        raise ValueError("rewards contain NaN or inf")
    if baseline is None:
        adv = r
    elif isinstance(baseline, float):
        adv = r - baseline
    elif baseline == "mean":
        adv = r - r.mean(axis=0)
    else:  # loo
        adv = r - (r.sum(axis=0) - r) / (n - 1)
    # event dims share the reward of their batch element
    adv = adv.reshape(adv.shape + (1,) * d.event_ndims)
    scores = d.score(x)
    if d.backend == "cuda":
        scores = {k: v.copy_to_host() for k, v in scores.items()}
    grad, var, stderr = {}, {}, {}
    for name in d.family.param_names:
        s = scores[name]
        shape = d.params[name].shape
        t = adv.reshape(adv.shape + (1,) * (s.ndim - adv.ndim)) * s
        # sum over the axes along which the parameter was broadcast
        lead = t.ndim - len(shape)
        axes = tuple(range(1, lead)) + tuple(
            lead + i for i, k in enumerate(shape) if k == 1 and t.shape[lead + i] != 1)
        t = t.sum(axis=axes, keepdims=False) if axes else t
        t = t.reshape((n,) + shape)
        grad[name] = t.mean(axis=0).astype(d.dtype)
        var[name] = t.var(axis=0, ddof=1).astype(d.dtype)
        stderr[name] = np.sqrt(var[name] / n).astype(d.dtype)
    return Estimate(grad, var, stderr, n, "score_function", baseline)


def score_function(dist: Distribution, f: Any = None, n: int | None = None, seed: int = 0, *,
                   stream: int = 0, baseline: Any = None, rewards: Any = None,
                   x: Any = None) -> Estimate:
    """Score-function (REINFORCE / log-derivative) estimate of ``grad E[f(x)]``.

    Parameters
    ----------
    dist : Distribution
        Its unconstrained parameters are the ones differentiated.
    f : numba.njit function, optional
        Reward of one draw: called with a 1-D array (all batch and event elements
        of the draw, C order; int64 class indices for discrete families) and
        returning a float.  Requires ``n``.  Computed streaming, O(threads x params)
        memory.
    n : int
        Number of draws (``>= 2``).
    seed, stream : int
        Philox stream (the draws are those of ``dist.sample(n, seed, stream=stream)``).
    baseline : None, float, "mean" or "loo"
        See the module docstring.
    rewards, x : array_like
        Instead of ``f``: rewards broadcastable to ``(n, *batch_shape)`` for the
        samples ``x`` of shape ``(n, *batch_shape, *event_shape)``.

    Returns
    -------
    Estimate
        ``grad[p]``, ``var[p]`` (single-draw variance, ddof=1), ``stderr[p]``, each
        shaped like parameter ``p``; ``n``.
    """
    if not isinstance(dist, Distribution):
        raise TypeError(f"dist must be a lograd_fast distribution, got {type(dist).__name__}")
    baseline = _check_baseline(baseline)
    if f is not None:
        if rewards is not None or x is not None:
            raise ValueError("pass either f (with n) or rewards= and x=, not both")
        f = _as_dispatcher(f)
        n = check_n(n)
        if n is None:
            raise ValueError("n is required with f")
        if n < 2:
            raise ValueError(f"n must be at least 2 to estimate a variance, got {n}")
        if n * dist._B > 2**62:
            raise ValueError(f"n={n} draws {n * dist._B} atoms, more than 2**62")
        key = check_seed(seed, stream) + (np.int64(0),)
        return _streaming(dist, f, n, key, baseline)
    if rewards is None or x is None:
        raise ValueError("pass f (an njit function) and n, or both rewards= and x=")
    if n is not None and check_n(n) != np.shape(x)[0]:
        raise ValueError(f"n={n} does not match x's leading axis {np.shape(x)[0]}")
    return _from_rewards(dist, rewards, x, baseline)
