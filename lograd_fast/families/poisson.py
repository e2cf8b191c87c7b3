r"""Poisson distribution over ``{0, 1, 2, ...}``, parametrised by ``log_rate``.

.. math::

    \log p(k) = k \log\lambda - \lambda - \log k!,\qquad \lambda = e^{\texttt{log\_rate}}

Score (closed form, w.r.t. the unconstrained parameter): ``d/d log_rate = k - lambda``.

Support: the non-negative integers; ``log_prob`` of a negative integer is ``-inf``
(score 0), a non-integer ``x`` is a ``ValueError`` (the base class's check for
discrete families).  ``log_prob(0) = -lambda``.  Domain:
``lambda = exp(log_rate) <= 2**52`` (beyond it float64 cannot resolve unit steps
of the count); a ``log_rate`` so negative that ``lambda`` underflows to 0 is the
point mass at 0 (``log p(k) = k log_rate - log k!`` stays finite).

Log-mass, accurate for every ``k`` and ``lambda`` (no cancellation of huge terms):

* ``k < 16``: the formula above with ``log k!`` from an exact table;
* ``k >= 16``: Loader's saddle-point form (C. Loader, "Fast and accurate
  computation of binomial probabilities", 2000; R's ``dpois_raw``)
  ``log p(k) = -log(2 pi k)/2 - stirlerr(k) - bd0(k, lambda)`` with
  ``stirlerr`` the Stirling-series remainder (5 terms, error < 2e-16 for
  ``k >= 16``) and ``bd0(k, l) = k log(k/l) + l - k`` evaluated, with
  ``v = (k - l)/(k + l)``, as ``(k - l) v + 2 k (atanh(v) - v)`` by a 10-term series
  when ``|v| < 0.1``, else as ``k log1p((k - l)/l) - (k - l)`` (``k - l`` is exact),
  and as ``k (log k - log_rate) + l - k`` when ``l`` is subnormal or 0 (no
  cancellation then).  Relative error ~1e-15 everywhere (checked against 50-digit
  arithmetic in the tests).

Sampling (exact up to the 52-bit resolution of the uniforms):

* ``lambda < 10``: inversion by sequential search from ``k = 0`` with one uniform
  (Philox block 0); ``exp(-lambda)`` is computed once at construction;
* ``lambda >= 10``: PTRS, the transformed rejection method with squeeze of
  W. Hörmann, "The transformed rejection method for generating Poisson random
  variables", Insurance: Mathematics and Economics 12 (1993) 39-45 (the
  algorithm of ``numpy.random``'s ``random_poisson_ptrs``).  Each try uses one
  Philox block (two uniforms); blocks 0, 1, 2, ... are consumed in order.
  The acceptance test uses the accurate log-mass above, so huge rates sample
  exactly too.  Measured (20000 draws each): 1.34 tries per draw at
  ``lambda = 10``, 1.18 at 100, 1.13 from 1e5 on (acceptance 0.75 / 0.85 / 0.89);
  the squeeze accepts 47% / 78% / 90% of the draws without a logarithm.

Entropy (no closed form), accurate to ~1e-13:

* ``lambda < 1000``: ``-sum_k p_k log p_k`` over ``k`` within
  ``lambda -+ (12 sqrt(lambda) + 5..30)`` (all omitted mass < 1e-25), with the
  accurate log-mass;
* ``lambda >= 1000``: the asymptotic series (Evans, Boersma, Blachman & Jagers,
  "The entropy of a Poisson distribution", SIAM Review 30 (1988) 314-317)
  ``1/2 log(2 pi e l) - 1/(12 l) - 1/(24 l^2) - 19/(360 l^3) - 9/(80 l^4)``
  (remainder ~ 0.35 / l^5 < 4e-16; the last coefficient checked against the sum).

``KL(p||q) = lambda_p (expm1(-d) + d)`` with ``d = log_rate_p - log_rate_q`` for
``|d| < 1`` (``maths.expm1mx``: exactly 0 for ``p = q``, full relative accuracy for
``p ~ q``), else ``lambda_q - lambda_p + lambda_p d``.  Mean ``lambda``.

Exactness (fused vs separate): identical -- counts are exact integers, so
``sample_and_score`` and ``score(x)`` / ``log_prob(x)`` see the same ``k``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from .._engine import maths as m
from .._engine import numpy as npb
from .._engine.dispatch import register
from .._engine.jit import always_inline, cpu_inline, jitable, jitable_outline
from .._engine.rng import philox_block, u01_f64
from ..distribution import Distribution, Family

MAX_RATE = 2.0**52
PTRS_MIN_RATE = 10.0
ENTROPY_SERIES_MIN_RATE = 1000.0
LOG_2PI = 1.8378770664093453
#: log(k!) for k = 0..15 (the table part of the log-mass)
LOG_FACTORIAL = np.array([math.log(math.factorial(k)) for k in range(16)])
_TABLE_SIZE = 16
_TWO_62 = 2.0**62
_TINY = float(np.finfo(np.float64).tiny)  # smallest normal float64
_U = np.uint64


class PoissonParams(NamedTuple):
    log_rate: np.ndarray  # (B,) float32/64
    rate: np.ndarray  # (B,) float64, exp(log_rate)
    exp_neg_rate: np.ndarray  # (B,) float64, exp(-rate) (inversion)
    ptrs_a: np.ndarray  # (B,) float64, PTRS constants (for rate >= 10)
    ptrs_b: np.ndarray
    ptrs_vr: np.ndarray
    ptrs_log_inv_alpha: np.ndarray


class PoissonScores(NamedTuple):
    log_rate: np.ndarray


# --------------------------------------------------------------------------- the log-mass
# Array-friendly pieces, shared by the scalar code and the numpy baseline.
@jitable
def _log_pmf_table(kf, k, rate, log_rate):
    """k log(rate) - rate - log k! for 0 <= k < 16."""
    return kf * log_rate - rate - LOG_FACTORIAL[k]


@jitable
def _stirlerr(kf):
    """log k! - [(k + 1/2) log k - k + log(2 pi)/2] for k >= 16 (Stirling series)."""
    kk = kf * kf
    return (1.0 / 12 - (1.0 / 360 - (1.0 / 1260 - (1.0 / 1680 - (1.0 / 1188) / kk)
                                       / kk) / kk) / kk) / kf


@jitable
def _bd0_near(kf, rate):
    """k log(k/l) + l - k for |k - l| < 0.1 (k + l): (k-l) v + 2k v^3 sum v^2j/(2j+3)."""
    diff = kf - rate
    v = diff / (kf + rate)
    v2 = v * v
    series = 1.0 / 21
    for j in range(8, -1, -1):
        series = 1.0 / (2 * j + 3) + v2 * series
    return diff * v + 2.0 * kf * v * v2 * series


@jitable
def _bd0_log1p(kf, rate, t):
    """k log(k/l) + l - k = k log1p(t) - (k - l), t = (k - l)/l (|v| >= 0.1, l > 0)."""
    return kf * m.log1p(t) - (kf - rate)


@jitable
def _bd0_direct(kf, rate, log_rate):
    """k log(k/l) + l - k with log l = log_rate exact: for l subnormal or 0 (then
    k >> l and nothing cancels)."""
    return kf * (m.log(kf) - log_rate) + rate - kf


@jitable
def _log_pmf_loader(kf, bd0):
    return -0.5 * (LOG_2PI + m.log(kf)) - _stirlerr(kf) - bd0


@jitable
def bd0(kf, rate, log_rate):
    """``k log(k/l) + l - k`` (>= 0) for real ``k > 0``, ``l = rate >= 0`` with
    ``log_rate = log l``, by the branch of the module docstring (Gamma's log-density
    uses it too, with ``k = alpha - 1``)."""
    if abs(kf - rate) < 0.1 * (kf + rate):
        return _bd0_near(kf, rate)
    t = (kf - rate) / rate if rate >= _TINY else np.inf
    if t < np.inf:
        return _bd0_log1p(kf, rate, t)
    return _bd0_direct(kf, rate, log_rate)


def bd0_np(kf, rate, log_rate):
    """Vectorised :func:`bd0` (float64 arrays of one shape)."""
    near = np.abs(kf - rate) < 0.1 * (kf + rate)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        t = np.where(rate >= _TINY, (kf - rate) / np.where(rate >= _TINY, rate, 1.0), np.inf)
    mid = ~near & (t < np.inf)
    far = ~near & ~mid
    out = np.empty(kf.shape)
    out[near] = _bd0_near(kf[near], rate[near])
    out[mid] = _bd0_log1p(kf[mid], rate[mid], t[mid])
    with np.errstate(divide="ignore", invalid="ignore"):
        out[far] = _bd0_direct(kf[far], rate[far], log_rate[far])
    return out


def log_pmf_loader(kf, rate, log_rate):
    """Loader's saddle-point ``log p(k)`` of ``k >= 16`` events (float64 ``kf``) at
    ``rate`` (``log_rate = log rate``): the branch of :func:`_log_pmf1` for large ``k``,
    and Gamma's log-density for ``alpha >= 17``."""
    return _log_pmf_loader(kf, bd0(kf, rate, log_rate))


