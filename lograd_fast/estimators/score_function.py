r"""Gradient estimators of ``grad_theta E_{x ~ p_theta}[f(x)]`` and variance reduction.

Every estimator returns an :class:`Estimate`: ``grad``, ``var`` (the variance of
one term, ``ddof=1``), ``stderr = sqrt(var / n)`` and ``n``, each a dict keyed by
the distribution's unconstrained parameters, shaped like them.

Estimators
----------
:func:`score_function`  REINFORCE, ``(r_i - b_i) grad log p(x_i)``; streaming with an
                        njit ``f`` or from external ``rewards`` and ``x``.
:func:`antithetic`      score function on antithetic pairs ``(x, reflect(x))`` of a
                        symmetric family (``reflect1`` entry point).
:func:`pathwise`        reparameterisation, ``sum_e f'(x_e) dx_e/dtheta`` (``reparam1``).
:func:`measure_valued`  weak derivatives of the Normal (loc, log_scale).
:func:`rloo`,           many replicates of the score function at once from
:func:`batched_score_function`  rewards ``(R, N)`` and scores ``(R, N, D)``.
:func:`estimate`        any of the first four by name (``estimator="score"`` ...).

The streaming estimators fuse sampling, scores and ``f`` in one parallel kernel:
no ``(n, D)`` array exists, memory is O(lanes x parameters) whatever ``n``, and
the result is bitwise the same for any thread count (see ``_estimator_kernels``).

Baselines ``b_i`` (score function and antithetic)
-------------------------------------------------
``None``        no baseline (``b = 0``).
``float``       a constant.
``"mean"``      the mean of the ``n`` rewards, *including* ``r_i``: biased.  For the
                score function ``E[grad] = (n-1)/n * true gradient`` exactly
                (``grad_mean = (n-1)/n * grad_loo`` draw by draw); kept because it
                is the classic form.
``"loo"``       leave-one-out mean ``(sum_j r_j - r_i)/(n-1)`` (RLOO): unbiased, since
                ``b_i`` does not depend on draw ``i`` and ``E[grad log p] = 0``.
``"optimal"``   per-coordinate variance-minimising baseline
                ``b*_j = E[r s_j^2] / E[s_j^2]``, estimated by **K-fold cross-fitting**:
                draw ``i`` is in fold ``i mod K`` (``K = min(n_folds, n)``, default 8)
                and uses ``b_j = sum_{i' not in fold} r_i' s_i'j^2 / sum_{i' not in fold}
                s_i'j^2``, computed from the *other* folds only.  That baseline is
                independent of draw ``i``, so ``E[(r_i - b_j) s_ij] = E[r s_j]``: the
                estimator is unbiased for every ``n >= 2`` (``K = n`` is leave-one-out,
                the case for ``n <= 8``).  Cross-fitting instead of leave-one-out
                because it is exact in one streaming pass: the kernel keeps the sums
                ``Q_j = sum r s_j^2`` and ``H_j = sum s_j^2`` per fold, and fold ``k`` uses
                ``b_j = (Q_j - Q_j^(k)) / (H_j - H_j^(k))`` (totals minus its own fold).
                (An in-sample ``b`` is biased at small ``n``: see the tests.)
                Coordinates whose score is 0 on all other folds get ``b = 0``.
:class:`EMA`    a moving average of past calls' mean rewards, zero-debiased; the value
                used in a call is fixed before the call, hence unbiased.

The streaming algebra: with ``rho_i = r_i - c`` (``c``: the mean of ``f`` over a short
pilot, which only improves the rounding), per-draw ``h = g`` (the draw's score summed
onto parameter coordinates) and ``u = rho g``, every baseline gives terms
``t = u + a v + c' h`` (``v = rho h``) with scalars ``a, c'`` known at the end, so
``sum t`` and ``sum t^2`` follow from per-fold sums of ``h, h^2, u, u^2, u h`` (and
``v, v^2, u v, v h`` for antithetic pairs, where ``v = m h`` with ``m`` the pair's mean
reward).
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

from .._engine import cpu as _kernels
from .._engine.dispatch import supports
from ..distribution import Distribution, check_n, check_seed
from . import streaming as _ek

__all__ = ["Estimate", "EMA", "score_function", "antithetic", "pathwise", "measure_valued",
           "rloo", "batched_score_function", "estimate", "BASELINES", "ESTIMATORS"]

BASELINES = (None, "mean", "loo", "optimal")  # plus a float or an EMA instance
ESTIMATORS = ("score", "antithetic", "pathwise", "mvd")
DEFAULT_FOLDS = 8
MAX_LANES = 64
_LANE_FLOATS = 2**22  # memory cap of one call's per-lane buffers (float64 words)


# ============================================================================ results
@dataclass
class Estimate:
    """A gradient estimate: per-parameter mean, single-term variance, standard error.

    ``grad[p]``, ``var[p]``, ``stderr[p]`` have the shape of parameter ``p`` (for the
    batched functions: ``(*R, *shape)``).  ``var`` is the sample variance (ddof=1)
    of the ``n`` terms whose mean is ``grad``, ``stderr = sqrt(var / n)``.  ``terms``
    (on request, rewards path only) holds the terms themselves: ``(n, *shape)``.
    ``extra`` holds estimator-specific values (e.g. the baseline used).
    """

    grad: dict[str, np.ndarray]
    var: dict[str, np.ndarray]
    stderr: dict[str, np.ndarray]
    n: int
    estimator: str = "score_function"
    baseline: Any = None
    extra: dict = field(default_factory=dict)
    terms: dict[str, np.ndarray] | None = None

    def __repr__(self) -> str:
        parts = ", ".join(f"{k}: {np.array2string(np.asarray(v), precision=4)} "
                          f"± {np.array2string(np.asarray(self.stderr[k]), precision=2)}"
                          for k, v in self.grad.items())
        return f"Estimate({self.estimator}, baseline={self.baseline!r}, n={self.n}, {parts})"


class EMA:
    """Exponential-moving-average baseline with zero-debiasing (as in Adam).

    State after ``t`` calls with mean rewards ``m_1..m_t``:
    ``a_t = decay a_{t-1} + (1 - decay) m_t`` (``a_0 = 0``) and the baseline
    ``value = a_t / (1 - decay**t)`` (``0`` before the first call).  Pass the *same*
    object to successive estimator calls: each call subtracts the value from
    *before* the call (independent of that call's samples, so the estimate is
    unbiased) and then folds in the call's mean reward.  The mean reward is a scalar
    for streaming calls and per-draw rewards, and ``batch_shape``-shaped for
    per-element rewards (``score_function(d, rewards=(n, *batch_shape), x=x)``).
    """

    def __init__(self, decay: float = 0.99):
        if isinstance(decay, bool) or not isinstance(decay, numbers.Real):
            raise TypeError(f"decay must be a float in [0, 1), got {decay!r}")
        if not 0.0 <= float(decay) < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.reset()

    def reset(self) -> None:
        """Forget every update."""
        self._acc: Any = 0.0
        self.t = 0

    @property
    def value(self) -> Any:
        """The zero-debiased average (a float, or an array after per-element updates)."""
        if self.t == 0:
            return 0.0
        return self._acc / (1.0 - self.decay**self.t)

    def update(self, mean_reward: Any) -> None:
        """Fold in one call's mean reward (a float or an array)."""
        m = np.asarray(mean_reward, dtype=np.float64)
        if not np.all(np.isfinite(m)):
            raise ValueError("EMA.update: the mean reward is NaN or inf")
        m = float(m) if m.ndim == 0 else m.copy()
        if self.t and np.shape(self._acc) != np.shape(m) and np.ndim(self._acc) > 0:
            raise ValueError(f"EMA holds values of shape {np.shape(self._acc)}; this call's "
                             f"mean reward has shape {np.shape(m)}")
        self._acc = self.decay * self._acc + (1.0 - self.decay) * m
        self.t += 1

    def __repr__(self) -> str:
        return f"EMA(decay={self.decay}, t={self.t}, value={self.value!r})"


