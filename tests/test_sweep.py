"""Variance sweeps: spec validation, exact values, the results table, plots, the CLI.

Statistical checks compare a sweep's estimates with exact values within 3 standard
errors, where the standard error of a sample variance comes from the exact fourth
moment of a term (``exact_var_se``) and the sweeps are seeded.
"""

from __future__ import annotations

import json
import math
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import lograd_fast as lf
from lograd_fast.cli import main as cli_main
from lograd_fast.sweep import DEFAULT_SPEC, ESTIMATORS, SweepSpec, load_spec, to_toml
from lograd_fast.sweep.exact import exact_values, normal_moments
from lograd_fast.sweep.functions import BUILTINS
from lograd_fast.sweep.plots import plot_results
from lograd_fast.sweep.results import TIMING_COLUMNS, load_table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

SMALL = {
    "seed": 11, "replicates": 3, "n": [2000, 20000],
    "estimators": "all", "baselines": ["none", "loo", "optimal"],
    "distribution": {"family": "normal", "loc": [-1.0, 0.5, 2.0], "scale": 1.5},
    "f": {"name": "cos(k x)", "k": 0.8},
}


def _without_timing(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=list(TIMING_COLUMNS)).reset_index(drop=True)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("small")
    table = lf.sweep(SMALL, out, quiet=True)
    return out, table


# ----------------------------------------------------------------------------- the spec
def test_default_spec_has_every_estimator_and_baseline():
    spec = load_spec(DEFAULT_SPEC)
    assert set(spec.estimators) == set(ESTIMATORS)
    # what the estimators module offers today (EMA excepted: see sweep/methods.py)
    assert set(ESTIMATORS) >= {"score", "antithetic", "pathwise", "mvd"}
    assert set(spec.baselines) == {"none", "mean", "loo", "optimal"}
    cells = spec.cells()
    assert {c.label for c in cells} >= {"score+none", "score+optimal", "pathwise", "mvd"}
    loc = {dict(c.params)["loc"] for c in cells}
    assert 1.0 in loc and {c.k for c in cells} == {-3.0, 1.0}


def test_spec_round_trips_through_toml(tmp_path):
    import tomllib

    spec = load_spec(SMALL)
    text = to_toml(spec.to_dict())
    again = SweepSpec.from_dict(tomllib.loads(text))
    assert [c.to_dict() for c in again.cells()] == [c.to_dict() for c in spec.cells()]
    path = tmp_path / "spec.toml"
    path.write_text(to_toml(DEFAULT_SPEC))
    assert [c.to_dict() for c in load_spec(path).cells()] == \
        [c.to_dict() for c in load_spec(DEFAULT_SPEC).cells()]


def test_yaml_and_json_specs(tmp_path):
    import yaml

    (tmp_path / "s.yaml").write_text(yaml.safe_dump(SMALL))
    (tmp_path / "s.json").write_text(json.dumps(SMALL))
    ref = [c.to_dict() for c in load_spec(SMALL).cells()]
    for name in ("s.yaml", "s.json"):
        assert [c.to_dict() for c in load_spec(tmp_path / name).cells()] == ref


def test_spec_dataclass_form_equals_dict_form():
    from lograd_fast.sweep import DistributionSpec, FunctionSpec

    spec = SweepSpec([DistributionSpec("Normal", {"loc": [-1.0, 0.5, 2.0], "scale": 1.5})],
                     [FunctionSpec("cosine", k=0.8)], n=[2000, 20000], estimators="all",
                     baselines=["none", "loo", "optimal"], replicates=3, seed=11)
    assert [c.to_dict() for c in spec.cells()] == \
        [c.to_dict() for c in load_spec(SMALL).cells()]


def _bad(**changes):
    spec = json.loads(json.dumps(SMALL))
    for key, value in changes.items():
        target = spec
        *path, last = key.split(".")
        for p in path:
            target = target[p]
        if value is KeyError:
            del target[last]
        else:
            target[last] = value
    return spec