def _log_pmf_loader_cpu(kf, rate, log_rate):
    return _log_pmf_loader_kernel(np.float64(kf), np.float64(rate), np.float64(log_rate))


# Typed once as a cached kernel (float64 only) instead of inside every driver that
# evaluates a Poisson log-mass or a Gamma log-density (and the PTRS kernel); LLVM
# inlines it back (``always_inline``).
log_pmf_loader = jitable_outline(log_pmf_loader, _log_pmf_loader_cpu)
_log_pmf_loader_body = cpu_inline(log_pmf_loader, outline=False)


@always_inline
@njit(cache=True, nogil=True, error_model="numpy", _nrt=False)
def _log_pmf_loader_kernel(kf, rate, log_rate):
    return _log_pmf_loader_body(kf, rate, log_rate)


@jitable
def _log_pmf1(k, rate, log_rate):
    """log p(k) of one integer k (scalar code)."""
    if k < 0:
        return -np.inf
    kf = np.float64(k)
    if k < _TABLE_SIZE:
        return _log_pmf_table(kf, k, rate, log_rate)
    return log_pmf_loader(kf, rate, log_rate)


def _log_pmf_np(k, rate, log_rate):
    """Vectorised :func:`_log_pmf1` (int64 ``k``; float64 ``rate``, ``log_rate``)."""
    out = np.full(k.shape, -np.inf)
    kf = k.astype(np.float64)
    small = (k >= 0) & (k < _TABLE_SIZE)
    out[small] = _log_pmf_table(kf[small], k[small], rate[small], log_rate[small])
    big = k >= _TABLE_SIZE
    out[big] = _log_pmf_loader(kf[big], bd0_np(kf[big], rate[big], log_rate[big]))
    return out


