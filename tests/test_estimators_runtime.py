"""The streaming estimators at run time: a user function that raises, long calls
(interruptible, in windows that never change a result) and progress reports
(issue 15, items 11 and 16)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numba
import numpy as np
import pytest

import lograd_fast as lf
from lograd_fast.estimators import _common


@numba.njit
def raises_above_2(x):
    if x[0] > 2.0:
        raise ValueError("f refuses x > 2")
    return x[0] * x[0]


@numba.njit
def elem_raises_above_2(x):
    if x > 2.0:
        raise ValueError("elementwise f refuses x > 2")
    return x * x


@numba.njit
def elem_square(x):
    return x * x


@numba.njit
def d_elem_divides_by_zero_above_2(x):
    if x > 2.0:
        return 1.0 / (x - x)  # ZeroDivisionError (Numba's default error model)
    return 2.0 * x


@numba.njit
def elem_double(x):
    return 2.0 * x


CALLS = {
    "score_function": lambda d: lf.score_function(d, raises_above_2, 5000, seed=1),
    "score_function-optimal": lambda d: lf.score_function(d, raises_above_2, 5000, seed=1,
                                                          baseline="optimal"),
    "antithetic": lambda d: lf.antithetic(d, raises_above_2, 5000, seed=1),
    "measure_valued": lambda d: lf.measure_valued(d, raises_above_2, 5000, seed=1),
    "pathwise-f": lambda d: lf.pathwise(d, elem_raises_above_2, elem_double, 5000, seed=1),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_exception_in_f_reaches_the_caller(name, capfd):
    """Item 11: f raising on some draws printed "Exception ignored" per draw and an
    estimate came back; now the caller gets f's own exception, and nothing else."""
    d = lf.Normal(0.0, 0.0)
    assert d.sample(None, seed=1)[()] <= 2.0  # draw 0 (called from Python first) is fine
    with pytest.raises(ValueError, match="refuses x > 2") as info:
        CALLS[name](d)
    if sys.version_info >= (3, 11):
        assert any("no estimate was returned" in note for note in info.value.__notes__)
    assert "Exception ignored" not in capfd.readouterr().err
    # the same f where it never raises: a finite estimate (the failure is not sticky)
    est = CALLS[name](lf.Normal(-30.0, 0.0))
    assert all(np.isfinite(v).all() for v in est.grad.values())
    # ... and where it raises again, it raises again
    with pytest.raises(ValueError, match="refuses x > 2"):
        CALLS[name](d)


def test_exception_in_df_reaches_the_caller(capfd):
    d = lf.Normal(0.0, 0.0)
    with pytest.raises(ZeroDivisionError):
        lf.pathwise(d, elem_square, d_elem_divides_by_zero_above_2, 5000, seed=1)
    assert "Exception ignored" not in capfd.readouterr().err


def test_exception_on_a_draw_too_long_to_keep_is_still_an_error():
    """A draw of more than _CAPTURE elements is not kept for the replay: still no
    estimate, a RuntimeError that says how to see the exception."""
    B = _common._CAPTURE + 1
    d = lf.Normal(np.zeros(B), 0.0)

    @numba.njit
    def raises_on_first_atom(x):
        if x[0] > 1.5:
            raise ValueError("no")
        return x[0]

    assert d.sample(None, seed=4)[0] <= 1.5
    with pytest.raises(RuntimeError, match="backend='numpy'"):
        lf.score_function(d, raises_on_first_atom, 200, seed=4)


def test_failure_bookkeeping_is_compiled_once_not_once_per_f():
    """The wrapper of each new f passed its failure state's address as a closure
    constant, typed as a literal: the shared bookkeeping function got a new
    specialisation (compiled, and added to the on-disk cache) for every f."""
    d = lf.Normal(np.zeros(2), np.zeros(2))
    for k in (1.0, 2.0, 3.0):
        @numba.njit
        def f(x, k=k):
            return k * x[0]
        lf.score_function(d, f, 8, seed=0)
    sigs = _common._record_failure.signatures
    assert sigs and not any(isinstance(t, numba.types.Literal) for sig in sigs for t in sig)


def test_categorical_f_exception_and_numpy_backend_agree():
    """Integer draws are replayed with their dtype; the numpy backend raises alike."""
    @numba.njit
    def inverse_of_class_minus_2(x):
        return 1.0 / (x[0] - 2)

    for backend in ("cpu", "numpy"):
        d = lf.Categorical(np.zeros(3), backend=backend)
        with pytest.raises(ZeroDivisionError):
            lf.score_function(d, inverse_of_class_minus_2, 1000, seed=int(
                d.sample(None, seed=0)[()] == 2))


@numba.njit
def quadratic(x):
    return (x[0] - 0.3) ** 2 + 0.1 * x[-1]


@numba.njit
def quadratic_elem(x):
    return (x - 0.3) ** 2


@numba.njit
def quadratic_elem_d(x):
    return 2.0 * (x - 0.3)


def _estimates(d, n):
    out = [lf.score_function(d, quadratic, n, seed=2, baseline=b) for b in (None, "optimal")]
    out.append(lf.antithetic(d, quadratic, n, seed=2, baseline="loo"))
    out.append(lf.measure_valued(d, quadratic, n, seed=2))
    out.append(lf.pathwise(d, quadratic_elem, quadratic_elem_d, n, seed=2))
    return [np.concatenate([np.ravel(v) for r in (e.grad, e.var) for v in r.values()])
            for e in out]


