"""Run a sweep: every cell of the grid, locally or on a Dask cluster, resumably.

A *task* is one cell with its replicates; replicate ``r`` of cell ``i`` calls the
cell's estimator with ``seed=spec.seed, stream=i * replicates + r``.  lograd_fast's
draws are a pure function of (seed, stream, element) and its reductions do not
depend on the thread count, so a cell's numbers are the same bitwise whoever
computes it (this process with any number of Numba threads, or any Dask worker).

Resume: each finished cell is written to ``<out>/cells/<key>.json`` atomically (a
temporary name, then ``os.replace``); ``key`` hashes the cell, seed, streams,
replicates and the lograd_fast version, so a later run trusts exactly the files it
would have written itself and recomputes the rest.  Floats are stored with
``repr`` (shortest round-trip), so a resumed table equals an uninterrupted one
bitwise.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .spec import Cell, SweepSpec, build_distribution, load_spec, to_toml

__all__ = ["sweep", "run_cell", "CellStore", "tasks_of"]

THREADS_ENV = "LOGRAD_FAST_SWEEP_THREADS"
_WARM: set = set()
#: a sweep larger than this (cells, or draws over all cells and replicates) runs only
#: with ``yes=True`` (``--yes``): a typo such as ``n = 1e14`` or ``num = 1e8`` would
#: otherwise run for days (the default sweep: 420 cells, 1.3e8 draws)
MAX_CELLS = 100_000
MAX_DRAWS = 10**11


# ----------------------------------------------------------------------------- one task
def tasks_of(spec: SweepSpec, select: Callable[[Cell], bool] | None = None) -> list[dict]:
    """The tasks of a spec (JSON-able dicts, cheap to ship to a worker); ``select``
    keeps a subset of the cells (their streams are those of the full grid)."""
    return [{"key": spec.task_key(cell), "index": cell.index, "cell": cell.to_dict(),
             "seed": spec.seed, "stream0": cell.index * spec.replicates,
             "replicates": spec.replicates, "search_path": list(spec.search_path)}
            for cell in spec.iter_cells() if select is None or select(cell)]


def _refresh_numba_config() -> None:
    """Read NUMBA_* environment variables again, before Numba's thread pool starts.

    A Dask worker gets NUMBA_NUM_THREADS in its environment after it started, maybe
    after numba was imported (a spawned worker re-imports the client's ``__main__``,
    e.g. the ``lograd-fast`` console script).  Launching the pool with the stale size
    would make Numba's next reload of its config raise."""
    from numba.core import config

    try:
        config.reload_config()
    except RuntimeError:
        pass  # the pool already runs with another size: keep it


def _set_threads(threads: int | None) -> None:
    import numba

    _refresh_numba_config()
    if threads is None and os.environ.get(THREADS_ENV):
        threads = int(os.environ[THREADS_ENV])
    if threads:
        # set_num_threads is per calling thread: a Dask worker thread sets its own
        numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))


def _flatten(values: dict) -> tuple[list[str], list[float]]:
    names, out = [], []
    for name, arr in values.items():
        arr = np.asarray(arr, dtype=np.float64)
        if arr.ndim == 0:
            names.append(name)
            out.append(float(arr))
        else:
            for idx in np.ndindex(arr.shape):
                names.append(f"{name}[{','.join(map(str, idx))}]")
                out.append(float(arr[idx]))
    return names, out


