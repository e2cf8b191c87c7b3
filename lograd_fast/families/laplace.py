r"""Laplace (double-exponential) distribution, parametrised by ``loc`` and ``log_scale``.

.. math::

    \log p(x) = -\frac{|x - \mu|}{b} - \log b - \log 2,
    \qquad b = e^{\texttt{log\_scale}}

Support: the real line.

Scores (closed form, w.r.t. the unconstrained parameters):

* ``d/d loc       = sign(x - mu) / b``, **0 at x = mu**: ``log p`` has a kink
  there and we return the midpoint of the subdifferential ``[-1/b, 1/b]``
  (a sample hits ``x = mu`` with probability 0, so the estimator is unaffected)
* ``d/d log_scale = |x - mu| / b - 1``

Entropy ``1 + log 2 + log_scale``.  KL (closed form, e.g. Gil, Alajaji & Linder
2013, "Rényi divergence measures for commonly used univariate continuous
distributions")::

    KL(p||q) = log(b_q/b_p) + |mu_p - mu_q|/b_q + (b_p/b_q) exp(-|mu_p - mu_q|/b_p) - 1
             = expm1(d - delta/b_p) - d + delta/b_q,   d = log_scale_p - log_scale_q,
                                                       delta = |mu_p - mu_q|
             = expm1mx(e) - (delta/b_q) expm1(-d),     e = d - delta/b_p

(``expm1mx(e) = expm1(e) - e``, ``maths.expm1mx``; using ``1/b_p = e^{-d}/b_q``: exactly 0
for ``p = q`` and accurate for ``p ~ q``, where the first form cancels).  Mean ``mu``.

Sampling: inversion of one ``uniform`` variate ``u`` (``_engine/rng.py``):
``t = 2u - 1``, ``x = mu + b sign(t) E`` with ``E = -log(1 - |t|)`` (our own ``log``;
``t`` and ``1 - |t|`` are exact).  The set of uniforms is symmetric about 1/2 and
never hits it, so the draw is exactly symmetric about ``mu`` and never equals it.
Antithetic partner (``reflect1``): ``2 mu - x``.  Pathwise (``reparam1``):
``dx/dloc = 1``, ``dx/dlog_scale = x - mu = b s E``.

Exactness (fused vs separate): ``sample_and_score`` is exact at the unrounded draw
(from the standardised ``l``: exact sign and distance); ``score(x)`` / ``log_prob(x)``
at the stored, rounded ``x`` (a draw that rounds onto ``loc`` gets the kink's 0).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._engine import maths as m
from .._engine import numpy as npb
from .._engine.dispatch import register
from .._engine.jit import by_dtype, jitable
from .._engine.maths import log_f32, log_f64, where
from .._engine.rng import Variates, uniform_variate
from ..distribution import Distribution, Family
from .normal import TAIL_S, check_draws_fit, prepare_scale

LOG_2 = 0.6931471805599453
_ZERO_F, _ONE_F, _TWO_F = np.float32(0.0), np.float32(1.0), np.float32(2.0)


class LaplaceParams(NamedTuple):
    loc: np.ndarray  # (B,) float32/64
    log_scale: np.ndarray  # (B,)
    scale: np.ndarray  # (B,) float64, exp(log_scale)
    inv_scale: np.ndarray  # (B,) float64, exp(-log_scale)


class LaplaceScores(NamedTuple):
    loc: np.ndarray
    log_scale: np.ndarray


# --------------------------------------------------------------------------- the draw
@jitable
def _std_laplace_f64(u):
    """A standard Laplace draw (density ``exp(-|l|)/2``) from a uniform ``u``."""
    t = 2.0 * u - 1.0
    e = -log_f64(1.0 - abs(t))
    return where(t < 0.0, -e, e)


@jitable
def _std_laplace_f32(u):
    t = _TWO_F * u - _ONE_F
    e = -log_f32(_ONE_F - abs(t))
    return where(t < _ZERO_F, -e, e)


std_laplace = by_dtype(_std_laplace_f32, _std_laplace_f64)
std_laplace.__doc__ = """``std_laplace(like, u)``: a standard Laplace draw from the uniform
``u`` in the dtype of ``like`` (scalars or arrays)."""


# --------------------------------------------------------------------------- formulas
@jitable
def _log_prob_t(t, log_scale):
    """log p given the standardised distance t = |x - mu| / b."""
    return -t - log_scale - LOG_2


@jitable
def _entropy(log_scale):
    return 1.0 + LOG_2 + log_scale


@jitable
def _kl(loc_p, log_scale_p, loc_q, log_scale_q, inv_scale_p, inv_scale_q):
    d = log_scale_p - log_scale_q
    delta = abs(loc_p - loc_q)
    return m.expm1mx(d - delta * inv_scale_p) - delta * inv_scale_q * m.expm1(-d)


# --------------------------------------------------------------------------- scalar maths
@jitable
def _write_score(p, b, diff, i, s):
    """Scores at ``diff = x - mu`` (0 for loc at the kink)."""
    inv = p.inv_scale[b]
    if diff > 0.0:
        s.loc[i] = inv
    elif diff < 0.0:
        s.loc[i] = -inv
    else:
        s.loc[i] = 0.0
    s.log_scale[i] = abs(diff) * inv - 1.0


class scalar:
    """Per-atom entry points (see ``_engine/dispatch.py``) compiled for CPU and CUDA."""

    variates = Variates("uniform")

    @staticmethod
    @jitable
    def sample1(p, b, st, x, i):
        l = std_laplace(x, uniform_variate(x, st, 1, 0))
        x[i] = p.loc[b] + p.scale[b] * np.float64(l)

    @staticmethod
    @jitable
    def log_prob1(p, b, x, i):
        t = abs(np.float64(x[i]) - np.float64(p.loc[b])) * p.inv_scale[b]
        return _log_prob_t(t, np.float64(p.log_scale[b]))

    @staticmethod
    @jitable
    def score1(p, b, x, i, s):
        _write_score(p, b, np.float64(x[i]) - np.float64(p.loc[b]), i, s)

    @staticmethod
    @jitable
    def sample_score1(p, b, st, x, i, s):
        l = np.float64(std_laplace(x, uniform_variate(x, st, 1, 0)))
        x[i] = p.loc[b] + p.scale[b] * l
        # the standardised draw l (never 0: |l| = -log(1 - |t|) with |t| < 1) gives
        # the exact sign and distance
        s.loc[i] = p.inv_scale[b] if l > 0.0 else -p.inv_scale[b]
        s.log_scale[i] = abs(l) - 1.0
        return _log_prob_t(abs(l), np.float64(p.log_scale[b]))

    @staticmethod
    @jitable
    def entropy1(p, b):
        return _entropy(np.float64(p.log_scale[b]))

    @staticmethod
    @jitable
    def kl1(p, q, b):
        return _kl(np.float64(p.loc[b]), np.float64(p.log_scale[b]), np.float64(q.loc[b]),
                   np.float64(q.log_scale[b]), p.inv_scale[b], q.inv_scale[b])

    @staticmethod
    @jitable
    def reflect1(p, b, x, i):
        x[i] = 2.0 * np.float64(p.loc[b]) - np.float64(x[i])

    @staticmethod
    @jitable
    def reparam1(p, b, st, x, i, dx):
        l = std_laplace(x, uniform_variate(x, st, 1, 0))
        dev = p.scale[b] * np.float64(l)
        x[i] = p.loc[b] + dev
        dx.loc[i] = 1.0
        dx.log_scale[i] = dev


# --------------------------------------------------------------------------- numpy baseline
class vectorised:
    """The same maths on whole arrays (``backend="numpy"``)."""

    @staticmethod
    def _draw(p, key, n_atoms, B, dtype):
        _, b = npb.atoms_and_batch(n_atoms, B)
        u = npb.variates("uniform", dtype, key, n_atoms)[:, 0]
        return b, std_laplace(u, u).astype(np.float64)

    @staticmethod
    def sample(p, key, n_atoms, B, dtype):
        b, l = vectorised._draw(p, key, n_atoms, B, dtype)
        return (p.loc[b] + p.scale[b] * l).astype(dtype)

    @staticmethod
    def _diff(p, x, B):
        b = np.arange(x.shape[0]) % B
        return b, x.astype(np.float64) - p.loc[b].astype(np.float64)

    @staticmethod
    def log_prob(p, x, B):
        b, diff = vectorised._diff(p, x, B)
        return _log_prob_t(np.abs(diff) * p.inv_scale[b], p.log_scale[b].astype(np.float64))

    @staticmethod
    def score(p, x, B):
        b, diff = vectorised._diff(p, x, B)
        inv = p.inv_scale[b]
        return {"loc": np.sign(diff) * inv, "log_scale": np.abs(diff) * inv - 1.0}

    @staticmethod
    def sample_score(p, key, n_atoms, B, dtype):
        b, l = vectorised._draw(p, key, n_atoms, B, dtype)
        x = (p.loc[b] + p.scale[b] * l).astype(dtype)
        inv = p.inv_scale[b]
        lp = _log_prob_t(np.abs(l), p.log_scale[b].astype(np.float64))
        return x, lp, {"loc": np.where(l > 0.0, inv, -inv), "log_scale": np.abs(l) - 1.0}

    @staticmethod
    def entropy(p):
        return _entropy(p.log_scale.astype(np.float64))

    @staticmethod
    def kl(p, q):
        f = np.float64
        return _kl(p.loc.astype(f), p.log_scale.astype(f), q.loc.astype(f),
                   q.log_scale.astype(f), p.inv_scale, q.inv_scale)


def _prepare(flat: dict) -> dict:
    derived = prepare_scale(flat)
    dtype = flat["loc"].dtype
    with np.errstate(over="ignore"):  # |l| = -log(u) > TAIL_S with probability 2**-64
        extent = np.abs(flat["loc"].astype(np.float64)) + TAIL_S * derived["scale"]
    check_draws_fit(extent, float(np.finfo(dtype).max), "loc/log_scale",
                    f"draws loc + scale l would overflow {dtype.name}")
    return derived


FAMILY = Family(
    name="Laplace",
    params_cls=LaplaceParams,
    scores_cls=LaplaceScores,
    param_names=("loc", "log_scale"),
    param_event_ndims=(0, 0),
    prepare=_prepare,
    numpy_ops=vectorised,
    reflect_odd=("loc",),  # the score of loc flips sign under reflect1; the others' do not
)
register(LaplaceParams, scalar)


class Laplace(Distribution):
    """Laplace distribution with location ``loc`` and scale ``exp(log_scale)``.

    Parameters
    ----------
    loc, log_scale : array_like (float32 or float64; ints promote to float64)
        Broadcast together to ``full_shape``.  Scores are w.r.t. these.
    event_ndims : int
        Trailing dims of ``full_shape`` treated as one event: log-probs and
        entropies sum over them.
    backend : {"cpu", "cuda", "numpy"}

    Closed-form scores: ``d/dloc = sign(x - loc) / scale`` (0 at ``x == loc``, the
    subgradient we choose) and ``d/dlog_scale = |x - loc| / scale - 1``.
    """

    family = FAMILY

    def __init__(self, loc, log_scale, event_ndims: int = 0, *, backend: str = "cpu"):
        self._setup({"loc": loc, "log_scale": log_scale}, event_ndims=event_ndims,
                    backend=backend)

    @property
    def mean(self) -> np.ndarray:
        """``loc`` broadcast to ``full_shape``."""
        return self._record.loc.reshape(self.full_shape).copy()

    @property
    def scale(self) -> np.ndarray:
        """``exp(log_scale)`` broadcast, in the distribution's dtype."""
        return self._record.scale.reshape(self.full_shape).astype(self.dtype)

    @property
    def variance(self) -> np.ndarray:
        return (2.0 * self._record.scale**2).reshape(self.full_shape).astype(self.dtype)
