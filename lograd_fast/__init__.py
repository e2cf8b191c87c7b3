"""lograd_fast: Numba kernels for the score-function (log-derivative) gradient estimator.

    grad_theta E_{x ~ p(x|theta)}[f(x)] = E[f(x) grad_theta log p(x|theta)]

Distributions sample, evaluate log-probabilities and closed-form scores on CPU
threads (Numba), CUDA GPUs (numba-cuda) or pure numpy; estimators turn them into
gradient estimates with variance reduction.

The public names below are imported on first use (PEP 562): ``import lograd_fast``
loads nothing of the package, so a command-line call or a Dask worker pays only
for the parts it touches (``from lograd_fast import Normal`` works as usual).
"""

from __future__ import annotations

import importlib
import sys
import types

__version__ = "0.2.0.dev0"  # 0.2.0 changes the random streams: CHANGELOG.md

#: public name -> the module that defines it (relative to this package)
_EXPORTS = {
    **dict.fromkeys(("BACKENDS", "Distribution"), ".distribution"),
    "CudaUnavailableError": ".errors",
    **dict.fromkeys(("EMA", "Estimate", "antithetic", "batched_score_function", "estimate",
                     "measure_valued", "pathwise", "rloo", "score_function"), ".estimators"),
    **dict.fromkeys(("FAMILIES", "Bernoulli", "Beta", "Categorical", "Dirichlet",
                     "Exponential", "Gamma", "Laplace", "LogNormal", "MultiCategorical",
                     "MultivariateNormal", "Normal", "Poisson", "StudentT", "TanhNormal"),
                    ".families"),
    **dict.fromkeys(("advantages", "policy_gradient", "returns"), ".rl"),  # RL helpers
    "sweep": ".sweep",  # the function (submodules: from lograd_fast.sweep import spec)
}
#: subpackages that the eager ``__init__`` used to bind as attributes
_SUBMODULES = ("distribution", "errors", "estimators", "families", "rl", "_engine")

__all__ = [
    "BACKENDS", "Bernoulli", "Beta", "Categorical", "CudaUnavailableError", "Dirichlet",
    "Distribution", "EMA", "Estimate", "Exponential", "FAMILIES", "Gamma", "Laplace",
    "LogNormal", "MultiCategorical", "MultivariateNormal", "Normal", "Poisson", "StudentT",
    "TanhNormal", "advantages", "antithetic", "batched_score_function", "estimate",
    "measure_valued", "pathwise", "policy_gradient", "rloo", "returns", "score_function",
    "sweep", "__version__",
]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module, __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module("." + name, __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later look-ups are plain attribute reads
    return value


def __dir__() -> list[str]:
    # the public names and the subpackages loaded so far; not this file's own imports
    return sorted(set(__all__) | (set(_SUBMODULES) & set(globals())))


class _Package(types.ModuleType):
    """Importing the subpackage ``lograd_fast.sweep`` binds it as this package's
    attribute ``sweep``, shadowing the public *function* ``lograd_fast.sweep`` (the
    eager ``from .sweep import sweep`` used to rebind it); keep the function."""

    def __setattr__(self, name: str, value) -> None:
        if name == "sweep" and isinstance(value, types.ModuleType) and hasattr(value, "sweep"):
            value = value.sweep
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
