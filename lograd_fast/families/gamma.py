r"""Gamma distribution, parametrised by ``log_concentration`` and ``log_rate``.

.. math::

    \log p(x) = \alpha\log\beta + (\alpha - 1)\log x - \beta x - \log\Gamma(\alpha),
    \qquad \alpha = e^{\texttt{log\_concentration}},\ \beta = e^{\texttt{log\_rate}}

Support ``[0, inf)`` (``x = 0`` included: ``log p(0)`` is ``+inf`` for ``alpha < 1``,
``log beta`` for ``alpha == 1`` and ``-inf`` for ``alpha > 1``, never NaN).  Outside
the support (``x < 0``, ``x = +inf``) ``log_prob`` is ``-inf`` and ``score`` raises.

Log-density, accurate for every ``alpha`` (no cancellation of huge terms): with
``t = beta x`` and ``log t = log_rate + log x``,
``log p(x) = log_rate + L(t)``, ``L(t) = (alpha - 1) log t - t - lgamma(alpha)`` (the
Gamma(alpha, 1) log-density), taken literally for ``alpha < 17`` and, for
``alpha >= 17``, in Loader's saddle-point form ``L(t) = -log(2 pi k)/2 - stirlerr(k) -
bd0(k, t)`` with ``k = alpha - 1`` (the Poisson log-mass of ``k`` events at rate ``t``;
R's ``dgamma`` via ``dpois_raw``; ``stirlerr`` and ``bd0`` from ``poisson.py``).  The
literal form loses ~``eps alpha log alpha``: 0.07 at ``alpha = e**30``, all digits at
``e**40`` (issue 15, item 12).  The entropy is likewise computed at construction
with Stirling's series for ``alpha >= 10``:
``alpha + lgamma(alpha) + (1 - alpha) psi(alpha) = log(2 pi alpha)/2 + 1/2 - 1/(2 alpha)
+ c(alpha) + (alpha - 1) tail(alpha)`` (``c``: the Stirling remainder of ``lgamma``,
``tail``: that of ``psi``).

Scores (closed form, w.r.t. the unconstrained parameters):

* ``d/d log_concentration = alpha (log beta + log x - psi(alpha))``
* ``d/d log_rate          = alpha - beta x``

Entropy ``alpha - log beta + lgamma(alpha) + (1 - alpha) psi(alpha)``;
``KL(p||q) = (a_p - a_q) psi(a_p) - lgamma(a_p) + lgamma(a_q) + a_q (log b_p - log b_q)
+ a_p expm1(log b_q - log b_p)``, a sum of O(1) terms whose result is O(delta**2) for
``p ~ q``.  It is computed as

    KL = lgamma_bregman(a_p, da) + a_p expm1mx(-r) + da r,
    da = a_q - a_p = a_p expm1(log_concentration_q - log_concentration_p),
    r = log_rate_p - log_rate_q

(``maths.lgamma_bregman(x, d) = lgamma(x + d) - lgamma(x) - psi(x) d`` and
``expm1mx(x) = expm1(x) - x``, each to full relative accuracy): exactly 0 for
``p = q``, relative accuracy ~1e-14 for ``p ~ q`` (mpmath in the tests), and clamped
at 0 against a last-bit negative.
Mean ``alpha / beta``, variance ``alpha / beta**2``.

Sampling: ``x = G / beta`` with ``G ~ Gamma(alpha, 1)`` from
``_rng.std_gamma_log_from`` (Marsaglia & Tsang 2000; the first proposal's normal is the
atom's ``normal`` variate; the ``alpha < 1`` boost ``G(alpha + 1) U**(1/alpha)`` taken
in log space), computed as ``x = exp(log G - log beta)``.  For ``alpha`` ~ 1e-3 about
half of the draws are below the smallest float64 and round to ``x = 0``; the fused
``sample_and_score`` evaluates ``log_prob`` and the scores at the exact log-space draw
``log x = log G - log beta`` (finite), so they stay finite there, while
``log_prob(x)`` of the stored ``x = 0`` gives the ``x = 0`` values above, and
``score(x)`` there (``-inf``) is a ValueError naming the underflow.

References: Marsaglia & Tsang, "A simple method for generating gamma variables",
ACM TOMS 26(3), 2000; the Gamma KL e.g. in Penny, "KL-divergences of Normal, Gamma,
Dirichlet and Wishart densities" (2001).

Exactness (fused vs separate): ``sample_and_score`` is exact at the unrounded log-space
draw ``log x = log G - log beta``; ``score(x)`` / ``log_prob(x)`` at the stored,
rounded ``x``.  Where ``x`` underflowed to 0 (small ``alpha``) the two differ
completely: ``score(x)`` is then a ValueError naming the underflow (the score at 0 is
``-inf``), so use the fused scores.  Concentrations below ``1e-3`` are refused.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .._engine import maths as m
from .._engine import numpy as npb
from .._engine.dispatch import register
from .._engine.jit import jitable
from .._engine.rng import Variates, normal_variate, std_gamma_log_from
from ..distribution import Distribution, Family
from .normal import TAIL_S, check_draws_fit
from .poisson import _log_pmf_loader, bd0_np, log_pmf_loader


class GammaParams(NamedTuple):
    log_concentration: np.ndarray  # (B,) float32/64
    log_rate: np.ndarray  # (B,)
    concentration: np.ndarray  # (B,) float64, alpha = exp(log_concentration)
    rate: np.ndarray  # (B,) float64, beta = exp(log_rate)
    lgamma_concentration: np.ndarray  # (B,) float64, lgamma(alpha)
    digamma_concentration: np.ndarray  # (B,) float64, psi(alpha)
    entropy_std: np.ndarray  # (B,) float64, the entropy of Gamma(alpha, 1)


class GammaScores(NamedTuple):
    log_concentration: np.ndarray
    log_rate: np.ndarray


# --------------------------------------------------------------------------- formulas
# Array-friendly helpers: scalars in compiled code, whole arrays in the numpy backend.
@jitable
def _in_support(x):
    return (x >= 0.0) & (x < np.inf)


LOADER_MIN_ALPHA = 17.0  # Loader's form from k = alpha - 1 >= 16 (stirlerr's range)


@jitable
def _log_density_std(alpha, t, log_t, lgamma_alpha):
    """``L(t) = (alpha - 1) log t - t - lgamma(alpha)``, the log-density of Gamma(alpha, 1)
    at ``t >= 0`` (``log_t = log t``; ``0 * log 0 = 0`` at ``alpha = 1``)."""
    if alpha >= LOADER_MIN_ALPHA:
        return log_pmf_loader(alpha - 1.0, t, log_t)
    log_term = 0.0 if alpha == 1.0 else (alpha - 1.0) * log_t
    return log_term - t - lgamma_alpha


def _log_density_std_np(alpha, t, log_t, lgamma_alpha):
    """Vectorised :func:`_log_density_std` (float64 arrays of one shape)."""
    with np.errstate(invalid="ignore"):
        out = np.where(alpha == 1.0, 0.0, (alpha - 1.0) * log_t) - t - lgamma_alpha
    big = alpha >= LOADER_MIN_ALPHA
    if big.any():
        k = alpha[big] - 1.0
        out[big] = _log_pmf_loader(k, bd0_np(k, t[big], log_t[big]))
    return out


@jitable
def _score_log_concentration(log_rate_x, alpha, digamma_alpha):
    """``alpha (log(beta x) - psi(alpha))``."""
    return alpha * (log_rate_x - digamma_alpha)


@jitable
def _score_log_rate(rate_x, alpha):
    return alpha - rate_x


@jitable
def _entropy(entropy_std, log_rate):
    return entropy_std - log_rate


@jitable
def _kl(alpha_p, log_conc_p, log_rate_p, log_conc_q, log_rate_q):
    d_alpha = alpha_p * m.expm1(log_conc_q - log_conc_p)
    r = log_rate_p - log_rate_q
    return m.nonneg(m.lgamma_bregman(alpha_p, d_alpha) + alpha_p * m.expm1mx(-r)
                    + d_alpha * r)


# --------------------------------------------------------------------------- scalar maths
@jitable
def _draw(p, b, st, x, i):
    """Draw atom ``i`` into ``x``; return ``log G`` (G ~ Gamma(alpha, 1), x = G / beta)."""
    log_g, _ = std_gamma_log_from(x, st, normal_variate(x, st, 1, 0), 1, p.concentration[b])
    x[i] = m.exp(log_g - np.float64(p.log_rate[b]))
    return log_g


class scalar:
    """Per-atom entry points (see ``_engine/dispatch.py``) compiled for CPU and CUDA."""

    variates = Variates("normal")  # the first Marsaglia-Tsang proposal's normal

    @staticmethod
    @jitable
    def sample1(p, b, st, x, i):
        _draw(p, b, st, x, i)

    @staticmethod
    @jitable
    def log_prob1(p, b, x, i):
        xv = np.float64(x[i])
        if not _in_support(xv):
            return -np.inf
        log_rate = np.float64(p.log_rate[b])
        return log_rate + _log_density_std(p.concentration[b], p.rate[b] * xv,
                                           log_rate + m.log(xv), p.lgamma_concentration[b])

    @staticmethod
    @jitable
    def score1(p, b, x, i, s):
        xv = np.float64(x[i])
        alpha = p.concentration[b]
        s.log_concentration[i] = _score_log_concentration(
            np.float64(p.log_rate[b]) + m.log(xv), alpha, p.digamma_concentration[b])
        s.log_rate[i] = _score_log_rate(p.rate[b] * xv, alpha)

    @staticmethod
    @jitable
    def sample_score1(p, b, st, x, i, s):
        log_g = _draw(p, b, st, x, i)
        alpha = p.concentration[b]
        g = m.exp(log_g)  # beta x, unrounded (0 where it underflows: the limit)
        log_rate = np.float64(p.log_rate[b])
        s.log_concentration[i] = _score_log_concentration(log_g, alpha,
                                                          p.digamma_concentration[b])
        s.log_rate[i] = _score_log_rate(g, alpha)
        return log_rate + _log_density_std(alpha, g, log_g, p.lgamma_concentration[b])

    @staticmethod
    @jitable
    def entropy1(p, b):
        return _entropy(p.entropy_std[b], np.float64(p.log_rate[b]))

    @staticmethod
    @jitable
    def kl1(p, q, b):
        return _kl(p.concentration[b], np.float64(p.log_concentration[b]),
                   np.float64(p.log_rate[b]), np.float64(q.log_concentration[b]),
                   np.float64(q.log_rate[b]))


# --------------------------------------------------------------------------- numpy baseline
class vectorised:
    """The same maths on whole arrays (``backend="numpy"``)."""

    @staticmethod
    def _draw(p, key, n_atoms, B, dtype):
        atoms, b = npb.atoms_and_batch(n_atoms, B)
        z0 = npb.variates("normal", dtype, key, n_atoms)[:, 0]
        log_g, _ = npb.std_gamma_log_from(dtype, npb.streams(key, atoms), z0, 1,
                                          p.concentration[b])
        with np.errstate(over="ignore", under="ignore"):
            x = np.exp(log_g - p.log_rate[b].astype(np.float64)).astype(dtype)
        return b, log_g, x

    @staticmethod
    def sample(p, key, n_atoms, B, dtype):
        return vectorised._draw(p, key, n_atoms, B, dtype)[2]

    @staticmethod
    def log_prob(p, x, B):
        b = np.arange(x.shape[0]) % B
        x = x.astype(np.float64)
        inside = _in_support(x)
        x = np.where(inside, x, 1.0)
        log_rate = p.log_rate[b].astype(np.float64)
        with np.errstate(divide="ignore", over="ignore"):
            lp = log_rate + _log_density_std_np(p.concentration[b], p.rate[b] * x,
                                                log_rate + np.log(x),
                                                p.lgamma_concentration[b])
        return np.where(inside, lp, -np.inf)

    @staticmethod
    def score(p, x, B):
        b = np.arange(x.shape[0]) % B
        x = x.astype(np.float64)
        alpha = p.concentration[b]
        with np.errstate(invalid="ignore", divide="ignore"):
            s_conc = _score_log_concentration(p.log_rate[b].astype(np.float64) + np.log(x),
                                              alpha, p.digamma_concentration[b])
        return {"log_concentration": s_conc,
                "log_rate": _score_log_rate(p.rate[b] * x, alpha)}

    @staticmethod
    def sample_score(p, key, n_atoms, B, dtype):
        b, log_g, x = vectorised._draw(p, key, n_atoms, B, dtype)
        alpha = p.concentration[b]
        log_rate = p.log_rate[b].astype(np.float64)
        with np.errstate(under="ignore"):
            g = np.exp(log_g)
        lp = log_rate + _log_density_std_np(alpha, g, log_g, p.lgamma_concentration[b])
        return x, lp, {
            "log_concentration": _score_log_concentration(log_g, alpha,
                                                          p.digamma_concentration[b]),
            "log_rate": _score_log_rate(g, alpha)}

    @staticmethod
    def entropy(p):
        return _entropy(p.entropy_std, p.log_rate.astype(np.float64))

    @staticmethod
    def kl(p, q):
        f = np.float64
        return _kl(p.concentration, p.log_concentration.astype(f), p.log_rate.astype(f),
                   q.log_concentration.astype(f), q.log_rate.astype(f))


# Stirling series of lgamma(x) - ((x - 1/2) log x - x + log(2 pi) / 2): B_2k / (2k (2k - 1))
_STIRLING = (1 / 12, -1 / 360, 1 / 1260, -1 / 1680, 1 / 1188, -691 / 360360, 1 / 156)
HALF_LOG_2PI = 0.9189385332046727


def lgamma_correction(x: np.ndarray) -> np.ndarray:
    """``lgamma(x) - ((x - 1/2) log x - x + log(2 pi)/2)`` for ``x >= 10`` (numpy).

    The Stirling series to ``x**-13``: absolute error below 1e-17 for ``x >= 10``.
    Used at construction to take differences of ``lgamma`` at large arguments
    without cancellation (log Beta, the Student-t normaliser).
    """
    x = np.asarray(x, np.float64)
    r2 = 1.0 / (x * x)
    acc = np.zeros_like(x)
    for c in reversed(_STIRLING):
        acc = acc * r2 + c
    return acc / x


# psi(x) = log x - 1/(2x) - sum_k B_2k / (2k x^2k): the coefficients B_2k / (2k)
_DIGAMMA_SERIES = (1 / 12, -1 / 120, 1 / 252, -1 / 240, 1 / 132, -691 / 32760, 1 / 12)


def digamma_tail(x: np.ndarray) -> np.ndarray:
    """``log x - 1/(2x) - psi(x)`` for ``x >= 10`` (numpy): the asymptotic series."""
    x = np.asarray(x, np.float64)
    r2 = 1.0 / (x * x)
    acc = np.zeros_like(x)
    for c in reversed(_DIGAMMA_SERIES):
        acc = acc * r2 + c
    return acc * r2


def entropy_std(alpha: np.ndarray) -> np.ndarray:
    """The entropy ``alpha + lgamma(alpha) + (1 - alpha) psi(alpha)`` of Gamma(alpha, 1)
    (numpy, float64); Stirling's series from ``alpha >= 10``, where the literal form
    cancels terms of size ``alpha log alpha``."""
    alpha = np.asarray(alpha, np.float64)
    small = np.minimum(alpha, 10.0)
    literal = (small + np.asarray(m.lgamma(small), np.float64)
               + (1.0 - small) * np.asarray(m.digamma(small), np.float64))
    big = np.maximum(alpha, 10.0)
    series = (0.5 * np.log(2.0 * np.pi * big) + 0.5 - 0.5 / big + lgamma_correction(big)
              + (big - 1.0) * digamma_tail(big))
    return np.where(alpha >= 10.0, series, literal)


#: the smallest concentration (Gamma, Beta, Dirichlet) the sampler supports: below it
#: ``log(U) / alpha`` of the log-space boost leaves float64's range
MIN_CONCENTRATION = 1e-3
_LOG_MIN_CONCENTRATION = math.log(MIN_CONCENTRATION)


def check_concentration(log_value: np.ndarray, name: str) -> None:
    """ValueError naming ``name`` where ``exp(log_value) < MIN_CONCENTRATION`` (beyond the
    float32 rounding of ``log(1e-3)``: ``np.float32(np.log(1e-3))`` is accepted)."""
    bad = ~(log_value >= _LOG_MIN_CONCENTRATION - 1e-6)
    if bad.any():
        raise ValueError(f"{name} out of range: concentrations below {MIN_CONCENTRATION} "
                         f"(log {_LOG_MIN_CONCENTRATION:.4f}) are not supported, got "
                         f"{float(log_value[bad].ravel()[0])}")


def boundary_score_error(family: str, where: str) -> ValueError:
    """The error of ``score(x)`` at a boundary point, where the score is infinite."""
    return ValueError(
        f"x has entries equal to {where}, where the {family} score is -inf.  Draws land "
        f"there when they are closer to {where} than the dtype can represent (they "
        "underflowed: common at small concentrations, e.g. 47% of the float64 draws of "
        "Gamma(concentration=1e-3) are 0.0).  Use the scores of sample_and_score, "
        "computed at the exact log-space draw, e.g. with lf.batched_score_function")


def checked_exp(log_value: np.ndarray, name: str, factor: float = 1.0) -> np.ndarray:
    """``exp(factor * log_value)`` (numpy, float64); ValueError naming ``name`` if it
    over- or underflows (``log_value`` is the user's parameter ``name``)."""
    with np.errstate(over="ignore", under="ignore"):
        value = np.exp(factor * log_value)
    bad = ~((value > 0.0) & np.isfinite(value))
    if bad.any():
        raise ValueError(f"{name} out of range: exp({name}) over- or underflows "
                         f"(e.g. {log_value[bad].ravel()[0]})")
    return value


def _prepare(flat: dict) -> dict:
    check_concentration(flat["log_concentration"], "log_concentration")
    alpha = checked_exp(flat["log_concentration"].astype(np.float64), "log_concentration")
    rate = checked_exp(flat["log_rate"].astype(np.float64), "log_rate")
    lgamma_alpha = np.asarray(m.lgamma(alpha), np.float64)
    digamma_alpha = np.asarray(m.digamma(alpha), np.float64)
    bad = ~(np.isfinite(lgamma_alpha) & np.isfinite(digamma_alpha))
    if bad.any():
        raise ValueError("log_concentration out of range: lgamma/digamma of the "
                         f"concentration overflow (e.g. {np.log(alpha[bad].ravel()[0])})")
    # G ~ Gamma(alpha, 1) is sub-gamma: P(G > alpha + sqrt(2 alpha s) + s) <= e**-s
    g_tail = alpha + np.sqrt(2.0 * TAIL_S * alpha) + TAIL_S
    dtype = flat["log_rate"].dtype
    log_rate = flat["log_rate"].astype(np.float64)
    check_draws_fit(np.log(g_tail) - log_rate, float(np.log(np.finfo(dtype).max)),
                    "log_concentration/log_rate",
                    f"log of the draws G / rate would overflow {dtype.name}")
    return {"concentration": alpha, "rate": rate, "lgamma_concentration": lgamma_alpha,
            "digamma_concentration": digamma_alpha, "entropy_std": entropy_std(alpha)}


FAMILY = Family(
    name="Gamma",
    params_cls=GammaParams,
    scores_cls=GammaScores,
    param_names=("log_concentration", "log_rate"),
    param_event_ndims=(0, 0),
    prepare=_prepare,
    numpy_ops=vectorised,
)
register(GammaParams, scalar)


class Gamma(Distribution):
    """Gamma distribution with shape ``exp(log_concentration)`` and rate ``exp(log_rate)``.

    Parameters
    ----------
    log_concentration, log_rate : array_like (float32 or float64; ints promote to float64)
        Broadcast together to ``full_shape``.  Scores are w.r.t. these.
    event_ndims : int
        Number of trailing dims of ``full_shape`` treated as one event (independent
        Gammas): log-probs and entropies sum over them.
    backend : {"cpu", "cuda", "numpy"}

    Closed-form scores: ``d/dlog_concentration = alpha (log(rate x) - digamma(alpha))``
    and ``d/dlog_rate = alpha - rate x``.  ``log_prob`` is ``-inf`` outside ``[0, inf)``;
    ``score`` raises ``ValueError`` there.
    """

    family = FAMILY

    def __init__(self, log_concentration, log_rate, event_ndims: int = 0, *,
                 backend: str = "cpu"):
        self._setup({"log_concentration": log_concentration, "log_rate": log_rate},
                    event_ndims=event_ndims, backend=backend)

    def _check_score_support(self, x: np.ndarray) -> None:
        if not np.all(_in_support(x)):
            raise ValueError("x has values outside the support [0, inf) of the Gamma: "
                             "their log_prob is -inf and the score is undefined")
        if (x == 0.0).any():
            raise boundary_score_error("Gamma", "0")

    @property
    def concentration(self) -> np.ndarray:
        """``exp(log_concentration)`` broadcast, in the distribution's dtype."""
        return self._record.concentration.reshape(self.full_shape).astype(self.dtype)

    @property
    def rate(self) -> np.ndarray:
        """``exp(log_rate)`` broadcast, in the distribution's dtype."""
        return self._record.rate.reshape(self.full_shape).astype(self.dtype)

    @property
    def mean(self) -> np.ndarray:
        """``alpha / beta`` (as ``exp(log_concentration - log_rate)``), ``full_shape``."""
        r = self._record
        log_mean = r.log_concentration.astype(np.float64) - r.log_rate.astype(np.float64)
        return np.exp(log_mean).reshape(self.full_shape).astype(self.dtype)

    @property
    def variance(self) -> np.ndarray:
        """``alpha / beta**2``, ``full_shape``."""
        r = self._record
        log_var = r.log_concentration.astype(np.float64) - 2.0 * r.log_rate.astype(np.float64)
        return np.exp(log_var).reshape(self.full_shape).astype(self.dtype)
