r"""Normal (Gaussian) distribution, parametrised by ``loc`` and ``log_scale``.

.. math::

    \log p(x) = -\tfrac12 z^2 - \log\sigma - \tfrac12\log 2\pi,
    \qquad z = (x - \mu)/\sigma,\ \sigma = e^{\texttt{log\_scale}}

Scores (closed form, w.r.t. the unconstrained parameters):

* ``d/d loc       = z / sigma``
* ``d/d log_scale = z**2 - 1``

Entropy ``1/2 + log(2 pi)/2 + log_scale``;
``KL(p||q) = (expm1(2d) - 2d)/2 + ((mu_p - mu_q)/sigma_q)**2 / 2`` with
``d = log_scale_p - log_scale_q``; ``expm1(2d) - 2d`` is ``maths.expm1mx`` (a series
for small ``d``), so the KL is exactly 0 for ``p = q`` and keeps its relative
accuracy for ``p ~ q``.
Support: the real line.  Sampling: ``x = mu + sigma z``, ``z`` the atom's ``normal``
variate (``_engine/rng.py``: Box-Muller, computed for many atoms at once).

Exactness (fused vs separate): ``sample_and_score`` computes the log-prob and scores
from the standard draw ``z`` itself, i.e. exactly at the real-valued draw
``loc + scale z`` *before* it is rounded to the output dtype; ``score(x)`` /
``log_prob(x)`` are exact for the *stored* (rounded) ``x``.  They differ by the rounding
of ``x`` relative to ``scale`` (0.4% at ``loc = 1e3``, ``log_scale = -20``, where ulp(x)
is 2e-13 and scale 2e-9).  The fused scores have mean exactly 0 under the sampler, so
estimators use them.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from .._engine import maths as m
from .._engine import numpy as npb
from .._engine.dispatch import register
from .._engine.jit import jitable
from .._engine.rng import Variates, normal_variate
from .._engine.threads import CHUNK, ONE_PART_CHUNKS, run_split
from ..distribution import Distribution, Family, check_finite

HALF_LOG_2PI = 0.9189385332046727


class NormalParams(NamedTuple):
    loc: np.ndarray  # (B,) float32/64
    log_scale: np.ndarray  # (B,)
    scale: np.ndarray  # (B,) float64, exp(log_scale)
    inv_scale: np.ndarray  # (B,) float64, 1 / scale


class NormalScores(NamedTuple):
    loc: np.ndarray
    log_scale: np.ndarray


# --------------------------------------------------------------------------- formulas
# Array-friendly helpers: scalars in compiled code, whole arrays in the numpy backend.
@jitable
def _log_prob_z(z, log_scale):
    return -0.5 * z * z - log_scale - HALF_LOG_2PI


@jitable
def _entropy(log_scale):
    return 0.5 + HALF_LOG_2PI + log_scale


@jitable
def _kl(loc_p, log_scale_p, loc_q, log_scale_q, inv_scale_q):
    d = log_scale_p - log_scale_q
    m_ = (loc_p - loc_q) * inv_scale_q
    return 0.5 * m.expm1mx(2.0 * d) + 0.5 * m_ * m_


# --------------------------------------------------------------------------- scalar maths
class scalar:
    """Per-atom entry points (see ``_engine/dispatch.py``) compiled for CPU and CUDA."""

    variates = Variates("normal")

    @staticmethod
    @jitable
    def sample1(p, b, st, x, i):
        z = normal_variate(x, st, 1, 0)
        x[i] = p.loc[b] + p.scale[b] * np.float64(z)

    @staticmethod
    @jitable
    def log_prob1(p, b, x, i):
        z = (np.float64(x[i]) - np.float64(p.loc[b])) * p.inv_scale[b]
        return _log_prob_z(z, np.float64(p.log_scale[b]))

    @staticmethod
    @jitable
    def score1(p, b, x, i, s):
        z = (np.float64(x[i]) - np.float64(p.loc[b])) * p.inv_scale[b]
        s.loc[i] = z * p.inv_scale[b]
        s.log_scale[i] = z * z - 1.0

    @staticmethod
    @jitable
    def sample_score1(p, b, st, x, i, s):
        z = np.float64(normal_variate(x, st, 1, 0))
        x[i] = p.loc[b] + p.scale[b] * z
        s.loc[i] = z * p.inv_scale[b]
        s.log_scale[i] = z * z - 1.0
        return _log_prob_z(z, np.float64(p.log_scale[b]))

    @staticmethod
    @jitable
    def entropy1(p, b):
        return _entropy(np.float64(p.log_scale[b]))

    @staticmethod
    @jitable
    def prepare1(p):  # _prepare's checks and fields (the draws' extent limit included)
        return prepare_scale1(p, np.finfo(p.loc.dtype).max)

    @staticmethod
    @jitable
    def reflect1(p, b, x, i):
        x[i] = 2.0 * np.float64(p.loc[b]) - np.float64(x[i])

    @staticmethod
    @jitable
    def reparam1(p, b, st, x, i, dx):
        z = np.float64(normal_variate(x, st, 1, 0))
        x[i] = p.loc[b] + p.scale[b] * z
        dx.loc[i] = 1.0
        dx.log_scale[i] = p.scale[b] * z

    @staticmethod
    @jitable
    def kl1(p, q, b):
        return _kl(np.float64(p.loc[b]), np.float64(p.log_scale[b]),
                   np.float64(q.loc[b]), np.float64(q.log_scale[b]), q.inv_scale[b])


# --------------------------------------------------------------------------- numpy baseline
class vectorised:
    """The same maths on whole arrays (``backend="numpy"``)."""

    @staticmethod
    def _z(p, x, B):
        b = np.arange(x.shape[0]) % B
        return b, (x.astype(np.float64) - p.loc[b].astype(np.float64)) * p.inv_scale[b]

    @staticmethod
    def _draw(key, n_atoms, B, dtype):
        _, b = npb.atoms_and_batch(n_atoms, B)
        return b, npb.variates("normal", dtype, key, n_atoms)[:, 0].astype(np.float64)

    @staticmethod
    def sample(p, key, n_atoms, B, dtype):
        b, z = vectorised._draw(key, n_atoms, B, dtype)
        return (p.loc[b] + p.scale[b] * z).astype(dtype)

    @staticmethod
    def log_prob(p, x, B):
        b, z = vectorised._z(p, x, B)
        return _log_prob_z(z, p.log_scale[b].astype(np.float64))

    @staticmethod
    def score(p, x, B):
        b, z = vectorised._z(p, x, B)
        return {"loc": z * p.inv_scale[b], "log_scale": z * z - 1.0}

    @staticmethod
    def sample_score(p, key, n_atoms, B, dtype):
        b, z = vectorised._draw(key, n_atoms, B, dtype)
        x = (p.loc[b] + p.scale[b] * z).astype(dtype)
        lp = _log_prob_z(z, p.log_scale[b].astype(np.float64))
        return x, lp, {"loc": z * p.inv_scale[b], "log_scale": z * z - 1.0}

    @staticmethod
    def entropy(p):
        return _entropy(p.log_scale.astype(np.float64))

    @staticmethod
    def kl(p, q):
        f = np.float64
        return _kl(p.loc.astype(f), p.log_scale.astype(f), q.loc.astype(f),
                   q.log_scale.astype(f), q.inv_scale)


@njit(cache=True, nogil=True, error_model="numpy")
def _scale_fields(loc, log_scale, scale, inv_scale, z_tail, limit, lo, hi):
    """``scale = exp(log_scale)``, ``inv_scale = 1 / scale`` of elements ``lo:hi`` in one
    compiled pass (numpy's ufuncs and error states cost ~10 us on an RL step's 6
    actions); returns whether any element is bad (:func:`_first_bad_scale` then says
    which and why)."""
    # branch-free (measured 46.6 -> 29.5 us for 6144 elements, against early exits).
    # (Our vectorising ``maths.exp_f64`` made it 11.4 us but cost 0.3 s more of
    # Normal's first calls: compiled on its own, and the score driver's compile then
    # took 0.08 s longer.)
    bad = False
    # views of the part: a loop from 0 indexes without negative-index checks (range(lo,
    # hi) ran 2x slower)
    loc, log_scale = loc[lo:hi], log_scale[lo:hi]
    scale, inv_scale = scale[lo:hi], inv_scale[lo:hi]
    for i in range(log_scale.shape[0]):
        mu = np.float64(loc[i])
        ls = np.float64(log_scale[i])
        sc = math.exp(ls)
        inv = 1.0 / sc  # one libm exp per element, not two (within an ulp of exp(-ls))
        scale[i] = sc
        inv_scale[i] = inv
        ok = (mu > -np.inf) & (mu < np.inf) & (ls > -np.inf) & (ls < np.inf) \
            & (sc > 0.0) & (sc < np.inf) & (inv > 0.0) & (inv < np.inf) \
            & (abs(mu) + z_tail * sc <= limit)
        bad |= not ok
    return bad


@jitable
def prepare_scale1(p, extent_limit):
    """:func:`prepare_scale` of the record ``p`` compiled (the ``prepare1`` of the
    location-scale families, ``dispatch.py``): its fields into ``p``'s scratch, whether
    a value is bad."""
    return _scale_fields(p.loc, p.log_scale, p.scale, p.inv_scale, Z_TAIL, extent_limit,
                         0, p.loc.shape[0])


def _first_bad_scale(loc, log_scale, scale, inv_scale, limit) -> tuple[int, int]:
    """``(code, index)`` of the first element :func:`_scale_fields` found bad (numpy; the
    error path only): 1 for a NaN/inf ``loc``, 2 for a NaN/inf ``log_scale``, 3 where
    the exponentials over- or underflow, 4 where the draws' extent
    ``|loc| + Z_TAIL * scale`` exceeds ``limit`` (the first failing test of that
    element, in this order)."""
    mu = loc.astype(np.float64).reshape(-1)
    ls = log_scale.astype(np.float64).reshape(-1)
    sc, inv = scale.reshape(-1), inv_scale.reshape(-1)
    with np.errstate(invalid="ignore", over="ignore"):
        tests = [~np.isfinite(mu), ~np.isfinite(ls),
                 ~((sc > 0.0) & (sc < np.inf) & (inv > 0.0) & (inv < np.inf)),
                 ~(np.abs(mu) + Z_TAIL * sc <= limit)]
    i = int(np.argmax(np.logical_or.reduce(tests)))
    return next(code for code, failed in enumerate(tests, 1) if failed[i]), i


_SPLIT_AT = ONE_PART_CHUNKS * CHUNK  # elements: below, one part (threads.one_part)


def prepare_scale(flat: dict, extent_limit: float = np.inf) -> dict:
    """``scale`` and ``inv_scale`` (float64) from ``log_scale``, for every location-scale
    family; a ValueError naming the argument for a NaN/inf ``loc`` or ``log_scale``,
    where ``exp(log_scale)`` over- or underflows, or (``extent_limit``) where the
    Normal's draws ``loc + scale z`` would leave the dtype (:func:`check_draws_fit`)."""
    loc, log_scale = flat["loc"], flat["log_scale"]
    fields = np.empty((2,) + log_scale.shape)  # one allocation: rows scale, inv_scale
    scale, inv_scale = fields[0], fields[1]
    mu, ls, sc, inv = loc, log_scale, scale, inv_scale
    if ls.ndim != 1:  # else the record's flat arrays (scalar atoms): no reshapes
        mu, ls, sc, inv = mu.reshape(-1), ls.reshape(-1), sc.reshape(-1), inv.reshape(-1)
    n = ls.shape[0]
    if n < _SPLIT_AT:  # an RL step: no split, no lists (~0.5 us)
        bad = _scale_fields(mu, ls, sc, inv, Z_TAIL, extent_limit, 0, n)
    else:  # on the drivers' threads (one libm exp per element, ~4-8 ns: 3-7 ms of a
        # 786k-element construction on one thread, measured on the H200's host)
        bad = any(run_split(_scale_fields, (mu, ls, sc, inv, Z_TAIL, extent_limit), n, CHUNK))
    if not bad:
        return {"scale": scale, "inv_scale": inv_scale}
    code, i = _first_bad_scale(loc, log_scale, scale, inv_scale, extent_limit)
    if code == 1:
        check_finite(loc, "loc")
    if code == 2:
        check_finite(log_scale, "log_scale")
    if code == 3:
        raise ValueError("log_scale out of range: exp(log_scale) over- or underflows "
                         f"(e.g. {log_scale.reshape(-1)[i]})")
    if code == 4:  # the message of every family's range check, from numpy's arrays
        with np.errstate(over="ignore"):
            extent = np.abs(loc.astype(np.float64)) + Z_TAIL * np.exp(
                log_scale.astype(np.float64))
        check_draws_fit(extent, extent_limit, "loc/log_scale",
                        f"draws loc + scale z would overflow {loc.dtype.name}")
    return {"scale": scale, "inv_scale": inv_scale}


