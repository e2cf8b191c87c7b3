r"""Exact gradients and exact single-term variances of the sweep's estimators.

Used by the table builder only (never in the hot path), so that the bias and the
variance of every estimate can be read against the truth.

Normal ``x = mu + sigma z``, built-in ``f`` (one scalar atom)
-------------------------------------------------------------
* gradient: the closed forms of :mod:`lograd_fast.sweep.functions`
  (e.g. ``f = (x-k)^2``: ``d/dmu = 2 (mu - k)``, ``d/dlog_sigma = 2 sigma^2``);
* variance ``E[t^2] - E[t]^2`` and fourth central moment of one term ``t`` by Gauss
  quadrature over the standard normal ``z`` (probabilists' Gauss-Hermite, exact for
  polynomial ``f`` and spectrally accurate for the smooth built-ins; computed with
  increasing node counts and reported once two agree, to 1e-9 relative to the
  uncancelled size of the terms -- 1e-7 for the fourth moment -- else NaN):

  - score function: ``t = (f(x) - b) s(z)``, ``s_loc = z / sigma``,
    ``s_log_scale = z^2 - 1``;
  - antithetic pairs: ``t = ((f(x) - b) s(z) + (f(x') - b) s(-z)) / 2``, ``x' = mu - sigma z``;
  - pathwise: ``t_loc = f'(x)``, ``t_log_scale = f'(x) sigma z``;
  - measure-valued (the couplings of ``lograd_fast/estimators/measure_valued.py``):
    ``t_loc = (f(mu + sigma W) - f(mu - sigma W)) / (sigma sqrt(2 pi))`` with ``W``
    Rayleigh, and ``t_log_scale = f(mu + sigma sign(c) r) - f(mu + sigma r c)`` with
    ``r`` chi-3 and ``c`` uniform on [-1, 1] (``z = r c``, ``D = sign(z) r`` the
    double-sided Maxwell draw).  Rayleigh moments: odd part
    ``E h(W) = sqrt(pi/2) E_z[z h(z)]``, even part by Gauss-Laguerre in ``W^2 / 2``;
    chi-3/uniform moments: ``E g(r, c) = E_z[z^2 (1/2) int_{-1}^{1} g(z, c) dc]``
    (Gauss-Legendre on each half of ``c``).

  Baselines: a constant ``b``; ``"mean"`` and ``"loo"`` -> ``b = E f`` (the ``n -> inf``
  value: at finite ``n`` the sample baseline adds ``O(1/n)`` relative variance, and
  ``"mean"`` has the bias factor ``(n-1)/n``, visible in the table's ``bias``);
  ``"optimal"`` -> ``b_j = E[u_j h_j] / E[h_j^2]`` per coordinate (``u = f s``, ``h = s``,
  pair-averaged for antithetic), the value the cross-fitted estimate converges to.

Categorical ``x in {0..K-1}``, one row of logits
------------------------------------------------
Exact enumeration: ``s_i(j) = [i = j] - p_i``, the same baselines (score function).

Anything else (user functions, other families, array parameters): ``NaN``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np

from .functions import BUILTINS, Builtin
from .spec import Cell, aliases_of, defaults_of

__all__ = ["exact_values", "normal_moments"]

_NODES = (48, 96, 160, 224, 288)  # numpy: hermegauss breaks beyond ~340, laggauss ~150
_RTOL = 1e-9


@functools.lru_cache(maxsize=8)
def _hermite(n: int) -> tuple[np.ndarray, np.ndarray]:
    z, w = np.polynomial.hermite_e.hermegauss(n)
    return z, w / math.sqrt(2.0 * math.pi)


@functools.lru_cache(maxsize=8)
def _laguerre(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.laguerre.laggauss(n)


@functools.lru_cache(maxsize=8)
def _legendre_halves(n: int) -> tuple[np.ndarray, np.ndarray]:
    c, w = np.polynomial.legendre.leggauss(n)
    half = 0.5 * (c + 1.0)  # nodes on [0, 1], weights sum to 1
    return np.concatenate([-half, half]), np.concatenate([w, w]) * 0.25  # (1/2) int_{-1}^1


def _raw(t: np.ndarray, w: np.ndarray, size: np.ndarray) -> np.ndarray:
    """``[E t, E t^2, E t^3, E t^4, E size^2, E size^4]`` (``size >= |t|``: ``t``
    without cancellation, the scale of its rounding errors)."""
    t2, s2 = t * t, size * size
    return np.array([w @ t, w @ t2, w @ (t2 * t), w @ (t2 * t2), w @ s2, w @ (s2 * s2)])


def _score_terms(f: Callable, mu: float, sigma: float, baseline, nodes: int,
                 pairs: bool) -> dict[str, np.ndarray]:
    z, w = _hermite(nodes)
    x, xr = mu + sigma * z, mu - sigma * z
    fx, fr = f(x), f(xr)
    scores = {"loc": (z / sigma, -z / sigma), "log_scale": (z * z - 1.0, z * z - 1.0)}
    mean_f = float(w @ fx)
    out = {}
    for name, (s, sr) in scores.items():
        if pairs:
            h, u = 0.5 * (s + sr), 0.5 * (fx * s + fr * sr)
            size = 0.5 * (np.abs(fx * s) + np.abs(fr * sr))
        else:
            h, u = s, fx * s
            size = np.abs(u)
        if baseline == "optimal":
            den = float(w @ (h * h))
            b = float(w @ (u * h)) / den if den > 1e-300 else 0.0
        elif baseline in ("mean", "loo"):
            b = mean_f
        elif baseline == "none":
            b = 0.0
        else:
            b = float(baseline)
        out[name] = _raw(u - b * h, w, size + abs(b) * np.abs(h))
    return out


def _pathwise_terms(df: Callable, mu: float, sigma: float, nodes: int) -> dict:
    z, w = _hermite(nodes)
    d = df(mu + sigma * z)
    return {"loc": _raw(d, w, d), "log_scale": _raw(d * sigma * z, w, d * sigma * z)}


def _mvd_terms(f: Callable, mu: float, sigma: float, nodes: int) -> dict:
    z, wz = _hermite(nodes)
    # loc: t(W) = c (f(mu + sigma W) - f(mu - sigma W)) is odd in W (Rayleigh): odd
    # moments by E h(W) = sqrt(pi/2) E_z[z h(z)], even ones by Gauss-Laguerre in W^2/2
    c = 1.0 / (sigma * math.sqrt(2.0 * math.pi))
    t_z = c * (f(mu + sigma * z) - f(mu - sigma * z))
    odd = math.sqrt(math.pi / 2.0) * np.array([wz @ (z * t_z), wz @ (z * t_z**3)])
    e, we = _laguerre(min(150, 2 * nodes // 3))
    rw = np.sqrt(2.0 * e)
    f_plus, f_minus = f(mu + sigma * rw), f(mu - sigma * rw)
    t_w = c * (f_plus - f_minus)
    size_w = c * (np.abs(f_plus) + np.abs(f_minus))
    even = _raw(t_w, we, size_w)
    loc = np.array([odd[0], even[1], odd[1], even[3], even[4], even[5]])
    # log_scale: g(r, c) = f(mu + sigma sign(c) r) - f(mu + sigma r c), r chi-3, c uniform:
    # E g = E_z[z^2 (1/2) int g(z, c) dc]
    cs, wc = _legendre_halves(max(16, nodes // 4))
    r = z[:, None]
    f_maxwell, f_normal = f(mu + sigma * np.sign(cs)[None, :] * r), f(mu + sigma * r * cs[None, :])
    g = f_maxwell - f_normal
    size = np.abs(f_maxwell) + np.abs(f_normal)
    weight = wz * z * z
    g2, s2 = g * g, size * size
    log_scale = np.array([weight @ (g @ wc), weight @ (g2 @ wc), weight @ ((g2 * g) @ wc),
                          weight @ ((g2 * g2) @ wc), weight @ (s2 @ wc),
                          weight @ ((s2 * s2) @ wc)])
    return {"loc": loc, "log_scale": log_scale}


def normal_moments(builtin: Builtin, k: float, mu: float, sigma: float, estimator: str,
                   baseline, nodes: int) -> dict[str, np.ndarray]:
    """``{param: [E t, E t^2, E t^3, E t^4, E size^2, E size^4]}`` of one term ``t`` of
    ``estimator`` by quadrature with ``nodes`` points (``size``: ``t`` without
    cancellation)."""
    def f(x):
        return builtin.numpy_f(x, k)

    def df(x):
        return builtin.numpy_df(x, k)

    with np.errstate(all="ignore"):
        if estimator in ("score", "antithetic"):
            return _score_terms(f, mu, sigma, baseline, nodes, estimator == "antithetic")
        if estimator == "pathwise":
            return _pathwise_terms(df, mu, sigma, nodes)
        if estimator == "mvd":
            return _mvd_terms(f, mu, sigma, nodes)
    raise ValueError(f"estimator must be score, antithetic, pathwise or mvd, got {estimator!r}")


def _central(raw: np.ndarray) -> tuple[float, float, float, float]:
    """``(mean, variance, 4th central moment, E size^2, E size^4)`` from raw moments."""
    m1, m2, m3, m4, s2, s4 = (float(v) for v in raw)
    var = m2 - m1 * m1
    mu4 = m4 - 4.0 * m1 * m3 + 6.0 * m1 * m1 * m2 - 3.0 * m1**4
    return m1, var, mu4, s2, s4


def _normal_point(cell: Cell) -> tuple[float, float] | None:
    values = defaults_of("Normal")
    aliases = aliases_of("Normal")
    for name, value in cell.params:
        if isinstance(value, tuple):
            return None
        if name in aliases:
            target, transform, _ = aliases[name]
            values[target] = transform(value)
        else:
            values[name] = value
    return float(values["loc"]), math.exp(float(values["log_scale"]))


def _converged(levels, names) -> dict[str, tuple[float, float]]:
    """Per name, ``(variance, 4th central moment)`` at the first quadrature level that
    agrees with the next one (levels computed lazily); NaN where none does."""
    out: dict[str, list] = {name: [None, None] for name in names}
    coarse = next(levels)
    for fine in levels:
        for name in names:
            _, v1, q1, _, _ = _central(coarse[name])
            _, v2, q2, size2, size4 = _central(fine[name])
            if out[name][0] is None and math.isfinite(v2) and math.isfinite(size2) \
                    and abs(v1 - v2) <= _RTOL * size2:
                # within rounding of 0 is 0 (e.g. antithetic d/dloc at mu = k)
                out[name][0] = 0.0 if abs(v2) <= 1e-12 * size2 else max(v2, 0.0)
            if out[name][1] is None and math.isfinite(q2) and math.isfinite(size4) \
                    and abs(q1 - q2) <= 1e-7 * size4:
                out[name][1] = 0.0 if abs(q2) <= 1e-10 * size4 else max(q2, 0.0)
        if all(v is not None for pair in out.values() for v in pair):
            break
        coarse = fine
    return {name: tuple(math.nan if v is None else v for v in pair)
            for name, pair in out.items()}


@functools.lru_cache(maxsize=65536)
def _normal_exact(f: str, k: float, mu: float, sigma: float, estimator: str,
                  baseline) -> dict[str, tuple[float, float, float]]:
    builtin = BUILTINS[f]
    _, d_mu, d_log_sigma = builtin.normal_exact(mu, sigma, k)
    grads = {"loc": d_mu, "log_scale": d_log_sigma}
    levels = (normal_moments(builtin, k, mu, sigma, estimator, baseline, m) for m in _NODES)
    moments = _converged(levels, list(grads))
    return {name: (float(grad), *moments[name]) for name, grad in grads.items()}


@functools.lru_cache(maxsize=4096)
def _categorical_exact(f: str, k: float, logits: tuple, baseline) -> dict:
    lg = np.asarray(logits, np.float64)
    p = np.exp(lg - lg.max())
    p /= p.sum()
    K = p.size
    fx = BUILTINS[f].numpy_f(np.arange(K, dtype=np.float64), k)
    mean_f = float(p @ fx)
    out = {}
    for i in range(K):
        s = (np.arange(K) == i) - p[i]
        if baseline == "optimal":
            den = float(p @ (s * s))
            b = float(p @ (fx * s * s)) / den if den > 0 else 0.0
        elif baseline in ("mean", "loo"):
            b = mean_f
        elif baseline == "none":
            b = 0.0
        else:
            b = float(baseline)
        t = (fx - b) * s
        grad = float(p @ t)
        dev = t - grad
        out[f"logits[{i}]"] = (grad, max(float(p @ (dev * dev)), 0.0), float(p @ dev**4))
    return out


def exact_values(cell: Cell) -> dict[str, tuple[float, float, float]]:
    """``{wrt: (gradient, single-term variance, 4th central moment of a term)}``, exact,
    for the cell; ``{}`` where no exact value is known (``wrt`` as in the table).

    The 4th moment gives the standard error of a sample variance of ``n`` terms,
    ``sqrt((mu4 - var^2) / n)`` (the table's ``exact_var_se``)."""
    if cell.f not in BUILTINS or cell.k is None:
        return {}
    if cell.family == "Normal":
        point = _normal_point(cell)
        if point is None:
            return {}
        return _normal_exact(cell.f, float(cell.k), *point, cell.estimator, cell.baseline)
    if cell.family == "Categorical" and cell.estimator == "score":
        params = dict(cell.params)
        logits = params.get("logits")
        if isinstance(logits, tuple) and all(not isinstance(v, tuple) for v in logits):
            return _categorical_exact(cell.f, float(cell.k), logits, cell.baseline)
    return {}
