r"""Test functions ``f`` of a sweep: the built-ins and user functions by import path.

Every function comes in the three forms the estimators need:

* ``draw``    ``@njit`` function of one whole draw (a 1-D array of its elements) ->
              float: the reward ``sum_e f(x_e)`` (what :func:`lograd_fast.score_function`,
              :func:`~lograd_fast.antithetic` and :func:`~lograd_fast.measure_valued` call);
* ``scalar``  ``@njit`` ``float -> float``, ``f`` of one element (pathwise);
* ``df``      ``@njit`` ``float -> float``, its derivative (pathwise).

Built-ins (``k`` a real parameter, swept like a distribution parameter):

==================  ==============  ================================================
name                alias           closed form of ``E f`` for ``x ~ N(mu, sigma^2)``
==================  ==============  ================================================
``quadratic``       ``(x-k)^2``     ``sigma^2 + (mu - k)^2``
``gaussian``        ``exp(-k x^2)`` ``a^{-1/2} exp(-k mu^2 / a)``, ``a = 1 + 2 k sigma^2``
``cosine``          ``cos(k x)``    ``cos(k mu) exp(-k^2 sigma^2 / 2)``
``linear``          ``k x``         ``k mu``
==================  ==============  ================================================

Their vectorised numpy twins (``numpy_f``/``numpy_df``) serve the exact values in
:mod:`lograd_fast.sweep.exact` (quadrature), never the hot path.

A user function is ``"module:name"`` (an ``@numba.njit`` function of one draw);
``scalar=`` and ``df=`` import paths add the pathwise forms.
"""

from __future__ import annotations

import functools
import importlib
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["BUILTINS", "Builtin", "Functions", "canonical_builtin", "resolve", "import_object"]


@dataclass(frozen=True)
class Builtin:
    """A built-in test function ``f(x; k)``: its label and numpy maths."""

    name: str
    label: str
    numpy_f: Callable[[np.ndarray, float], np.ndarray]
    numpy_df: Callable[[np.ndarray, float], np.ndarray]
    #: ``(mu, sigma, k) -> (E f, d/dmu, d/dlog_sigma)`` for ``x ~ N(mu, sigma^2)``
    normal_exact: Callable[[float, float, float], tuple[float, float, float]]


def _quadratic_exact(mu: float, sigma: float, k: float) -> tuple[float, float, float]:
    return sigma * sigma + (mu - k) ** 2, 2.0 * (mu - k), 2.0 * sigma * sigma


def _gaussian_exact(mu: float, sigma: float, k: float) -> tuple[float, float, float]:
    a = 1.0 + 2.0 * k * sigma * sigma
    if a <= 0.0:  # E exp(-k x^2) diverges
        return math.inf, math.nan, math.nan
    value = math.exp(-k * mu * mu / a) / math.sqrt(a)
    d_mu = value * (-2.0 * k * mu / a)
    d_log_sigma = value * (-2.0 * k * sigma**2 / a + 4.0 * k * k * mu * mu * sigma**2 / (a * a))
    return value, d_mu, d_log_sigma


def _cosine_exact(mu: float, sigma: float, k: float) -> tuple[float, float, float]:
    damp = math.exp(-0.5 * k * k * sigma * sigma)
    return (math.cos(k * mu) * damp, -k * math.sin(k * mu) * damp,
            -k * k * sigma * sigma * math.cos(k * mu) * damp)


def _linear_exact(mu: float, sigma: float, k: float) -> tuple[float, float, float]:
    return k * mu, k, 0.0


BUILTINS: dict[str, Builtin] = {
    "quadratic": Builtin("quadratic", "(x-k)^2", lambda x, k: (x - k) ** 2,
                         lambda x, k: 2.0 * (x - k), _quadratic_exact),
    "gaussian": Builtin("gaussian", "exp(-k x^2)", lambda x, k: np.exp(-k * x * x),
                        lambda x, k: -2.0 * k * x * np.exp(-k * x * x), _gaussian_exact),
    "cosine": Builtin("cosine", "cos(k x)", lambda x, k: np.cos(k * x),
                      lambda x, k: -k * np.sin(k * x), _cosine_exact),
    "linear": Builtin("linear", "k x", lambda x, k: k * x + 0.0 * x,
                      lambda x, k: k + 0.0 * x, _linear_exact),
}


