r"""The sweep specification: a grid of gradient-estimation cells.

A spec is a TOML or YAML file, a dict of the same shape, or a :class:`SweepSpec`.
TOML example (``lograd-fast sweep --print-default`` prints the built-in one)::

    seed = 0                 # Philox seed of every task
    replicates = 8           # independent estimates per cell (own streams)
    n = [1000, 100000]       # draws per estimate: an int or a list
    estimators = "all"       # or a list: "score", "antithetic", "pathwise", "mvd"
    baselines = ["none", "loo", "optimal"]   # or "all"; numbers are constant baselines
    backend = "cpu"          # or "numpy" (the pure-numpy baseline), or a list
    dtype = "float64"        # or "float32"

    [distribution]           # or [[distribution]] tables for several families
    family = "normal"
    loc = {start = -3.0, stop = 3.0, num = 13}   # a grid axis
    scale = 1.0              # Normal: scale (> 0) or log_scale

    [f]                      # or [[f]] tables for several functions
    name = "(x-k)^2"         # quadratic | exp(-k x^2) | cos(k x) | linear (k x)
    k = [-3.0, 1.0]
    # or: import = "my_module:f"  (an @numba.njit function of one draw), with optional
    #     scalar = "my_module:f1", df = "my_module:df1" for the pathwise estimator

Grid values (parameters, ``k``, ``n``): a number, a list of numbers, or
``{start, stop, num}`` (``log = true`` for a geometric grid).  A list is always a list
of grid values; an array-valued parameter is a list inside the list
(``logits = [[0.0, 1.0, 2.0]]``).

Cells are the product, in this order: distribution, its parameters (in the order
given), function, ``k``, ``n``, backend, estimator, baseline (estimators without a
baseline run once, with ``"none"``; an estimator that does not support a family or
backend is left out of that part of the grid).  Cell ``i`` replicate ``r`` draws from
Philox stream ``i * replicates + r`` under ``seed``: every result is a pure function of
the spec, however the work is split.

Every problem raises ``ValueError`` naming the key (``spec key 'distribution.loc'``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import numbers
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .functions import BUILTINS, canonical_builtin, fingerprint
from .methods import BASELINES, ESTIMATORS, baseline_label, parse_baseline

__all__ = ["SweepSpec", "DistributionSpec", "FunctionSpec", "Cell", "load_spec", "to_toml",
           "family_class"]

TOP_KEYS = ("seed", "replicates", "n", "estimators", "baselines", "backend", "dtype",
            "distribution", "f")
SWEEP_BACKENDS = ("cpu", "numpy")
DTYPES = ("float64", "float32")
_MAX_STREAMS = 2**32
_MAX_SEED = 2**64 - 1
#: values of one grid axis, at most (a list or ``{start, stop, num}``); the product of
#: the axes is counted, never built, before a sweep starts (see ``SweepSpec.work``)
MAX_AXIS = 10**6
#: nesting of an array value (``[[...]]``), at most
MAX_DEPTH = 32

#: spec-only parameter aliases ``alias -> (parameter, transform, domain)``, for every
#: family that has the parameter (``scale`` for ``log_scale``, ``rate`` for ``log_rate``)
_ALIAS_OF = {"scale": ("log_scale", math.log, "positive"),
             "rate": ("log_rate", math.log, "positive")}
#: default values of parameters a spec may leave out (a unit scale)
_DEFAULT_OF = {"log_scale": 0.0}


def aliases_of(family: str) -> dict[str, tuple]:
    """The spec-only aliases of ``family``'s parameters (``{"scale": ("log_scale", ...)}``)."""
    import lograd_fast as lf

    params = lf.FAMILIES.get(family, ())
    return {alias: entry for alias, entry in _ALIAS_OF.items() if entry[0] in params}


def defaults_of(family: str) -> dict[str, float]:
    """Default values of ``family``'s parameters that a spec may leave out."""
    import lograd_fast as lf

    params = lf.FAMILIES.get(family, ())
    return {name: value for name, value in _DEFAULT_OF.items() if name in params}


def _err(key: str, message: str) -> ValueError:
    return ValueError(f"spec key {key!r}: {message}")


