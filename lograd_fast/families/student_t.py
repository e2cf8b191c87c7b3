r"""Student's t distribution, parametrised by ``loc``, ``log_scale`` and ``log_df``.

.. math::

    \log p(x) = \log\Gamma(\tfrac{\nu+1}{2}) - \log\Gamma(\tfrac{\nu}{2})
      - \tfrac12\log(\nu\pi) - \log\sigma - \tfrac{\nu+1}{2}\log(1 + a^2),
    \qquad a = \frac{x - \mu}{\sigma\sqrt\nu}

with ``sigma = exp(log_scale)``, ``nu = exp(log_df)``.  Support: the real line
(``x = +-inf`` is allowed: ``log_prob`` is ``-inf`` there).  Everything ``x``-dependent
is written in terms of ``l = log(a**2)``: ``log(1 + a**2) = softplus(l)`` and
``w = a**2 / (1 + a**2) = 1 / (1 + exp(-l))``, which stay finite where ``a**2``
overflows (heavy tails at small ``nu`` reach ``|a| > 1e154``).

Scores (closed form, w.r.t. the unconstrained parameters), ``D = psi((nu+1)/2) - psi(nu/2)``:

* ``d/d loc       = (nu + 1) / (sigma sqrt(nu)) * a / (1 + a**2)``
* ``d/d log_scale = (nu + 1) w - 1``
* ``d/d log_df    = ((nu D - 1) - nu log(1 + a**2) + (nu + 1) w) / 2``

Entropy ``-log_norm + (nu + 1) D / 2`` where ``log_norm`` is ``log p`` at ``a = 0``.
The ``nu``-only terms (``lgamma((nu+1)/2) - lgamma(nu/2)``, ``D`` and ``nu D - 1``) are
computed once per parameter set, by asymptotic series for ``nu >= 20`` so they do not
cancel at large ``nu`` (the t then tends to the normal).  KL between two t's has no
closed form: :meth:`StudentT.kl` raises ``NotImplementedError`` and the kernel entry
point ``kl1`` returns NaN (it exists only so that every family provides every entry
point).  Mean ``loc`` for ``nu > 1`` (NaN otherwise); variance
``sigma**2 nu / (nu - 2)`` for ``nu > 2``, ``inf`` for ``1 < nu <= 2``, NaN otherwise.

Sampling: ``t = z / sqrt(chi2 / nu)`` with ``z`` the atom's first ``normal`` variate and
``chi2 = 2 G``, ``G ~ Gamma(nu / 2)`` (first proposal: the second ``normal`` variate;
then the atom's blocks, ``_rng.std_gamma_log_from``), i.e. ``a = z / sqrt(2 G)`` computed as
``log|a| = log|z| - (log 2 + log G) / 2``; ``x = loc + sigma sqrt(nu) a`` (``+-inf`` if
it overflows).  The fused ``sample_and_score`` evaluates ``log_prob`` and the scores at
the exact ``log|a|``.  Symmetric: ``reflect1`` gives the antithetic ``2 loc - x``.

References: Johnson, Kotz & Balakrishnan, "Continuous Univariate Distributions" vol. 2,
ch. 28 (density, entropy); Abramowitz & Stegun 6.1.40-41, 6.3.18 (Stirling and
digamma series).

Exactness (fused vs separate): ``sample_and_score`` is exact at the unrounded draw
(from ``a`` and ``log a**2``); ``score(x)`` / ``log_prob(x)`` at the stored, rounded
``x``.  They differ by the rounding of ``x`` relative to ``scale sqrt(df)``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._engine import maths as m
from .._engine import numpy as npb
from .._engine.dispatch import register
from .._engine.jit import jitable
from .._engine.rng import Variates, normal_variate, std_gamma_log_from
from ..distribution import Distribution, Family
from .gamma import checked_exp, digamma_tail, lgamma_correction
from .normal import TAIL_S, Z_TAIL, check_draws_fit

LOG_2 = 0.6931471805599453
HALF_LOG_PI = 0.5723649429247001


class StudentTParams(NamedTuple):
    loc: np.ndarray  # (B,) float32/64
    log_scale: np.ndarray  # (B,)
    log_df: np.ndarray  # (B,)
    df: np.ndarray  # (B,) float64, nu = exp(log_df)
    half_df: np.ndarray  # (B,) float64, nu / 2 (the Gamma shape of the sampler)
    scale_root_df: np.ndarray  # (B,) float64, sigma sqrt(nu)
    inv_scale_root_df: np.ndarray  # (B,) float64, 1 / (sigma sqrt(nu))
    log_norm: np.ndarray  # (B,) float64, log p at x = loc
    digamma_diff: np.ndarray  # (B,) float64, D = psi((nu+1)/2) - psi(nu/2)
    df_score_const: np.ndarray  # (B,) float64, nu D - 1


class StudentTScores(NamedTuple):
    loc: np.ndarray
    log_scale: np.ndarray
    log_df: np.ndarray


# --------------------------------------------------------------------------- formulas
# Array-friendly helpers: scalars in compiled code, whole arrays in the numpy backend.
# ``a`` is the standardised point (x - loc) / (sigma sqrt(nu)), ``log_a2 = log(a**2)``
# and ``sp = softplus(log_a2) = log(1 + a**2)``.
@jitable
def _log_prob(sp, df, log_norm):
    return log_norm - 0.5 * (df + 1.0) * sp


@jitable
def _score_loc(a, df, inv_scale_root_df):
    # a / (1 + a^2) = 1 / (a + 1/a): 0 at a = 0 and at |a| = inf, no overflow between
    return (df + 1.0) * inv_scale_root_df / (a + 1.0 / a)


@jitable
def _weight(log_a2):
    """``a**2 / (1 + a**2)``."""
    return 1.0 / (1.0 + m.exp(-log_a2))


@jitable
def _score_log_scale(w, df):
    return (df + 1.0) * w - 1.0


@jitable
def _score_log_df(sp, w, df, df_score_const):
    return 0.5 * (df_score_const - df * sp + (df + 1.0) * w)


@jitable
def _entropy(df, log_norm, digamma_diff):
    return 0.5 * (df + 1.0) * digamma_diff - log_norm


@jitable
def _log_a2(a):
    return 2.0 * m.log(abs(a))


# --------------------------------------------------------------------------- scalar maths
@jitable
def _draw(p, b, st, x, i):
    """Draw atom ``i`` into ``x``; return ``(a, log a**2)`` unrounded."""
    z32 = normal_variate(x, st, 2, 0)
    z = np.float64(z32)
    log_g, _ = std_gamma_log_from(x, st, normal_variate(x, st, 2, 1), 1, p.half_df[b])
    log_abs_a = m.log(abs(z)) - 0.5 * (LOG_2 + log_g)
    a_abs = m.exp(log_abs_a)
    a = -a_abs if z < 0.0 else a_abs
    x[i] = p.loc[b] + p.scale_root_df[b] * a
    return a, 2.0 * log_abs_a


@jitable
def _write_scores(p, b, a, log_a2, i, s):
    """Write the three scores at ``a``; return ``log p``."""
    df = p.df[b]
    sp = m.softplus(log_a2)
    w = _weight(log_a2)
    s.loc[i] = _score_loc(a, df, p.inv_scale_root_df[b])
    s.log_scale[i] = _score_log_scale(w, df)
    s.log_df[i] = _score_log_df(sp, w, df, p.df_score_const[b])
    return _log_prob(sp, df, p.log_norm[b])


class scalar:
    """Per-atom entry points (see ``_engine/dispatch.py``) compiled for CPU and CUDA."""

    variates = Variates("normal", 2)  # z, and the first proposal's normal of the Gamma

    @staticmethod
    @jitable
    def sample1(p, b, st, x, i):
        _draw(p, b, st, x, i)

    @staticmethod
    @jitable
    def log_prob1(p, b, x, i):
        a = (np.float64(x[i]) - np.float64(p.loc[b])) * p.inv_scale_root_df[b]
        return _log_prob(m.softplus(_log_a2(a)), p.df[b], p.log_norm[b])

    @staticmethod
    @jitable
    def score1(p, b, x, i, s):
        a = (np.float64(x[i]) - np.float64(p.loc[b])) * p.inv_scale_root_df[b]
        _write_scores(p, b, a, _log_a2(a), i, s)

    @staticmethod
    @jitable
    def sample_score1(p, b, st, x, i, s):
        a, log_a2 = _draw(p, b, st, x, i)
        return _write_scores(p, b, a, log_a2, i, s)

    @staticmethod
    @jitable
    def entropy1(p, b):
        return _entropy(p.df[b], p.log_norm[b], p.digamma_diff[b])

    @staticmethod
    @jitable
    def kl1(p, q, b):
        # no closed form: StudentT.kl raises before any kernel runs
        return np.nan

    @staticmethod
    @jitable
    def reflect1(p, b, x, i):
        x[i] = 2.0 * np.float64(p.loc[b]) - np.float64(x[i])


# --------------------------------------------------------------------------- numpy baseline
class vectorised:
    """The same maths on whole arrays (``backend="numpy"``)."""

    @staticmethod
    def _draw(p, key, n_atoms, B, dtype):
        atoms, b = npb.atoms_and_batch(n_atoms, B)
        st = npb.streams(key, atoms)
        z2 = npb.variates("normal", dtype, key, n_atoms, 2)
        z = z2[:, 0].astype(np.float64)
        log_g, _ = npb.std_gamma_log_from(dtype, st, z2[:, 1], 1, p.half_df[b])
        with np.errstate(divide="ignore", over="ignore"):
            log_abs_a = np.log(np.abs(z)) - 0.5 * (LOG_2 + log_g)
            a_abs = np.exp(log_abs_a)
            a = np.where(z < 0.0, -a_abs, a_abs)
            x = (p.loc[b] + p.scale_root_df[b] * a).astype(dtype)
        return b, x, a, 2.0 * log_abs_a

    @staticmethod
    def _scores(p, b, a, log_a2):
        df = p.df[b]
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            sp = m.softplus(log_a2)
            w = _weight(log_a2)
            s = {"loc": _score_loc(a, df, p.inv_scale_root_df[b]),
                 "log_scale": _score_log_scale(w, df),
                 "log_df": _score_log_df(sp, w, df, p.df_score_const[b])}
        return _log_prob(sp, df, p.log_norm[b]), s

    @staticmethod
    def _a(p, x, B):
        b = np.arange(x.shape[0]) % B
        with np.errstate(over="ignore", invalid="ignore"):
            a = (x.astype(np.float64) - p.loc[b].astype(np.float64)) * p.inv_scale_root_df[b]
        with np.errstate(divide="ignore"):
            return b, a, _log_a2(a)

    @staticmethod
    def sample(p, key, n_atoms, B, dtype):
        return vectorised._draw(p, key, n_atoms, B, dtype)[1]

    @staticmethod
    def log_prob(p, x, B):
        b, _, log_a2 = vectorised._a(p, x, B)
        return _log_prob(m.softplus(log_a2), p.df[b], p.log_norm[b])

    @staticmethod
    def score(p, x, B):
        b, a, log_a2 = vectorised._a(p, x, B)
        return vectorised._scores(p, b, a, log_a2)[1]

    @staticmethod
    def sample_score(p, key, n_atoms, B, dtype):
        b, x, a, log_a2 = vectorised._draw(p, key, n_atoms, B, dtype)
        lp, s = vectorised._scores(p, b, a, log_a2)
        return x, lp, s

    @staticmethod
    def entropy(p):
        return _entropy(p.df, p.log_norm, p.digamma_diff)

    @staticmethod
    def kl(p, q):
        return np.full(p.df.shape, np.nan)


# --------------------------------------------------------------------------- construction
_SERIES_FROM = 10.0  # nu / 2 from which the asymptotic series are used


def _half_lgamma_ratio(z: np.ndarray) -> np.ndarray:
    """``lgamma(z + 1/2) - lgamma(z)`` (numpy).  For ``z >= 10`` by Stirling:
    ``log(z)/2 + (z log1p(1/(2z)) - 1/2) + c(z + 1/2) - c(z)`` (abs. error ~1e-16)."""
    big = np.maximum(z, _SERIES_FROM)
    series = (0.5 * np.log(big) + (big * np.log1p(0.5 / big) - 0.5)
              + (lgamma_correction(big + 0.5) - lgamma_correction(big)))
    small = np.minimum(z, _SERIES_FROM)
    direct = np.asarray(m.lgamma(small + 0.5), np.float64) - np.asarray(m.lgamma(small),
                                                                        np.float64)
    return np.where(z >= _SERIES_FROM, series, direct)


def _half_digamma_diff(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``D = psi(z + 1/2) - psi(z)`` and ``2 z D - 1`` (numpy), the latter without the
    cancellation of ``2 z D ~ 1`` at large ``z`` (series in ``h = 1/(2z)``)."""
    big = np.maximum(z, _SERIES_FROM)
    h = 0.5 / big
    tail = digamma_tail(big + 0.5) - digamma_tail(big)
    # 2z log1p(h) - 1 = sum_{j>=1} (-h)^j / (j + 1), h <= 0.05: 24 terms reach 1e-33
    log1p_ratio = np.zeros_like(h)
    for j in range(24, 0, -1):
        log1p_ratio = (1.0 / (j + 1) + log1p_ratio) * -h
    # D = log1p(h) - 1/(2z + 1) + h - tail, so 2zD - 1 = (2z log1p(h) - 1) + h/(1 + h) - 2z tail
    series_d = np.log1p(h) - 1.0 / (2.0 * big + 1.0) + h - tail
    series_c = log1p_ratio + h / (1.0 + h) - 2.0 * big * tail
    small = np.minimum(z, _SERIES_FROM)
    direct_d = (np.asarray(m.digamma(small + 0.5), np.float64)
                - np.asarray(m.digamma(small), np.float64))
    direct_c = 2.0 * small * direct_d - 1.0
    use = z >= _SERIES_FROM
    return np.where(use, series_d, direct_d), np.where(use, series_c, direct_c)