@pytest.mark.parametrize("spec,key", [
    (_bad(nsamples=3), "nsamples"),
    (_bad(n=1), "n"),
    (_bad(n=[1000, 2.5]), "n"),
    (_bad(n="many"), "n"),
    (_bad(replicates=0), "replicates"),
    (_bad(seed=-1), "seed"),
    (_bad(estimators=["score", "reinforce"]), "estimators"),
    (_bad(baselines=["loo", "median"]), "baselines"),
    (_bad(baselines="ema"), "baselines"),
    (_bad(backend="tpu"), "backend"),
    (_bad(dtype="float16"), "dtype"),
    (_bad(**{"distribution.family": "gaussian"}), "distribution.family"),
    (_bad(**{"distribution.sigma": 1.0}), "distribution.sigma"),
    (_bad(**{"distribution.scale": [1.0, -2.0]}), "distribution.scale"),
    (_bad(**{"distribution.log_scale": 0.0}), "distribution.log_scale"),
    (_bad(**{"distribution.loc": {"start": 0, "stop": 1}}), "distribution.loc"),
    (_bad(**{"distribution.loc": {"start": 0, "stop": 1, "num": 0}}), "distribution.loc.num"),
    (_bad(**{"distribution.loc": "zero"}), "distribution.loc"),
    (_bad(**{"distribution.loc": [0.0, float("nan")]}), "distribution.loc"),
    (_bad(**{"distribution.loc": KeyError}), "distribution.loc"),
    (_bad(distribution=KeyError), "distribution"),
    (_bad(**{"f.name": "sin(k x)"}), "f.name"),
    (_bad(**{"f.k": KeyError}), "f.k"),
    (_bad(**{"f.kk": 1.0}), "f.kk"),
    (_bad(f={"import": "no_such_module_xyz:f"}), "f.import"),
    (_bad(f={"import": "math:sqrt"}), "f.import"),
    (_bad(f={"import": "nocolon"}), "f.import"),
])
def test_bad_specs_name_the_key(spec, key, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=f"spec key '{key}'"):
        lf.sweep(spec, out)
    assert not out.exists()  # nothing written that a resume could trust


def test_bad_spec_files(tmp_path):
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("seed = 1\n[distribution\nfamily = 'normal'\n")
    with pytest.raises(ValueError, match="bad.toml.*not valid TOML"):
        load_spec(bad_toml)
    with pytest.raises(ValueError, match="does not exist"):
        load_spec(tmp_path / "missing.toml")
    (tmp_path / "spec.txt").write_text("")
    with pytest.raises(ValueError, match="expected a .toml"):
        load_spec(tmp_path / "spec.txt")
    with pytest.raises(TypeError, match="spec must be"):
        load_spec(42)
    typo = tmp_path / "typo.toml"
    typo.write_text(to_toml({**SMALL, "replicate": 3}))
    with pytest.raises(ValueError, match="typo.toml.*spec key 'replicate'"):
        load_spec(typo)


def test_out_of_domain_parameters_fail_before_any_work(tmp_path):
    spec = {**SMALL, "distribution": {"family": "normal", "loc": 0.0,
                                      "log_scale": [0.0, 800.0]}}  # exp(800) overflows
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="spec key 'distribution'.*log_scale"):
        lf.sweep(spec, out)
    assert not out.exists()


def test_api_arguments_are_checked():
    with pytest.raises(ValueError, match="scheduler"):
        lf.sweep(SMALL, scheduler="slurm")
    with pytest.raises(ValueError, match="workers"):
        lf.sweep(SMALL, workers=0)
    with pytest.raises(TypeError, match="select"):
        lf.sweep(SMALL, select=3)
    with pytest.raises(ValueError, match="select= kept no cell"):
        lf.sweep(SMALL, select=lambda cell: False)


# ----------------------------------------------------------------------------- exact values
@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_closed_form_gradients_match_quadrature(name):
    """d/dmu and d/dlog_sigma of E f in closed form = the score-function identity
    E[f s] evaluated by quadrature (independent of the closed forms)."""
    b = BUILTINS[name]
    for mu, sigma, k in [(0.3, 0.7, 0.9), (-1.2, 1.4, 0.4), (2.0, 0.5, -0.3)]:
        _, d_mu, d_ls = b.normal_exact(mu, sigma, k)
        moments = normal_moments(b, k, mu, sigma, "score", "none", 160)
        assert moments["loc"][0] == pytest.approx(d_mu, rel=1e-9, abs=1e-12)
        assert moments["log_scale"][0] == pytest.approx(d_ls, rel=1e-9, abs=1e-12)


