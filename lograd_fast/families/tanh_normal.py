r"""Tanh-squashed Normal (bounded actions, as in SAC), parametrised by the pre-squash
``loc`` and ``log_scale``.

``x = tanh(u)`` with ``u ~ N(mu, sigma**2)``, ``mu = loc``, ``sigma = exp(log_scale)``.
By the change of variables ``u = atanh(x)``:

.. math::

    \log p(x) = \log N(u; \mu, \sigma) - \log(1 - \tanh^2 u),\qquad
    \log(1 - \tanh^2 u) = 2(\log 2 - |u| - \mathrm{softplus}(-2|u|))

(the log-det written with ``|u|`` so that no term ever overflows or cancels).

Support ``(-1, 1)``.  At ``x = +-1`` exactly, ``u`` is infinite and ``log p``
tends to ``-inf`` (the Gaussian's ``-u**2/2`` beats the log-det's ``+2|u|``):
``log_prob`` is ``-inf`` there and for ``|x| > 1``, and the scores are 0 (``log p``
is the constant ``-inf`` outside the open support).  Never NaN.

Scores (closed form, w.r.t. the pre-squash parameters; the log-det does not
depend on them), with ``z = (atanh(x) - mu) / sigma``:

* ``d/d loc       = z / sigma``
* ``d/d log_scale = z**2 - 1``

Sampling: ``u = mu + sigma z`` (``z`` the atom's ``normal`` variate), ``x = tanh(u)`` (computed
by ``maths.tanh_abs`` with the sign of ``u``: within 1 ulp of the correctly rounded
tanh -- the plain ``t / (t + 2)``, ``t = expm1(2|u|)``, was 2.4 ulp off and moved
draws near 1 onto the clip value -- and the same formula on every backend), then
**clipped to the largest number below 1 of the output dtype** (``1 - 2**-53`` for
float64, ``1 - 2**-24`` for float32), so a sample is never exactly ``+-1`` and its
``log_prob`` is always finite.  The fused
``sample_and_score`` returns the log-prob and scores *of the stored sample*
(``u`` re-derived as ``atanh(x)`` from the rounded ``x``), i.e. exactly
``log_prob(x)`` and ``score(x)``; near the bounds, rounding ``x`` moves ``u``
a lot, and this keeps ``x``, its log-prob and its score consistent.

Pathwise (``reparam1``): ``dx/dloc = 1 - tanh(u)**2``,
``dx/dlog_scale = (1 - tanh(u)**2) sigma z`` at the drawn ``u`` (the smooth map;
clipping is ignored).  Antithetic partner (``reflect1``): mirror ``u`` about
``mu``, ``x -> tanh(2 mu - atanh(x))`` (``+-1`` maps to ``-+1``).

No closed-form entropy or mean; both are computed by fixed quadrature rules
(deterministic, no sampling), accurate to ~1e-13 relative to the size of their
terms (checked against adaptive quadrature in the tests for scales 1e-8 to 1e3):

* entropy ``H = H(N(mu, sigma)) + E[log(1 - tanh^2 U)]``;
* mean ``E[tanh U]``.

For ``sigma < 0.6`` the expectation is a 64-node Gauss-Hermite rule in ``z``
(the integrands are analytic in the strip ``|Im u| < pi/2``, i.e. ``|Im z| <
pi/(2 sigma)``: converged).  For ``sigma >= 0.6`` the kink-free identities
``E[log(1-tanh^2 U)] = 2 log 2 - 2 E|U| - 2 E[softplus(-2|U|)]`` and
``E[tanh U] = erf(mu/(sigma sqrt 2)) - E[(1 - tanh|U|) sign U]`` reduce it to the
closed-form ``E|U|`` (folded normal) plus integrals over ``u >= 0`` of
``e^{-2u}``-decaying smooth functions, done with 16-point Gauss-Legendre on 40
panels of width 1 over ``[0, 40]`` (the rest is below ``e^{-80}``).

KL **is** closed form: KL is invariant under a bijection applied to both
arguments, so ``KL(TanhNormal p || TanhNormal q) = KL(N p || N q)``.

Reference: Haarnoja et al., "Soft Actor-Critic" (ICML 2018), appendix C (the
squashed Gaussian and its log-det).

Exactness (fused vs separate): the same numbers -- both are exact for the *stored*
sample (``u = atanh(x)`` of the rounded, clipped ``x``), a deliberate choice: near
``+-1`` rounding ``x`` moves ``u`` by up to ~0.3, and the log-prob and scores must
describe the action actually returned.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .._engine import maths as m
from .._engine import numpy as npb
from .._engine.dispatch import register
from .._engine.jit import by_dtype, jitable
from .._engine.rng import Variates, normal_variate
from ..distribution import Distribution, Family
from .normal import _entropy as _normal_entropy
from .normal import _kl as _normal_kl
from .normal import _log_prob_z, prepare_scale, prepare_scale1

LOG_2 = 0.6931471805599453
INV_SQRT_2PI = 0.3989422804014327
SQRT_2_OVER_PI = 0.7978845608028654
INV_SQRT_2 = 0.7071067811865476
BELOW_ONE_F64 = float(np.nextafter(1.0, 0.0))  # 1 - 2**-53
BELOW_ONE_F32 = float(np.nextafter(np.float32(1.0), np.float32(0.0)))  # 1 - 2**-24

# quadrature rules of the entropy and the mean (see the module docstring)
SMALL_SCALE = 0.6
_GH_Z, _GH_W = np.polynomial.hermite_e.hermegauss(64)
_GH_W = _GH_W * INV_SQRT_2PI  # E[f(Z)] ~ sum w f(z), Z ~ N(0, 1)
_gl_x, _gl_w = np.polynomial.legendre.leggauss(16)
_GL_U = np.concatenate([a + 0.5 * (_gl_x + 1.0) for a in range(40)])  # nodes on [0, 40]
_GL_W = np.concatenate([0.5 * _gl_w for _ in range(40)])


class TanhNormalParams(NamedTuple):
    loc: np.ndarray  # (B,) float32/64
    log_scale: np.ndarray  # (B,)
    scale: np.ndarray  # (B,) float64, exp(log_scale)
    inv_scale: np.ndarray  # (B,) float64, exp(-log_scale)


class TanhNormalScores(NamedTuple):
    loc: np.ndarray
    log_scale: np.ndarray


# --------------------------------------------------------------------------- formulas
@jitable
def _log_sech2(u):
    """log(1 - tanh(u)**2) = 2 (log 2 - |u| - softplus(-2|u|))."""
    a = abs(u)
    return 2.0 * (LOG_2 - a - m.log1p(m.exp(-2.0 * a)))


@jitable
def _sech2(u):
    """1 - tanh(u)**2 = 4 t / (1 + t)**2 with t = exp(-2|u|) (no overflow)."""
    t = m.exp(-2.0 * abs(u))
    return 4.0 * t / ((1.0 + t) * (1.0 + t))


@jitable
def _normal_pdf(t, inv_scale):
    return INV_SQRT_2PI * inv_scale * m.exp(-0.5 * (t * inv_scale) * (t * inv_scale))


@jitable
def _mean_abs(loc, scale, inv_scale):
    """E|U| for U ~ N(loc, scale**2) (folded normal):
    ``scale sqrt(2/pi) exp(-t**2/2) + |loc| erf(|t|/sqrt 2)``, ``t = loc/scale``."""
    t = abs(loc) * inv_scale
    return scale * SQRT_2_OVER_PI * m.exp(-0.5 * t * t) + abs(loc) * (
        1.0 - m.erfc(t * INV_SQRT_2))


@jitable
def _log_sech2_mean_small(loc, scale):
    """E[log(1 - tanh^2 U)] by Gauss-Hermite (scale < SMALL_SCALE)."""
    acc = 0.0 * loc
    for j in range(_GH_Z.shape[0]):
        acc = acc + _GH_W[j] * _log_sech2(loc + scale * _GH_Z[j])
    return acc


@jitable
def _softplus_mean_large(loc, inv_scale):
    """E[softplus(-2|U|)] by Gauss-Legendre over u >= 0 (scale >= SMALL_SCALE)."""
    acc = 0.0 * loc
    for j in range(_GL_U.shape[0]):
        u = _GL_U[j]
        density = _normal_pdf(u - loc, inv_scale) + _normal_pdf(u + loc, inv_scale)
        acc = acc + _GL_W[j] * m.log1p(m.exp(-2.0 * u)) * density
    return acc


@jitable
def _log_sech2_mean1(loc, scale, inv_scale):
    if scale < SMALL_SCALE:
        return _log_sech2_mean_small(loc, scale)
    return (2.0 * LOG_2 - 2.0 * _mean_abs(loc, scale, inv_scale)
            - 2.0 * _softplus_mean_large(loc, inv_scale))


@jitable
def _below_one_f64():
    return BELOW_ONE_F64


@jitable
def _below_one_f32():
    return BELOW_ONE_F32


_below_one = by_dtype(_below_one_f32, _below_one_f64)


@jitable
def _squash(u, bound):
    """tanh(u) clipped to [-bound, bound]."""
    t = m.tanh_abs(abs(u))
    if t > bound:
        t = bound
    return t if u >= 0.0 else -t


# --------------------------------------------------------------------------- scalar maths
@jitable
def _u_of(x):
    """(inside, atanh(x)) of a float64 x; u = 0 outside the open support."""
    if abs(x) < 1.0:
        return True, m.atanh(x)
    return False, 0.0


@jitable
def _draw(p, b, st, x, i):
    """Draw u, store the clipped tanh(u) in x[i]; return u (exact) and z."""
    z = np.float64(normal_variate(x, st, 1, 0))
    u = p.loc[b] + p.scale[b] * z
    x[i] = _squash(u, _below_one(x))
    return u, z


@jitable
def _write_score_u(p, b, u, i, s):
    z = (u - np.float64(p.loc[b])) * p.inv_scale[b]
    s.loc[i] = z * p.inv_scale[b]
    s.log_scale[i] = z * z - 1.0
    return z


class scalar:
    """Per-atom entry points (see ``_engine/dispatch.py``) compiled for CPU and CUDA."""

    variates = Variates("normal")

    @staticmethod
    @jitable
    def sample1(p, b, st, x, i):
        _draw(p, b, st, x, i)

    @staticmethod
    @jitable
    def prepare1(p):  # prepare_scale's checks and fields (no extent limit)
        return prepare_scale1(p, np.inf)

    @staticmethod
    @jitable
    def log_prob1(p, b, x, i):
        inside, u = _u_of(np.float64(x[i]))
        if not inside:
            return -np.inf
        z = (u - np.float64(p.loc[b])) * p.inv_scale[b]
        return _log_prob_z(z, np.float64(p.log_scale[b])) - _log_sech2(u)

    @staticmethod
    @jitable
    def score1(p, b, x, i, s):
        inside, u = _u_of(np.float64(x[i]))
        if inside:
            _write_score_u(p, b, u, i, s)
        else:
            s.loc[i] = 0.0
            s.log_scale[i] = 0.0

    @staticmethod
    @jitable
    def sample_score1(p, b, st, x, i, s):
        _draw(p, b, st, x, i)
        # u of the stored (rounded, clipped) sample: always inside, |x| < 1
        u = m.atanh(np.float64(x[i]))
        z = _write_score_u(p, b, u, i, s)
        return _log_prob_z(z, np.float64(p.log_scale[b])) - _log_sech2(u)

    @staticmethod
    @jitable
    def entropy1(p, b):
        log_scale = np.float64(p.log_scale[b])
        return _normal_entropy(log_scale) + _log_sech2_mean1(
            np.float64(p.loc[b]), p.scale[b], p.inv_scale[b])

    @staticmethod
    @jitable
    def kl1(p, q, b):
        return _normal_kl(np.float64(p.loc[b]), np.float64(p.log_scale[b]),
                          np.float64(q.loc[b]), np.float64(q.log_scale[b]), q.inv_scale[b])

    @staticmethod
    @jitable
    def reflect1(p, b, x, i):
        xi = np.float64(x[i])
        inside, u = _u_of(xi)
        if inside:
            x[i] = _squash(2.0 * np.float64(p.loc[b]) - u, _below_one(x))
        else:
            x[i] = -xi

    @staticmethod
    @jitable
    def reparam1(p, b, st, x, i, dx):
        u, z = _draw(p, b, st, x, i)
        jac = _sech2(u)
        dx.loc[i] = jac
        dx.log_scale[i] = jac * (p.scale[b] * z)


# --------------------------------------------------------------------------- numpy baseline
def _squash_np(u, dtype):
    bound = BELOW_ONE_F32 if np.dtype(dtype) == np.float32 else BELOW_ONE_F64
    t = np.minimum(m.tanh_abs(np.abs(u)), bound)
    return np.where(u >= 0.0, t, -t).astype(dtype)


def _u_of_np(x):
    xf = x.astype(np.float64)
    inside = np.abs(xf) < 1.0
    return inside, np.arctanh(np.where(inside, xf, 0.0))


def _log_sech2_mean_np(loc, scale, inv_scale):
    out = np.empty(loc.shape)
    small = scale < SMALL_SCALE
    out[small] = _log_sech2_mean_small(loc[small], scale[small])
    big = ~small
    lb, sb, ib = loc[big], scale[big], inv_scale[big]
    out[big] = (2.0 * LOG_2 - 2.0 * _mean_abs(lb, sb, ib)
                - 2.0 * _softplus_mean_large(lb, ib))
    return out


class vectorised:
    """The same maths on whole arrays (``backend="numpy"``)."""

    @staticmethod
    def _draw(p, key, n_atoms, B, dtype):
        _, b = npb.atoms_and_batch(n_atoms, B)
        z = npb.variates("normal", dtype, key, n_atoms)[:, 0].astype(np.float64)
        u = p.loc[b] + p.scale[b] * z
        return b, z, u, _squash_np(u, dtype)

    @staticmethod
    def sample(p, key, n_atoms, B, dtype):
        return vectorised._draw(p, key, n_atoms, B, dtype)[3]

    @staticmethod
    def _lp_score(p, b, u, inside):
        z = (u - p.loc[b].astype(np.float64)) * p.inv_scale[b]
        lp = _log_prob_z(z, p.log_scale[b].astype(np.float64)) - _log_sech2(u)
        return (np.where(inside, lp, -np.inf),
                {"loc": np.where(inside, z * p.inv_scale[b], 0.0),
                 "log_scale": np.where(inside, z * z - 1.0, 0.0)})

    @staticmethod
    def log_prob(p, x, B):
        b = np.arange(x.shape[0]) % B
        inside, u = _u_of_np(x)
        return vectorised._lp_score(p, b, u, inside)[0]

    @staticmethod
    def score(p, x, B):
        b = np.arange(x.shape[0]) % B
        inside, u = _u_of_np(x)
        return vectorised._lp_score(p, b, u, inside)[1]

    @staticmethod
    def sample_score(p, key, n_atoms, B, dtype):
        b, _, _, x = vectorised._draw(p, key, n_atoms, B, dtype)
        inside, u = _u_of_np(x)
        lp, s = vectorised._lp_score(p, b, u, inside)
        return x, lp, s

    @staticmethod
    def entropy(p):
        return _normal_entropy(p.log_scale.astype(np.float64)) + _log_sech2_mean_np(
            p.loc.astype(np.float64), p.scale, p.inv_scale)

    @staticmethod
    def kl(p, q):
        f = np.float64
        return _normal_kl(p.loc.astype(f), p.log_scale.astype(f), q.loc.astype(f),
                          q.log_scale.astype(f), q.inv_scale)


def tanh_normal_mean(loc: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``E[tanh U]``, ``U ~ N(loc, scale**2)`` (float64 arrays of one shape), by the
    quadrature rules of the module docstring."""
    loc = np.asarray(loc, np.float64)
    scale = np.asarray(scale, np.float64)
    out = np.empty(loc.shape)
    small = scale < SMALL_SCALE
    ls, ss = loc[small], scale[small]
    acc = np.zeros(ls.shape)
    for j in range(_GH_Z.shape[0]):
        u = ls + ss * _GH_Z[j]
        t = m.tanh_abs(np.abs(u))
        acc += _GH_W[j] * np.where(u >= 0.0, t, -t)
    out[small] = acc
    lb, sb = loc[~small], scale[~small]
    ib = 1.0 / sb
    # E[tanh U] = E[sign U] - E[(1 - tanh|U|) sign U]; 1 - tanh u = 2 / (1 + e^{2u})
    acc = np.zeros(lb.shape)
    for j in range(_GL_U.shape[0]):
        u = _GL_U[j]
        acc += _GL_W[j] * (2.0 / (1.0 + math.exp(2.0 * u))) * (
            _normal_pdf(u - lb, ib) - _normal_pdf(u + lb, ib))
    t = lb * ib * INV_SQRT_2
    sign = np.where(lb >= 0.0, 1.0, -1.0)
    out[~small] = sign * (1.0 - m.erfc(np.abs(t))) - acc
    return out