def _prepare(flat: dict) -> dict:
    log_scale = flat["log_scale"].astype(np.float64)
    log_df = flat["log_df"].astype(np.float64)
    for name, value in (("log_scale", log_scale), ("log_df", log_df)):
        checked_exp(value, name)  # the parameter and its inverse are representable
        checked_exp(value, name, -1.0)
    df = np.exp(log_df)
    half_log_df = 0.5 * log_df
    scale_root_df = checked_exp(log_scale + half_log_df, "log_scale")
    inv_scale_root_df = checked_exp(log_scale + half_log_df, "log_scale", -1.0)
    half_df = 0.5 * df
    digamma_diff, df_score_const = _half_digamma_diff(half_df)
    log_norm = _half_lgamma_ratio(half_df) - HALF_LOG_PI - half_log_df - log_scale
    if not (np.all(np.isfinite(log_norm)) and np.all(np.isfinite(df_score_const))):
        raise ValueError("log_df out of range: the Student-t normaliser overflows")
    # |a| = |z| / sqrt(2 G) > A needs |z| > Z_TAIL (probability 2**-64) or G < y, whose
    # probability is at most y**h / Gamma(h + 1) (h = nu/2): 2**-64 at the y below
    log_y = (np.asarray(m.lgamma(half_df + 1.0), np.float64) - TAIL_S) / half_df
    log_a_tail = np.log(Z_TAIL) - 0.5 * (LOG_2 + log_y)
    dtype = flat["loc"].dtype
    with np.errstate(over="ignore"):
        extent = (np.abs(flat["loc"].astype(np.float64))
                  + np.exp(np.log(scale_root_df) + log_a_tail))
    check_draws_fit(extent, float(np.finfo(dtype).max), "log_df/log_scale/loc",
                    f"draws loc + scale sqrt(df) z / sqrt(chi2) would overflow {dtype.name} "
                    "(heavy tails)")
    return {"df": df, "half_df": half_df, "scale_root_df": scale_root_df,
            "inv_scale_root_df": inv_scale_root_df, "log_norm": log_norm,
            "digamma_diff": digamma_diff, "df_score_const": df_score_const}


