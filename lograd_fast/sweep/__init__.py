"""Large-scale variance sweeps of gradient estimators.

Which estimator and baseline has the lowest variance here, and how does it scale with
``n``?  A sweep runs a grid of cells (family and parameter values, test function
``f``, sample size ``n``, estimator, baseline) with independent replicates, each on
its own Philox stream, locally (Numba threads) or on a Dask cluster, resumably, and
returns a tidy table with exact values next to the estimates::

    import lograd_fast as lf
    table = lf.sweep("spec.toml", out="results")       # or a dict, or SweepSpec
    from lograd_fast.sweep import DEFAULT_SPEC
    lf.sweep(DEFAULT_SPEC, scheduler="dask")           # a LocalCluster on 127.0.0.1

Modules: :mod:`.spec` (format, validation, the grid), :mod:`.methods` (estimator and
baseline tables), :mod:`.functions` (built-in ``f``), :mod:`.runner` (execution,
resume), :mod:`.results` (the table), :mod:`.exact` (exact gradients and variances),
:mod:`.plots` (figures), :mod:`.default` (the embedded default sweep).
"""

from .default import DEFAULT_SPEC
from .functions import BUILTINS
from .methods import BASELINES, ESTIMATORS
from .runner import sweep
from .spec import Cell, DistributionSpec, FunctionSpec, SweepSpec, load_spec, to_toml

__all__ = ["sweep", "SweepSpec", "DistributionSpec", "FunctionSpec", "Cell", "load_spec",
           "to_toml", "DEFAULT_SPEC", "ESTIMATORS", "BASELINES", "BUILTINS", "plot_results",
           "load_table"]


def plot_results(*args, **kwargs):
    """See :func:`lograd_fast.sweep.plots.plot_results` (needs matplotlib)."""
    from .plots import plot_results as _plot

    return _plot(*args, **kwargs)


def load_table(path):
    """See :func:`lograd_fast.sweep.results.load_table` (needs pandas)."""
    from .results import load_table as _load

    return _load(path)