# --------------------------------------------------------------------------- sampling
@jitable
def _inversion(p, b, w):
    """lambda < 10: smallest k with u <= P(X <= k), by sequential search (``w``: the
    atom's Philox block 0)."""
    u = u01_f64(w[0], w[1])
    k = np.int64(0)
    pk = p.exp_neg_rate[b]
    cdf = pk
    while u > cdf:
        k += 1
        pk *= p.rate[b] / k
        nxt = cdf + pk
        if nxt == cdf:  # the rest of the tail is below the resolution of u
            break
        cdf = nxt
    return k


def ptrs_from(st, w0, w1, w2, w3, rate, log_rate, a, bb, vr, log_inv_alpha):
    """lambda >= 10: Hörmann's PTRS, one Philox block (U, V) per try: the first try
    from the words ``w0 .. w3`` of the atom's block 0, then blocks 1, 2, ...  (float64
    PTRS constants of the record at ``b``; ``log_rate`` as float64)."""
    block = 1
    while True:
        uu = u01_f64(w0, w1) - 0.5
        v = u01_f64(w2, w3)
        us = 0.5 - abs(uu)
        y = (2.0 * a / us + bb) * uu + rate + 0.43
        if us >= 0.07 and v <= vr:
            return np.int64(y)  # y > 0 here: truncation is floor
        # k < 0, or k so large (>= 2**62 > 1000 lambda) that the exact test rejects it
        if not (y < 0.0 or y >= _TWO_62 or (us < 0.013 and v > us)):
            k = np.int64(y)
            if (m.log(v) + log_inv_alpha - m.log(a / (us * us) + bb)
                    <= _log_pmf1(k, rate, log_rate)):
                return k
        w0, w1, w2, w3 = philox_block(st, block)
        block += 1


