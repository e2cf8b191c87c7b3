r"""Reinforcement-learning helpers: discounted returns and the batched policy gradient.

Trajectories are stored as ``(B, T)`` arrays: ``B`` independent rows (environments,
or episodes padded to a common length) of ``T`` steps; a single trajectory may be
given as ``(T,)``.  Step ``t`` of row ``b`` has reward ``rewards[b, t]`` and
``dones[b, t] = True`` when the episode ended *after* that step (its last reward);
the next step of the row, if any, starts a new episode (vectorised environments
that reset themselves).

Reward-to-go
------------
.. math::

    G_{b,t} = r_{b,t} + \gamma\,(1 - d_{b,t})\,G_{b,t+1},\qquad
    G_{b,T} = \text{bootstrap}_b\ (\text{default } 0)

Policy gradient
---------------
For a policy :math:`\pi_\theta(a|s)` whose per-step distribution is a lograd_fast
distribution, the estimate of :math:`\nabla_\theta\,\mathbb E[\sum_t \gamma^t r_t]`
(``t`` counted from each episode's start) is

.. math::

    \hat g = \frac1B \sum_{b}\sum_{t} v_{b,t}\, w_{b,t}\,(\Psi_{b,t} - c_{b,t})\,
             \nabla_\theta \log\pi_\theta(a_{b,t}|s_{b,t})

with ``v`` the ``valid`` mask, ``Psi = G`` (reward-to-go) or the whole episode's
return, ``w = gamma**t`` with reward-to-go and ``discount_weights=True`` (else 1) and
``c`` the baseline.  ``gamma**t G_t`` is the part of the discounted return that
step ``t``'s action can influence, so the estimate is unbiased for every baseline
below except ``"mean"``; ``discount_weights=False`` gives the common (biased for
``gamma < 1``) variant that weights every step equally.

The gradient is with respect to the distribution's parameters as passed: per-step
network outputs (e.g. logits ``(B, T, K)``: chain it into the network) or
parameters shared by all steps (e.g. a bandit's logits ``(K,)``: the sum over steps).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from numba import njit

from ._engine import cpu  # noqa: F401  (installs the package-hash kernel cache locator)
from .distribution import Distribution, as_array
from .estimators import DEFAULT_FOLDS, EMA, Estimate
from .estimators.baselines import _check_baseline

__all__ = ["returns", "advantages", "policy_gradient"]


# ============================================================================ kernels
@njit(cache=True, nogil=True)
def _returns_kernel(rewards, gamma, dones, bootstrap, out, weight, episode_return):
    """Reward-to-go ``out``; ``gamma**(t - episode start)`` in ``weight`` and the
    return of the episode each step belongs to (``G`` at its first step) in
    ``episode_return``."""
    B, T = rewards.shape
    for b in range(B):
        acc = np.float64(bootstrap[b])
        for t in range(T - 1, -1, -1):
            if dones[b, t]:
                acc = 0.0
            acc = np.float64(rewards[b, t]) + gamma * acc
            out[b, t] = acc
        power = 1.0
        start = 0
        for t in range(T):
            if t == 0 or dones[b, t - 1]:
                power = 1.0
                start = t
            else:
                power *= gamma
            weight[b, t] = power
            episode_return[b, t] = out[b, start]


# ============================================================================ validation
def _check_gamma(gamma: Any) -> float:
    if isinstance(gamma, (bool, np.bool_)) or not isinstance(gamma, numbers.Real):
        raise TypeError(f"gamma must be a float in [0, 1], got {gamma!r}")
    if not 0.0 <= float(gamma) <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    return float(gamma)


def _check_rewards(rewards: Any) -> np.ndarray:
    r = as_array(rewards, "rewards")
    if r.dtype == np.bool_ or r.dtype.kind not in "iuf":
        raise TypeError(f"rewards must have a real numeric dtype, got {r.dtype}")
    if r.ndim not in (1, 2):
        raise ValueError(f"rewards must have shape (B, T) or (T,), got {r.shape}")
    if not np.isfinite(r).all():
        raise ValueError("rewards contain NaN or inf")
    return r


def _check_mask(mask: Any, shape: tuple, name: str) -> np.ndarray:
    """A boolean (B, T) array from bools or 0/1 integers of exactly ``shape``."""
    m = as_array(mask, name)
    if m.shape != shape:
        raise ValueError(f"{name} has shape {m.shape}; expected {shape} like rewards")
    if m.dtype == np.bool_:
        return m
    if m.dtype.kind not in "iuf" or not np.isin(m, (0, 1)).all():
        raise TypeError(f"{name} must be boolean (or 0/1), got dtype {m.dtype}")
    return m != 0


def _check_bootstrap(bootstrap: Any, B: int) -> np.ndarray:
    if bootstrap is None:
        return np.zeros(B)
    v = np.asarray(as_array(bootstrap, "bootstrap"), dtype=np.float64)
    if v.size != B or v.ndim > 1:
        raise ValueError(f"bootstrap must hold one value per row ({B},), got shape {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError("bootstrap contains NaN or inf")
    return np.ascontiguousarray(v.reshape(B))


def _episode_terms(rewards: Any, gamma: Any, dones: Any, bootstrap: Any):
    """Validated 2-D inputs and the kernel's three outputs (float64, (B, T))."""
    r = _check_rewards(rewards)
    gamma = _check_gamma(gamma)
    one_d = r.ndim == 1
    r2 = np.ascontiguousarray(r.reshape((1,) + r.shape) if one_d else r)
    if r2.dtype not in (np.float32, np.float64):
        r2 = r2.astype(np.float64)
    d2 = np.zeros(r2.shape, np.bool_) if dones is None else \
        np.ascontiguousarray(_check_mask(dones, r.shape, "dones").reshape(r2.shape))
    boot = _check_bootstrap(bootstrap, r2.shape[0])
    out = np.empty(r2.shape, np.float64)
    weight = np.empty(r2.shape, np.float64)
    episode = np.empty(r2.shape, np.float64)
    _returns_kernel(r2, gamma, d2, boot, out, weight, episode)
    return r, one_d, gamma, out, weight, episode


