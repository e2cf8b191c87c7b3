"""The README's main command: ``lograd-fast sweep`` runs the built-in sweep end to end."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from lograd_fast.sweep import DEFAULT_SPEC, load_spec
from lograd_fast.sweep.results import load_table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_default_sweep_command(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "lograd_fast.cli", "sweep"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "sweep-results"
    n_cells = len(load_spec(DEFAULT_SPEC).cells())
    assert f"{n_cells} cells x {DEFAULT_SPEC['replicates']} replicates" in proc.stdout
    assert "lowest single-term variance" in proc.stdout
    assert "sweep:" in proc.stderr  # the progress bar
    for name in ("variance_vs_loc.png", "variance_vs_n.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    table = load_table(out / "results.parquet")
    assert len(table) == 2 * n_cells
    rows = table[(table["loc"] == 1.0) & (table["n"] == 100_000) & (table["wrt"] == "loc")]
    rows = rows.set_index(["k", "label"])
    for key, value in {(1.0, "score+none"): 15.0, (1.0, "score+optimal"): 6.0,
                       (1.0, "pathwise"): 4.0, (-3.0, "score+none"): 495.0}.items():
        row = rows.loc[key]
        # SE of a sample variance, from the exact fourth moment of a term
        assert abs(row["var"] - value) <= 3 * row["exact_var_se"], key
    assert np.isfinite(table["exact_var"]).all()
