"""A sweep on a Dask distributed cluster gives the local table bitwise (but the timing)."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

import lograd_fast as lf
from lograd_fast.sweep.results import TIMING_COLUMNS, load_table

SPEC = {
    "seed": 21, "replicates": 2, "n": [3000, 12000],
    "estimators": "all", "baselines": ["none", "optimal"],
    "distribution": {"family": "normal", "loc": [-0.5, 1.0], "scale": [0.7, 1.2]},
    "f": {"name": "exp(-k x^2)", "k": 0.5},
}


def _bare(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=list(TIMING_COLUMNS))


@pytest.mark.slow
def test_dask_cluster_matches_local_bitwise(tmp_path):
    from distributed import Client, LocalCluster

    from lograd_fast.sweep._dask import THREADS_ENV, host_cores

    local = lf.sweep(SPEC, tmp_path / "local", quiet=True, plot=False)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        # an existing scheduler, by address (as a dask-jobqueue / Kubernetes one would be)
        remote = lf.sweep(SPEC, tmp_path / "dask", dask=cluster.scheduler_address,
                          quiet=True, plot=False)
        with Client(cluster) as client:
            threads = client.run(lambda: os.environ.get(THREADS_ENV))
    assert len(threads) == 2
    assert set(threads.values()) == {str(max(1, host_cores() // 2))}
    assert remote.attrs["computed"] == len(local) // 2
    pd.testing.assert_frame_equal(_bare(remote), _bare(local))
    pd.testing.assert_frame_equal(_bare(load_table(tmp_path / "dask" / "results.parquet")),
                                  _bare(local))


# what pip's `lograd-fast` console script is: the package imported at the top of the
# main module, which every spawned worker process imports again (before the cluster's
# NUMBA_NUM_THREADS reaches its environment)
CONSOLE_SCRIPT = """
import sys
from lograd_fast.cli import main
if __name__ == "__main__":
    sys.exit(main())
"""


@pytest.mark.slow
def test_cli_dask_scheduler_starts_a_local_cluster(tmp_path):
    spec = {**SPEC, "n": 3000, "estimators": ["score", "mvd"]}
    local = lf.sweep(spec, quiet=True, plot=False)
    from lograd_fast.sweep import to_toml

    path = tmp_path / "spec.toml"
    path.write_text(to_toml(spec))
    script = tmp_path / "lograd_fast_console.py"
    script.write_text(CONSOLE_SCRIPT)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(script), "sweep", str(path), "--out", str(out),
                           "--scheduler", "dask", "--workers", "2", "--no-plot"],
                          capture_output=True, text=True, timeout=1200, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert f"computed {len(local) // 2}, reused 0" in proc.stdout
    assert "sweep:" in proc.stderr  # the progress bar, fed by the Dask futures
    pd.testing.assert_frame_equal(_bare(load_table(out / "results.parquet")), _bare(local))


def test_cells_are_batched_into_dask_tasks():
    from lograd_fast.sweep._dask import batch_size

    assert batch_size(1000, 2) == 32  # capped: progress and resume stay fine-grained
    assert batch_size(100, 2) == 6  # about 8 tasks per worker thread
    assert batch_size(5, 16) == 1