# ----------------------------------------------------------------------------- draw ranges
# Parameters whose draws leave the output dtype's range (inf, or 0 outside a support)
# are refused at construction (issue 15, item 14), where "leave" means with a
# probability above 2**-64 per draw: a bound every family can state in closed form,
# whatever the sampler (its extremes are rarer still).
TAIL_S = 64.0 * math.log(2.0)  # -log(2**-64): P(E > TAIL_S) = 2**-64 for E ~ Exp(1)
Z_TAIL = 9.155293772686074  # P(|Z| > Z_TAIL) = 2**-64 for Z ~ N(0, 1)


def check_draws_fit(extent: np.ndarray, limit: float, names: str, what: str) -> None:
    """ValueError naming ``names`` where ``extent`` (float64; a bound on the draws that
    they exceed with probability below 2**-64) is above ``limit`` (NaN counts as above)."""
    bad = ~(np.asarray(extent) <= limit)
    if bad.any():
        i = int(np.flatnonzero(bad.ravel())[0])
        raise ValueError(f"{names} out of range: {what} (flat element {i}: "
                         f"{float(np.ravel(extent)[i]):.6g} > {limit:.6g}); parameters whose "
                         "draws leave the dtype's range with probability above 2**-64 are "
                         "refused")


_FLOAT_MAX = {np.dtype(t): float(np.finfo(t).max) for t in (np.float32, np.float64)}