def _ptrs_from_cpu(st, w0, w1, w2, w3, rate, log_rate, a, bb, vr, log_inv_alpha):
    # the stream goes as its five words (the retries use blocks >= 1, never a driver's
    # buffered block 0), so the kernel has one signature whatever the driver
    return _ptrs_kernel(_U(st[0]), _U(st[1]), _U(st[2]), _U(st[3]), _U(st[4]), _U(w0),
                        _U(w1), _U(w2), _U(w3), np.float64(rate), np.float64(log_rate),
                        np.float64(a), np.float64(bb), np.float64(vr),
                        np.float64(log_inv_alpha))


# The PTRS sampler is compiled once (its arithmetic is float64 for both dtypes) as a
# cached kernel that the CPU drivers call instead of typing it again inside each
# (sample, sample_and_score, the streaming estimators); LLVM inlines the compiled kernel
# into them (``always_inline``), as for the gamma sampler (docs/benchmarks.md, item 3).
ptrs_from = jitable_outline(ptrs_from, _ptrs_from_cpu)
_ptrs_body = cpu_inline(ptrs_from, outline=False)


@always_inline
@njit(cache=True, nogil=True, error_model="numpy", _nrt=False)
def _ptrs_kernel(k0, k1, a_lo, a_hi, stream, w0, w1, w2, w3, rate, log_rate, a, bb, vr,
                 log_inv_alpha):
    return _ptrs_body((k0, k1, a_lo, a_hi, stream), w0, w1, w2, w3, rate, log_rate, a, bb,
                      vr, log_inv_alpha)


@jitable
def _draw(p, b, st):
    w = philox_block(st, 0)
    if p.rate[b] < PTRS_MIN_RATE:
        return _inversion(p, b, w)
    return ptrs_from(st, w[0], w[1], w[2], w[3], p.rate[b], np.float64(p.log_rate[b]),
                     p.ptrs_a[b], p.ptrs_b[b], p.ptrs_vr[b], p.ptrs_log_inv_alpha[b])


# --------------------------------------------------------------------------- entropy, kl
@jitable
def _entropy_window(rate):
    """[k_lo, k_hi] of the entropy sum (omitted mass < 1e-25)."""
    spread = 12.0 * m.sqrt(rate)
    lo = rate - spread - 5.0
    k_lo = np.int64(lo) if lo > 0.0 else np.int64(0)
    return k_lo, np.int64(rate + spread + 30.0)


@jitable
def _entropy_term(k, rate, log_rate):
    lp = _log_pmf1(k, rate, log_rate)
    if lp == -np.inf:  # p log p -> 0 (a log_rate of -1e308 gives p_k = 0 from k = 2)
        return 0.0
    return -m.exp(lp) * lp


@jitable
def _entropy_series(rate):
    r = 1.0 / rate
    return (0.5 * (m.log(rate) + 1.0 + LOG_2PI)
            - r * (1.0 / 12 + r * (1.0 / 24 + r * (19.0 / 360 + r * (9.0 / 80)))))


@jitable
def _entropy1(rate, log_rate):
    if rate >= ENTROPY_SERIES_MIN_RATE:
        return _entropy_series(rate)
    k_lo, k_hi = _entropy_window(rate)
    acc = 0.0
    for k in range(k_lo, k_hi + 1):
        acc += _entropy_term(k, rate, log_rate)
    return acc


@jitable
def _kl1(rate_p, rate_q, log_rate_p, log_rate_q):
    d = log_rate_p - log_rate_q
    if abs(d) < 1.0:
        return rate_p * m.expm1mx(-d)
    return rate_q - rate_p + rate_p * d