def test_exact_variances_of_the_quadratic_example():
    """Known values for x ~ N(1, 1), f = (x - k)^2 (Mohamed et al. 2020, Fig. 2 setting)."""
    from lograd_fast.sweep.spec import Cell

    def cell(estimator, baseline, k=1.0):
        return Cell(0, "Normal", (("loc", 1.0), ("scale", 1.0)), "quadratic", k, None, None,
                    1000, "cpu", "float64", estimator, baseline)

    def var(*args, **kw):
        return exact_values(cell(*args, **kw))["loc"][1]

    assert var("score", "none") == pytest.approx(15.0, rel=1e-12)
    assert var("score", "optimal") == pytest.approx(6.0, rel=1e-12)
    assert var("score", "loo") == pytest.approx(10.0, rel=1e-12)  # b = E f = 1
    assert var("pathwise", "none") == pytest.approx(4.0, rel=1e-12)
    assert var("score", "none", k=-3.0) == pytest.approx(495.0, rel=1e-12)
    # MVD d/dmu at k = -3: (f(mu + W) - f(mu - W)) / sqrt(2 pi) = 16 W / sqrt(2 pi), W Rayleigh
    assert var("mvd", "none", k=-3.0) == pytest.approx(256 / (2 * math.pi) * (2 - math.pi / 2),
                                                       rel=1e-10)
    assert var("antithetic", "none") == 0.0  # f(1 + z) = f(1 - z): pairs cancel exactly
    # fourth moment: t = z^3 for the plain score function at mu = k
    assert exact_values(cell("score", "none"))["loc"][2] == pytest.approx(10395.0, rel=1e-12)


@pytest.mark.slow
def test_exact_variances_match_long_runs_for_every_estimator():
    """The quadrature formulas (including the MVD couplings) against lograd_fast itself,
    for a non-polynomial f, within 5 standard errors of a sample variance."""
    from lograd_fast.sweep.functions import resolve
    from lograd_fast.sweep.methods import baseline_value
    from lograd_fast.sweep.spec import Cell, build_distribution

    n, mu, scale, k = 100_000, 0.4, 1.3, 0.9
    fns = resolve("cosine", k)
    for name, method in ESTIMATORS.items():
        for baseline in (("none", "optimal") if method.takes_baseline else ("none",)):
            cell = Cell(0, "Normal", (("loc", mu), ("scale", scale)), "cosine", k, None, None,
                        n, "cpu", "float64", name, baseline)
            dist = build_distribution("Normal", cell.params, "cpu", "float64")
            est = method(dist, fns, n, seed=3, stream=17, baseline=baseline_value(baseline))
            for wrt, (grad, var, mu4) in exact_values(cell).items():
                se_var = math.sqrt((mu4 - var * var) / est.n)
                assert abs(float(est.var[wrt]) - var) <= 5 * se_var, (name, baseline, wrt)
                assert abs(float(est.grad[wrt]) - grad) <= 5 * float(est.stderr[wrt]) + 1e-12


# ----------------------------------------------------------------------------- the default sweep
def test_default_sweep_reproduces_exact_variances():
    """Rows of the default sweep (run for the cells at mu = 1 only: every cell keeps its
    own streams, so these are the default table's rows bitwise)."""
    table = lf.sweep(DEFAULT_SPEC, quiet=True,
                     select=lambda c: dict(c.params)["loc"] == 1.0 and c.n == 100_000)
    rows = table[(table["wrt"] == "loc")].set_index(["k", "label"])
    expected = {(1.0, "score+none"): 15.0, (1.0, "score+optimal"): 6.0,
                (1.0, "pathwise"): 4.0, (-3.0, "score+none"): 495.0}
    for key, value in expected.items():
        row = rows.loc[key]
        assert row["exact_var"] == pytest.approx(value, rel=1e-12)
        assert abs(row["var"] - value) <= 3 * row["exact_var_se"], (key, row["var"])
        assert row["var_se"] > 0 and row["replicates"] == DEFAULT_SPEC["replicates"]
    assert np.isfinite(table["exact_var"]).all()
    # every gradient is unbiased (the "mean" baseline by (n-1)/n only: 1e-5 here)
    z = (table["bias"] / table["stderr"]).where(table["exact_var"] > 0, 0.0)
    assert (np.abs(z) <= 4.5).all(), table.loc[np.abs(z) > 4.5, ["k", "label", "wrt", "bias"]]