def run_cell(task: dict, threads: int | None = None) -> dict:
    """Compute one task (a cell, all its replicates) and return its record.

    ``threads``: Numba threads to use (default: ``$LOGRAD_FAST_SWEEP_THREADS``, set on
    Dask workers, else the current setting)."""
    from .._engine import cpu
    from .functions import resolve
    from .methods import ESTIMATORS, baseline_value

    _set_threads(threads)
    cell = Cell.from_dict(task["cell"], task["index"])
    fns = resolve(cell.f, cell.k, cell.f_scalar, cell.f_df, tuple(task["search_path"]))
    dist = build_distribution(cell.family, cell.params, cell.backend, cell.dtype)
    method = ESTIMATORS[cell.estimator]
    baseline = baseline_value(cell.baseline)
    warm_key = (cell.estimator, cell.family, cell.backend, cell.dtype, cell.f, cell.k,
                cell.f_scalar, cell.f_df, dist.batch_shape, dist.event_shape)
    if warm_key not in _WARM:
        # compile / load the serial and the parallel kernels outside the timed region
        for n_warm in (2, 2 * cpu.CHUNK):
            method(dist, fns, n_warm, seed=0, stream=0, baseline=baseline)
        _WARM.add(warm_key)
    grads, variances, stderrs = [], [], []
    wrt: list[str] = []
    n_terms = cell.n
    start = time.perf_counter()
    for r in range(task["replicates"]):
        est = method(dist, fns, cell.n, seed=task["seed"], stream=task["stream0"] + r,
                     baseline=baseline)
        wrt, g = _flatten(est.grad)
        grads.append(g)
        variances.append(_flatten(est.var)[1])
        stderrs.append(_flatten(est.stderr)[1])
        n_terms = int(est.n)
    wall = time.perf_counter() - start
    return {"key": task["key"], "index": task["index"], "cell": task["cell"],
            "seed": task["seed"], "stream0": task["stream0"],
            "replicates": task["replicates"], "n_terms": n_terms, "wrt": wrt,
            "grad": grads, "var": variances, "stderr": stderrs, "wall_s": wall}


# ----------------------------------------------------------------------------- storage
#: fields of a cell file (besides ``checksum``), as :func:`run_cell` writes them
RECORD_FIELDS = ("key", "index", "cell", "seed", "stream0", "replicates", "n_terms", "wrt",
                 "grad", "var", "stderr", "wall_s")


def checksum(record: dict) -> str:
    """SHA-256 of a cell record's content (every field but ``checksum``), as written:
    canonical JSON, floats by ``repr`` (so a stored record checks out bitwise)."""
    content = {k: v for k, v in record.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(content, sort_keys=True, allow_nan=True)
                          .encode()).hexdigest()


