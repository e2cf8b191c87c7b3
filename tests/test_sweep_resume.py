"""An interrupted sweep resumes: finished cells are kept, not recomputed, and the final
table equals an uninterrupted run's (except the timing column)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

import lograd_fast as lf
from lograd_fast.sweep.results import TIMING_COLUMNS, load_table

# An f that costs ~10 us per draw, so that a cell takes a noticeable fraction of a second.
SLOW_F = textwrap.dedent("""
    import math
    import numba

    @numba.njit
    def slow_square(x):
        acc = 0.0
        for i in range(1500):
            acc += math.sin(x[0] + 0.001 * i)
        return (x[0] - 1.0) ** 2 + 1e-300 * acc
""")

SPEC = textwrap.dedent("""
    seed = 3
    replicates = 2
    n = 10000
    estimators = ["score"]
    baselines = ["none", "loo"]

    [distribution]
    family = "normal"
    loc = [-1.5, -0.5, 0.5, 1.5]

    [f]
    import = "slow_sweep_f:slow_square"
""")
N_CELLS = 8


def _cli(spec, out):
    return [sys.executable, "-m", "lograd_fast.cli", "sweep", str(spec), "--out", str(out),
            "--quiet", "--no-plot"]


def _done(out):
    return sorted((out / "cells").glob("*.json")) if (out / "cells").is_dir() else []


@pytest.mark.slow
def test_killed_sweep_resumes_without_recomputing(tmp_path):
    (tmp_path / "slow_sweep_f.py").write_text(SLOW_F)
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    out = tmp_path / "out"
    proc = subprocess.Popen(_cli(spec, out), cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 600
        while len(_done(out)) < 2:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the sweep finished no cell in 10 minutes"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate()
    kept = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in _done(out)}
    assert 2 <= len(kept) < N_CELLS, "kill the run earlier: it had finished"
    assert not (out / "results.csv").exists()

    resumed = subprocess.run(_cli(spec, out), cwd=tmp_path, capture_output=True,
                             text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"computed {N_CELLS - len(kept)}, reused {len(kept)}" in resumed.stdout
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in _done(out)}
    assert len(after) == N_CELLS
    for name, state in kept.items():
        assert after[name] == state, f"finished cell {name} was recomputed"

    # an uninterrupted run of the same spec (in this process)
    reference = lf.sweep(spec, tmp_path / "reference", quiet=True, plot=False)
    table = load_table(out / "results.parquet")
    timing = list(TIMING_COLUMNS)
    pd.testing.assert_frame_equal(table.drop(columns=timing), reference.drop(columns=timing))
    assert len(table) == 2 * N_CELLS
    # a temporary file a kill can leave behind (".<key>.json.<pid>.<id>.tmp") is no result
    assert all(not p.name.startswith(".") for p in _done(out))
