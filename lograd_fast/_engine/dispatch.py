"""Per-operation entry points, resolved by the type of the family's parameter record.

A family registers its parameter-record class (a ``NamedTuple``) together with an
object holding its scalar maths.  The drivers call the entry points below; Numba
resolves ``sample1(params, ...)`` at compile time to the family's function
(``numba.extending.overload`` on the record type), and plain Python (CUDA
simulator, ``NUMBA_DISABLE_JIT=1``) resolves it per call.

Entry points, for batch element ``b`` and flat output atom ``i``:

``sample1(p, b, st, x, i)``
    draw atom ``i`` into ``x`` using the stream tuple ``st``
``log_prob1(p, b, x, i) -> float64``
``score1(p, b, x, i, s)``
    write d log p(x_i) / d param into the score record ``s`` at ``i``
``sample_score1(p, b, st, x, i, s) -> float64``
    fused: draw, write the score, return log p
``entropy1(p, b) -> float64``
``kl1(p, q, b) -> float64``

Variates (see ``_engine/rng.py``): a family's ``scalar`` class may declare
``variates = rng.Variates(kind, per_atom)``, the draws its sampler takes for every atom,
which the CPU drivers compute beforehand for a chunk of atoms in a vectorised pass
(default: the atom's Philox block 0).  Derived from it:

``per_atom1(p) -> int64``
    ``V``, the variates per atom
``fill1(p, key, a0, n, buf) -> int64``
    the variates of atoms ``a0 .. a0+n-1`` into ``buf``; the offset of the first

Optional entry points (a family provides them when its maths allows):

``reflect1(p, b, x, i)``
    replace ``x[i]`` by its mirror image about the centre of symmetry (the
    antithetic partner: ``2 loc - x`` for a Normal); symmetric families only
``reparam1(p, b, st, x, i, dx)``
    draw ``x[i]`` by reparameterisation from the *same* stream as ``sample1`` and
    write ``d x[i] / d param`` into the record ``dx`` (fields like the scores)
``sample_run1(p, b, n, key, buf, j, V, x, i)``,
``sample_score_run1(p, b, n, key, buf, j, V, x, i, s, lps, k)``
    CPU only: ``sample1`` / ``sample_score1`` of the ``n`` atoms ``i ..`` of batch
    elements ``b ..`` (streams ``buffered_stream(key, i + t, buf, j + t * V)``),
    log-probs into ``lps[k ..]``, the same numbers; for maths whose per-element loops
    are too short to vectorise (Categorical's exps over a few classes: one loop over
    many rows)
``log_prob_run1(p, b, n, x, i, out, E)``, ``entropy_run1(p, b, n, out, E)``
    CPU only: ``log_prob1`` of the atoms ``i ..`` of rows ``b ..`` (``entropy1`` of
    rows ``b ..``), ``n`` of them, whole items of ``E``: each item's sum (from 0.0, in
    atom order, as the drivers sum) into ``out[atom // E]``; the same numbers
``prepare1(p) -> bool``
    CPU only: what the family's ``prepare`` does, compiled -- fill the record's derived
    fields (float64 arrays after the parameters, one element per atom, scratch on
    entry) from its parameters and return whether any value is invalid (the caller
    then runs ``prepare`` for the error); for the adapters' one-call update path
    (``cpu.checked_log_prob_score``)
"""

from __future__ import annotations

import numpy as np
from numba import types

from . import rng
from .jit import _register, dispatch_on_record

REGISTRY: dict = {}

sample1 = dispatch_on_record("sample1", REGISTRY, 4)
log_prob1 = dispatch_on_record("log_prob1", REGISTRY, 3)
score1 = dispatch_on_record("score1", REGISTRY, 4)
sample_score1 = dispatch_on_record("sample_score1", REGISTRY, 5)
entropy1 = dispatch_on_record("entropy1", REGISTRY, 1)
kl1 = dispatch_on_record("kl1", REGISTRY, 2)

reflect1 = dispatch_on_record("reflect1", REGISTRY, 3)
reparam1 = dispatch_on_record("reparam1", REGISTRY, 5)

OPS = ("sample1", "log_prob1", "score1", "sample_score1", "entropy1", "kl1")
OPTIONAL_OPS = ("reflect1", "reparam1", "sample_run1", "sample_score_run1", "prepare1",
                "log_prob_run1", "entropy_run1")


def supports(params_cls: type, op: str) -> bool:
    """Does the family of ``params_cls`` provide the (optional) entry point ``op``?"""
    ops = REGISTRY.get(params_cls)
    return ops is not None and hasattr(ops, op)


def register(params_cls: type, ops: object) -> None:
    """Register a family's scalar maths ``ops`` for the record class ``params_cls``."""
    missing = [name for name in OPS if not hasattr(ops, name)]
    if missing:
        raise TypeError(f"{ops!r} lacks the entry points {missing}")
    REGISTRY[params_cls] = ops


# --------------------------------------------------------------------------- variates
def variates(params_cls: type) -> rng.Variates:
    """The family's :class:`~.rng.Variates` (what its sampler draws per atom)."""
    return getattr(REGISTRY[params_cls], "variates", rng.Variates())


def _is_float32(params) -> bool:
    """Is the distribution float32?  (Its first record field is a user parameter.)"""
    first = params.types[0] if isinstance(params, types.BaseTuple) else params[0]
    return first.dtype == (types.float32 if isinstance(params, types.BaseTuple) else np.float32)


def per_atom1(p):
    """``V``: the variates the family's sampler draws per atom."""
    per = variates(type(p)).per_atom
    return np.int64(per if isinstance(per, int) else per(p))


def fill1(p, key, a0, n, buf):
    """The variates of atoms ``a0 .. a0+n-1`` into ``buf``: the offset of the first."""
    spec = variates(type(p))
    fill = rng.fill_function(spec.kind, _is_float32(p))
    return fill(key, np.int64(a0), np.int64(n), per_atom1(p), buf)


def _spec_of(params):
    ops = REGISTRY.get(getattr(params, "instance_class", None))
    return None if ops is None else getattr(ops, "variates", rng.Variates())


def _per_atom_typer(p):
    spec = _spec_of(p)
    if spec is None:
        return None
    per = spec.per_atom
    if isinstance(per, int):
        return lambda p: np.int64(per)
    return lambda p: np.int64(per(p))


def _fill_typer(p, key, a0, n, buf):
    spec = _spec_of(p)
    if spec is None:
        return None
    fill = rng.fill_function(spec.kind, _is_float32(p))

    def impl(p, key, a0, n, buf):
        return fill(key, a0, n, per_atom1(p), buf)

    return impl


_register(per_atom1, lambda: _per_atom_typer)
_register(fill1, lambda: _fill_typer)
