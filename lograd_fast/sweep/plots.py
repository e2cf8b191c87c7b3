"""Figures of a sweep's results table (matplotlib, Agg; optional extra).

* ``variance_vs_<param>.png``: the single-term variance of each estimator (one line
  per estimator+baseline, log scale, a band of +-2 standard errors across replicates)
  against the swept parameter, with the exact variance as crosses: the figure of
  Mohamed, Rosca, Figurnov & Mnih (2020), "Monte Carlo Gradient Estimation in Machine
  Learning", JMLR 21(132), Fig. 2 (variance of each estimator against the parameter
  for a quadratic cost).  Panels: one row per function (and ``k``, and other swept
  parameters), one column per differentiated parameter; the largest ``n``.
* ``variance_vs_n.png`` (when the sweep has several ``n``): the variance of the
  ``n``-sample estimate, ``var / n``, against ``n`` (log-log), at the middle value of
  the swept parameter.
* ``variance_by_estimator.png`` when nothing but the estimator varies.

Variances below ``ZERO_FLOOR`` (1e-10) of a panel's largest are rounding noise of an
exactly-zero variance (antithetic and measure-valued d/dloc at ``mu = k`` for an
even ``f``) and are left out of the log-scale panels; the table keeps them.

Figures are built with ``matplotlib.figure.Figure`` and the Agg canvas: the global
pyplot backend of the caller is left alone.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_results", "available", "MAX_ROWS"]

MAX_ROWS = 8  # panel rows per figure
ZERO_FLOOR = 1e-10  # relative to a panel's largest variance: below is rounding noise
_FIXED = {"family", "f", "k", "n", "backend", "dtype", "estimator", "baseline", "label",
          "replicates", "seed", "stream", "wrt", "grad", "grad_se", "stderr", "exact_grad",
          "bias", "var", "var_se", "exact_var", "exact_var_se", "wall_s", "_pos"}


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ModuleNotFoundError:
        return False
    return True


def _figure(rows: int, cols: int):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2 * cols + 2.2, 3.0 * rows + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, axes


def _label_order(table) -> list[str]:
    from .methods import BASELINES, ESTIMATORS

    est_rank = {name: i for i, name in enumerate(ESTIMATORS)}
    base_rank = {name: i for i, name in enumerate(BASELINES)}
    labels = table[["label", "estimator", "baseline"]].drop_duplicates()
    keys = sorted(labels.itertuples(index=False),
                  key=lambda r: (est_rank.get(r.estimator, 99),
                                 base_rank.get(r.baseline, 50), str(r.baseline)))
    return [r.label for r in keys]


def _colors(labels: list[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {label: cmap(i % cmap.N) for i, label in enumerate(labels)}


def _swept(table, numeric: bool = False) -> list[str]:
    """Parameter columns with more than one value (in column order); ``numeric``: only
    those that can be an axis (array parameters are JSON strings)."""
    import pandas as pd

    return [c for c in table.columns if c not in _FIXED and table[c].nunique(dropna=True) > 1
            and (not numeric or pd.api.types.is_numeric_dtype(table[c]))]


def _row_keys(table, x: str | None) -> list[str]:
    """Columns that split the panels into rows (``f`` always, for the titles)."""
    keys = ["family", "k"] + [c for c in _swept(table) if c != x]
    return ["f"] + [k for k in keys if k in table and table[k].nunique(dropna=False) > 1]


def _title(keys: list[str], values: tuple) -> str:
    parts = []
    for key, value in zip(keys, values):
        if key == "k" and isinstance(value, float) and math.isnan(value):
            continue
        parts.append(str(value) if key in ("f", "family") else f"{key}={value:g}"
                     if isinstance(value, float) else f"{key}={value}")
    return ", ".join(parts)


def _panel_grid(table, x: str | None):
    keys = _row_keys(table, x)
    groups = list(table.groupby(keys, sort=False, dropna=False))[:MAX_ROWS]
    wrts = list(dict.fromkeys(table["wrt"]))
    return keys, groups, wrts


def _draw_lines(ax, data, xcol: str, labels: list[str], colors: dict, ycol: str = "var",
                scale: Any = None) -> None:
    """One line per label (``ycol / scale`` against ``xcol``), a +-2 SE band, exact
    values as crosses.  Values below ``ZERO_FLOOR`` times the panel's largest are
    rounding noise of an exactly-zero variance: not drawn (log axis)."""
    div_all = 1.0 if scale is None else data[scale].to_numpy(np.float64)
    top = np.nanmax(np.append(data[ycol].to_numpy(np.float64) / div_all, 0.0))
    floor = ZERO_FLOOR * top
    for label in labels:
        sub = data[data["label"] == label].sort_values(xcol)
        if sub.empty:
            continue
        xs = sub[xcol].to_numpy(np.float64)
        div = 1.0 if scale is None else sub[scale].to_numpy(np.float64)
        y = sub[ycol].to_numpy(np.float64) / div
        y = np.where(y > floor, y, np.nan)
        se = sub["var_se"].to_numpy(np.float64) / div
        color = colors[label]
        ax.plot(xs, y, marker="o", markersize=3, linewidth=1.4, color=color, label=label)
        if np.isfinite(se).any():
            lo = np.where(y - 2 * se > 0, y - 2 * se, np.nan)
            ax.fill_between(xs, lo, y + 2 * se, color=color, alpha=0.15, linewidth=0)
        exact = sub["exact_var"].to_numpy(np.float64) / div
        ok = np.isfinite(exact) & (exact > 0)
        if ok.any():
            ax.scatter(xs[ok], exact[ok], marker="x", s=18, color=color, linewidths=1.0,
                       zorder=3)


def _finish(fig, axes, labels, colors, title: str) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colors[label], marker="o", markersize=3, label=label)
               for label in labels]
    handles.append(Line2D([], [], color="0.3", marker="x", linestyle="none",
                          label="exact"))
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)


def _vs_param(table, x: str, labels, colors):
    n = int(table["n"].max())
    data = table[table["n"] == n]
    keys, groups, wrts = _panel_grid(data, x)
    fig, axes = _figure(len(groups), len(wrts))
    for i, (values, group) in enumerate(groups):
        values = values if isinstance(values, tuple) else (values,)
        for j, wrt in enumerate(wrts):
            ax = axes[i, j]
            _draw_lines(ax, group[group["wrt"] == wrt], x, labels, colors)
            ax.set_yscale("log", nonpositive="mask")
            ax.set_xlabel(x)
            ax.set_ylabel(f"Var of one term, d/d{wrt}")
            ax.set_title(_title(keys, values), fontsize=9)
            ax.grid(True, which="major", alpha=0.3)
    _finish(fig, axes, labels, colors, f"Single-term variance of each estimator vs {x} "
                                       f"(n = {n}, bands: +-2 SE across replicates)")
    return fig


def _vs_n(table, x: str | None, labels, colors):
    data = table
    note = ""
    if x is not None:
        values = np.sort(data[x].dropna().unique())
        mid = values[len(values) // 2]
        data = data[data[x] == mid]
        note = f", {x} = {mid:g}"
    keys, groups, wrts = _panel_grid(data, None if x is None else x)
    fig, axes = _figure(len(groups), len(wrts))
    for i, (values_, group) in enumerate(groups):
        values_ = values_ if isinstance(values_, tuple) else (values_,)
        for j, wrt in enumerate(wrts):
            ax = axes[i, j]
            _draw_lines(ax, group[group["wrt"] == wrt], "n", labels, colors, scale="n")
            ax.set_xscale("log")
            ax.set_yscale("log", nonpositive="mask")
            ax.set_xlabel("n (terms per estimate)")
            ax.set_ylabel(f"Var of the estimate = var/n, d/d{wrt}")
            ax.set_title(_title(keys, values_), fontsize=9)
            ax.grid(True, which="major", alpha=0.3)
    _finish(fig, axes, labels, colors, f"Variance of the n-term estimate vs n{note}")
    return fig


def _by_estimator(table, labels, colors):
    n = int(table["n"].max())
    data = table[table["n"] == n].copy()
    data["_pos"] = data["label"].map({label: i for i, label in enumerate(labels)})
    keys, groups, wrts = _panel_grid(data, None)
    fig, axes = _figure(len(groups), len(wrts))
    for i, (values, group) in enumerate(groups):
        values = values if isinstance(values, tuple) else (values,)
        for j, wrt in enumerate(wrts):
            ax = axes[i, j]
            _draw_lines(ax, group[group["wrt"] == wrt], "_pos", labels, colors)
            ax.set_yscale("log", nonpositive="mask")
            ax.set_xticks(range(len(labels)), labels, rotation=60, fontsize=7)
            ax.set_ylabel(f"Var of one term, d/d{wrt}")
            ax.set_title(_title(keys, values), fontsize=9)
    _finish(fig, axes, labels, colors, f"Single-term variance of each estimator (n = {n})")
    return fig


def plot_results(table: Any, out_dir: str | os.PathLike | None = None, *,
                 x: str | None = None, dpi: int = 110) -> dict[str, Any]:
    """Plot a results table (a DataFrame, or the path of a ``.parquet``/``.csv``).

    ``x``: the parameter on the horizontal axis (default: the first swept parameter
    column).  Returns ``{name: matplotlib.figure.Figure}``; with ``out_dir`` each is
    also written as ``<out_dir>/<name>.png``.  Every panel has exactly one line
    (``Line2D``) per estimator+baseline label; exact variances are scatter markers.
    """
    if not available():
        raise ModuleNotFoundError("plots need matplotlib: pip install matplotlib")
    from .results import load_table

    if isinstance(table, (str, os.PathLike)):
        table = load_table(table)
    if table.empty:
        raise ValueError("the results table is empty: nothing to plot")
    swept = _swept(table, numeric=True)
    if x is not None and x not in swept:
        raise ValueError(f"x={x!r} is not a swept numeric parameter of the table; "
                         f"those are {swept}")
    x = x if x is not None else (swept[0] if swept else None)
    labels = _label_order(table)
    colors = _colors(labels)
    figures: dict[str, Any] = {}
    if x is not None:
        figures[f"variance_vs_{x}"] = _vs_param(table, x, labels, colors)
    if table["n"].nunique() > 1:
        figures["variance_vs_n"] = _vs_n(table, x, labels, colors)
    if not figures:
        figures["variance_by_estimator"] = _by_estimator(table, labels, colors)
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, fig in figures.items():
            path = out_dir / f"{name}.png"
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
            fig.savefig(tmp, dpi=dpi)
            os.replace(tmp, path)
    return figures
