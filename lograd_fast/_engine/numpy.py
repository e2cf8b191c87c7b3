"""The pure-numpy baseline: the same algorithms as the kernels, vectorised with numpy.

``backend="numpy"`` runs every operation here.  It is the denominator of every
benchmark ratio and draws the *same* Philox streams as the compiled backends, so
samples agree bitwise (transcendental results within a few ulp).

What lives here is only what vectorising needs beyond the shared maths:

* the Philox rounds of ``_engine/rng.py`` are elementwise integer ops, so the very same
  function runs here on uint64 arrays;
* the rejection samplers (ziggurat normal) get a vectorised form that iterates
  over the shrinking set of rejected atoms;
* :func:`run` is the generic numpy driver: atoms, batch indices, stream tuples.

A family's vectorised maths sits in its own file (``families/*.py``) next to its
scalar maths and calls the formula helpers both share.
"""

from __future__ import annotations

import numpy as np

from . import rng as _rng

_U = np.uint64


def streams(key: tuple, atoms: np.ndarray) -> tuple:
    """Stream tuples (five uint64 arrays) for the given atom indices."""
    a = atoms.astype(np.uint64) + _U(key[3])
    n = a.shape
    return (
        np.full(n, key[0], np.uint64),
        np.full(n, key[1], np.uint64),
        a & _U(0xFFFFFFFF),
        a >> _U(32),
        np.full(n, key[2], np.uint64),
    )


def _take(st: tuple, idx: np.ndarray) -> tuple:
    return tuple(w[idx] for w in st)


def philox_block(st: tuple, block: np.ndarray) -> tuple:
    """Vectorised ``_rng.philox_block`` (it is the same function on arrays)."""
    return _rng.philox4x32(block.astype(np.uint64), st[2], st[3], st[4], st[0], st[1])


def uniform(dtype, st: tuple, block) -> tuple:
    """Vectorised ``_rng.uniform``: (u, next_block)."""
    block = np.broadcast_to(np.asarray(block, np.int64), st[2].shape)
    w = philox_block(st, block)
    if np.dtype(dtype) == np.float32:
        return _rng.u01_f32(w[0]).astype(np.float32), block + 1
    return _rng.u01_f64(w[0], w[1]), block + 1


def std_exponential(dtype, st: tuple, block) -> tuple:
    u, block = uniform(dtype, st, block)
    e = -np.log(u.astype(np.float64))
    return e.astype(dtype), block


def std_normal(dtype, st: tuple, block=0) -> np.ndarray:
    """Vectorised ``_rng.std_normal``: the same ziggurat draws, bitwise."""
    return std_normal_next(dtype, st, block)[0]


def atoms_and_batch(n_atoms: int, B: int) -> tuple[np.ndarray, np.ndarray]:
    atoms = np.arange(n_atoms, dtype=np.int64)
    return atoms, atoms % B


# --------------------------------------------------------------------------- draws with blocks
# Draws that several per-atom variates share a stream with (gamma, Student-t,
# Dirichlet) need each atom's next block: these return it along with the draw.
def _normal_tail_next(st: tuple, block: np.ndarray, negative: np.ndarray) -> tuple:
    out = np.empty(block.shape)
    pending = np.arange(block.shape[0])
    block = block.copy()
    while pending.size:
        w = philox_block(_take(st, pending), block[pending])
        block[pending] += 1
        xx = -np.log(_rng.u01_f64(w[0], w[1])) * _rng._ZIG_INV_R
        yy = -np.log(_rng.u01_f64(w[2], w[3]))
        ok = yy + yy > xx * xx
        x = _rng._ZIG_R + xx
        done = pending[ok]
        out[done] = np.where(negative[done], -x[ok], x[ok])
        pending = pending[~ok]
    return out, block


