"""Estimators: memory, thread-count determinism, bad input, the CLI."""

import json
import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

import lograd_fast as lf
from lograd_fast.cli import main


def _run(code: str, env_extra: dict) -> str:
    env = {**os.environ, **env_extra}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout


DETERMINISM = textwrap.dedent("""
    import numba, numpy as np, lograd_fast as lf

    @numba.njit
    def f(x):
        return np.sum((x - 0.5) ** 2) + x[0] * x[2]

    @numba.njit
    def fe(x):
        return np.sin(x)

    @numba.njit
    def dfe(x):
        return np.cos(x)

    d = lf.Normal(np.array([0.0, 1.0, -1.0]), np.array([0.0, 0.3, -0.2]))
    n = 30_000  # many lanes
    ests = [lf.score_function(d, f, n, seed=5, baseline=b) for b in ("loo", "optimal")]
    ests += [lf.antithetic(d, f, n, seed=6, baseline="optimal"),
             lf.pathwise(d, fe, dfe, n, seed=7), lf.measure_valued(d, f, n // 4, seed=8)]
    rng = np.random.default_rng(0)
    ests.append(lf.rloo(rng.normal(size=(300, 50)), rng.normal(size=(300, 50, 4))))
    out = []
    for e in ests:
        for k in sorted(e.grad):
            out += [float(v).hex() for v in np.ravel(e.grad[k])]
            out += [float(v).hex() for v in np.ravel(e.var[k])]
    print(" ".join(out))
""")


@pytest.mark.slow
def test_estimates_are_bitwise_identical_for_1_and_2_threads():
    one = _run(DETERMINISM, {"NUMBA_NUM_THREADS": "1"})
    two = _run(DETERMINISM, {"NUMBA_NUM_THREADS": "2"})
    assert one.strip() and one == two


MEMORY = textwrap.dedent("""
    import json, time, numba, numpy as np, lograd_fast as lf

    def peak_kib():
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])

    @numba.njit
    def f(x):
        return x[0] * x[0]

    d = lf.Normal(0.3, -0.2)
    lf.score_function(d, f, 300_000, seed=1, baseline="loo")  # compile/load + thread pool
    before = peak_kib()
    t0 = time.perf_counter()
    est = lf.score_function(d, f, 10**8, seed=2, baseline="loo")
    wall = time.perf_counter() - t0
    print(json.dumps({"before": before, "after": peak_kib(), "wall": wall,
                      "grad": float(est.grad["loc"]), "se": float(est.stderr["loc"])}))
""")


@pytest.mark.slow
def test_streaming_1e8_draws_uses_constant_memory():
    """n = 10^8 draws (8e8 bytes as float64 samples alone): the peak RSS grows < 100 MB."""
    got = json.loads(_run(MEMORY, {}).strip().splitlines()[-1])
    growth_mb = (got["after"] - got["before"]) / 1024
    assert growth_mb < 100, got
    # d/dmu E[x^2] = 2 mu
    assert abs(got["grad"] - 0.6) <= 5 * got["se"], got


# ----------------------------------------------------------------------------- bad input
@numba.njit
def _f_draw(x):
    return x[0] ** 2


@numba.njit
def _f_elem(x):
    return x * x


