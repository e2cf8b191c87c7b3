"""The results table of a sweep: one row per cell and differentiated parameter.

Columns
-------
``family``, the parameter columns (as named in the spec; array values as JSON),
``f`` (label), ``k``, ``n``, ``backend``, ``dtype``, ``estimator``, ``baseline``,
``label`` (``"score+loo"``, ``"pathwise"``), ``replicates``, ``seed``, ``stream``
(of replicate 0; replicate ``r`` used ``stream + r``), ``wrt`` (the parameter
differentiated, ``"loc"``, ``"logits[2]"``), and, over the ``R`` replicates:

=============  ====================================================================
``grad``       mean of the replicates' gradient estimates
``grad_se``    its standard error from the spread of the replicates (``std/sqrt(R)``)
``stderr``     its standard error implied by the estimators (``sqrt(mean(se^2)/R)``)
``exact_grad`` the exact gradient (NaN where unknown; see :mod:`.exact`)
``bias``       ``grad - exact_grad``
``var``        the single-term variance ``Estimate.var``, averaged over replicates
``var_se``     its standard error across replicates
``exact_var``  the exact single-term variance (NaN where unknown)
``exact_var_se`` the standard error of ``var`` implied by the exact 4th moment of a
               term, ``sqrt((mu4 - exact_var^2) / (n R))``: more reliable than
               ``var_se`` when the terms are heavy-tailed and ``R`` is small
``wall_s``     seconds spent on the cell (all replicates; the only column that
               differs between two runs of the same spec)
=============  ====================================================================

``var`` is per *term*: per draw for score/pathwise/mvd, per antithetic *pair* (two
draws) for ``antithetic``; the variance of the cell's ``n``-term estimate is
``var / n``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .exact import exact_values
from .spec import Cell

__all__ = ["build_table", "write_table", "load_table", "summarize", "require_pandas",
           "TIMING_COLUMNS", "STAT_COLUMNS"]

STAT_COLUMNS = ("grad", "grad_se", "stderr", "exact_grad", "bias", "var", "var_se",
                "exact_var", "exact_var_se", "wall_s")
#: columns that legitimately differ between two runs of one spec
TIMING_COLUMNS = ("wall_s",)
#: columns of every results table (besides the spec's parameter columns)
CELL_COLUMNS = ("family", "f", "k", "n", "backend", "dtype", "estimator", "baseline", "label",
                "replicates", "seed", "stream", "wrt")


def require_pandas():
    try:
        import pandas
    except ModuleNotFoundError:
        raise ModuleNotFoundError("sweeps need pandas: pip install pandas (and pyarrow for "
                                  "Parquet, matplotlib for plots, tqdm for progress)") from None
    return pandas


def _param_value(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return json.dumps(value)
    return float(value)


def _se(values: np.ndarray) -> np.ndarray:
    R = values.shape[0]
    if R < 2:
        return np.full(values.shape[1:], math.nan)
    return values.std(axis=0, ddof=1) / math.sqrt(R)


def build_table(records: list[dict]):
    """The results DataFrame from cell records (in the given order)."""
    pd = require_pandas()
    param_names: list[str] = []
    for rec in records:
        for name, _ in rec["cell"]["params"]:
            if name not in param_names:
                param_names.append(name)
    rows = []
    for rec in records:
        cell = Cell.from_dict(rec["cell"], rec["index"])
        exact = exact_values(cell)
        grads = np.asarray(rec["grad"], dtype=np.float64)
        variances = np.asarray(rec["var"], dtype=np.float64)
        stderrs = np.asarray(rec["stderr"], dtype=np.float64)
        R = grads.shape[0]
        grad, var = grads.mean(axis=0), variances.mean(axis=0)
        grad_se, var_se = _se(grads), _se(variances)
        stderr = np.sqrt((stderrs * stderrs).mean(axis=0) / R)
        params = dict(rec["cell"]["params"])
        base = {"family": cell.family,
                **{p: _param_value(params[p]) if p in params else math.nan
                   for p in param_names},
                "f": cell.f_label, "k": math.nan if cell.k is None else float(cell.k),
                "n": cell.n, "backend": cell.backend, "dtype": cell.dtype,
                "estimator": cell.estimator,
                "baseline": cell.baseline if isinstance(cell.baseline, str)
                else repr(cell.baseline),
                "label": cell.label, "replicates": R, "seed": rec["seed"],
                "stream": rec["stream0"]}
        n_terms = int(rec["n_terms"])
        for j, wrt in enumerate(rec["wrt"]):
            exact_grad, exact_var, mu4 = exact.get(wrt, (math.nan, math.nan, math.nan))
            # SE of the mean of R sample variances of n terms: sqrt((mu4 - var^2) / (n R))
            exact_var_se = math.sqrt(max(mu4 - exact_var**2, 0.0) / (n_terms * R)) \
                if math.isfinite(mu4) and math.isfinite(exact_var) else math.nan
            rows.append({**base, "wrt": wrt, "grad": float(grad[j]),
                         "grad_se": float(grad_se[j]), "stderr": float(stderr[j]),
                         "exact_grad": exact_grad, "bias": float(grad[j]) - exact_grad,
                         "var": float(var[j]), "var_se": float(var_se[j]),
                         "exact_var": exact_var, "exact_var_se": exact_var_se,
                         "wall_s": float(rec["wall_s"])})
    table = pd.DataFrame(rows)
    for col in ("n", "replicates", "stream"):
        if col in table:
            table[col] = table[col].astype("int64")
    if "seed" in table:  # seeds reach 2**64 - 1: keep them exact
        table["seed"] = table["seed"].astype("uint64")
    return table


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)


def parquet_available() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ModuleNotFoundError:
        return False
    return True


def write_table(table, out_dir: str | os.PathLike) -> dict[str, Any]:
    """Write ``results.csv`` and (if pyarrow is installed) ``results.parquet``.

    Returns ``{"csv": path, "parquet": path or a note}``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Any] = {"csv": out_dir / "results.csv"}
    _atomic(paths["csv"], lambda p: table.to_csv(p, index=False))
    if parquet_available():
        paths["parquet"] = out_dir / "results.parquet"
        _atomic(paths["parquet"], lambda p: table.to_parquet(p, index=False))
    else:
        paths["parquet"] = "not written: pyarrow is not installed (pip install pyarrow)"
    return paths


