"""Sweeps that must not run, results that must not be trusted, code that must not be
imported (issue 15: items 17, 19, 20, 22 and the sweep's unclear errors)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

import lograd_fast as lf
from lograd_fast.cli import main as cli_main
from lograd_fast.sweep import DEFAULT_SPEC, load_spec, runner
from lograd_fast.sweep.results import TIMING_COLUMNS

TINY = {"seed": 5, "replicates": 2, "n": 1000, "estimators": ["score"],
        "baselines": ["none"], "distribution": {"family": "normal", "loc": [0.0, 1.0]},
        "f": {"name": "(x-k)^2", "k": 1.0}}


def _without_timing(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=list(TIMING_COLUMNS)).reset_index(drop=True)


def _env() -> dict:
    root = str(Path(__file__).resolve().parent.parent)
    return {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}


# ----------------------------------------------------------------------------- item 17
def test_size_is_counted_without_building_the_grid():
    for data in (DEFAULT_SPEC, TINY, {**TINY, "estimators": "all", "baselines": "all",
                                      "n": [10, 300]}):
        spec = load_spec(data)
        cells = spec.cells()
        work = spec.work()
        assert work["cells"] == len(cells)
        assert work["estimates"] == len(cells) * spec.replicates
        assert work["draws"] == spec.replicates * sum(
            c.n * (2 if c.estimator == "antithetic" else 1) for c in cells)
    # a grid of 10**9 cells is counted at once (building it would take hours)
    axis = {"start": 0.0, "stop": 1.0, "num": 1000}
    huge = load_spec({**TINY, "replicates": 1, "distribution": {
        "family": "normal", "loc": axis, "log_scale": axis}, "f": {"name": "k x", "k": axis}})
    assert huge.work()["cells"] == 10**9


@pytest.mark.parametrize("change", [
    {"n": 10**14},                                                     # absurd n
    {"replicates": 10**6, "n": 10**6},                                 # absurd replicates
    {"distribution": {"family": "normal", "loc": {"start": 0, "stop": 1, "num": 1000},
                      "scale": {"start": 1, "stop": 2, "num": 1000}}},  # 10**6 cells
], ids=["n", "replicates", "cells"])
def test_absurd_sweeps_are_refused_before_any_work(tmp_path, change, capsys):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"beyond the limit.*--yes"):
        lf.sweep({**TINY, **change}, out, quiet=True)
    assert not out.exists()  # nothing written, nothing computed
    (tmp_path / "spec.json").write_text(json.dumps({**TINY, **change}))
    assert cli_main(["sweep", str(tmp_path / "spec.json"), "--out", str(out)]) == 2
    assert "--yes" in capsys.readouterr().err and not out.exists()


def test_one_axis_and_nesting_are_bounded(tmp_path):
    with pytest.raises(ValueError, match=r"distribution.loc.num.*at most 1000000"):
        load_spec({**TINY, "distribution": {"family": "normal",
                                            "loc": {"start": 0, "stop": 1, "num": 10**8}}})
    deep = 1.0
    for _ in range(200):
        deep = [deep]
    with pytest.raises(ValueError, match="nested deeper than 32"):
        load_spec({**TINY, "distribution": {"family": "normal", "loc": deep}})
    # nested far past the parsers' recursion limit: a ValueError, not a RecursionError
    (tmp_path / "deep.json").write_text('{"n": ' + "[" * 100_000 + "1" + "]" * 100_000 + "}")
    (tmp_path / "deep.toml").write_text("n = " + "[" * 5000 + "1" + "]" * 5000 + "\n")
    for name in ("deep.json", "deep.toml"):
        with pytest.raises(ValueError, match="too deeply"):
            load_spec(tmp_path / name)


def test_size_is_printed_and_yes_runs_past_the_limit(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "MAX_CELLS", 1)
    with pytest.raises(ValueError, match="2 cells x 2 replicates = 4 estimates, 4e\\+03 draws"):
        lf.sweep(TINY, None, quiet=True)
    table = lf.sweep(TINY, None, yes=True, plot=False)
    assert table.attrs["computed"] == 2
    assert "sweep: 2 cells x 2 replicates = 4 estimates, 4e+03 draws" in capsys.readouterr().err
    with pytest.raises(TypeError, match="yes"):
        lf.sweep(TINY, None, yes="y")


# ----------------------------------------------------------------------------- item 20
def _one_cell_file(out: Path) -> Path:
    return sorted((out / "cells").glob("*.json"))[0]


def _tamper_value(record):
    record["grad"][0][0] += 1e-12


def _tamper_nan(record):
    record["var"][1][0] = float("nan")


def _tamper_drop_replicate(record):
    for field in ("grad", "var", "stderr"):
        record[field] = record[field][:1]
    record["replicates"] = 1


@pytest.mark.parametrize("tamper", [_tamper_value, _tamper_nan, _tamper_drop_replicate,
                                    "other_cell", "missing_fields", "truncated"])
def test_tampered_cell_files_are_recomputed(tmp_path, tamper, capsys):
    out = tmp_path / "out"
    reference = lf.sweep(TINY, out, quiet=True, plot=False)
    cells = sorted((out / "cells").glob("*.json"))
    target = cells[0]
    if tamper == "other_cell":
        shutil.copy(cells[1], target)
    elif tamper == "missing_fields":
        record = json.loads(target.read_text())
        target.write_text(json.dumps({"key": record["key"], "grad": record["grad"]}))
    elif tamper == "truncated":
        target.write_text(target.read_text()[:40])
    else:  # valid JSON, edited content, the old checksum kept
        record = json.loads(target.read_text())
        tamper(record)
        target.write_text(json.dumps(record, allow_nan=True))
    capsys.readouterr()
    again = lf.sweep(TINY, out, quiet=True, plot=False)
    assert (again.attrs["computed"], again.attrs["reused"]) == (1, 1)
    assert again.attrs["rejected"] == [str(target)]
    assert f"sweep: recomputing {target.name}" in capsys.readouterr().err
    pd.testing.assert_frame_equal(_without_timing(again), _without_timing(reference))
    third = lf.sweep(TINY, out, quiet=True, plot=False)  # the recomputed file is trusted
    assert (third.attrs["computed"], third.attrs["reused"]) == (0, 2)


def test_a_directory_in_a_cells_place_is_a_clear_error(tmp_path):
    out = tmp_path / "out"
    lf.sweep(TINY, out, quiet=True, plot=False)
    target = _one_cell_file(out)
    target.unlink()
    target.mkdir()
    with pytest.raises(ValueError, match=f"{target.name} is not a file.*remove it"):
        lf.sweep(TINY, out, quiet=True, plot=False)


# ----------------------------------------------------------------------------- item 19
MODULE = textwrap.dedent("""
    import numba
    from sweep_helper import shift

    SCALE = {scale}

    @numba.njit
    def f(x):
        return SCALE * (x[0] - shift(x[0]))