# ----------------------------------------------------------------------------- the table
def test_table_columns_and_values(small_run):
    out, table = small_run
    spec = load_spec(SMALL)
    cells = spec.cells()
    assert len(table) == 2 * len(cells)  # d/dloc and d/dlog_scale per cell
    for col in ("family", "loc", "scale", "f", "k", "n", "estimator", "baseline", "label",
                "replicates", "seed", "stream", "wrt", "grad", "grad_se", "stderr",
                "exact_grad", "bias", "var", "var_se", "exact_var", "exact_var_se", "wall_s"):
        assert col in table.columns, col
    assert (table["replicates"] == 3).all() and (table["f"] == "cos(k x)").all()
    assert sorted(set(table["stream"])) == [3 * i for i in range(len(cells))]
    assert (table["wall_s"] > 0).all()
    finite = table[np.isfinite(table["exact_var"]) & (table["exact_var"] > 0)]
    assert len(finite) >= 0.9 * len(table)
    within = np.abs(finite["var"] - finite["exact_var"]) <= 3.5 * finite["exact_var_se"]
    assert within.mean() >= 0.9, finite.loc[~within, ["loc", "n", "label", "wrt", "var"]]
    assert (np.abs(table["bias"]) <= 4.5 * table["stderr"]).all()
    # the files: CSV and Parquet hold the same table, cells/ one file per cell
    assert len(list((out / "cells").glob("*.json"))) == len(cells)
    csv, parquet = load_table(out / "results.csv"), load_table(out / "results.parquet")
    pd.testing.assert_frame_equal(csv, table, check_dtype=False)
    pd.testing.assert_frame_equal(parquet, table)


def test_a_subset_of_cells_gives_the_same_rows(small_run):
    _, table = small_run
    sub = lf.sweep(SMALL, quiet=True, select=lambda c: c.estimator == "mvd" and c.n == 2000)
    full = table[(table["estimator"] == "mvd") & (table["n"] == 2000)]
    pd.testing.assert_frame_equal(_without_timing(sub), _without_timing(full))


def test_rerun_reuses_every_cell(small_run):
    out, table = small_run
    again = lf.sweep(SMALL, out, quiet=True, plot=False)
    assert again.attrs["computed"] == 0 and again.attrs["reused"] == len(load_spec(SMALL).cells())
    pd.testing.assert_frame_equal(again, table)  # timing too: it comes from the cell files


@pytest.mark.slow
def test_categorical_sweep_has_exact_values():
    spec = {"seed": 5, "replicates": 4, "n": 20000, "estimators": "all",
            "baselines": ["none", "optimal"],
            "distribution": {"family": "categorical", "logits": [[0.5, -1.0, 0.0]]},
            "f": {"name": "linear", "k": 2.0}}
    assert load_spec(spec).skipped()  # antithetic, pathwise, mvd: Normal only
    table = lf.sweep(spec, quiet=True)
    assert set(table["label"]) == {"score+none", "score+optimal"}
    assert list(table["wrt"][:3]) == ["logits[0]", "logits[1]", "logits[2]"]
    assert json.loads(table["logits"].iloc[0]) == [0.5, -1.0, 0.0]
    assert np.all(np.abs(table["var"] - table["exact_var"]) <= 3 * table["exact_var_se"])
    assert np.all(np.abs(table["bias"]) <= 3 * table["stderr"])


@pytest.mark.slow
def test_other_families(tmp_path):
    """Any family of lf.FAMILIES: estimators where they apply, unbiased gradients."""
    spec = {"seed": 8, "replicates": 3, "n": 20000, "estimators": "all",
            "baselines": ["none", "loo"],
            "distribution": [{"family": "laplace", "loc": 0.5, "scale": 0.8},
                             {"family": "poisson", "rate": [1.5, 4.0]}],
            "f": {"name": "linear", "k": 1.0}}
    table = lf.sweep(spec, quiet=True)
    labels = {fam: set(g["label"]) for fam, g in table.groupby("family")}
    assert labels["Laplace"] == {"score+none", "score+loo", "antithetic+none",
                                 "antithetic+loo", "pathwise"}
    assert labels["Poisson"] == {"score+none", "score+loo"}
    # E x: loc (Laplace) and rate (Poisson); exact gradients are not tabulated for them
    assert table["exact_grad"].isna().all()
    truth = np.select([table["wrt"] == "loc", table["wrt"] == "log_scale"], [1.0, 0.0],
                      default=table["rate"])
    assert np.all(np.abs(table["grad"] - truth) <= 4 * table["stderr"] + 1e-12)