# ----------------------------------------------------------------------------- values
def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _number(value: Any, key: str) -> float:
    if not _is_number(value):
        raise _err(key, f"expected a number, got {value!r}")
    x = float(value)
    if not math.isfinite(x):
        raise _err(key, f"values must be finite, got {value!r}")
    return x


def _array_value(value: Any, key: str, depth: int = 0) -> float | tuple:
    """A number or a (nested) list of numbers, as a float or nested tuples."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise _err(key, "an array value must not be empty")
        if depth >= MAX_DEPTH:
            raise _err(key, f"an array value nested deeper than {MAX_DEPTH} levels")
        items = tuple(_array_value(v, key, depth + 1) for v in value)
        kinds = {isinstance(v, tuple) for v in items}
        if len(kinds) > 1 or (True in kinds and len({np.shape(v) for v in items}) > 1):
            raise _err(key, f"ragged array value {value!r}")
        return items
    return _number(value, key)


def _range(spec: Mapping, key: str) -> tuple[float, ...]:
    extra = set(spec) - {"start", "stop", "num", "log"}
    if extra or not {"start", "stop", "num"} <= set(spec):
        raise _err(key, "a range is {start, stop, num} (and optionally log = true), got "
                        f"keys {sorted(spec)}")
    start, stop = _number(spec["start"], f"{key}.start"), _number(spec["stop"], f"{key}.stop")
    num = spec["num"]
    if isinstance(num, bool) or not isinstance(num, numbers.Integral) or num < 1:
        raise _err(f"{key}.num", f"expected a positive int, got {num!r}")
    if num > MAX_AXIS:
        raise _err(f"{key}.num", f"{num} grid values; one axis has at most {MAX_AXIS}")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise _err(f"{key}.log", f"expected true or false, got {log!r}")
    if log:
        if start <= 0 or stop <= 0:
            raise _err(key, "a log range needs start > 0 and stop > 0")
        values = np.geomspace(start, stop, int(num))
    else:
        values = np.linspace(start, stop, int(num))
    return tuple(float(v) for v in values)


def grid_values(value: Any, key: str) -> tuple:
    """Grid values of one axis: a number, a list of values, or a ``{start, stop, num}``."""
    if isinstance(value, Mapping):
        return _range(value, key)
    if isinstance(value, (list, tuple)):
        if not value:
            raise _err(key, "an empty list leaves nothing to sweep")
        if len(value) > MAX_AXIS:
            raise _err(key, f"{len(value)} grid values; one axis has at most {MAX_AXIS}")
        return tuple(_array_value(v, key) for v in value)
    if isinstance(value, np.ndarray):
        return grid_values(value.tolist(), key)
    if _is_number(value):
        return (_number(value, key),)
    raise _err(key, "expected a number, a list of values or {start, stop, num}, got "
                    f"{value!r}")


def _sample_sizes(value: Any) -> tuple[int, ...]:
    out = []
    for v in grid_values(value, "n"):
        if isinstance(v, tuple) or abs(v - round(v)) > 1e-9 * max(1.0, abs(v)):
            raise _err("n", f"sample sizes must be integers, got {v!r}")
        n = int(round(v))
        if not 2 <= n <= 2**62:
            raise _err("n", f"sample sizes must be in [2, 2**62], got {n}")
        if n not in out:
            out.append(n)
    return tuple(out)


def _names(value: Any, key: str, allowed: list[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        if value.strip().lower() == "all":
            return tuple(allowed)
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise _err(key, f"expected a name, a list of names or 'all', got {value!r}")
    out = []
    for v in value:
        name = v.strip().lower() if isinstance(v, str) else v
        if name not in allowed:
            raise _err(key, f"unknown value {v!r}; expected one of {allowed} or 'all'")
        if name not in out:
            out.append(name)
    return tuple(out)


def _int(value: Any, key: str, lo: int, hi: int | None = None) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        if _is_number(value) and float(value).is_integer():
            value = int(value)
        else:
            raise _err(key, f"expected an integer, got {value!r}")
    value = int(value)
    if value < lo or (hi is not None and value > hi):
        bounds = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise _err(key, f"expected an integer {bounds}, got {value}")
    return value


# ----------------------------------------------------------------------------- families
def family_class(name: Any, key: str = "distribution.family") -> type:
    """The public lograd_fast distribution class called ``name`` (case-insensitive)."""
    import lograd_fast as lf

    if not isinstance(name, str):
        raise _err(key, f"expected a family name, got {name!r}")
    by_lower = {k.lower(): k for k in lf.FAMILIES}
    canonical = by_lower.get(name.strip().lower().replace("_", ""))
    if canonical is None:
        raise _err(key, f"unknown family {name!r}; expected one of {sorted(lf.FAMILIES)}")
    return _family_cls(canonical)


def _family_cls(name: str) -> type:
    import lograd_fast as lf
    from lograd_fast import families

    cls = getattr(lf, name, None) or getattr(families, name, None)
    if cls is None:
        raise ValueError(f"family {name!r} is listed in lf.FAMILIES but has no public class")
    return cls


@dataclass
class DistributionSpec:
    """One family and the grid of its parameter values.

    ``params`` maps a parameter name (the constructor's, e.g. ``loc``, ``log_scale``,
    or a spec alias such as the Normal's ``scale``) to its grid values (see
    :func:`grid_values`).  Parameters with a default (the Normal's ``log_scale = 0``)
    may be left out."""

    family: str
    params: dict[str, Any]
    key: str = field(default="distribution", repr=False, compare=False)

    def __post_init__(self) -> None:
        cls = family_class(self.family, f"{self.key}.family")
        self.family = cls.__name__
        import lograd_fast as lf

        names = list(lf.FAMILIES[self.family])
        aliases = aliases_of(self.family)
        allowed = names + sorted(aliases)
        if not isinstance(self.params, Mapping):
            raise _err(self.key, f"parameters must be a table, got {self.params!r}")
        params: dict[str, tuple] = {}
        for name, value in self.params.items():
            if name not in allowed:
                raise _err(f"{self.key}.{name}", f"unknown parameter of {self.family}; "
                                                 f"expected one of {allowed}")
            target = aliases[name][0] if name in aliases else name
            if any((aliases[p][0] if p in aliases else p) == target for p in params):
                raise _err(f"{self.key}.{name}", f"{target} is given twice (directly or by "
                                                 "an alias)")
            values = grid_values(value, f"{self.key}.{name}")
            if name in aliases and aliases[name][2] == "positive":
                if any(np.any(np.asarray(v) <= 0) for v in values):
                    raise _err(f"{self.key}.{name}", f"values must be > 0, got {values}")
            params[name] = values
        given = {aliases[p][0] if p in aliases else p for p in params}
        for name in names:
            if name not in given and name not in defaults_of(self.family):
                raise _err(f"{self.key}.{name}", f"missing: {self.family} needs {names}")
        self.params = params

    def points(self) -> Iterator[tuple[tuple[str, Any], ...]]:
        """Every combination of parameter values, as ``((name, value), ...)``, one at a
        time (the product of the axes is never built)."""
        names = list(self.params)
        for combo in itertools.product(*(self.params[k] for k in names)):
            yield tuple(zip(names, combo))

    def to_dict(self) -> dict:
        return {"family": self.family, **{k: [_listify(v) for v in vals]
                                          for k, vals in self.params.items()}}


def _listify(value: Any) -> Any:
    return [_listify(v) for v in value] if isinstance(value, tuple) else value


def _tuplify(value: Any) -> Any:
    return tuple(_tuplify(v) for v in value) if isinstance(value, list) else value


def build_distribution(family: str, params: tuple, backend: str, dtype: str):
    """The lograd_fast distribution of one grid point (aliases resolved)."""
    cls = _family_cls(family)
    kwargs = dict(defaults_of(family))
    aliases = aliases_of(family)
    for name, value in params:
        arr = np.asarray(value, dtype=np.float64)
        if name in aliases:
            target, transform, _ = aliases[name]
            name, arr = target, np.vectorize(transform, otypes=[np.float64])(arr)
        kwargs[name] = arr
    kwargs = {k: np.asarray(v, dtype=dtype) for k, v in kwargs.items()}
    return cls(**kwargs, backend=backend)


# ----------------------------------------------------------------------------- functions
@dataclass
class FunctionSpec:
    """A test function: a built-in (``name`` and grid values ``k``) or a user function
    (``name`` = ``"module:name"``, an ``@numba.njit`` function of one draw; ``scalar``
    and ``df``: import paths of the scalar form and its derivative, for pathwise)."""

    name: str
    k: Any = None
    scalar: str | None = None
    df: str | None = None
    key: str = field(default="f", repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise _err(f"{self.key}.name", f"expected a function name, got {self.name!r}")
        builtin = canonical_builtin(self.name)
        if builtin is not None:
            self.name = builtin
            if self.k is None:
                raise _err(f"{self.key}.k", f"the built-in {BUILTINS[builtin].label} needs k "
                                            "(a number, a list or {start, stop, num})")
            ks = self.k if isinstance(self.k, tuple) else grid_values(self.k, f"{self.key}.k")
            if any(isinstance(v, tuple) for v in ks):
                raise _err(f"{self.key}.k", "k values must be numbers")
            self.k = tuple(float(v) for v in ks)
            for attr in ("scalar", "df"):
                if getattr(self, attr) is not None:
                    raise _err(f"{self.key}.{attr}", "only for user functions (import = ...); "
                                                     "built-ins have their own")
        else:
            if ":" not in self.name:
                raise _err(f"{self.key}.name", f"unknown function {self.name!r}; expected a "
                           f"built-in {[b.label for b in BUILTINS.values()]} (or "
                           f"{sorted(BUILTINS)}) or import = 'module:name'")
            if self.k not in (None, ()):
                raise _err(f"{self.key}.k", "k applies to the built-in functions only")
            self.k = (None,)
            for attr in ("scalar", "df"):
                value = getattr(self, attr)
                if value is not None and (not isinstance(value, str) or ":" not in value):
                    raise _err(f"{self.key}.{attr}", f"expected 'module:name', got {value!r}")

    @property
    def builtin(self) -> bool:
        return self.name in BUILTINS

    @property
    def label(self) -> str:
        return BUILTINS[self.name].label if self.builtin else self.name

    @property
    def has_scalar_pair(self) -> bool:
        return self.builtin or (self.scalar is not None and self.df is not None)

    def to_dict(self) -> dict:
        if self.builtin:
            return {"name": self.name, "k": list(self.k)}
        out = {"import": self.name}
        out.update({k: getattr(self, k) for k in ("scalar", "df") if getattr(self, k)})
        return out


def _function_from_dict(data: Any, key: str) -> FunctionSpec:
    if isinstance(data, str):
        data = {"import": data} if ":" in data else {"name": data}
    if not isinstance(data, Mapping):
        raise _err(key, f"expected a table (name = ..., k = ...) or (import = ...), got {data!r}")
    extra = set(data) - {"name", "import", "k", "scalar", "df"}
    if extra:
        raise _err(f"{key}.{sorted(extra)[0]}", "unknown key; expected name, k, import, "
                                                "scalar, df")
    if ("name" in data) == ("import" in data):
        raise _err(key, "give exactly one of name = <built-in> and import = 'module:name'")
    if "import" in data:
        path = data["import"]
        if not isinstance(path, str) or ":" not in path:
            raise _err(f"{key}.import", f"expected 'module:name', got {path!r}")
        return FunctionSpec(path, data.get("k"), data.get("scalar"), data.get("df"), key=key)
    return FunctionSpec(data["name"], data.get("k"), data.get("scalar"), data.get("df"),
                        key=key)


def _distribution_from_dict(data: Any, key: str) -> DistributionSpec:
    if not isinstance(data, Mapping):
        raise _err(key, f"expected a table (family = ..., parameters), got {data!r}")
    if "family" not in data:
        raise _err(f"{key}.family", "missing")
    params = {k: v for k, v in data.items() if k != "family"}
    return DistributionSpec(data["family"], params, key=key)


def _tables(value: Any, key: str) -> list[tuple[Any, str]]:
    if isinstance(value, (list, tuple)):
        if not value:
            raise _err(key, "an empty list leaves nothing to sweep")
        return [(v, f"{key}[{i}]") for i, v in enumerate(value)]
    return [(value, key)]


# ----------------------------------------------------------------------------- cells
@dataclass(frozen=True)
class Cell:
    """One point of the grid (all replicates share it, each with its own stream)."""

    index: int
    family: str
    params: tuple  # ((name, value), ...) as in the spec (aliases kept)
    f: str  # built-in name or "module:name"
    k: float | None
    f_scalar: str | None
    f_df: str | None
    n: int
    backend: str
    dtype: str
    estimator: str
    baseline: str | float

    @property
    def label(self) -> str:
        """``estimator+baseline`` (``"score+loo"``), or ``estimator`` for estimators
        without a baseline (``"pathwise"``)."""
        if ESTIMATORS[self.estimator].takes_baseline:
            return f"{self.estimator}+{baseline_label(self.baseline)}"
        return self.estimator

    @property
    def f_label(self) -> str:
        return BUILTINS[self.f].label if self.f in BUILTINS else self.f

    def to_dict(self) -> dict:
        """JSON-able description (without the index)."""
        out = dataclasses.asdict(self)
        del out["index"]
        out["params"] = [[k, _listify(v)] for k, v in self.params]
        return out

    @classmethod
    def from_dict(cls, data: Mapping, index: int = -1) -> Cell:
        data = dict(data)
        data["params"] = tuple((k, _tuplify(v)) for k, v in data["params"])
        return cls(index=index, **data)


# ----------------------------------------------------------------------------- the spec
@dataclass
class SweepSpec:
    """A validated sweep specification (see the module docstring).

    Construct it from a dict or file with :func:`load_spec` /
    :meth:`SweepSpec.from_dict`, or directly (the fields are validated either way)."""

    distributions: list[DistributionSpec]
    functions: list[FunctionSpec]
    n: Any = 10_000
    estimators: Any = "all"
    baselines: Any = "all"
    replicates: int = 8
    seed: int = 0
    backend: Any = ("cpu",)
    dtype: str = "float64"
    #: directories searched for user modules (``import = ...``); a spec file's own
    search_path: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.distributions, DistributionSpec):
            self.distributions = [self.distributions]
        if isinstance(self.functions, FunctionSpec):
            self.functions = [self.functions]
        for what, cls in (("distributions", DistributionSpec), ("functions", FunctionSpec)):
            items = getattr(self, what)
            if not isinstance(items, (list, tuple)) or not items or \
                    not all(isinstance(i, cls) for i in items):
                raise _err("distribution" if what == "distributions" else "f",
                           f"expected one or more {cls.__name__}, got {items!r}")
        self.distributions = list(self.distributions)
        self.functions = list(self.functions)
        self.n = _sample_sizes(self.n)
        self.estimators = _names(self.estimators, "estimators", list(ESTIMATORS))
        if isinstance(self.baselines, (str, numbers.Real)) or self.baselines is None:
            if isinstance(self.baselines, str) and self.baselines.strip().lower() == "all":
                self.baselines = tuple(BASELINES)
            else:
                self.baselines = (self.baselines,)
        if not isinstance(self.baselines, (list, tuple)) or not self.baselines:
            raise _err("baselines", f"expected a name, a number or a list, got "
                                    f"{self.baselines!r}")
        self.baselines = tuple(dict.fromkeys(parse_baseline(b) for b in self.baselines))
        self.replicates = _int(self.replicates, "replicates", 1, 10**6)
        self.seed = _int(self.seed, "seed", 0, _MAX_SEED)
        self.backend = _names(self.backend, "backend", list(SWEEP_BACKENDS))
        if self.dtype not in DTYPES:
            raise _err("dtype", f"expected one of {list(DTYPES)}, got {self.dtype!r}")
        self.search_path = tuple(str(p) for p in self.search_path)
        n_cells = self.work()["cells"]
        if not n_cells:
            raise _err("estimators", f"no estimator of {list(self.estimators)} supports the "
                       f"families {[d.family for d in self.distributions]} on backends "
                       f"{list(self.backend)}")
        if n_cells * self.replicates > _MAX_STREAMS:
            raise _err("replicates", f"{n_cells} cells x {self.replicates} replicates "
                       f"exceed the {_MAX_STREAMS} Philox streams of one seed")

    # -- construction ---------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping, *, search_path: tuple[str, ...] = ()) -> SweepSpec:
        """Validate a dict of the TOML shape (keys: see :data:`TOP_KEYS`)."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a sweep spec must be a table/dict, got {type(data).__name__}")
        for key in data:
            if key not in TOP_KEYS:
                raise _err(str(key), f"unknown key; expected one of {list(TOP_KEYS)}")
        for key in ("distribution", "f"):
            if key not in data:
                raise _err(key, "missing")
        dists = [_distribution_from_dict(v, k) for v, k in _tables(data["distribution"],
                                                                    "distribution")]
        funcs = [_function_from_dict(v, k) for v, k in _tables(data["f"], "f")]
        kwargs = {k: data[k] for k in ("n", "estimators", "baselines", "replicates", "seed",
                                       "backend", "dtype") if k in data}
        return cls(dists, funcs, search_path=search_path, **kwargs)

    def to_dict(self) -> dict:
        """The canonical dict (grids expanded); ``from_dict`` of it gives an equal spec."""
        return {
            "seed": self.seed, "replicates": self.replicates, "n": list(self.n),
            "estimators": list(self.estimators),
            "baselines": [b if isinstance(b, float) else b for b in self.baselines],
            "backend": list(self.backend), "dtype": self.dtype,
            "distribution": [d.to_dict() for d in self.distributions],
            "f": [f.to_dict() for f in self.functions],
        }

    # -- the grid ---------------------------------------------------------------------
    def _methods(self, dist: DistributionSpec, fn: FunctionSpec) -> list[tuple]:
        """``(backend, estimator, baselines)`` of every grid point of ``dist`` and ``fn``."""
        out = []
        for backend in self.backend:
            for name in self.estimators:
                method = ESTIMATORS[name]
                if not method.supports(dist.family, backend):
                    continue
                if method.scalar and not fn.has_scalar_pair:
                    continue
                out.append((backend, name, self.baselines if method.takes_baseline
                            else ("none",)))
        return out

    def iter_cells(self) -> Iterator[Cell]:
        """Every cell of the grid, in order (cell ``i`` uses streams ``i * replicates + r``),
        one at a time."""
        index = 0
        for dist in self.distributions:
            for point in dist.points():
                for fn in self.functions:
                    methods = self._methods(dist, fn)
                    for k in fn.k:
                        for n in self.n:
                            for backend, name, baselines in methods:
                                for b in baselines:
                                    yield Cell(index, dist.family, point, fn.name, k,
                                               fn.scalar, fn.df, n, backend, self.dtype,
                                               name, b)
                                    index += 1

    def cells(self) -> list[Cell]:
        """Every cell of the grid, in order, as a list (see :meth:`work` for its size)."""
        return list(self.iter_cells())

    def work(self) -> dict[str, int]:
        """The size of the sweep, counted from the axes without building the grid:
        ``cells``, ``estimates`` (cells x replicates) and ``draws`` (samples drawn by
        all estimates; an antithetic pair is two)."""
        cells = draws = 0
        for dist in self.distributions:
            points = math.prod(len(values) for values in dist.params.values())
            for fn in self.functions:
                methods = self._methods(dist, fn)
                per_n = sum(len(baselines) for _, _, baselines in methods)
                # an antithetic estimate of n pairs draws 2 n samples
                draws_per_n = sum((2 if name == "antithetic" else 1) * len(baselines)
                                  for _, name, baselines in methods)
                cells += points * len(fn.k) * len(self.n) * per_n
                draws += points * len(fn.k) * sum(self.n) * draws_per_n
        return {"cells": cells, "estimates": cells * self.replicates,
                "draws": draws * self.replicates}

    def skipped(self) -> list[str]:
        """Estimators left out of part of the grid, and why (for a note to the user)."""
        notes = []
        for name in self.estimators:
            method = ESTIMATORS[name]
            for dist in self.distributions:
                for backend in self.backend:
                    if not method.supports(dist.family, backend):
                        notes.append(f"{name} does not support {dist.family} on "
                                     f"backend={backend!r}")
            if method.scalar:
                for fn in self.functions:
                    if not fn.has_scalar_pair:
                        notes.append(f"{name} needs scalar = and df = for f {fn.label!r}")
        return notes

    def validate_points(self) -> None:
        """Build every distribution of the grid once (catches out-of-domain values early)."""
        for i, dist in enumerate(self.distributions):
            key = "distribution" if len(self.distributions) == 1 else f"distribution[{i}]"
            for point in dist.points():
                for backend in self.backend:
                    try:
                        build_distribution(dist.family, point, backend, self.dtype)
                    except (TypeError, ValueError) as exc:
                        raise _err(key, f"{dist.family}({dict(point)}) is invalid: "
                                        f"{exc}") from exc

    def task_key(self, cell: Cell) -> str:
        """Identity of a cell's result: its description, seed, streams and replicates,
        the lograd_fast version, the hash of the package's kernel sources and the
        fingerprint of ``f``'s code (:func:`~.functions.code_fingerprint`): after an
        edit of either, a rerun recomputes the cell instead of reusing old numbers."""
        import lograd_fast as lf

        from .._engine.cache import SOURCE_HASH

        code = fingerprint(cell.f, cell.k, cell.f_scalar, cell.f_df, self.search_path)
        blob = json.dumps({"cell": cell.to_dict(), "seed": self.seed,
                           "stream0": cell.index * self.replicates,
                           "replicates": self.replicates, "version": lf.__version__,
                           "kernels": SOURCE_HASH, "code": code},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:24]