""")
HELPER = textwrap.dedent("""
    import numba

    @numba.njit
    def shift(x):
        return {shift}
""")
USER_SPEC = textwrap.dedent("""
    seed = 1
    replicates = 2
    n = 1000
    estimators = ["score"]
    baselines = ["none"]

    [distribution]
    family = "normal"
    loc = [0.5, 1.5]

    [f]
    import = "sweep_user_f:f"
""")


def _run_user_sweep(spec_dir: Path, out: Path) -> tuple[str, pd.DataFrame]:
    proc = subprocess.run([sys.executable, "-m", "lograd_fast.cli", "sweep",
                           str(spec_dir / "spec.toml"), "--out", str(out), "--quiet",
                           "--no-plot"], cwd=out.parent, env=_env(), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, pd.read_csv(out / "results.csv")


def test_cell_key_covers_the_code_of_f(tmp_path):
    """Item 19: after an edit of f (same import path) a rerun reused the old numbers."""
    spec_dir = tmp_path / "spec"
    spec_dir.mkdir()
    (spec_dir / "spec.toml").write_text(USER_SPEC)
    (spec_dir / "sweep_helper.py").write_text(HELPER.format(shift="0.0"))
    (spec_dir / "sweep_user_f.py").write_text(MODULE.format(scale="1.0"))
    out = tmp_path / "out"
    stdout, first = _run_user_sweep(spec_dir, out)
    assert "computed 2, reused 0" in stdout
    stdout, _ = _run_user_sweep(spec_dir, out)
    assert "computed 0, reused 2" in stdout  # unchanged code: every cell reused
    # f(x) = x, E f = mu: d/dloc = 1; after the edit f(x) = 3 x: d/dloc = 3
    (spec_dir / "sweep_user_f.py").write_text(MODULE.format(scale="3.0"))
    stdout, second = _run_user_sweep(spec_dir, out)
    assert "computed 2, reused 0" in stdout
    loc = second[second["wrt"] == "loc"]
    assert ((loc["grad"] - 3.0).abs() <= 5 * loc["stderr"]).all()  # the new f's gradient
    pd.testing.assert_series_equal(3.0 * first["grad"], second["grad"], check_names=False)
    # an edit of an njit helper f calls (another module) counts too
    (spec_dir / "sweep_helper.py").write_text(HELPER.format(shift="1.0"))
    stdout, _ = _run_user_sweep(spec_dir, out)
    assert "computed 2, reused 0" in stdout


def test_cell_key_covers_the_kernel_sources(monkeypatch):
    from lograd_fast._engine import cache

    spec = load_spec(TINY)
    cell = spec.cells()[0]
    before = spec.task_key(cell)
    assert spec.task_key(cell) == before
    monkeypatch.setattr(cache, "SOURCE_HASH", "0" * 16)
    assert spec.task_key(cell) != before


# ----------------------------------------------------------------------------- item 22
FAKE_LIBRARY = textwrap.dedent("""
    import pathlib
    pathlib.Path(__file__).with_name("IMPORTED_" + __name__).write_text("ran")
    raise ImportError("a stray file in the working directory, not the library")