def test_user_function_by_import_path(tmp_path, monkeypatch):
    (tmp_path / "my_sweep_f.py").write_text(textwrap.dedent("""
        import numba

        @numba.njit
        def quartic(x):
            return x[0] ** 4

        @numba.njit
        def quartic1(x):
            return x ** 4

        @numba.njit
        def dquartic1(x):
            return 4.0 * x ** 3
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = {"seed": 2, "replicates": 2, "n": 5000, "estimators": "all", "baselines": "none",
            "distribution": {"family": "normal", "loc": 0.5, "log_scale": -0.2},
            "f": [{"import": "my_sweep_f:quartic"},
                  {"import": "my_sweep_f:quartic", "scalar": "my_sweep_f:quartic1",
                   "df": "my_sweep_f:dquartic1"}]}
    table = lf.sweep(spec, quiet=True)
    first = table[table["stream"] < 3 * 2]  # the first f: no scalar pair, no pathwise
    assert "pathwise" not in set(first["label"]) and "pathwise" in set(table["label"])
    assert table["exact_var"].isna().all() and table["k"].isna().all()
    # E x^4 = mu^4 + 6 mu^2 s^2 + 3 s^4: d/dmu = 4 mu^3 + 12 mu s^2
    s2 = math.exp(-0.4)
    grad = table[table["wrt"] == "loc"]
    assert np.all(np.abs(grad["grad"] - (4 * 0.125 + 12 * 0.5 * s2)) <= 4 * grad["stderr"])


def test_a_failing_cell_leaves_only_finished_cells(tmp_path, monkeypatch):
    (tmp_path / "bad_sweep_f.py").write_text(textwrap.dedent("""
        import math, numba

        @numba.njit
        def log_f(x):
            return math.log(x[0])   # NaN for x < 0
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = {"seed": 2, "replicates": 2, "n": 4000, "estimators": ["score"],
            "baselines": ["none"], "distribution": {"family": "normal", "loc": 0.0},
            "f": [{"name": "linear", "k": 1.0}, {"import": "bad_sweep_f:log_f"}]}
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="NaN"):
        lf.sweep(spec, out, quiet=True)
    files = list((out / "cells").glob("*.json"))
    assert len(files) == 1  # the linear cell; the failed one wrote nothing
    assert json.loads(files[0].read_text())["cell"]["f"] == "linear"
    assert not (out / "results.csv").exists()


# ----------------------------------------------------------------------------- plots
def test_plots_have_one_line_per_estimator(small_run, tmp_path):
    out, table = small_run
    for name in ("variance_vs_loc", "variance_vs_n"):
        assert (out / f"{name}.png").read_bytes()[:8] == PNG_MAGIC
    figures = plot_results(table, tmp_path)
    assert set(figures) == {"variance_vs_loc", "variance_vs_n"}
    labels = set(table["label"])
    assert len(labels) == 2 + 2 * 3  # pathwise, mvd, score and antithetic x 3 baselines
    for name, fig in figures.items():
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == PNG_MAGIC
        axes = fig.get_axes()
        assert len(axes) == 2  # d/dloc, d/dlog_scale
        for ax in axes:
            lines = [ln.get_label() for ln in ax.get_lines()]
            assert sorted(lines) == sorted(labels), name
            assert ax.get_yscale() == "log"


def test_plot_command(small_run, tmp_path, capsys):
    out, _ = small_run
    assert cli_main(["plot", str(out / "results.csv"), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "variance_vs_loc.png").read_bytes()[:8] == PNG_MAGIC
    assert "variance_vs_n.png" in capsys.readouterr().out
    assert cli_main(["plot", str(tmp_path / "nope.parquet")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_single_point_plot(tmp_path):
    spec = {**SMALL, "n": 2000, "distribution": {"family": "normal", "loc": 0.5}}
    table = lf.sweep(spec, tmp_path, quiet=True)
    assert (tmp_path / "variance_by_estimator.png").read_bytes()[:8] == PNG_MAGIC
    fig = plot_results(table)["variance_by_estimator"]
    assert all(len(ax.get_lines()) == len(set(table["label"])) for ax in fig.get_axes())


# ----------------------------------------------------------------------------- CLI
def test_cli_bad_spec_exits_2_and_names_the_key(tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text(to_toml(_bad(baselines=["loo", "median"])))
    out = tmp_path / "out"
    assert cli_main(["sweep", str(spec), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "spec key 'baselines'" in err and "median" in err
    assert not out.exists()


def test_cli_print_default_is_the_default_spec(capsys):
    import tomllib

    assert cli_main(["sweep", "--print-default"]) == 0
    text = capsys.readouterr().out
    assert [c.to_dict() for c in load_spec(tomllib.loads(text)).cells()] == \
        [c.to_dict() for c in load_spec(DEFAULT_SPEC).cells()]


def test_import_lograd_fast_does_not_import_pandas():
    import subprocess

    code = ("import sys, lograd_fast as lf; assert callable(lf.sweep); "
            "print(sorted(m for m in ('pandas', 'matplotlib', 'distributed', 'tqdm') "
            "if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600, cwd=Path(__file__).parent)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