def std_normal_next(dtype, st: tuple, block) -> tuple:
    """Vectorised ``_rng.std_normal``: ``(z, next_block)`` per atom, ``block`` per atom."""
    f32 = np.dtype(dtype) == np.float32
    n = st[2].shape[0]
    out = np.empty(n, np.float32 if f32 else np.float64)
    block = np.array(np.broadcast_to(np.asarray(block, np.int64), (n,)))
    pending = np.arange(n)
    table_w, table_k, table_f = (
        (_rng._ZW32, _rng._ZK32, _rng._ZF32) if f32 else (_rng._ZW64, _rng._ZK64, _rng._ZF64)
    )
    while pending.size:
        sub = _take(st, pending)
        w = philox_block(sub, block[pending])
        block[pending] += 1
        r = w[0] if f32 else (w[0] << _U(32)) | w[1]
        idx = (r & _U(0xFF)).astype(np.intp)
        negative = ((r >> _U(8)) & _U(1)) != 0
        rabs = r >> _U(9 if f32 else 12)
        x = rabs.astype(out.dtype) * table_w[idx]
        x = np.where(negative, -x, x)
        accept = rabs < table_k[idx]
        tail = ~accept & (idx == 0)
        wedge = ~accept & (idx != 0)
        if tail.any():
            ti = np.flatnonzero(tail)
            at = pending[ti]
            t, block[at] = _normal_tail_next(_take(sub, ti), block[at], negative[ti])
            out[at] = t
        if wedge.any():
            wi = np.flatnonzero(wedge)
            iw = idx[wi]
            if f32:
                u = _rng.u01_f32(w[1][wi]).astype(np.float32)
                y = (table_f[iw] + u * (table_f[iw + 1] - table_f[iw])).astype(np.float64)
                xw = x[wi].astype(np.float64)
            else:
                u = _rng.u01_f64(w[2][wi], w[3][wi])
                y = table_f[iw] + u * (table_f[iw + 1] - table_f[iw])
                xw = x[wi]
            accept[wi] = y < np.exp(-0.5 * xw * xw)
        out[pending[accept]] = x[accept]
        pending = pending[wedge & ~accept]
    return out, block


def std_gamma_log(dtype, st: tuple, block, alpha) -> tuple:
    """Vectorised ``_rng.std_gamma_log``: ``(log_g, next_block)`` per atom (bitwise the same).

    ``alpha`` (float64) and ``block`` are per atom (or scalars); ``log_g`` is float64.
    """
    n = st[2].shape[0]
    alpha = np.broadcast_to(np.asarray(alpha, np.float64), (n,))
    block = np.array(np.broadcast_to(np.asarray(block, np.int64), (n,)))
    boost = alpha < 1.0
    d = np.where(boost, alpha + 1.0, alpha) - _rng._ONE_THIRD
    c = 1.0 / np.sqrt(9.0 * d)
    out = np.empty(n)
    pending = np.arange(n)
    while pending.size:
        z, block[pending] = std_normal_next(dtype, _take(st, pending), block[pending])
        z = z.astype(np.float64)
        v = 1.0 + c[pending] * z
        positive = v > 0.0
        retry = pending[~positive]
        at, z = pending[positive], z[positive]
        v = v[positive]
        v = v * v * v
        u, block[at] = uniform(dtype, _take(st, at), block[at])
        u = u.astype(np.float64)
        z2 = z * z
        accept = u < 1.0 - 0.0331 * z2 * z2
        slow = np.flatnonzero(~accept)
        if slow.size:
            ds, vs = d[at[slow]], v[slow]
            accept[slow] = np.log(u[slow]) < 0.5 * z2[slow] + ds * (1.0 - vs + np.log(vs))
        out[at[accept]] = np.log(d[at[accept]] * v[accept])
        pending = np.concatenate([retry, at[~accept]])
    bi = np.flatnonzero(boost)
    if bi.size:
        u, block[bi] = uniform(dtype, _take(st, bi), block[bi])
        out[bi] = out[bi] + np.log(u.astype(np.float64)) / alpha[bi]
    return out, block