# ============================================================================ public
def returns(rewards: Any, gamma: float = 1.0, dones: Any = None, *,
            bootstrap: Any = None) -> np.ndarray:
    r"""Discounted reward-to-go ``G[b, t] = sum_k gamma**k r[b, t+k]`` within each episode.

    Parameters
    ----------
    rewards : array_like, ``(B, T)`` or ``(T,)``
        Rewards; float32 stays float32 (accumulated in float64).
    gamma : float in [0, 1]
        Discount factor.
    dones : array_like of bool (or 0/1), same shape as ``rewards``, optional
        ``True`` where the episode ended after that step: no reward from later
        steps flows back past it (the next step starts a new episode).
    bootstrap : array_like ``(B,)`` (a scalar for 1-D rewards), optional
        Value of the state after the last step, added (discounted) to rows whose
        last step is not done: for trajectories truncated by the batch length.

    Returns
    -------
    ndarray, shape and dtype of ``rewards`` (float64 for integer rewards)
        ``G[b, t] = r[b, t] + gamma * (1 - dones[b, t]) * G[b, t+1]``.
    """
    r, one_d, _, out, _, _ = _episode_terms(rewards, gamma, dones, bootstrap)
    dtype = np.float32 if r.dtype == np.float32 else np.float64
    out = out.astype(dtype, copy=False)
    return out.reshape(r.shape) if one_d else out