# ============================================================================ validation
def _check_baseline(baseline: Any) -> Any:
    if isinstance(baseline, EMA) or baseline is None or (
            isinstance(baseline, str) and baseline in ("mean", "loo", "optimal")):
        return baseline
    if isinstance(baseline, numbers.Real) and not isinstance(baseline, bool):
        if not math.isfinite(float(baseline)):
            raise ValueError(f"baseline must be finite, got {baseline}")
        return float(baseline)
    raise ValueError("baseline must be None, a float, 'mean', 'loo', 'optimal' or an "
                     f"lf.EMA(decay) instance; got {baseline!r}")


def _check_folds(n_folds: Any) -> int:
    if isinstance(n_folds, bool) or not isinstance(n_folds, numbers.Integral):
        raise TypeError(f"n_folds must be an int >= 2, got {n_folds!r}")
    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2, got {n_folds}")
    return int(n_folds)


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
    if n * dist._B > 2**62:
        raise ValueError(f"{what}={n} draws {n * dist._B} atoms, more than 2**62")
    return n


def _cpu_only(dist: Distribution, name: str) -> None:
    if dist.backend != "cpu":
        raise NotImplementedError(f"{name} runs on backend='cpu' only (the distribution has "
                                  f"backend={dist.backend!r}); build it with backend='cpu'")


# ============================================================================ layout helpers
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


def _n_coords(layout: list) -> int:
    return layout[-1][2] + math.prod(layout[-1][1])


def _split(vec: np.ndarray, layout: list, dtype: np.dtype) -> dict:
    """A flat (..., P) vector of coordinates -> {param: (..., *shape)}."""
    lead = vec.shape[:-1]
    return {name: vec[..., off:off + math.prod(shape)].reshape(lead + shape).astype(dtype)
            for name, shape, off in layout}


def _result(grad: np.ndarray, var: np.ndarray, n: int, layout: list, dtype, **kw) -> Estimate:
    var = np.maximum(var, 0.0)
    return Estimate(_split(grad, layout, dtype), _split(var, layout, dtype),
                    _split(np.sqrt(var / n), layout, dtype), n, **kw)