def _normalise(text: str) -> str:
    return text.lower().replace("**", "^").replace("*", "").replace(" ", "")


_ALIASES = {_normalise(a): name for name, b in BUILTINS.items() for a in (name, b.label)}
_ALIASES.update({"kx": "linear", "(x-k)2": "quadratic", "exp(-kx2)": "gaussian",
                 "cos": "cosine", "exp": "gaussian", "square": "quadratic"})


def canonical_builtin(name: str) -> str | None:
    """The built-in's canonical name for ``name`` or one of its aliases (``"(x-k)^2"``,
    ``"exp(-k x^2)"``, ``"cos(k x)"``, ``"k x"``); ``None`` if it is not a built-in."""
    return _ALIASES.get(_normalise(name))


# ----------------------------------------------------------------------------- njit forms
@dataclass(frozen=True)
class Functions:
    """The compiled forms of one test function (``scalar``/``df`` may be ``None``)."""

    draw: Callable
    scalar: Callable | None
    df: Callable | None


def _builtin_scalars(name: str, k: float):
    import numba

    if name == "quadratic":
        def f(x):
            return (x - k) * (x - k)

        def df(x):
            return 2.0 * (x - k)
    elif name == "gaussian":
        def f(x):
            return math.exp(-k * x * x)

        def df(x):
            return -2.0 * k * x * math.exp(-k * x * x)
    elif name == "cosine":
        def f(x):
            return math.cos(k * x)

        def df(x):
            return -k * math.sin(k * x)
    else:  # linear
        def f(x):
            return k * x

        def df(x):
            return k + 0.0 * x
    return numba.njit(f), numba.njit(df)


def _draw_of(scalar: Callable) -> Callable:
    """``x -> sum_e scalar(x_e)`` over a draw (a 1-D array), as an njit function."""
    import numba

    def draw(x):
        total = 0.0
        for e in range(x.shape[0]):
            total += scalar(np.float64(x[e]))
        return total

    return numba.njit(draw)


def import_object(path: str, key: str = "f.import") -> object:
    """The object named by ``"package.module:attribute"`` (``ValueError`` naming ``key``)."""
    if not isinstance(path, str) or path.count(":") != 1:
        raise ValueError(f"spec key {key!r}: expected 'module:name', got {path!r}")
    module_name, attr = path.split(":")
    if not module_name or not attr:
        raise ValueError(f"spec key {key!r}: expected 'module:name', got {path!r}")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ValueError(f"spec key {key!r}: cannot import module {module_name!r} "
                         f"({type(exc).__name__}: {exc}); is its directory on sys.path?") from exc
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"spec key {key!r}: module {module_name!r} has no attribute "
                             f"{attr!r}") from None
    return obj


def check_njit(obj: object, key: str) -> Callable:
    import numba

    if not isinstance(obj, numba.core.registry.CPUDispatcher):
        raise ValueError(f"spec key {key!r}: {obj!r} is not a @numba.njit function")
    return obj


def add_search_path(paths: tuple[str, ...]) -> None:
    """Put ``paths`` on ``sys.path`` (where user modules of a spec are looked up)."""
    for p in paths:
        if p and p not in sys.path:
            sys.path.insert(0, p)


@functools.lru_cache(maxsize=64)
def resolve(name: str, k: float | None, scalar: str | None = None, df: str | None = None,
            search_path: tuple[str, ...] = ()) -> Functions:
    """Compiled forms of a built-in (``name``, ``k``) or of a user function
    (``name`` = ``"module:name"``, optional ``scalar``/``df`` import paths).

    Cached per process: a built-in is compiled once per ``k``."""
    if name in BUILTINS:
        f1, df1 = _builtin_scalars(name, float(k))
        return Functions(_draw_of(f1), f1, df1)
    add_search_path(search_path)
    draw = check_njit(import_object(name, "f.import"), "f.import")
    f1 = check_njit(import_object(scalar, "f.scalar"), "f.scalar") if scalar else None
    d1 = check_njit(import_object(df, "f.df"), "f.df") if df else None
    return Functions(draw, f1, d1)
