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

Optional entry points (a family provides them when its maths allows):

``reflect1(p, b, x, i)``
    replace ``x[i]`` by its mirror image about the centre of symmetry (the
    antithetic partner: ``2 loc - x`` for a Normal); symmetric families only
``reparam1(p, b, st, x, i, dx)``
    draw ``x[i]`` by reparameterisation from the *same* stream as ``sample1`` and
    write ``d x[i] / d param`` into the record ``dx`` (fields like the scores)
"""

from __future__ import annotations

from .jit import dispatch_on_record

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
OPTIONAL_OPS = ("reflect1", "reparam1")


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
