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

import contextlib
import functools
import hashlib
import importlib
import math
import numbers
import os
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["BUILTINS", "Builtin", "Functions", "canonical_builtin", "resolve", "import_object",
           "code_fingerprint", "fingerprint"]


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


@contextlib.contextmanager
def _searching(paths: tuple[str, ...]):
    """``paths`` first on ``sys.path`` for the duration of one import, then removed.

    Only a spec file's own directory is searched, and only for its ``import =``
    entries: left on ``sys.path`` (or the working directory put there, as the
    console script once did), a ``tomllib.py`` or ``yaml.py`` lying next to the spec
    would run in place of the library the next time that is imported."""
    added = [p for p in paths if p and p not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for p in added:
            if p in sys.path:
                sys.path.remove(p)


def import_object(path: str, key: str = "f.import", search_path: tuple[str, ...] = ()) -> object:
    """The object named by ``"package.module:attribute"`` (``ValueError`` naming ``key``);
    the module is looked up in ``search_path`` first, then on ``sys.path``."""
    if not isinstance(path, str) or path.count(":") != 1:
        raise ValueError(f"spec key {key!r}: expected 'module:name', got {path!r}")
    module_name, attr = path.split(":")
    if not module_name or not attr:
        raise ValueError(f"spec key {key!r}: expected 'module:name', got {path!r}")
    try:
        with _searching(search_path):
            module = importlib.import_module(module_name)
    except Exception as exc:
        where = f" (searched: {', '.join(search_path)}, then sys.path)" if search_path else ""
        raise ValueError(f"spec key {key!r}: cannot import module {module_name!r} "
                         f"({type(exc).__name__}: {exc}){where}; put the module next to the "
                         "spec file or make it importable (pip install, PYTHONPATH)") from exc
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


@functools.lru_cache(maxsize=64)
def resolve(name: str, k: float | None, scalar: str | None = None, df: str | None = None,
            search_path: tuple[str, ...] = ()) -> Functions:
    """Compiled forms of a built-in (``name``, ``k``) or of a user function
    (``name`` = ``"module:name"``, optional ``scalar``/``df`` import paths).

    Cached per process: a built-in is compiled once per ``k``."""
    if name in BUILTINS:
        f1, df1 = _builtin_scalars(name, float(k))
        return Functions(_draw_of(f1), f1, df1)
    draw = check_njit(import_object(name, "f.import", search_path), "f.import")
    f1 = check_njit(import_object(scalar, "f.scalar", search_path), "f.scalar") \
        if scalar else None
    d1 = check_njit(import_object(df, "f.df", search_path), "f.df") if df else None
    return Functions(draw, f1, d1)


# ----------------------------------------------------------------------------- code identity
def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def code_fingerprint(*functions: Callable | None) -> str:
    """SHA-256 (first 16 hex digits) of the code behind ``functions`` (njit or plain).

    Covers, for each function and every function it refers to (globals, module
    attributes and closure cells that are functions or njit dispatchers, followed
    transitively): its bytecode and constants, the whole source file it was
    defined in, and the numbers, strings and arrays it refers to (Numba freezes
    those into the compiled code).  An edit of ``f`` -- or of a helper it calls,
    or of a module-level constant next to it -- changes the fingerprint, so a
    sweep's stored cells of the old ``f`` are not reused."""
    digest = hashlib.sha256()
    seen: set[int] = set()
    files: set[str] = set()
    stack = [f for f in functions if f is not None]
    while stack:
        obj = stack.pop()
        func = getattr(obj, "py_func", obj)
        if not isinstance(func, types.FunctionType) or id(func) in seen or _library(func):
            continue
        seen.add(id(func))
        digest.update(func.__qualname__.encode())
        names: list[str] = []
        for code in _code_objects(func.__code__):
            digest.update(code.co_code)
            digest.update(repr([c for c in code.co_consts
                                if not isinstance(c, types.CodeType)]).encode())
            names += code.co_names
        path = func.__code__.co_filename
        if path not in files and os.path.isfile(path):
            files.add(path)
            digest.update(Path(path).read_bytes())
        refs = [func.__globals__[n] for n in dict.fromkeys(names) if n in func.__globals__]
        for value in refs + _closure_values(func):
            if isinstance(value, types.ModuleType):  # module.attr: the attributes named
                stack += [getattr(value, n) for n in names if _is_code(getattr(value, n, None))]
            elif _is_code(value):
                stack.append(value)
            elif isinstance(value, (numbers.Number, str, bytes)):
                digest.update(repr(value).encode())
            elif isinstance(value, np.ndarray):
                digest.update(f"{value.dtype}{value.shape}".encode())
                digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()[:16]


_LIBRARIES = {"numpy", "numba", "scipy", "llvmlite"} | set(getattr(sys, "stdlib_module_names", ()))


def _library(func: types.FunctionType) -> bool:
    """A function of numpy, Numba, scipy or the standard library: not followed (what
    it calls is no part of the user's code and changes only with a new install)."""
    return (getattr(func, "__module__", None) or "").split(".")[0] in _LIBRARIES


def _is_code(value: Any) -> bool:
    return isinstance(value, types.FunctionType) or \
        isinstance(getattr(value, "py_func", None), types.FunctionType)


def _closure_values(func: types.FunctionType) -> list:
    values = []
    for cell in func.__closure__ or ():
        try:
            values.append(cell.cell_contents)
        except ValueError:  # an empty cell
            pass
    return values


@functools.lru_cache(maxsize=64)
def fingerprint(name: str, k: float | None, scalar: str | None = None, df: str | None = None,
                search_path: tuple[str, ...] = ()) -> str:
    """:func:`code_fingerprint` of the three forms of a sweep function (see :func:`resolve`)."""
    fns = resolve(name, k, scalar, df, search_path)
    return code_fingerprint(fns.draw, fns.scalar, fns.df)