FAMILY = Family(
    name="StudentT",
    params_cls=StudentTParams,
    scores_cls=StudentTScores,
    param_names=("loc", "log_scale", "log_df"),
    param_event_ndims=(0, 0, 0),
    prepare=_prepare,
    numpy_ops=vectorised,
    reflect_odd=("loc",),  # the score of loc flips sign under reflect1; the others' do not
)
register(StudentTParams, scalar)


class StudentT(Distribution):
    """Student's t with location ``loc``, scale ``exp(log_scale)``, ``exp(log_df)`` dof.

    Parameters
    ----------
    loc, log_scale, log_df : array_like (float32 or float64; ints promote to float64)
        Broadcast together to ``full_shape``.  Scores are w.r.t. these.
    event_ndims : int
        Number of trailing dims of ``full_shape`` treated as one event (independent
        t's): log-probs and entropies sum over them.
    backend : {"cpu", "cuda", "numpy"}

    Closed-form scores, with ``a = (x - loc) / (scale sqrt(df))`` and
    ``w = a**2 / (1 + a**2)``: ``d/dloc = (df + 1) a / ((1 + a**2) scale sqrt(df))``,
    ``d/dlog_scale = (df + 1) w - 1`` and
    ``d/dlog_df = (df (digamma((df+1)/2) - digamma(df/2)) - 1 - df log(1 + a**2)
    + (df + 1) w) / 2``.  :meth:`kl` raises ``NotImplementedError`` (no closed form).
    """

    family = FAMILY

    def __init__(self, loc, log_scale, log_df, event_ndims: int = 0, *, backend: str = "cpu"):
        self._setup({"loc": loc, "log_scale": log_scale, "log_df": log_df},
                    event_ndims=event_ndims, backend=backend)

    def kl(self, other: Distribution) -> np.ndarray:
        """Not available: the KL divergence between two Student t's has no closed form."""
        raise NotImplementedError(
            "StudentT.kl: the KL divergence between two Student t distributions has no "
            "closed form; estimate it by Monte Carlo, e.g. "
            "(p.log_prob(x) - q.log_prob(x)).mean(0) with x = p.sample(n)")

    @property
    def df(self) -> np.ndarray:
        """``exp(log_df)`` broadcast, in the distribution's dtype."""
        return self._record.df.reshape(self.full_shape).astype(self.dtype)

    @property
    def scale(self) -> np.ndarray:
        """``exp(log_scale)`` broadcast, in the distribution's dtype."""
        r = self._record
        return np.exp(r.log_scale.astype(np.float64)).reshape(self.full_shape).astype(
            self.dtype)

    @property
    def mean(self) -> np.ndarray:
        """``loc`` where ``df > 1``, NaN (undefined) elsewhere; ``full_shape``."""
        r = self._record
        mean = np.where(r.df > 1.0, r.loc.astype(np.float64), np.nan)
        return mean.reshape(self.full_shape).astype(self.dtype)

    @property
    def variance(self) -> np.ndarray:
        """``scale**2 df / (df - 2)`` for ``df > 2``, ``inf`` for ``1 < df <= 2``, NaN else."""
        r = self._record
        df = r.df
        scale2 = np.exp(2.0 * r.log_scale.astype(np.float64))
        with np.errstate(divide="ignore", invalid="ignore"):
            var = np.where(df > 2.0, scale2 * df / (df - 2.0),
                           np.where(df > 1.0, np.inf, np.nan))
        return var.reshape(self.full_shape).astype(self.dtype)