""")


def _console_commands() -> list[list[str]]:
    commands = [[sys.executable, "-m", "lograd_fast.cli"]]
    script = Path(sys.executable).with_name("lograd-fast")
    if script.is_file():  # the installed console script (runs this tree via PYTHONPATH)
        commands.append([sys.executable, str(script)])
    return commands


@pytest.mark.parametrize("command", _console_commands(), ids=lambda c: c[-1].split("/")[-1])
def test_working_directory_is_not_searched(tmp_path, command):
    """Item 22: a tomllib.py in the working directory ran during a sweep of built-in
    functions; the working directory must not be on sys.path at all."""
    work = tmp_path / "work"
    work.mkdir()
    # modules the command imports once it runs (not yaml: Numba imports it at start-up,
    # before any code of ours, when `python -m` has put the working directory first)
    for name in ("tomllib", "tqdm", "pyarrow"):
        (work / f"{name}.py").write_text(FAKE_LIBRARY)
    (tmp_path / "spec.toml").write_text(
        "n = 1000\nreplicates = 1\nestimators = [\"score\"]\nbaselines = [\"none\"]\n"
        "[distribution]\nfamily = \"normal\"\nloc = 0.0\n[f]\nname = \"k x\"\nk = 1.0\n")
    proc = subprocess.run(command + ["sweep", str(tmp_path / "spec.toml"), "--out", "out",
                                     "--no-plot"], cwd=work, env=_env(), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not list(work.glob("IMPORTED_*")), proc.stderr[-2000:]
    assert (work / "out" / "results.csv").is_file()


def test_user_modules_come_from_the_spec_directory_only(tmp_path, monkeypatch):
    spec_dir, elsewhere = tmp_path / "spec", tmp_path / "elsewhere"
    spec_dir.mkdir()
    elsewhere.mkdir()
    module = "import numba\n\n@numba.njit\ndef f(x):\n    return x[0]\n"
    (elsewhere / "sweep_mod_elsewhere.py").write_text(module)
    (spec_dir / "sweep_mod_here.py").write_text(module)
    text = USER_SPEC.replace("sweep_user_f:f", "{}:f")
    (spec_dir / "a.toml").write_text(text.format("sweep_mod_elsewhere"))
    (spec_dir / "b.toml").write_text(text.format("sweep_mod_here"))
    monkeypatch.chdir(elsewhere)  # the module next to the working directory is not found
    path_before = list(sys.path)
    with pytest.raises(ValueError, match="cannot import module 'sweep_mod_elsewhere'"):
        lf.sweep(spec_dir / "a.toml", None, quiet=True)
    table = lf.sweep(spec_dir / "b.toml", None, quiet=True)
    assert len(table) == 4 and sys.path == path_before  # searched, then taken off again


# ----------------------------------------------------------------------------- unclear errors
def test_plot_of_a_file_that_is_no_results_table(tmp_path, capsys):
    junk = tmp_path / "junk.csv"
    for content in (b"a,b\n1,2\n", b"\x00\x01\xff\xfe", b""):
        junk.write_bytes(content)
        assert cli_main(["plot", str(junk)]) == 2
        err = capsys.readouterr().err
        assert "lograd-fast plot: error: results file" in err and "junk.csv" in err