def _baseline_value(baseline: Any, psi_raw: np.ndarray, v: np.ndarray):
    """The baseline ``c`` of every step (a float, ``(T,)`` or ``(B, T)``); 0 for
    ``"optimal"``, which is applied per score entry."""
    B, T = psi_raw.shape
    if baseline is None or baseline == "optimal":
        return 0.0
    if isinstance(baseline, float):
        return baseline
    if isinstance(baseline, EMA):
        if np.ndim(baseline.value):
            raise ValueError(f"baseline {baseline!r} holds per-element values; "
                             "a scalar EMA (a fresh lf.EMA()) is needed here")
        return float(baseline.value)
    count = v.sum(axis=0)  # valid rows per step
    mine = np.where(v, psi_raw, 0.0)
    total = mine.sum(axis=0)
    if baseline == "mean":
        return np.divide(total, count, out=np.zeros(T), where=count > 0)
    others = count - v  # loo
    return np.divide(total - mine, others, out=np.zeros((B, T)), where=others > 0)


def _weights(rewards, gamma, dones, valid, bootstrap, baseline, reward_to_go,
             discount_weights):
    """Shared by :func:`advantages` and :func:`policy_gradient`: validated rewards,
    whether they were 1-D, the valid mask ``v``, ``Psi``, the weights ``v w`` and the
    baseline ``c`` (all float64 ``(B, T)`` or broadcastable)."""
    r, one_d, gamma, G, weight, episode = _episode_terms(rewards, gamma, dones, bootstrap)
    B, T = G.shape
    v = np.ones((B, T), np.bool_) if valid is None else \
        _check_mask(valid, r.shape, "valid").reshape(B, T)
    psi_raw = G if reward_to_go else episode
    w = np.where(v, weight if (reward_to_go and discount_weights) else 1.0, 0.0)
    c = _baseline_value(baseline, psi_raw, v)
    return r, one_d, v, psi_raw, w, c


def _update_ema(baseline: Any, psi_raw: np.ndarray, v: np.ndarray) -> None:
    if isinstance(baseline, EMA):
        baseline.update(float(np.where(v, psi_raw, 0.0).sum() / max(int(v.sum()), 1)))


def advantages(rewards: Any, gamma: float = 1.0, dones: Any = None, *, valid: Any = None,
               bootstrap: Any = None, baseline: Any = None, reward_to_go: bool = True,
               discount_weights: bool = True) -> np.ndarray:
    r"""The per-step weights ``Psi`` of the policy gradient, without the scores.

    ``psi[b, t] = valid * w * (G - c)`` exactly as in :func:`policy_gradient` (same
    arguments; every baseline but ``"optimal"``, which needs the scores), so that
    with an autograd framework ``loss = -(psi * log_prob).sum() / B`` has the
    gradient ``-policy_gradient(...).grad``.

    Returns
    -------
    ndarray float64, the shape of ``rewards`` (``(B, T)`` or ``(T,)``).
    """
    baseline = _check_baseline(baseline)
    if baseline == "optimal":
        raise ValueError("baseline='optimal' is per score entry: use policy_gradient")
    r, _, v, psi_raw, w, c = _weights(rewards, gamma, dones, valid, bootstrap, baseline,
                                      reward_to_go, discount_weights)
    _update_ema(baseline, psi_raw, v)
    return (w * (psi_raw - c)).reshape(r.shape)


def _step_scores(dist: Distribution, x: Any, steps: tuple) -> dict[str, np.ndarray]:
    """Scores of every step, ``{name: (*steps, *rest)}`` float64, where ``x`` has shape
    ``(*lead, *full_shape, *sample_event_shape)`` and ``(*lead, *batch_shape)`` starts
    with ``steps``."""
    core = dist.full_shape + dist.sample_event_shape
    shape = tuple(np.shape(x)) if hasattr(x, "shape") else np.shape(as_array(x, "x"))
    k = len(core)
    if len(shape) < k or shape[len(shape) - k:] != core:
        raise ValueError(f"x has shape {shape}; expected (*lead, *{core}) with the "
                         f"distribution's batch and event dims {core} last")
    lead = shape[: len(shape) - k]
    combined = lead + dist.batch_shape
    if combined[: len(steps)] != steps:
        raise ValueError(f"x of shape {shape} with a distribution of batch_shape "
                         f"{dist.batch_shape} gives steps {combined}, which do not start "
                         f"with the rewards' shape {steps}")
    if not lead:
        scores = dist.score(x)
    else:
        if dist.backend == "cuda":
            raise ValueError("with backend='cuda', x must have the distribution's full "
                             f"shape {core} (one distribution per step)")
        xa = as_array(x, "x")
        flat = dist.score(xa.reshape((-1,) + core))
        scores = {name: s.reshape(lead + s.shape[1:]) for name, s in flat.items()}
    if dist.backend == "cuda":
        scores = {name: s.copy_to_host() for name, s in scores.items()}
    return {name: np.asarray(s, np.float64) for name, s in scores.items()}