# --------------------------------------------------------------------------- scalar maths
class scalar:
    """Per-atom entry points (see ``_engine/dispatch.py``) compiled for CPU and CUDA."""

    @staticmethod
    @jitable
    def sample1(p, b, st, x, i):
        x[i] = _draw(p, b, st)

    @staticmethod
    @jitable
    def log_prob1(p, b, x, i):
        return _log_pmf1(x[i], p.rate[b], np.float64(p.log_rate[b]))

    @staticmethod
    @jitable
    def score1(p, b, x, i, s):
        k = x[i]
        s.log_rate[i] = np.float64(k) - p.rate[b] if k >= 0 else 0.0

    @staticmethod
    @jitable
    def sample_score1(p, b, st, x, i, s):
        k = _draw(p, b, st)
        x[i] = k
        s.log_rate[i] = np.float64(k) - p.rate[b]
        return _log_pmf1(k, p.rate[b], np.float64(p.log_rate[b]))

    @staticmethod
    @jitable
    def entropy1(p, b):
        return _entropy1(p.rate[b], np.float64(p.log_rate[b]))

    @staticmethod
    @jitable
    def kl1(p, q, b):
        return _kl1(p.rate[b], q.rate[b], np.float64(p.log_rate[b]), np.float64(q.log_rate[b]))


# --------------------------------------------------------------------------- numpy baseline
def _inversion_np(p, st, b):
    w = npb.philox_block(st, np.zeros(b.shape, np.int64))
    u = u01_f64(w[0], w[1])
    k = np.zeros(b.shape, np.int64)
    pk = p.exp_neg_rate[b]
    cdf = pk.copy()
    pending = np.flatnonzero(u > cdf)
    while pending.size:
        k[pending] += 1
        pk[pending] *= p.rate[b[pending]] / k[pending]
        nxt = cdf[pending] + pk[pending]
        moved = nxt != cdf[pending]
        cdf[pending] = nxt
        pending = pending[moved & (u[pending] > nxt)]
    return k


def _ptrs_np(p, st, b):
    n = b.shape[0]
    out = np.empty(n, np.int64)
    block = np.zeros(n, np.int64)
    pending = np.arange(n)
    rate = p.rate[b]
    log_rate = p.log_rate[b].astype(np.float64)
    a, bb, vr, lia = p.ptrs_a[b], p.ptrs_b[b], p.ptrs_vr[b], p.ptrs_log_inv_alpha[b]
    while pending.size:
        w = npb.philox_block(tuple(s[pending] for s in st), block[pending])
        block[pending] += 1
        uu = u01_f64(w[0], w[1]) - 0.5
        v = u01_f64(w[2], w[3])
        us = 0.5 - np.abs(uu)
        ap, bp = a[pending], bb[pending]
        y = (2.0 * ap / us + bp) * uu + rate[pending] + 0.43
        fast = (us >= 0.07) & (v <= vr[pending])
        test = ~fast & ~((y < 0.0) | (y >= _TWO_62) | ((us < 0.013) & (v > us)))
        k = np.where(fast | test, y, 0.0).astype(np.int64)
        accept = fast.copy()
        ti = np.flatnonzero(test)
        pi = pending[ti]
        accept[ti] = (np.log(v[ti]) + lia[pi] - np.log(ap[ti] / (us[ti] * us[ti]) + bp[ti])
                      <= _log_pmf_np(k[ti], rate[pi], log_rate[pi]))
        out[pending[accept]] = k[accept]
        pending = pending[~accept]
    return out


def _draw_np(p, key, n_atoms, B):
    atoms, b = npb.atoms_and_batch(n_atoms, B)
    st = npb.streams(key, atoms)
    x = np.empty(n_atoms, np.int64)
    small = p.rate[b] < PTRS_MIN_RATE
    for sel, draw in ((small, _inversion_np), (~small, _ptrs_np)):
        idx = np.flatnonzero(sel)
        if idx.size:
            x[idx] = draw(p, tuple(s[idx] for s in st), b[idx])
    return b, x


def _entropy_np(rate, log_rate):
    out = np.empty(rate.shape)
    series = rate >= ENTROPY_SERIES_MIN_RATE
    out[series] = _entropy_series(rate[series])
    idx = np.flatnonzero(~series)
    r, lr = rate[idx], log_rate[idx]
    spread = 12.0 * np.sqrt(r)
    k_lo = np.maximum(r - spread - 5.0, 0.0).astype(np.int64)
    k_hi = (r + spread + 30.0).astype(np.int64)
    acc = np.zeros(idx.shape)
    # the same terms added in the same order (k ascending) as the scalar loop
    for j in range(int((k_hi - k_lo).max(initial=-1)) + 1):
        k = k_lo + j
        lp = _log_pmf_np(k, r, lr)
        with np.errstate(invalid="ignore"):
            acc += np.where((k <= k_hi) & (lp > -np.inf), -np.exp(lp) * lp, 0.0)
    out[idx] = acc
    return out


