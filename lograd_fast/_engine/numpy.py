"""The pure-numpy baseline: the same algorithms as the kernels, vectorised with numpy.

``backend="numpy"`` runs every operation here.  It is the denominator of every
benchmark ratio and draws the *same* Philox streams as the compiled backends, so
samples agree bitwise (transcendental results within a few ulp).

What lives here is only what vectorising needs beyond the shared maths:

* the Philox rounds and the variate transforms of ``_engine/rng.py`` are elementwise
  arithmetic, so the very same functions run here on uint64 / float arrays
  (:func:`variates`);
* rejection samplers (gamma) get a vectorised form that iterates over the shrinking
  set of rejected atoms;
* :func:`atoms_and_batch` and :func:`streams`: atoms, batch indices, stream tuples.

A family's vectorised maths sits in its own file (``families/*.py``) next to its
scalar maths and calls the formula helpers both share.
"""

from __future__ import annotations

import numpy as np

from . import maths as _m
from . import rng as _rng

_U = np.uint64


def streams(key: tuple, atoms: np.ndarray) -> tuple:
    """Stream tuples (five uint64 arrays) of the given atoms, for their own Philox blocks."""
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


def philox_block(st: tuple, block) -> tuple:
    """Vectorised ``_rng.philox_block``: the atoms' blocks ``block`` (the same function)."""
    block = np.broadcast_to(np.asarray(block, np.int64), st[2].shape)
    return _rng.philox4x32(block.astype(np.uint64), st[2], st[3], st[4], st[0], st[1])


_LANES = {
    ("normal", 64): _rng._normal_lanes_f64, ("normal", 32): _rng._normal_lanes_f32,
    ("uniform", 64): _rng._uniform_lanes_f64, ("uniform", 32): _rng._uniform_lanes_f32,
    ("exponential", 64): _rng._exponential_lanes_f64,
    ("exponential", 32): _rng._exponential_lanes_f32,
    ("uniform64", 64): _rng._uniform_lanes_f64,
}


def variates(kind: str, dtype, key: tuple, n_atoms: int, per_atom: int = 1) -> np.ndarray:
    """Vectorised ``_rng.fill_variates``: the variates of atoms ``0 .. n_atoms-1`` of a call
    (``per_atom`` each), shape ``(n_atoms, per_atom)``, bitwise those of the kernels."""
    L = _rng.lanes(kind, dtype)
    bits = 64 if L == 2 else 32
    v0 = int(key[3]) * per_atom
    nv = n_atoms * per_atom
    g0, g1 = v0 // L, -(-(v0 + nv) // L)
    g = np.arange(g0, g1, dtype=np.uint64)
    w = _rng.philox4x32(np.zeros_like(g), g & _U(0xFFFFFFFF), g >> _U(32),
                        np.full_like(g, key[2]), np.full_like(g, key[0]),
                        np.full_like(g, key[1]))
    with np.errstate(all="ignore"):
        lanes = _LANES[kind, bits](*w)
    flat = np.stack(lanes, axis=1).reshape(-1).astype(_rng.variate_dtype(kind, dtype), copy=False)
    return flat[v0 - g0 * L:v0 - g0 * L + nv].reshape(n_atoms, per_atom)


def uniform(dtype, st: tuple, block) -> tuple:
    """Vectorised ``_rng.uniform``: (u, next_block)."""
    block = np.broadcast_to(np.asarray(block, np.int64), st[2].shape)
    w = philox_block(st, block)
    if np.dtype(dtype) == np.float32:
        return _rng.u01_f32(w[0]).astype(np.float32), block + 1
    return _rng.u01_f64(w[0], w[1]), block + 1


def std_exponential(dtype, st: tuple, block) -> tuple:
    """Vectorised ``_rng.std_exponential``: (e, next_block), bitwise the same."""
    u, block = uniform(dtype, st, block)
    log = _m.log_f32 if np.dtype(dtype) == np.float32 else _m.log_f64
    return -log(u), block


def atoms_and_batch(n_atoms: int, B: int) -> tuple[np.ndarray, np.ndarray]:
    atoms = np.arange(n_atoms, dtype=np.int64)
    return atoms, atoms % B


def std_normal_next(dtype, st: tuple, block) -> tuple:
    """Vectorised ``_rng.std_normal``: ``(z, next_block)`` per atom, bitwise the same."""
    block = np.array(np.broadcast_to(np.asarray(block, np.int64), st[2].shape))
    w = philox_block(st, block)
    if np.dtype(dtype) == np.float32:
        z, _ = _rng.box_muller_f32(w[0], w[1])
    else:
        z, _ = _rng.box_muller_f64(w[0], w[1], w[2], w[3])
    return z, block + 1


def std_gamma_log_from(dtype, st: tuple, z0, block, alpha) -> tuple:
    """Vectorised ``_rng.std_gamma_log_from``: ``(log_g, next_block)`` per atom, bitwise the
    same accept/reject decisions.  ``z0``, ``alpha`` (float64) and ``block`` are per atom
    (or scalars); ``log_g`` is float64."""
    n = st[2].shape[0]
    alpha = np.broadcast_to(np.asarray(alpha, np.float64), (n,))
    block = np.array(np.broadcast_to(np.asarray(block, np.int64), (n,)))
    z = np.array(np.broadcast_to(np.asarray(z0), (n,)), np.float64)
    boost = alpha < 1.0
    d = np.where(boost, alpha + 1.0, alpha) - _rng._ONE_THIRD
    c = 1.0 / np.sqrt(9.0 * d)
    out = np.empty(n)
    pending = np.arange(n)
    while pending.size:
        v = 1.0 + c[pending] * z[pending]
        positive = v > 0.0
        at, zp = pending[positive], z[pending][positive]
        v = v[positive]
        v = v * v * v
        u, block[at] = uniform(dtype, _take(st, at), block[at])
        u = u.astype(np.float64)
        z2 = zp * zp
        accept = u < 1.0 - 0.0331 * z2 * z2
        slow = np.flatnonzero(~accept)
        if slow.size:
            ds, vs = d[at[slow]], v[slow]
            accept[slow] = np.log(u[slow]) < 0.5 * z2[slow] + ds * (1.0 - vs + np.log(vs))
        out[at[accept]] = np.log(d[at[accept]] * v[accept])
        pending = np.sort(np.concatenate([pending[~positive], at[~accept]]))
        if pending.size:
            zn, block[pending] = std_normal_next(dtype, _take(st, pending), block[pending])
            z[pending] = zn.astype(np.float64)
    bi = np.flatnonzero(boost)
    if bi.size:
        u, block[bi] = uniform(dtype, _take(st, bi), block[bi])
        out[bi] = out[bi] + np.log(u.astype(np.float64)) / alpha[bi]
    return out, block


def std_gamma_log(dtype, st: tuple, block, alpha) -> tuple:
    """Vectorised ``_rng.std_gamma_log``: the first normal from block ``block`` too."""
    z0, block = std_normal_next(dtype, st, block)
    return std_gamma_log_from(dtype, st, z0, block, alpha)