FAMILY = Family(
    name="TanhNormal",
    params_cls=TanhNormalParams,
    scores_cls=TanhNormalScores,
    param_names=("loc", "log_scale"),
    param_event_ndims=(0, 0),
    prepare=prepare_scale,
    numpy_ops=vectorised,
    prepare_checks_finite=True,  # prepare_scale checks loc and log_scale
    reflect_odd=("loc",),  # the score of loc flips sign under reflect1; the others' do not
)
register(TanhNormalParams, scalar)


class TanhNormal(Distribution):
    """Squashed Gaussian ``x = tanh(u)``, ``u ~ N(loc, exp(log_scale)**2)``.

    Parameters
    ----------
    loc, log_scale : array_like (float32 or float64; ints promote to float64)
        Mean and log standard deviation of the pre-squash ``u``; broadcast to
        ``full_shape``.  Scores are w.r.t. these.
    event_ndims : int
        Trailing dims of ``full_shape`` treated as one event (an action vector):
        log-probs and entropies sum over them.
    backend : {"cpu", "cuda", "numpy"}

    Samples lie in the open interval ``(-1, 1)`` (clipped to the largest float
    below 1 of the dtype).  ``log_prob`` is ``-inf`` and the scores are 0 at
    ``|x| >= 1``.  ``entropy`` and ``mean`` come from quadrature (~1e-13); ``kl``
    is the closed-form KL of the pre-squash Normals.
    """

    family = FAMILY

    def __init__(self, loc, log_scale, event_ndims: int = 0, *, backend: str = "cpu"):
        self._setup({"loc": loc, "log_scale": log_scale}, event_ndims=event_ndims,
                    backend=backend)

    @property
    def mean(self) -> np.ndarray:
        """``E[tanh(u)]`` by quadrature, broadcast to ``full_shape``."""
        r = self._record
        mean = tanh_normal_mean(r.loc.astype(np.float64), r.scale)
        return mean.reshape(self.full_shape).astype(self.dtype)