def _reduce(t: np.ndarray, shape: tuple, keep_first: bool) -> np.ndarray:
    """Sum ``t`` onto a parameter of ``shape`` (aligned right, numpy broadcasting);
    with ``keep_first`` keep axis 0 (the trajectories): ``(t.shape[0], *shape)``."""
    lead = t.ndim - len(shape)
    axes = tuple(range(1 if keep_first else 0, lead)) + tuple(
        lead + i for i, k in enumerate(shape) if k == 1 and t.shape[lead + i] != 1)
    out = t.sum(axis=axes, keepdims=False) if axes else t
    return out.reshape(((t.shape[0],) if keep_first else ()) + shape)


def _per_step(a: np.ndarray, ndim: int) -> np.ndarray:
    """A ``(B, T)`` array with trailing unit axes to broadcast against ``ndim`` dims."""
    return a.reshape(a.shape + (1,) * (ndim - a.ndim))


def policy_gradient(dist: Distribution, x: Any, rewards: Any, *, gamma: float = 1.0,
                    dones: Any = None, valid: Any = None, bootstrap: Any = None,
                    baseline: Any = None, reward_to_go: bool = True,
                    discount_weights: bool = True, n_folds: int = DEFAULT_FOLDS) -> Estimate:
    r"""REINFORCE estimate of ``grad E[sum_t gamma**t r_t]`` from a batch of trajectories.

    Parameters
    ----------
    dist : Distribution
        The policy's action distribution.  Either one distribution per step
        (``batch_shape`` starting with ``(B, T)``, e.g. ``lf.Categorical(logits)``
        with network outputs ``logits (B, T, K)``), or distributions shared by
        steps, with the step dims in front of ``x`` (e.g. a bandit's
        ``lf.Categorical(logits (K,))`` and ``x (B, T)``).
    x : array_like ``(*lead, *dist.batch_shape, *dist.event_shape)``
        Actions taken; ``(*lead, *batch_shape)`` must start with ``rewards.shape``.
        Padding steps (``valid`` False) still need values in the support (e.g. 0).
    rewards : array_like ``(B, T)`` or ``(T,)``
        Reward of every step.
    gamma : float in [0, 1]
    dones : bool ``(B, T)``, optional
        Episode ends (see :func:`returns`).
    valid : bool ``(B, T)``, optional
        ``False`` marks padding (steps after a row's last episode ended); those
        steps are ignored by the gradient and the baselines.
    bootstrap : ``(B,)``, optional
        Value after the last step of each row (see :func:`returns`).
    baseline : None, float, "mean", "loo", "optimal" or ``lf.EMA``
        Subtracted from the return of every step.  ``"mean"`` / ``"loo"`` use the
        returns of the (valid) steps at the same ``t`` in all rows / in the *other*
        rows (RLOO across trajectories, unbiased; 0 where no other row is valid);
        ``"mean"`` includes the row itself and is biased by ``(m-1)/m`` (``m``
        valid rows at that step).  ``"optimal"`` is per step and score entry,
        ``c = sum w^2 G s^2 / sum w^2 s^2`` over the rows of the other ``n_folds``
        folds (cross-fitting across trajectories, unbiased).  A float or ``lf.EMA``
        is a constant; the EMA is updated with the mean return of the valid steps
        after the call.
    reward_to_go : bool
        ``Psi = G_t`` (True) or the return of the whole episode (False).
    discount_weights : bool
        With reward-to-go, weight step ``t`` by ``gamma**t`` (``t`` from the episode
        start): unbiased for the discounted objective.  False: weight 1.
    n_folds : int
        Folds of the ``"optimal"`` baseline.

    Returns
    -------
    Estimate
        ``grad[p]`` shaped like parameter ``p`` (``1/B`` times the sum over all
        steps), ``var[p]``: the sample variance (ddof=1) over the ``B`` rows of each
        row's summed term (``NaN`` for a single row), ``stderr = sqrt(var/B)``,
        ``n = B``; ``extra["psi"]``: the per-step weights ``v w (Psi - c)``
        ``(B, T)`` (for ``"optimal"``: ``v w Psi`` before the per-entry baseline),
        ``extra["returns"]``: ``Psi``.
    """
    if not isinstance(dist, Distribution):
        raise TypeError(f"dist must be a lograd_fast distribution, got {type(dist).__name__}")
    baseline = _check_baseline(baseline)
    if isinstance(n_folds, bool) or not isinstance(n_folds, numbers.Integral) or n_folds < 2:
        raise ValueError(f"n_folds must be an int >= 2, got {n_folds!r}")
    r, one_d, v, psi_raw, w, c = _weights(rewards, gamma, dones, valid, bootstrap, baseline,
                                          reward_to_go, discount_weights)
    if r.size == 0:
        raise ValueError(f"rewards is empty (shape {r.shape}): a policy gradient needs steps")
    B = psi_raw.shape[0]
    scores = _step_scores(dist, x, r.shape)
    if one_d:  # a single trajectory: the row axis in front
        scores = {name: s[None] for name, s in scores.items()}
    psi = w * (psi_raw - c)
    extra: dict = {"returns": psi_raw.reshape(r.shape), "psi": psi.reshape(r.shape)}
    if baseline is not None and not isinstance(baseline, str):
        extra["baseline_value"] = c
    K = min(int(n_folds), B)
    folds = np.arange(B) % K
    grad, var, stderr = {}, {}, {}
    for name, s in scores.items():
        shape = dist.params[name].shape
        if baseline == "optimal":
            w2s2 = _per_step(w * w, s.ndim) * s * s
            num = np.stack([(w2s2 * _per_step(psi_raw, s.ndim))[folds == k].sum(axis=0)
                            for k in range(K)])
            den = np.stack([w2s2[folds == k].sum(axis=0) for k in range(K)])
            rest_num, rest_den = num.sum(axis=0) - num, den.sum(axis=0) - den
            beta = np.divide(rest_num, rest_den, out=np.zeros_like(rest_num),
                             where=rest_den > 0)
            t = _per_step(w, s.ndim) * (_per_step(psi_raw, s.ndim) - beta[folds]) * s
        else:
            t = _per_step(psi, s.ndim) * s
        grad[name] = (_reduce(t, shape, keep_first=False) / B).astype(dist.dtype)
        if B < 2:
            var[name] = np.full(shape, np.nan, dist.dtype)
        elif t.ndim == len(shape) and shape[0] == B:
            # one parameter row per trajectory: row b's term is nonzero only in row b,
            # so the variance over rows of that coordinate is B * grad**2
            var[name] = (B * grad[name].astype(np.float64) ** 2).astype(dist.dtype)
        else:
            var[name] = _reduce(t, shape, keep_first=True).var(axis=0, ddof=1) \
                .astype(dist.dtype)
        stderr[name] = np.sqrt(var[name] / B).astype(dist.dtype)
    _update_ema(baseline, psi_raw, v)
    label = baseline if baseline is None or isinstance(baseline, (str, float)) else "ema"
    if baseline == "optimal":
        extra["n_folds"] = K
    return Estimate(grad, var, stderr, B, "policy_gradient", label, extra)