def _patch_run_windows(monkeypatch, replacement):
    for module in ("_common", "score_function", "pathwise", "measure_valued"):
        monkeypatch.setattr(sys.modules[f"lograd_fast.estimators.{module}"], "_run_windows",
                            replacement)


def test_windows_never_change_a_result(monkeypatch):
    """Item 16: a long call runs in windows of draws per lane; each lane walks its
    draws in order whatever the windows, so the result is bitwise that of one window."""
    d = lf.Normal(np.array([0.1, -0.4, 0.7]), np.array([0.0, -0.5, 0.2]))
    n = 20_011
    original = _common._run_windows
    lanes, windows = [], []

    def one_window(launch, n, W, B, checks, progress):
        lanes.append(W)
        launch(0, -(-n // W))
        checks()
        progress.update(n)

    def counted(launch, n, W, B, checks, progress):
        windows.append(0)

        def counting_launch(done, todo):
            windows[-1] += 1
            launch(done, todo)

        original(counting_launch, n, W, B, checks, progress)

    _patch_run_windows(monkeypatch, one_window)
    whole = _estimates(d, n)
    assert len(lanes) == 5 and min(lanes) > 1  # several lanes: windows cut each of them
    _patch_run_windows(monkeypatch, counted)
    monkeypatch.setattr(_common, "_FIRST_WINDOW_ATOMS", 1)  # windows of 1, 4, 16, ... draws
    for a, b in zip(_estimates(d, n), whole):
        np.testing.assert_array_equal(a, b)
    assert len(windows) == 5 and min(windows) >= 4


def test_progress_reports_draws_and_time_left(capsys):
    d = lf.Normal(0.0, 0.0)
    seen = []
    est = lf.score_function(d, quadratic, 300_000, seed=1,
                            progress=lambda done, total, elapsed: seen.append((done, total,
                                                                               elapsed)))
    assert len(seen) >= 2 and all(total == 300_000 for _, total, _ in seen)
    done = [s[0] for s in seen]
    assert done == sorted(done) and done[0] < 300_000 and done[-1] == 300_000
    ref = lf.score_function(d, quadratic, 300_000, seed=1)
    np.testing.assert_array_equal(est.grad["loc"], ref.grad["loc"])
    lf.antithetic(d, quadratic, 300_000, seed=1, progress=True)
    err = capsys.readouterr().err
    assert "antithetic: 300,000 of 300,000 draws (100.0%)" in err and "left" in err
    lf.score_function(lf.Normal(0.0, 0.0, backend="numpy"), quadratic, 70_000,
                      progress=lambda *report: seen.append(report))
    assert seen[-1][:2] == (70_000, 70_000)
    with pytest.raises(TypeError, match="progress"):
        lf.score_function(d, quadratic, 10, progress="yes")
    # lf.estimate passes it on to the estimator it names
    by_name = []
    lf.estimate(d, quadratic, 300_000, seed=1, estimator="mvd",
                progress=lambda *report: by_name.append(report))
    assert by_name and by_name[-1][:2] == (300_000, 300_000)


CHILD = textwrap.dedent("""
    import signal
    import sys
    import numba
    import lograd_fast as lf

    # what an interactive process has: a job started in the background by a
    # non-interactive shell (CI runners) inherits SIGINT ignored, and Python then
    # installs no KeyboardInterrupt handler
    signal.signal(signal.SIGINT, signal.default_int_handler)

    @numba.njit
    def f(x):
        return (x[0] - 0.5) ** 2

    def started(done, total, elapsed):
        if done:
            print("running", flush=True)

    lf.{call}
    print("finished", flush=True)
""")


@pytest.mark.parametrize("call", [
    "score_function(lf.Normal(0.0, 0.0), f, 10**12, progress=started)",
    "measure_valued(lf.Normal(0.0, 0.0), f, 10**12, progress=started)",
])
def test_ctrl_c_stops_a_long_call(call):
    """Item 16: ``score_function(d, f, 10**12)`` (hours of work) ignored Ctrl-C for
    over a minute; now SIGINT ends it with KeyboardInterrupt after one window.  The
    wait below is a liveness bound (windows last ~0.25 s), not a speed check."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD.format(call=call)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout.readline().strip() == "running", proc.communicate(timeout=600)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert "finished" not in out
    assert proc.returncode != 0 and "KeyboardInterrupt" in err, err[-2000:]


def test_exception_on_the_first_draw_is_f_own_not_a_type_error():
    """f is called once from Python before the kernel (to turn a compile error into a
    TypeError); an exception f raises there is its own and reaches the caller as is."""
    @numba.njit
    def always_raises(x):
        raise KeyError("f's own error")

    with pytest.raises(KeyError, match="f's own error"):
        lf.score_function(lf.Normal(0.0, 0.0), always_raises, 100)
    with pytest.raises(TypeError, match="f could not be called"):  # a typing error still is
        lf.score_function(lf.Normal(0.0, 0.0), elem_square, 100)


def test_estimate_command_reports_progress(capsys):
    from lograd_fast.cli import main

    assert main(["estimate", "--estimator", "antithetic", "-n", "200000", "--progress"]) == 0
    captured = capsys.readouterr()
    assert "antithetic: 200,000 of 200,000 draws (100.0%)" in captured.err
    assert "within 3 standard errors" in captured.out or "outside" in captured.out