def _prepare(flat: dict) -> dict:
    # the draw-range check rides in prepare_scale's compiled pass
    return prepare_scale(flat, _FLOAT_MAX[flat["loc"].dtype])


FAMILY = Family(
    name="Normal",
    params_cls=NormalParams,
    scores_cls=NormalScores,
    param_names=("loc", "log_scale"),
    param_event_ndims=(0, 0),
    prepare=_prepare,
    numpy_ops=vectorised,
    prepare_checks_finite=True,
    reflect_odd=("loc",),  # the score of loc flips sign under reflect1; the others' do not
)
register(NormalParams, scalar)


class Normal(Distribution):
    """Normal distribution ``N(loc, exp(log_scale)**2)``.

    Parameters
    ----------
    loc, log_scale : array_like (float32 or float64; ints promote to float64)
        Broadcast together to ``full_shape``.  Scores are w.r.t. these.
    event_ndims : int
        Number of trailing dims of ``full_shape`` treated as one event (a
        diagonal multivariate normal): log-probs and entropies sum over them.
    backend : {"cpu", "cuda", "numpy"}

    Closed-form scores: ``d/dloc = (x - loc) / scale**2`` and
    ``d/dlog_scale = ((x - loc) / scale)**2 - 1``.
    """

    family = FAMILY

    def __init__(self, loc, log_scale, event_ndims: int = 0, *, backend: str = "cpu"):
        self._setup({"loc": loc, "log_scale": log_scale}, event_ndims=event_ndims,
                    backend=backend)

    @property
    def mean(self) -> np.ndarray:
        """``loc`` broadcast to ``batch_shape + event_shape``."""
        return self._record.loc.reshape(self.full_shape).copy()

    @property
    def scale(self) -> np.ndarray:
        """``exp(log_scale)`` broadcast, in the distribution's dtype."""
        return self._record.scale.reshape(self.full_shape).astype(self.dtype)

    @property
    def variance(self) -> np.ndarray:
        return (self._record.scale**2).reshape(self.full_shape).astype(self.dtype)
