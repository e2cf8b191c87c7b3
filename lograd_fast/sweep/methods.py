"""The estimators and baselines a sweep can run, by name.

:data:`ESTIMATORS` maps a name to a :class:`Method`: the public lograd_fast function
it calls, whether it takes a baseline, and which families and backends it supports.
:data:`BASELINES` maps a baseline name to the value passed as ``baseline=``.  Both
tables hold only what the installed lograd_fast provides; a spec's ``"all"`` means
every entry.

``lf.EMA`` is deliberately absent: it is a *stateful* baseline for training loops
(each call subtracts the moving average of the previous calls).  In a sweep every
task is one independent call, where a fresh EMA is exactly "no baseline", and
carrying it across replicates would make a result depend on the order of the work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import estimators as lf  # the public estimator functions (lf.score_function, ...)
from .functions import Functions

__all__ = ["Method", "ESTIMATORS", "BASELINES", "baseline_label", "baseline_value",
           "parse_baseline"]


@dataclass(frozen=True)
class Method:
    """One estimator of the sweep table."""

    name: str
    #: public lograd_fast function it calls
    function: str
    takes_baseline: bool
    #: family class names it supports: a tuple, ``None`` (every family), or a callable
    #: returning the tuple (evaluated when asked: families may register later)
    families: tuple[str, ...] | Callable[[], tuple[str, ...]] | None
    backends: tuple[str, ...]
    #: needs the scalar ``f``/``df`` pair (pathwise) rather than ``f`` of a draw
    scalar: bool
    run: Callable[..., Any]
    doc: str = ""

    def supports(self, family: str, backend: str) -> bool:
        families = self.families() if callable(self.families) else self.families
        return (families is None or family in families) and backend in self.backends

    def __call__(self, dist: Any, fns: Functions, n: int, *, seed: int, stream: int,
                 baseline: Any) -> Any:
        return self.run(dist, fns, n, seed, stream, baseline)


def _score(dist, fns, n, seed, stream, baseline):
    return lf.score_function(dist, fns.draw, n, seed, stream=stream, baseline=baseline)


def _antithetic(dist, fns, n, seed, stream, baseline):
    return lf.antithetic(dist, fns.draw, n, seed, stream=stream, baseline=baseline)


def _pathwise(dist, fns, n, seed, stream, baseline):
    return lf.pathwise(dist, fns.scalar, fns.df, n, seed, stream=stream)


def _mvd(dist, fns, n, seed, stream, baseline):
    return lf.measure_valued(dist, fns.draw, n, seed, stream=stream)


def _families_with(entry_point: str) -> Callable[[], tuple[str, ...]]:
    """The families whose maths has ``entry_point`` (``reflect1``: symmetric, for
    antithetic pairs; ``reparam1``: reparameterisable, for pathwise)."""
    def names() -> tuple[str, ...]:
        from .._engine.dispatch import supports
        from ..families import FAMILY_CLASSES

        return tuple(name for name, cls in FAMILY_CLASSES.items()
                     if supports(cls.family.params_cls, entry_point))

    return names


_CANDIDATES = (
    Method("score", "score_function", True, None, ("cpu", "numpy"), False, _score,
           "score function (REINFORCE), one term per draw"),
    Method("antithetic", "antithetic", True, _families_with("reflect1"), ("cpu",), False,
           _antithetic, "score function on antithetic pairs (x, its mirror image); var is "
           "per pair (2 draws)"),
    Method("pathwise", "pathwise", False, _families_with("reparam1"), ("cpu",), True,
           _pathwise, "reparameterisation, df(x) dx/dtheta"),
    Method("mvd", "measure_valued", False, ("Normal",), ("cpu",), False, _mvd,
           "measure-valued derivative (weak derivatives of the Normal)"),
)

#: estimator name -> :class:`Method`, for the estimators this lograd_fast provides
ESTIMATORS: dict[str, Method] = {m.name: m for m in _CANDIDATES if hasattr(lf, m.function)}


def _baseline_table() -> dict[str, Any]:
    known = getattr(lf, "BASELINES", (None, "mean", "loo"))
    table = {"none": None}
    for name in ("mean", "loo", "optimal"):
        if name in known:
            table[name] = name
    return table


#: baseline name -> the ``baseline=`` value (numbers are constant baselines)
BASELINES: dict[str, Any] = _baseline_table()


def parse_baseline(value: Any, key: str = "baselines") -> str | float:
    """A baseline of a spec as its canonical form: a name of :data:`BASELINES` or a float."""
    import math
    import numbers

    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if not math.isfinite(float(value)):
            raise ValueError(f"spec key {key!r}: a constant baseline must be finite, "
                             f"got {value!r}")
        return float(value)
    if value is None:
        return "none"
    if isinstance(value, str):
        name = value.strip().lower()
        if name in BASELINES:
            return name
        if name.startswith("ema"):
            raise ValueError(f"spec key {key!r}: 'ema' is a stateful baseline for training "
                             "loops; in a sweep every task is one independent call, where it "
                             "is the same as 'none' (see lograd_fast.sweep.methods)")
        try:
            return parse_baseline(float(name), key)
        except ValueError:
            pass
    raise ValueError(f"spec key {key!r}: unknown baseline {value!r}; expected one of "
                     f"{sorted(BASELINES)} or a number")


def baseline_value(name: str | float) -> Any:
    """The ``baseline=`` argument for a canonical baseline."""
    return name if isinstance(name, float) else BASELINES[name]


def baseline_label(name: str | float) -> str:
    """A baseline as it appears in the results table (``"none"``, ``"loo"``, ``"0.5"``)."""
    return repr(name) if isinstance(name, float) else name