class CellStore:
    """Finished cells, one JSON file each under ``directory`` (in memory if ``None``).

    Each file holds its record, its own key and a checksum of its content; a file
    that fails either (edited values, NaN written over a number, a dropped
    replicate, another cell's content, a truncated or foreign file) is not trusted:
    :meth:`load` returns ``None`` and notes why in :attr:`rejected`, and the cell is
    recomputed."""

    def __init__(self, directory: str | os.PathLike | None):
        self.directory = Path(directory) if directory is not None else None
        self._memory: dict[str, dict] = {}
        #: ``(path, reason)`` of every stored file that was not trusted
        self.rejected: list[tuple[Path, str]] = []

    def path(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / f"{key}.json"

    def load(self, key: str) -> dict | None:
        """The record of ``key`` if a complete, intact one is stored, else ``None``.

        ValueError if something other than a file stands at the cell's path."""
        if self.directory is None:
            return self._memory.get(key)
        path = self.path(key)
        if not path.exists():
            return None
        if not path.is_file():
            raise ValueError(f"{path} is not a file (a directory?) but the place of a finished "
                             "sweep cell: remove it and run again (the cell is recomputed)")
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            return self._reject(path, f"unreadable ({type(exc).__name__})")
        if not isinstance(record, dict) or not set(RECORD_FIELDS) <= set(record) \
                or "checksum" not in record:
            return self._reject(path, "not a complete cell record")
        if record["key"] != key:
            return self._reject(path, "it holds another cell's record")
        if record["checksum"] != checksum(record):
            return self._reject(path, "its content does not match its checksum (edited?)")
        return record

    def _reject(self, path: Path, reason: str) -> None:
        self.rejected.append((path, reason))
        return None

    def save(self, record: dict) -> None:
        """Store atomically: a reader sees the whole file or none of it."""
        record = {**record, "checksum": checksum(record)}
        if self.directory is None:
            self._memory[record["key"]] = record
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.path(record["key"])
        tmp = final.with_name(f".{final.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_text(json.dumps(record, allow_nan=True), encoding="utf-8")
        os.replace(tmp, final)


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- progress
class _Progress:
    """tqdm bar of cells (done / total, ETA) with samples per second; plain lines
    without tqdm; nothing when quiet."""

    def __init__(self, total: int, done: int, quiet: bool):
        self.total, self.done, self.quiet = total, done, quiet
        self.samples = 0
        self.start = time.perf_counter()
        self.bar = None
        self._last_line = 0.0
        if quiet:
            return
        try:
            from tqdm.auto import tqdm
        except ModuleNotFoundError:
            print(f"sweep: {done}/{total} cells done (install tqdm for a progress bar)",
                  file=sys.stderr)
            return
        self.bar = tqdm(total=total, initial=done, unit="cell", desc="sweep",
                        file=sys.stderr, dynamic_ncols=True, smoothing=0.1)

    def rate(self) -> float:
        return self.samples / max(time.perf_counter() - self.start, 1e-9)

    def update(self, record: dict) -> None:
        self.done += 1
        self.samples += int(record["n_terms"]) * int(record["replicates"])
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.set_postfix_str(f"{self.rate():.3g} samples/s", refresh=False)
            self.bar.update(1)
        elif time.perf_counter() - self._last_line > 5.0 or self.done == self.total:
            self._last_line = time.perf_counter()
            print(f"sweep: {self.done}/{self.total} cells, {self.rate():.3g} samples/s",
                  file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ----------------------------------------------------------------------------- schedulers
def _run_local(tasks: Iterable[dict], threads: int | None,
               on_result: Callable[[dict], None]) -> None:
    import numba

    _refresh_numba_config()
    before = numba.get_num_threads()
    try:
        for task in tasks:
            on_result(run_cell(task, threads))
    finally:
        numba.set_num_threads(before)  # leave the caller's setting as it was


def _check_workers(workers: Any) -> int | None:
    if workers is None:
        return None
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    return workers


def sweep(spec: Any, out: str | os.PathLike | None = None, *, scheduler: str = "local",
          dask: Any = None, workers: int | None = None, quiet: bool = False,
          plot: bool = True, select: Callable[[Cell], bool] | None = None,
          yes: bool = False):
    """Run a variance sweep and return its results table (a pandas DataFrame).

    Parameters
    ----------
    spec : path, dict or SweepSpec
        The grid (see :mod:`lograd_fast.sweep.spec`); a path may be TOML, YAML or JSON.
    out : path, optional
        Output directory: ``results.csv``, ``results.parquet`` (when pyarrow is
        installed), the plots (PNG), ``spec.toml`` and ``cells/`` (finished cells: a
        rerun resumes from them).  ``None``: compute in memory, write nothing.
    scheduler : {"local", "dask"}
        ``"local"``: this process, Numba's thread pool.  ``"dask"``: a Dask
        distributed cluster (``dask`` below, or a LocalCluster on 127.0.0.1).
    dask : str or distributed.Client, optional
        Scheduler address (``"tcp://host:8786"``) or a connected client; implies
        ``scheduler="dask"``.
    workers : int, optional
        Local: Numba threads.  Dask LocalCluster: worker processes (default: one per
        core), each with ``NUMBA_NUM_THREADS = cores // workers``.
    quiet : bool
        No progress bar.
    plot : bool
        Write the plots next to the table (needs matplotlib).
    select : callable, optional
        ``select(cell) -> bool`` runs only some cells (a :class:`~.spec.Cell` has
        ``family``, ``params``, ``f``, ``k``, ``n``, ``estimator``, ``baseline``, ...).
        Each keeps the streams it has in the full grid, so its rows are exactly those
        of a full run.
    yes : bool
        Run a sweep beyond :data:`MAX_CELLS` cells or :data:`MAX_DRAWS` draws.  Its
        size is counted from the axes (never by building the grid) before anything
        runs, printed unless ``quiet``, and a larger sweep is a ``ValueError``
        without ``yes=True``.

    Returns
    -------
    pandas.DataFrame
        One row per cell and differentiated parameter (see
        :func:`lograd_fast.sweep.results.build_table`); ``df.attrs`` holds ``paths``
        (files written), ``computed`` and ``reused`` (cells), ``rejected`` (stored cell
        files that failed their key or checksum, recomputed).
    """
    if not isinstance(yes, bool):
        raise TypeError(f"yes must be True or False, got {yes!r}")
    spec = load_spec(spec)
    work = spec.work()
    size = (f"{work['cells']:,} cells x {spec.replicates:,} replicates = "
            f"{work['estimates']:,} estimates, {work['draws']:.3g} draws")
    if not yes and (work["cells"] > MAX_CELLS or work["draws"] > MAX_DRAWS):
        raise ValueError(f"this sweep is {size}, beyond the limit of {MAX_CELLS:,} cells or "
                         f"{MAX_DRAWS:.0e} draws; check the spec (n, replicates, num of the "
                         "ranges), or pass --yes (yes=True) to run it anyway")
    if not quiet:
        print(f"sweep: {size}", file=sys.stderr)
    spec.validate_points()
    if scheduler not in ("local", "dask"):
        raise ValueError(f"scheduler must be 'local' or 'dask', got {scheduler!r}")
    if dask is not None:
        scheduler = "dask"
    workers = _check_workers(workers)
    if scheduler == "local" and workers is not None:
        import numba

        if workers > numba.config.NUMBA_NUM_THREADS:
            raise ValueError(f"workers={workers} exceeds NUMBA_NUM_THREADS="
                             f"{numba.config.NUMBA_NUM_THREADS} (the local scheduler's "
                             "workers are Numba threads)")
    if select is not None and not callable(select):
        raise TypeError(f"select must be a callable (Cell -> bool), got {select!r}")
    from . import results  # pandas: imported only when a sweep runs

    results.require_pandas()
    if scheduler == "dask":
        from . import _dask  # noqa: F401  (fails here, before any work, without the extra)
    # resolve user functions here: a bad import path fails before any work starts
    from .functions import resolve

    for fn in spec.functions:
        if not fn.builtin:
            resolve(fn.name, None, fn.scalar, fn.df, spec.search_path)
    out_dir = Path(out) if out is not None else None
    store = CellStore(out_dir / "cells" if out_dir is not None else None)
    tasks = tasks_of(spec, select)
    if not tasks:
        raise ValueError("select= kept no cell of the grid")
    records: dict[str, dict] = {}
    for task in tasks:
        record = store.load(task["key"])
        if record is not None:
            records[task["key"]] = record
    pending = [t for t in tasks if t["key"] not in records]
    reused = len(records)
    for path, reason in store.rejected:  # said even when quiet: stored results were wrong
        print(f"sweep: recomputing {path.name}: {reason}", file=sys.stderr)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_text_atomic(out_dir / "spec.toml", to_toml(spec.to_dict()))
    progress = _Progress(len(tasks), reused, quiet)

    def on_result(record: dict) -> None:
        store.save(record)
        records[record["key"]] = record
        progress.update(record)

    try:
        if pending and scheduler == "local":
            _run_local(pending, workers, on_result)
        elif pending:
            from . import _dask

            with _dask.client_for(dask, workers) as client:
                _dask.run_tasks(client, pending, run_cell, on_result)
    finally:
        progress.close()
    table = results.build_table([records[t["key"]] for t in tasks])
    paths: dict[str, Any] = {}
    if out_dir is not None:
        paths.update(results.write_table(table, out_dir))
        if plot:
            from . import plots

            if plots.available():
                figures = plots.plot_results(table, out_dir)
                paths.update({name: out_dir / f"{name}.png" for name in figures})
            else:
                paths["plots"] = "not written: matplotlib is not installed"
    table.attrs.update({"paths": paths, "computed": len(pending), "reused": reused,
                        "rejected": [str(path) for path, _ in store.rejected]})
    return table