# ----------------------------------------------------------------------------- loading
def _read_file(path: Path) -> dict:
    try:
        return _parse_file(path)
    except RecursionError:  # the parsers recurse per level of nesting
        raise ValueError(f"spec file {str(path)!r} nests its lists or tables too deeply "
                         f"(at most {MAX_DEPTH} levels make sense)") from None


def _parse_file(path: Path) -> dict:
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read spec file {str(path)!r}: {exc}") from exc
    if suffix == ".toml":
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            try:
                import tomli as tomllib
            except ModuleNotFoundError:
                raise ValueError("reading a TOML spec on Python 3.10 needs `pip install "
                                 "tomli`") from None
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"spec file {str(path)!r} is not valid TOML: {exc}") from exc
    if suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ModuleNotFoundError:
            raise ValueError("reading a YAML spec needs `pip install pyyaml`") from None
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"spec file {str(path)!r} is not valid YAML: {exc}") from exc
    if suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"spec file {str(path)!r} is not valid JSON: {exc}") from exc
    raise ValueError(f"spec file {str(path)!r}: expected a .toml, .yaml/.yml or .json file")


def load_spec(source: Any) -> SweepSpec:
    """A validated :class:`SweepSpec` from a path (TOML/YAML/JSON), a dict or a spec."""
    if isinstance(source, SweepSpec):
        return source
    if isinstance(source, Mapping):
        return SweepSpec.from_dict(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"spec file {str(path)!r} does not exist")
        data = _read_file(path)
        if not isinstance(data, Mapping):
            raise ValueError(f"spec file {str(path)!r} must hold a table of keys, got "
                             f"{type(data).__name__}")
        try:
            return SweepSpec.from_dict(data, search_path=(str(path.resolve().parent),))
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    raise TypeError(f"spec must be a path, a dict or a SweepSpec, got {type(source).__name__}")


# ----------------------------------------------------------------------------- TOML out
def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return repr(float(value))
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} as TOML")


def to_toml(data: Mapping) -> str:
    """A spec dict as TOML text (tables last; lists of tables as ``[[...]]``)."""
    lines, tables = [], []
    for key, value in data.items():
        if isinstance(value, Mapping) or (isinstance(value, (list, tuple)) and value
                                          and all(isinstance(v, Mapping) for v in value)):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    for key, value in tables:
        items = [value] if isinstance(value, Mapping) else list(value)
        header = f"[{key}]" if isinstance(value, Mapping) else f"[[{key}]]"
        for item in items:
            lines.append("")
            lines.append(header)
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in item.items())
    return "\n".join(lines) + "\n"