def test_bad_arguments_name_the_argument():
    d = lf.Normal(0.0, 0.0)
    with pytest.raises(ValueError, match="baseline"):
        lf.score_function(d, _f_draw, 10, baseline="median")
    with pytest.raises(ValueError, match="baseline"):
        lf.antithetic(d, _f_draw, 10, baseline="best")
    with pytest.raises(ValueError, match="baseline"):
        lf.score_function(d, _f_draw, 10, baseline=True)
    with pytest.raises(ValueError, match="estimator"):
        lf.estimate(d, _f_draw, 10, estimator="reinforce++")
    with pytest.raises(ValueError, match="baseline"):
        lf.estimate(d, _f_elem, 10, estimator="pathwise", df=_f_elem, baseline="loo")
    with pytest.raises(TypeError, match="f must be a @numba.njit"):
        lf.antithetic(d, lambda x: x[0], 10)
    with pytest.raises(TypeError, match="f must be a @numba.njit"):
        lf.measure_valued(d, lambda x: x[0], 10)
    with pytest.raises(TypeError, match="f must be a @numba.njit"):
        lf.pathwise(d, lambda x: x, _f_elem, 10)
    with pytest.raises(TypeError, match="df is required"):
        lf.pathwise(d, _f_elem, n=10)
    with pytest.raises(TypeError, match="df must be a @numba.njit"):
        lf.pathwise(d, _f_elem, lambda x: 2 * x, 10)
    with pytest.raises(TypeError, match="df could not be called"):
        lf.pathwise(d, _f_elem, _f_draw, 10)  # df indexes its argument
    with pytest.raises(ValueError, match="n_folds"):
        lf.score_function(d, _f_draw, 10, baseline="optimal", n_folds=1)
    with pytest.raises(TypeError, match="n_folds"):
        lf.score_function(d, _f_draw, 10, baseline="optimal", n_folds=2.5)
    with pytest.raises(ValueError, match="return_terms"):
        lf.score_function(d, _f_draw, 10, return_terms=True)
    with pytest.raises(ValueError, match="n must be at least 2"):
        lf.pathwise(d, _f_elem, _f_elem, 1)
    with pytest.raises(ValueError, match="n is required"):
        lf.antithetic(d, _f_draw, None)
    with pytest.raises(TypeError, match="dist"):
        lf.antithetic("normal", _f_draw, 10)
    with pytest.raises(ValueError, match="decay"):
        lf.EMA(1.0)
    with pytest.raises(TypeError, match="decay"):
        lf.EMA("0.9")
    with pytest.raises(NotImplementedError, match="backend='cpu'"):
        lf.antithetic(lf.Normal(0.0, 0.0, backend="numpy"), _f_draw, 10)


def test_ema_shape_mismatch_is_an_error():
    ema = lf.EMA(0.9)
    d3 = lf.Normal(np.zeros(3), 0.0)
    x = d3.sample(10, seed=1)
    lf.score_function(d3, rewards=x, x=x, baseline=ema)  # per-element state (3,)
    with pytest.raises(ValueError, match="scalar baseline"):
        lf.score_function(d3, _f_draw, 10, baseline=ema)


def test_f_returning_nan_is_reported():
    @numba.njit
    def nan_after_first(x):
        return 0.0 if x[0] < 10.0 else np.nan

    @numba.njit
    def nan_elem(x):
        return np.nan

    d = lf.Normal(0.0, 3.0)  # sigma = 20: most draws are above 10
    with pytest.raises(ValueError, match="NaN"):
        lf.antithetic(d, nan_after_first, 5000)
    with pytest.raises(ValueError, match="NaN"):
        lf.pathwise(d, _f_elem, nan_elem, 10)


# ----------------------------------------------------------------------------- CLI
@pytest.mark.parametrize("estimator,baseline", [
    ("score", "optimal"), ("score", "ema"), ("antithetic", "loo"), ("pathwise", "none"),
    ("mvd", "none"), ("score", "0.5")])
def test_cli_runs_every_estimator(capsys, estimator, baseline):
    rc = main(["estimate", "--estimator", estimator, "--baseline", baseline, "-n", "20000",
               "--calls", "3" if baseline == "ema" else "1"])
    out = capsys.readouterr().out
    assert rc == 0, out
    z = float(out.split("max |z| = ")[1].split()[0])
    assert z < 5.0, out
    if baseline == "ema":
        assert "after 2 earlier calls" in out


def test_cli_bad_choices(capsys):
    assert main(["estimate", "--example", "categorical-linear", "--estimator", "pathwise",
                 "-n", "100"]) == 2
    assert "pathwise" in capsys.readouterr().err
    assert main(["estimate", "--baseline", "median", "-n", "100"]) == 2
    assert "--baseline" in capsys.readouterr().err
    assert main(["estimate", "--estimator", "mvd", "--baseline", "loo", "-n", "100"]) == 2
    with pytest.raises(SystemExit):
        main(["estimate", "--estimator", "magic"])