class vectorised:
    """The same maths on whole arrays (``backend="numpy"``)."""

    @staticmethod
    def sample(p, key, n_atoms, B, dtype):
        return _draw_np(p, key, n_atoms, B)[1]

    @staticmethod
    def log_prob(p, x, B):
        b = np.arange(x.shape[0]) % B
        return _log_pmf_np(x, p.rate[b], p.log_rate[b].astype(np.float64))

    @staticmethod
    def score(p, x, B):
        b = np.arange(x.shape[0]) % B
        return {"log_rate": np.where(x >= 0, x - p.rate[b], 0.0)}

    @staticmethod
    def sample_score(p, key, n_atoms, B, dtype):
        b, x = _draw_np(p, key, n_atoms, B)
        lp = _log_pmf_np(x, p.rate[b], p.log_rate[b].astype(np.float64))
        return x, lp, {"log_rate": x - p.rate[b]}

    @staticmethod
    def entropy(p):
        return _entropy_np(p.rate, p.log_rate.astype(np.float64))

    @staticmethod
    def kl(p, q):
        d = p.log_rate.astype(np.float64) - q.log_rate.astype(np.float64)
        near = np.abs(d) < 1.0
        return np.where(near, p.rate * m.expm1mx(np.where(near, -d, 0.0)),
                        q.rate - p.rate + p.rate * d)


def _prepare(flat: dict) -> dict:
    log_rate = flat["log_rate"].astype(np.float64)
    if (log_rate > math.log(MAX_RATE)).any():
        raise ValueError(f"log_rate must be <= log(2**52) = {math.log(MAX_RATE):.4f} "
                         f"(rate <= 2**52), got {log_rate.max()}")
    rate = np.exp(log_rate)
    # PTRS constants (Hörmann 1993, as in numpy's random_poisson_ptrs); unused below 10
    big = np.maximum(rate, PTRS_MIN_RATE)
    b = 0.931 + 2.53 * np.sqrt(big)
    return {
        "rate": rate,
        "exp_neg_rate": np.exp(-rate),
        "ptrs_a": -0.059 + 0.02483 * b,
        "ptrs_b": b,
        "ptrs_vr": 0.9277 - 3.6224 / (b - 2.0),
        "ptrs_log_inv_alpha": np.log(1.1239 + 1.1328 / (b - 3.4)),
    }


FAMILY = Family(
    name="Poisson",
    params_cls=PoissonParams,
    scores_cls=PoissonScores,
    param_names=("log_rate",),
    param_event_ndims=(0,),
    prepare=_prepare,
    numpy_ops=vectorised,
    discrete=True,
)
register(PoissonParams, scalar)


class Poisson(Distribution):
    """Poisson distribution with rate ``exp(log_rate)``.

    Parameters
    ----------
    log_rate : array_like (float32 or float64; ints promote to float64)
        Log of the rate (``rate <= 2**52``), broadcast to ``full_shape``.  Scores
        are w.r.t. it.
    event_ndims : int
        Trailing dims of ``full_shape`` treated as one event (independent counts):
        log-probs and entropies sum over them.
    backend : {"cpu", "cuda", "numpy"}

    Samples are int64 counts; ``score(x)["log_rate"] = x - rate``.  ``log_prob``
    is ``-inf`` (score 0) for negative ``x``.
    """

    family = FAMILY

    def __init__(self, log_rate, event_ndims: int = 0, *, backend: str = "cpu"):
        self._setup({"log_rate": log_rate}, event_ndims=event_ndims, backend=backend)

    @property
    def rate(self) -> np.ndarray:
        """``exp(log_rate)`` broadcast, in the distribution's dtype."""
        return self._record.rate.reshape(self.full_shape).astype(self.dtype)

    @property
    def mean(self) -> np.ndarray:
        """The rate (mean = variance = rate)."""
        return self.rate

    @property
    def variance(self) -> np.ndarray:
        return self.rate
