r"""The score-function (REINFORCE) estimator of ``grad_theta E_{x ~ p_theta}[f(x)]``.

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
the result is bitwise the same for any thread count (see ``streaming.py``).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from ..distribution import Distribution, check_n, check_seed, numpy_op
from . import streaming as _ek
from ._common import (
    Progress,
    _as_dispatcher,
    _check_dist,
    _check_draws,
    _check_f,
    _check_finite_rewards,
    _check_progress,
    _lanes,
    _reward_of,
    _run_windows,
    _shift_of,
    _stream_buffers,
)
from .baselines import (
    DEFAULT_FOLDS,
    EMA,
    _baseline_label,
    _check_baseline,
    _check_folds,
    _finish,
    _update_ema,
    check_terms_finite,
    reflect_odd_mask,
)
from .result import Estimate, _coords, _grad_var, _n_coords, _result, _split


def _numpy_moments(d: Distribution, f, key: tuple, stop: int, coord, P: int, shift: float,
                   K: int, progress: Progress | None = None):
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
        x, _, s = numpy_op(d.family.numpy_ops.sample_score, d._host_record(m), key_lo,
                           m * d._B, d._B, d.dtype)
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
        if progress is not None:
            progress.update(lo + m)
    return acc, racc


@numba.njit(cache=True)
def _apply_rows(f, rows, out):
    for i in range(rows.shape[0]):
        out[i] = f(rows[i])


def _streaming(d: Distribution, f, n: int, key: tuple, baseline: Any, K: int,
               pairs: bool = False, progress: Any = None) -> Estimate:
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
        acc, racc = _numpy_moments(d, f, key, n, coord, P, shift, K,
                                   Progress(progress, name, n))
    else:
        M = _ek.PAIR_MOMENTS if pairs else _ek.SCORE_MOMENTS
        W = _lanes(n, d._B, K * M * P + d._B * (1 + sum(sizes) // max(d._B, 1)) + 2 * P)
        bufs = _stream_buffers(d, coord, sizes, P, W)
        reward, check = _reward_of(f, d._sample_dtype, name)
        run = _ek.pair_stream if pairs else _ek.score_stream
        # pilot: the mean of f over the first draws, used as the shift c
        pilot = np.zeros((1, 1, M, P))
        pilot_r = np.zeros((1, 1, _ek.N_REWARD_MOMENTS))
        rec = d._host_record(n)  # the record for n draws per element (Categorical: tables)
        run(rec, key, d._B, reward, bufs, 0.0, pilot, pilot_r, pilot_n)
        check()
        shift = _shift_of(pilot_r)
        acc = np.zeros((W, K, M, P))
        racc = np.zeros((W, K, _ek.N_REWARD_MOMENTS))
        _run_windows(lambda done, todo: run(rec, key, d._B, reward, bufs, shift, acc,
                                            racc, n, done, todo),
                     n, W, d._B, check, Progress(progress, name, n))
        acc, racc = acc.sum(axis=0), racc.sum(axis=0)  # lanes in order: thread-independent
    _check_finite_rewards(racc)
    sum_t, sum_t2, extra = _finish(acc, racc, shift, baseline, n,
                                   reflect_odd_mask(d, layout) if pairs else None)
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
    if n < 2 and baseline in ("loo", "mean", "optimal"):
        raise ValueError(f"baseline={baseline!r} needs at least 2 draws (it is estimated "
                         f"from the other draws), got n={n}: use baseline=None, a float or "
                         "lf.EMA for a single draw")
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
        with np.errstate(over="ignore", invalid="ignore"):  # checked below, named
            t = _reduce_to_param(adv.reshape(adv.shape + (1,) * (s.ndim - adv.ndim)) * s,
                                 shape, n)
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
        with np.errstate(over="ignore", invalid="ignore"):
            check_terms_finite(t.mean(axis=0), t.var(axis=0), baseline, "a reward")
        grad[name] = np.asarray(t.mean(axis=0), d.dtype)
        # one draw: the gradient, but no variance to estimate (NaN, documented)
        var[name] = np.asarray(t.var(axis=0, ddof=1), d.dtype) if n > 1 else \
            np.full(t.shape[1:], np.nan, d.dtype)
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
                   return_terms: bool = False, progress: Any = False) -> Estimate:
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
        Number of draws (``>= 2`` with ``f``).  From ``rewards``/``x`` a single draw
        (``n = 1``, one trajectory) gives the gradient with ``var`` and ``stderr`` NaN;
        the baselines ``"loo"``, ``"mean"`` and ``"optimal"`` need two draws or more.
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
    progress : bool or callable
        With ``f``: ``True`` prints the draws done and the time left on stderr about
        once a second; a callable is called as ``progress(done, total, elapsed_s)``
        (draws, seconds) after each window of the computation.  Long calls run in
        windows of about a quarter of a second, so Ctrl-C (KeyboardInterrupt) stops
        them promptly either way.

    Returns
    -------
    Estimate
        ``grad[p]``, ``var[p]`` (single-draw variance, ddof=1), ``stderr[p]``, each
        shaped like parameter ``p``; ``n``; ``extra["baseline_value"]``.
    """
    _check_dist(dist)
    baseline = _check_baseline(baseline)
    K = _check_folds(n_folds)
    progress = _check_progress(progress)
    if f is not None:
        if rewards is not None or x is not None:
            raise ValueError("pass either f (with n) or rewards= and x=, not both")
        if return_terms:
            raise ValueError("return_terms needs the rewards path (rewards= and x=): the "
                             "streaming path never stores per-draw terms")
        f = _as_dispatcher(f)
        n = _check_draws(dist, n)
        key = check_seed(seed, stream) + (np.int64(0),)
        return _streaming(dist, f, n, key, baseline, min(K, n) if baseline == "optimal" else 1,
                          progress=progress)
    if rewards is None or x is None:
        raise ValueError("pass f (an njit function) and n, or both rewards= and x=")
    if n is not None and check_n(n) != np.shape(x)[0]:
        raise ValueError(f"n={n} does not match x's leading axis {np.shape(x)[0]}")
    return _from_rewards(dist, rewards, x, baseline, K, return_terms)