def load_table(path: str | os.PathLike):
    """A results table from ``.parquet`` or ``.csv`` (or a sweep directory)."""
    pd = require_pandas()
    path = Path(path)
    if path.is_dir():
        path = path / ("results.parquet" if (path / "results.parquet").exists()
                       and parquet_available() else "results.csv")
    if not path.is_file():
        raise ValueError(f"results file {str(path)!r} does not exist")
    if path.suffix not in (".parquet", ".csv"):
        raise ValueError(f"results file {str(path)!r}: expected .parquet or .csv")
    if path.suffix == ".parquet" and not parquet_available():
        raise ValueError("reading Parquet needs pyarrow (pip install pyarrow), or pass the .csv")
    try:
        if path.suffix == ".parquet":
            table = pd.read_parquet(path)
        else:
            # floats were written with repr: read them back exactly (pandas < 3 needs asking)
            exact = {} if int(pd.__version__.split(".")[0]) >= 3 else \
                {"float_precision": "round_trip"}
            table = pd.read_csv(path, keep_default_na=False, na_values=["", "nan", "NaN"],
                                **exact)
    except Exception as exc:  # parser errors of every kind: binary junk, empty, truncated
        raise ValueError(f"results file {str(path)!r} cannot be read as a table "
                         f"({type(exc).__name__}: {exc})") from exc
    missing = [c for c in CELL_COLUMNS + STAT_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"results file {str(path)!r} is not a lograd-fast sweep table: "
                         f"columns {missing} are missing (it has {list(table.columns)[:12]})")
    return table


def summarize(table, top: int = 4) -> str:
    """A few lines for the terminal: per function and differentiated parameter, the
    estimators with the lowest single-term variance at the largest ``n`` (median over
    the rest of the grid), and how many variances agree with the exact ones."""
    if table.empty:
        return "empty table"
    n = int(table["n"].max())
    data = table[table["n"] == n]
    keys = [k for k in ("family", "f", "k") if data[k].nunique(dropna=False) > 1] or ["f"]
    lines = [f"lowest single-term variance at n = {n} (median over the grid; antithetic: "
             f"per pair):"]
    for values, group in data.groupby(keys + ["wrt"], sort=False, dropna=False):
        values = values if isinstance(values, tuple) else (values,)
        head = ", ".join(f"{k}={v:g}" if isinstance(v, float) else str(v)
                         for k, v in zip(keys, values[:-1]))
        ranked = group.groupby("label", sort=False)["var"].median().sort_values()
        best = "  ".join(f"{label} {var:.3g}" for label, var in ranked.head(top).items())
        lines.append(f"  {head}  d/d{values[-1]}:  {best}")
    se = table["exact_var_se"].where(np.isfinite(table["exact_var_se"]), table["var_se"])
    known = np.isfinite(table["exact_var"]) & np.isfinite(se)
    if known.any():
        err = np.abs(table["var"] - table["exact_var"])[known]
        # an exactly-zero variance is estimated as rounding noise (~1e-30)
        zero = (table["exact_var"][known] == 0) & (table["var"][known] <= 1e-20)
        within = int(((err <= 3 * se[known]) | zero).sum())
        lines.append(f"single-term variance within 3 standard errors of the exact value in "
                     f"{within} of {int(known.sum())} rows (SE: exact_var_se, else var_se)")
    return "\n".join(lines)