def _lanes(n: int, B: int, per_lane_floats: int) -> int:
    """Number of lanes: a function of the problem size only (never of the threads):
    at least ``CHUNK`` atoms per lane, at most ``MAX_LANES`` and the memory cap."""
    per_lane_draws = -(-_kernels.CHUNK // max(B, 1))
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


# ============================================================================ finishing
def _moment_rows(acc: np.ndarray) -> tuple:
    """(H, H2, U, U2, UH, V, V2, UV, VH) from score (5) or pair (9) moment rows."""
    if acc.shape[-2] == _ek.SCORE_MOMENTS:
        h, h2, u, u2, uh = (acc[..., m, :] for m in range(5))
        return h, h2, u, u2, uh, u, u2, u2, uh  # v = rho h = u
    return tuple(acc[..., m, :] for m in range(_ek.PAIR_MOMENTS))


def _baseline_value(baseline: Any, racc: np.ndarray, shift: float, n: int) -> Any:
    if isinstance(baseline, EMA):
        value = baseline.value
        if np.ndim(value):
            raise ValueError("this EMA holds per-element values (from a per-element rewards "
                             "call); a streaming estimate needs a scalar baseline")
        return float(value)
    if isinstance(baseline, float):
        return baseline
    if baseline in ("mean", "loo"):
        return float(racc[:, 1].sum()) / n + shift
    return 0.0 if baseline is None else None


def _finish(acc: np.ndarray, racc: np.ndarray, shift: float, baseline: Any, n: int):
    """Sum and sum of squares of the terms, per coordinate, from the per-fold moments.

    ``acc`` (K, 5 or 9, P), ``racc`` (K, 3); see the module docstring.  Returns
    ``(sum_t, sum_t2, extra)``."""
    H, H2, U, U2, UH, V, V2, UV, VH = _moment_rows(acc)
    extra = {}
    if baseline == "optimal":
        tot_uh, tot_h2 = UH.sum(axis=0), H2.sum(axis=0)
        den = tot_h2[None, :] - H2
        with np.errstate(invalid="ignore", divide="ignore"):
            beta = np.where(den > 0.0, (tot_uh[None, :] - UH) / den, 0.0)
        sum_t = (U - beta * H).sum(axis=0)
        sum_t2 = (U2 - 2.0 * beta * UH + beta * beta * H2).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            extra["baseline_value"] = np.where(tot_h2 > 0, tot_uh / tot_h2, 0.0) + shift
        extra["n_folds"] = acc.shape[0]
        return sum_t, sum_t2, extra
    H, H2, U, U2, UH, V, V2, UV, VH = (m.sum(axis=0) for m in (H, H2, U, U2, UH, V, V2, UV, VH))
    S = float(racc[:, 1].sum())
    a = 0.0
    if baseline == "loo":
        a, c = 1.0 / (n - 1), -S / (n - 1)
    elif baseline == "mean":
        c = -S / n
    else:  # None, a constant, an EMA: b fixed in advance
        b = _baseline_value(baseline, racc, shift, n)
        c = -(b - shift)
    if baseline is not None:
        extra["baseline_value"] = _baseline_value(baseline, racc, shift, n)
    sum_t = U + a * V + c * H
    sum_t2 = U2 + a * a * V2 + c * c * H2 + 2 * a * UV + 2 * c * UH + 2 * a * c * VH
    return sum_t, sum_t2, extra


def _grad_var(sum_t: np.ndarray, sum_t2: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    grad = sum_t / n
    return grad, np.maximum(sum_t2 - sum_t * grad, 0.0) / (n - 1)


def _update_ema(baseline: Any, racc: np.ndarray, shift: float, n: int) -> None:
    if isinstance(baseline, EMA):
        baseline.update(float(racc[..., 1].sum()) / n + shift)


def _shift_of(racc: np.ndarray) -> float:
    shift = float(racc[..., 1].sum() / racc[..., 0].sum())
    if not math.isfinite(shift):
        raise ValueError("f returned NaN or inf on the first draws")
    return shift


def _check_finite_rewards(racc: np.ndarray) -> None:
    if not np.isfinite(racc[..., 1:]).all():
        raise ValueError("f returned NaN or inf for some draws")


def _baseline_label(baseline: Any) -> Any:
    return "ema" if isinstance(baseline, EMA) else baseline


# ============================================================================ score function
def _numpy_moments(d: Distribution, f, key: tuple, stop: int, coord, P: int, shift: float,
                   K: int):
    """The numpy baseline of the streaming pass: batches of draws, same moments."""
    acc = np.zeros((K, _ek.SCORE_MOMENTS, P))
    racc = np.zeros((K, _ek.N_REWARD_MOMENTS))
    per = max(1, 2**16 // d._B)
    identity = coord.size == P and np.array_equal(coord, np.arange(P))
    scatter = None
    if not identity and coord.size * P <= 2**22:
        scatter = np.zeros((coord.size, P))  # entries -> coordinates as one matmul
        scatter[np.arange(coord.size), coord] = 1.0
    for lo in range(0, stop, per):
        m = min(per, stop - lo)
        key_lo = key[:3] + (np.int64(lo * d._B),)
        x, _, s = d.family.numpy_ops.sample_score(d._record, key_lo, m * d._B, d._B, d.dtype)
        rho = np.empty(m)
        _apply_rows(f, np.ascontiguousarray(x).reshape(m, -1), rho)
        rho -= shift
        entries = np.concatenate([np.asarray(s[k], np.float64).reshape(m, -1)
                                  for k in d.family.param_names], axis=1)
        if identity:
            g = entries
        elif scatter is not None:
            g = entries @ scatter
        else:
            g = np.zeros((m, P))
            np.add.at(g, (slice(None), coord), entries)
        folds = (lo + np.arange(m)) % K
        for k in range(K):
            gk, rk = (g, rho) if K == 1 else (g[folds == k], rho[folds == k])
            u = rk[:, None] * gk
            acc[k] += np.stack([gk.sum(0), (gk * gk).sum(0), u.sum(0), (u * u).sum(0),
                                (u * gk).sum(0)])
            racc[k] += [rk.size, rk.sum(), rk @ rk]
    return acc, racc


@numba.njit(cache=True)
def _apply_rows(f, rows, out):
    for i in range(rows.shape[0]):
        out[i] = f(rows[i])


def _streaming(d: Distribution, f, n: int, key: tuple, baseline: Any, K: int,
               pairs: bool = False) -> Estimate:
    if d.backend == "cuda":
        raise NotImplementedError("streaming estimation with f on backend='cuda' is not "
                                  "available yet; sample on the GPU and pass rewards= and x=")
    _check_f(d, f, key)
    coord, layout, sizes = _coords(d)
    P = _n_coords(layout)
    pilot_n = min(n, 64)
    name = "antithetic" if pairs else "score_function"
    if d.backend == "numpy":
        _, pilot_r = _numpy_moments(d, f, key, pilot_n, coord, P, 0.0, 1)
        shift = _shift_of(pilot_r)
        acc, racc = _numpy_moments(d, f, key, n, coord, P, shift, K)
    else:
        M = _ek.PAIR_MOMENTS if pairs else _ek.SCORE_MOMENTS
        W = _lanes(n, d._B, K * M * P + d._B * (1 + sum(sizes) // max(d._B, 1)) + 2 * P)
        bufs = _stream_buffers(d, coord, sizes, P, W)
        reward = _as_cfunc(f, d._sample_dtype)
        run = _ek.pair_stream if pairs else _ek.score_stream
        # pilot: the mean of f over the first draws, used as the shift c
        pilot = np.zeros((1, 1, M, P))
        pilot_r = np.zeros((1, 1, _ek.N_REWARD_MOMENTS))
        run(d._record, key, d._B, reward, bufs, 0.0, pilot, pilot_r, pilot_n)
        shift = _shift_of(pilot_r)
        acc = np.zeros((W, K, M, P))
        racc = np.zeros((W, K, _ek.N_REWARD_MOMENTS))
        run(d._record, key, d._B, reward, bufs, shift, acc, racc, n)
        acc, racc = acc.sum(axis=0), racc.sum(axis=0)  # lanes in order: thread-independent
    _check_finite_rewards(racc)
    sum_t, sum_t2, extra = _finish(acc, racc, shift, baseline, n)
    _update_ema(baseline, racc, shift, n)
    grad, var = _grad_var(sum_t, sum_t2, n)
    extra = {k: (_split(np.asarray(v, np.float64), layout, np.float64)
                 if isinstance(v, np.ndarray) else v) for k, v in extra.items()}
    extra["mean_reward"] = float(racc[:, 1].sum()) / n + shift
    return _result(grad, var, n, layout, d.dtype, estimator=name,
                   baseline=_baseline_label(baseline), extra=extra)


def _broadcast_rewards(d: Distribution, rewards: Any, n: int) -> tuple[np.ndarray, bool]:
    """Rewards as (n, *batch_shape) float64, and whether they were one per draw."""
    r = np.asarray(rewards, dtype=np.float64)
    per_draw = r.ndim == 0 or (r.ndim == 1 and r.shape[0] == n)
    try:
        if r.ndim == 1 and r.shape[0] == n:
            r = r.reshape((n,) + (1,) * len(d.batch_shape))
        r = np.broadcast_to(r, (n,) + d.batch_shape)
    except ValueError:
        raise ValueError(f"rewards of shape {np.shape(rewards)} do not broadcast to "
                         f"(n, *batch_shape) = {(n,) + d.batch_shape}") from None
    if not np.isfinite(r).all():
        raise ValueError("rewards contain NaN or inf")
    return r, per_draw


def _reduce_to_param(t: np.ndarray, shape: tuple, n: int) -> np.ndarray:
    """Sum ``t`` (n, *full_shape, *tail) over the axes along which a parameter of
    ``shape`` was broadcast: (n, *shape)."""
    lead = t.ndim - len(shape)
    axes = tuple(range(1, lead)) + tuple(
        lead + i for i, k in enumerate(shape) if k == 1 and t.shape[lead + i] != 1)
    t = t.sum(axis=axes) if axes else t
    return t.reshape((n,) + shape)


def _from_rewards(d: Distribution, rewards: Any, x: Any, baseline: Any, K: int,
                  return_terms: bool) -> Estimate:
    x, n = d._check_x(x)
    if n is None:
        raise ValueError("x must have a leading sample axis: shape (n, *batch_shape, *event_shape)")
    if n < 2:
        raise ValueError(f"need at least 2 samples to estimate a variance, got n={n}")
    r, per_draw = _broadcast_rewards(d, rewards, n)
    extra: dict = {}
    if baseline is None:
        adv = r
    elif isinstance(baseline, (float, EMA)):
        b = baseline if isinstance(baseline, float) else baseline.value
        try:
            adv = r - np.broadcast_to(b, r.shape[1:])
        except ValueError:
            raise ValueError(f"the EMA baseline has shape {np.shape(b)}, the rewards "
                             f"{r.shape}") from None
        extra["baseline_value"] = b
    elif baseline == "mean":
        extra["baseline_value"] = r.mean(axis=0)
        adv = r - extra["baseline_value"]
    elif baseline == "loo":
        adv = r - (r.sum(axis=0) - r) / (n - 1)
    else:  # optimal: terms u - b h with u = reduce(r s), h = reduce(s)
        adv = r
    # event dims share the reward of their batch element
    adv = adv.reshape(adv.shape + (1,) * d.event_ndims)
    scores = d.score(x)
    if d.backend == "cuda":
        scores = {k: v.copy_to_host() for k, v in scores.items()}
    grad, var, stderr, terms = {}, {}, {}, {}
    K = min(K, n)
    folds = np.arange(n) % K
    for name in d.family.param_names:
        s = np.asarray(scores[name], np.float64)
        shape = d.params[name].shape
        t = _reduce_to_param(adv.reshape(adv.shape + (1,) * (s.ndim - adv.ndim)) * s, shape, n)
        if baseline == "optimal":
            h = _reduce_to_param(s, shape, n)
            num = np.stack([(t * h)[folds == k].sum(axis=0) for k in range(K)])
            den = np.stack([(h * h)[folds == k].sum(axis=0) for k in range(K)])
            rest_num, rest_den = num.sum(axis=0) - num, den.sum(axis=0) - den
            with np.errstate(invalid="ignore", divide="ignore"):
                beta = np.where(rest_den > 0, rest_num / rest_den, 0.0)
                extra.setdefault("baseline_value", {})[name] = np.where(
                    den.sum(0) > 0, num.sum(0) / den.sum(0), 0.0)
            t = t - beta[folds] * h
        grad[name] = np.asarray(t.mean(axis=0), d.dtype)
        var[name] = np.asarray(t.var(axis=0, ddof=1), d.dtype)
        stderr[name] = np.sqrt(var[name] / n).astype(d.dtype)
        if return_terms:
            terms[name] = t.astype(d.dtype)
    if baseline == "optimal":
        extra["n_folds"] = K
    if isinstance(baseline, EMA):
        baseline.update(r.mean() if per_draw else r.mean(axis=0))
    return Estimate(grad, var, stderr, n, "score_function", _baseline_label(baseline), extra,
                    terms if return_terms else None)


def score_function(dist: Distribution, f: Any = None, n: int | None = None, seed: int = 0, *,
                   stream: int = 0, baseline: Any = None, rewards: Any = None,
                   x: Any = None, n_folds: int = DEFAULT_FOLDS,
                   return_terms: bool = False) -> Estimate:
    """Score-function (REINFORCE / log-derivative) estimate of ``grad E[f(x)]``.

    Parameters
    ----------
    dist : Distribution
        Its unconstrained parameters are the ones differentiated.
    f : numba.njit function, optional
        Reward of one draw: called with a 1-D array (all batch and event elements
        of the draw, C order; int64 class indices for discrete families) and
        returning a float.  Requires ``n``.  Computed streaming, O(lanes x params)
        memory.
    n : int
        Number of draws (``>= 2``).
    seed, stream : int
        Philox stream (the draws are those of ``dist.sample(n, seed, stream=stream)``).
    baseline : None, float, "mean", "loo", "optimal" or EMA
        See the module docstring.
    rewards, x : array_like
        Instead of ``f``: rewards broadcastable to ``(n, *batch_shape)`` (one per
        draw or one per batch element) for the samples ``x`` of shape
        ``(n, *batch_shape, *event_shape)``.
    n_folds : int
        Folds of the cross-fitted ``"optimal"`` baseline (``K = min(n_folds, n)``).
    return_terms : bool
        Rewards path only: also return the per-draw terms, ``terms[p]`` of shape
        ``(n, *shape_p)`` (their mean is ``grad[p]``).

    Returns
    -------
    Estimate
        ``grad[p]``, ``var[p]`` (single-draw variance, ddof=1), ``stderr[p]``, each
        shaped like parameter ``p``; ``n``; ``extra["baseline_value"]``.
    """
    _check_dist(dist)
    baseline = _check_baseline(baseline)
    K = _check_folds(n_folds)
    if f is not None:
        if rewards is not None or x is not None:
            raise ValueError("pass either f (with n) or rewards= and x=, not both")
        if return_terms:
            raise ValueError("return_terms needs the rewards path (rewards= and x=): the "
                             "streaming path never stores per-draw terms")
        f = _as_dispatcher(f)
        n = _check_draws(dist, n)
        key = check_seed(seed, stream) + (np.int64(0),)
        return _streaming(dist, f, n, key, baseline, min(K, n) if baseline == "optimal" else 1)
    if rewards is None or x is None:
        raise ValueError("pass f (an njit function) and n, or both rewards= and x=")
    if n is not None and check_n(n) != np.shape(x)[0]:
        raise ValueError(f"n={n} does not match x's leading axis {np.shape(x)[0]}")
    return _from_rewards(dist, rewards, x, baseline, K, return_terms)


# ============================================================================ antithetic
def antithetic(dist: Distribution, f: Any, n: int, seed: int = 0, *, stream: int = 0,
               baseline: Any = None, n_folds: int = DEFAULT_FOLDS) -> Estimate:
    """Score-function estimate on ``n`` antithetic pairs ``(x_i, x_i')``.

    ``x_i`` is draw ``i`` of ``dist.sample(n, seed, stream=stream)`` and ``x_i'`` its
    mirror image about the centre of symmetry (``2 loc - x`` for a Normal; the
    family's ``reflect1``), which has the same law, so each pair term

        ``T_i = ((r_i - b_i) s(x_i) + (r_i' - b_i) s(x_i')) / 2``

    is unbiased (``2 n`` evaluations of ``f``).  ``grad`` is the mean of the ``n``
    pair terms and **``var`` is the variance of the per-pair averaged terms**
    ``T_i`` (``stderr = sqrt(var / n)``), so compare it with half the variance of a
    single score-function term at equal cost.

    Baselines are those of :func:`score_function` with the pair as the unit: the
    pair's mean reward ``m_i`` enters ``"mean"``/``"loo"`` (``"loo"`` uses the other
    pairs only, unbiased), ``"optimal"`` cross-fits ``b_j = E[u_j h_j]/E[h_j^2]``
    (``h``, ``u``: the pair averages of ``s`` and ``r s``) over folds of pairs.  The
    ``"mean"`` bias is ``-E[m h]/n`` (no longer exactly the (n-1)/n factor).

    Needs a symmetric family (an ``reflect1`` entry point) and ``backend="cpu"``;
    ``f`` as in :func:`score_function`.  Returns an :class:`Estimate`.
    """
    _check_dist(dist)
    baseline = _check_baseline(baseline)
    K = _check_folds(n_folds)
    if not supports(type(dist._record), "reflect1"):
        raise TypeError(f"dist: antithetic sampling needs a symmetric family with a reflect1 "
                        f"entry point; {type(dist).__name__} has none")
    f = _as_dispatcher(f)
    n = _check_draws(dist, n)
    _cpu_only(dist, "antithetic")
    key = check_seed(seed, stream) + (np.int64(0),)
    return _streaming(dist, f, n, key, baseline, min(K, n) if baseline == "optimal" else 1,
                      pairs=True)


# ============================================================================ pathwise
def pathwise(dist: Distribution, f: Any, df: Any = None, n: int | None = None, seed: int = 0,
             *, stream: int = 0) -> Estimate:
    r"""Pathwise (reparameterisation) estimate of ``grad E[sum_e f(x_e)]``.

    ``f`` and ``df`` are ``@numba.njit`` *scalar* functions of one element ``x_e``
    (a float) returning a float: the objective of a draw is ``sum_e f(x_e)`` over
    its elements and ``df = f'``.  Each draw ``x = T(eps, theta)`` comes from the
    family's ``reparam1`` (the same stream as ``dist.sample``), and its term is

        ``t_j = sum_e df(x_e) dx_e/dtheta_j``

    (unbiased when ``f`` is differentiable almost everywhere with integrable
    derivative).  ``grad`` is the mean of the ``n`` terms, ``var`` their variance
    (ddof=1).  ``extra["objective"]`` is the mean of ``sum_e f(x_e)``.

    The elements ``x_e`` are all batch and event elements of a draw (for a
    MultivariateNormal, the ``D`` coordinates of each atom).  ``reparam1`` writes one
    derivative per parameter entry: the entry moves the element picked by its
    leading tail indices (the atom itself for scalar atoms; coordinate ``j`` for
    ``loc[j]`` and ``S[j, k]`` of a MultivariateNormal).

    Needs a family with a ``reparam1`` entry point and ``backend="cpu"``.  Memory
    O(lanes x parameters) whatever ``n``.
    """
    _check_dist(dist)
    f = _as_dispatcher(f, "f", "of one element (a float)")
    if df is None:
        raise TypeError("df is required for the pathwise estimator: the derivative of f, "
                        "an @numba.njit function of one element (a float)")
    df = _as_dispatcher(df, "df", "of one element (a float)")
    if not supports(type(dist._record), "reparam1"):
        raise TypeError(f"dist: the pathwise estimator needs a reparameterisable family (a "
                        f"reparam1 entry point); {type(dist).__name__} has none")
    ev = dist.sample_event_shape
    for name, tail in dist._param_tail.items():
        if tuple(tail[:len(ev)]) != tuple(ev):
            raise TypeError(f"dist: the pathwise estimator needs each entry of a parameter's "
                            f"derivative to move one element of the draw (tail dims starting "
                            f"with the atom's event dims {ev}); {name} has tail dims {tail}")
    n = _check_draws(dist, n)
    _cpu_only(dist, "pathwise")
    key = check_seed(seed, stream) + (np.int64(0),)
    _check_scalar_f(dist, f, "f", key)
    _check_scalar_f(dist, df, "df", key)
    coord, layout, sizes = _coords(dist)
    P = _n_coords(layout)
    W = _lanes(n, dist._B, 2 * P + 3 * dist._B * math.prod(ev) + sum(sizes))
    bufs = _stream_buffers(dist, coord, sizes, P, W)
    fc, dfc = _as_scalar_cfunc(f), _as_scalar_cfunc(df)
    pilot_n = min(n, 64)
    pilot = np.zeros((1, 1, _ek.TERM_MOMENTS, P))
    pilot_r = np.zeros((1, 1, _ek.N_REWARD_MOMENTS))
    _ek.path_stream(dist._record, key, dist._B, fc, dfc, bufs, np.zeros(P), pilot, pilot_r,
                    pilot_n)
    shift = pilot[0, 0, 0] / pilot_n
    acc = np.zeros((W, 1, _ek.TERM_MOMENTS, P))
    racc = np.zeros((W, 1, _ek.N_REWARD_MOMENTS))
    _ek.path_stream(dist._record, key, dist._B, fc, dfc, bufs, shift, acc, racc, n)
    return _finish_terms(acc, racc, shift, n, layout, dist.dtype, "pathwise", "f or df")


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


# ============================================================================ measure-valued
def measure_valued(dist: Distribution, f: Any, n: int, seed: int = 0, *,
                   stream: int = 0) -> Estimate:
    """Measure-valued derivative (weak derivative) estimate for a Normal.

    For each draw ``x`` (exactly ``dist.sample(n, seed)``) and each atom ``b``:

    * ``d/dloc_b``: ``(f(x | x_b = mu + sigma W) - f(x | x_b = mu - sigma W)) / (sigma
      sqrt(2 pi))`` with ``W`` Weibull(2, 1/2) (Rayleigh), the same ``W`` on both sides;
    * ``d/dlog_scale_b``: ``f(x | x_b = mu + sigma D) - f(x)`` with ``D`` a double-sided
      Maxwell draw coupled to the atom's own normal (see ``_mvd.py``), i.e. the
      ``sigma``-derivative ``(1/sigma)(E f(M) - E f(N))`` times ``sigma`` (chain rule).

    Mohamed, Rosca, Figurnov & Mnih (2020), JMLR 21(132), sections 6 and 8, Table 1.
    Unbiased for any integrable ``f`` (no differentiability needed); ``1 + 3 B``
    calls of ``f`` per draw.  ``f`` as in :func:`score_function` (a 1-D array of the
    draw).  ``var`` is the variance of the per-draw terms.  ``backend="cpu"`` only.
    """
    from ..families.normal import Normal
    from . import measure_valued as _mvd

    _check_dist(dist)
    if not isinstance(dist, Normal):
        raise TypeError(f"dist: the measure-valued estimator is implemented for Normal "
                        f"(loc, log_scale); got {type(dist).__name__}")
    f = _as_dispatcher(f)
    n = _check_draws(dist, n)
    _cpu_only(dist, "measure_valued")
    key = check_seed(seed, stream) + (np.int64(0),)
    _check_f(dist, f, key)
    coord, layout, _ = _coords(dist)
    P = _n_coords(layout)
    B = dist._B
    W = _lanes(n, B, 2 * P + 3 * B)
    bufs = SimpleNamespace(x_rows=np.zeros((W, B), dist.dtype), z=np.zeros((W, B)),
                           blk=np.zeros((W, B), np.int64), coord_loc=coord[:B].copy(),
                           coord_ls=coord[B:].copy(), g=np.zeros((W, P)))
    reward = _as_cfunc(f, dist._sample_dtype)
    pilot_n = min(n, 64)
    pilot = np.zeros((1, 1, _ek.TERM_MOMENTS, P))
    _mvd.mvd_stream(dist._record, key, B, reward, bufs, np.zeros(P), pilot, pilot_n)
    shift = pilot[0, 0, 0] / pilot_n
    acc = np.zeros((W, 1, _ek.TERM_MOMENTS, P))
    _mvd.mvd_stream(dist._record, key, B, reward, bufs, shift, acc, n)
    return _finish_terms(acc, None, shift, n, layout, dist.dtype, "measure_valued", "f")


# ============================================================================ by name
def estimate(dist: Distribution, f: Any, n: int, seed: int = 0, *, estimator: str = "score",
             baseline: Any = None, df: Any = None, stream: int = 0,
             n_folds: int = DEFAULT_FOLDS) -> Estimate:
    """Run the estimator named ``estimator`` (one of :data:`ESTIMATORS`).

    ``"score"`` -> :func:`score_function`, ``"antithetic"`` -> :func:`antithetic`
    (both take ``baseline``), ``"pathwise"`` -> :func:`pathwise` (``f`` and ``df``
    scalar functions of one element), ``"mvd"`` -> :func:`measure_valued`.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if estimator in ("pathwise", "mvd") and baseline is not None:
        raise ValueError(f"baseline does not apply to estimator={estimator!r} (got "
                         f"{baseline!r}); pass baseline=None")
    if estimator == "score":
        return score_function(dist, f, n, seed, stream=stream, baseline=baseline,
                              n_folds=n_folds)
    if estimator == "antithetic":
        return antithetic(dist, f, n, seed, stream=stream, baseline=baseline, n_folds=n_folds)
    if estimator == "pathwise":
        return pathwise(dist, f, df, n, seed, stream=stream)
    return measure_valued(dist, f, n, seed, stream=stream)


# ============================================================================ batched (RLOO)
_MODES = {"loo": 2, "mean": 1, "optimal": 3}


def _batched_numpy(r: np.ndarray, s: np.ndarray, baseline: Any, K: int):
    """The numpy baseline: r (R, N), s (R, N, D) -> grad, var (R, D), terms."""
    N = r.shape[1]
    if baseline == "loo":
        adv = r - (r.sum(axis=1, keepdims=True) - r) / (N - 1)
    elif baseline == "mean":
        adv = r - r.mean(axis=1, keepdims=True)
    elif baseline == "optimal":
        adv = r
    else:
        adv = r - (baseline or 0.0)
    t = adv[:, :, None] * s
    if baseline == "optimal":
        folds = np.arange(N) % K
        s2 = s * s
        num = np.stack([(t * s)[:, folds == k].sum(axis=1) for k in range(K)], axis=1)
        den = np.stack([s2[:, folds == k].sum(axis=1) for k in range(K)], axis=1)
        rest_num = num.sum(axis=1, keepdims=True) - num
        rest_den = den.sum(axis=1, keepdims=True) - den
        with np.errstate(invalid="ignore", divide="ignore"):
            beta = np.where(rest_den > 0, rest_num / rest_den, 0.0)
        t = t - beta[:, folds] * s
    return t.mean(axis=1), t.var(axis=1, ddof=1), t


def batched_score_function(rewards: Any, scores: Any, *, baseline: Any = "loo",
                           return_terms: bool = False, backend: str = "cpu",
                           n_folds: int = DEFAULT_FOLDS) -> Estimate:
    """Score-function estimates of many independent replicates at once.

    Parameters
    ----------
    rewards : array_like ``(*R, N)``
        ``N`` rewards per replicate (``*R`` any replicate dims, possibly none).
    scores : array ``(*R, N, *S)`` or dict ``{name: (*R, N, *S_name)}``
        The score of each draw (e.g. ``sample_and_score``'s, reshaped); float32 or
        float64.  A plain array is reported under the key ``"score"``.
    baseline : None, float, "mean", "loo" (default) or "optimal"
        As in :func:`score_function`, within each replicate (``"optimal"``:
        cross-fitted over ``min(n_folds, N)`` folds ``i mod K``).
    return_terms : bool
        Also return the terms, ``terms[name]`` of shape ``(*R, N, *S_name)``.
    backend : "cpu" (Numba, replicates in parallel, one fused pass per replicate)
        or "numpy" (the vectorised baseline).

    Returns
    -------
    Estimate
        ``grad``, ``var``, ``stderr`` of shape ``(*R, *S_name)`` per key; ``n = N``.
    """
    baseline = _check_baseline(baseline)
    if isinstance(baseline, EMA):
        raise ValueError("baseline: an EMA is a baseline across calls; use it with "
                         "score_function (batched_score_function takes None, a float, "
                         "'mean', 'loo' or 'optimal')")
    K = _check_folds(n_folds)
    if backend not in ("cpu", "numpy"):
        raise ValueError(f"backend must be 'cpu' or 'numpy', got {backend!r}")
    try:
        r = np.asarray(rewards, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"rewards must be a numeric array, got {type(rewards).__name__}") \
            from exc
    if r.ndim < 1:
        raise ValueError(f"rewards must have shape (*R, N), got {r.shape}")
    if not np.isfinite(r).all():
        raise ValueError("rewards contain NaN or inf")
    lead, N = r.shape[:-1], r.shape[-1]
    if N < 2:
        raise ValueError(f"need at least 2 samples per replicate (rewards' last axis), got {N}")
    named = scores if isinstance(scores, dict) else {"score": scores}
    if not named:
        raise ValueError("scores is an empty dict")
    K = min(K, N)
    R = math.prod(lead)
    rf = np.ascontiguousarray(r.reshape(R, N))
    grad, var, stderr, terms = {}, {}, {}, {}
    for name, s in named.items():
        label = "scores" if name == "score" and not isinstance(scores, dict) else \
            f"scores[{name!r}]"
        if not (isinstance(s, np.ndarray) or hasattr(s, "__array__")):
            raise TypeError(f"{label} must be an array, got {type(s).__name__}")
        s = np.asarray(s)
        if s.dtype not in (np.float32, np.float64):
            raise TypeError(f"{label} must be float32 or float64, got {s.dtype}")
        if s.shape[:len(lead) + 1] != r.shape:
            raise ValueError(f"{label} has shape {s.shape}; it must start with the rewards' "
                             f"shape {r.shape} (*R, N)")
        tail = s.shape[len(lead) + 1:]
        D = math.prod(tail)
        sf = np.ascontiguousarray(s.reshape(R, N, D))
        if backend == "numpy":
            g, v, t = _batched_numpy(rf, sf.astype(np.float64, copy=False), baseline, K)
        else:
            g, v = np.empty((R, D)), np.empty((R, D))
            t = np.empty((R, N, D)) if return_terms else np.empty((R, 0, 0))
            mode = 0 if baseline is None or isinstance(baseline, float) else _MODES[baseline]
            const = baseline if isinstance(baseline, float) else 0.0
            run = _ek.batched_par if R * N * D > 2 * _kernels.CHUNK and R > 1 else \
                _ek.batched_serial
            run(rf, sf, t, g, v, mode, float(const), K)
        grad[name] = g.reshape(lead + tail).astype(s.dtype)
        var[name] = v.reshape(lead + tail).astype(s.dtype)
        stderr[name] = np.sqrt(v / N).reshape(lead + tail).astype(s.dtype)
        if return_terms:
            terms[name] = t.reshape(lead + (N,) + tail).astype(s.dtype)
    return Estimate(grad, var, stderr, N, "score_function", baseline,
                    {"n_folds": K} if baseline == "optimal" else {},
                    terms if return_terms else None)


def rloo(rewards: Any, scores: Any, *, return_terms: bool = False,
         backend: str = "cpu") -> Estimate:
    """REINFORCE leave-one-out (RLOO) over many replicates at once.

    ``rewards`` ``(*R, N)``, ``scores`` ``(*R, N, *S)`` (or a dict of such arrays) ->
    ``grad``/``var``/``stderr`` ``(*R, *S)``: per replicate,
    ``grad = mean_i (r_i - (sum_j r_j - r_i)/(N-1)) s_i``.  Shorthand for
    :func:`batched_score_function` with ``baseline="loo"``.
    """
    return batched_score_function(rewards, scores, baseline="loo", return_terms=return_terms,
                                  backend=backend)
