"""``lograd-fast estimate``: a gradient estimate next to its exact value.

Built-in examples (exact gradients in closed form):

``normal-quadratic``   x ~ N(mu, sigma), f(x) = (x - k)^2:
                       E f = sigma^2 + (mu - k)^2, so d/dmu = 2 (mu - k) and
                       d/dlog_sigma = 2 sigma^2.
``categorical-linear`` x ~ Categorical(logits), f(x) = v[x]:
                       d/dlogit_j = p_j (v_j - p . v)  (exact enumeration).

``--estimator`` picks the estimator: ``score`` (score function / REINFORCE),
``antithetic`` (score function on antithetic pairs), ``pathwise``
(reparameterisation) or ``mvd`` (measure-valued derivative); the last three need
the Normal example.  ``--baseline`` applies to ``score`` and ``antithetic``:
``none``, ``mean``, ``loo``, ``optimal``, ``ema`` or a number.  An EMA baseline
carries information from call to call, so with ``--calls C`` the estimate is made
``C`` times (streams 0..C-1, ``n`` draws each) and the last call is reported.
"""

from __future__ import annotations

import time

import numba
import numpy as np

NAME = "estimate"
HELP = "estimate grad E[f] for a built-in example and compare with the exact value"
EXAMPLES = ("normal-quadratic", "categorical-linear")
ESTIMATORS = ("score", "antithetic", "pathwise", "mvd")


def add_arguments(parser) -> None:
    parser.add_argument("--example", choices=EXAMPLES, default="normal-quadratic")
    parser.add_argument("--estimator", choices=ESTIMATORS, default="score",
                        help="score, antithetic, pathwise or mvd (default: score)")
    parser.add_argument("-n", "--n", type=int, default=1_000_000,
                        help="number of draws (pairs for antithetic)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline", default="none",
                        help="none, mean, loo, optimal, ema or a number (default: none)")
    parser.add_argument("--ema-decay", type=float, default=0.9,
                        help="decay of --baseline ema (default: 0.9)")
    parser.add_argument("--calls", type=int, default=1,
                        help="repeat the estimate on streams 0..calls-1 and report the last "
                             "(lets an EMA baseline warm up; default: 1)")
    parser.add_argument("--backend", default="cpu", choices=("cpu", "numpy", "cuda"))
    parser.add_argument("--mu", type=float, default=1.0, help="normal-quadratic: mean")
    parser.add_argument("--sigma", type=float, default=1.0, help="normal-quadratic: std dev")
    parser.add_argument("-k", "--k", type=float, default=-3.0, help="normal-quadratic: target k")
    parser.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    parser.add_argument("--progress", action="store_true",
                        help="print the draws done and the time left while estimating "
                             "(Ctrl-C stops a long estimate either way)")


def parse_baseline(text: str, ema_decay: float = 0.9):
    """``none``/``mean``/``loo``/``optimal``/``ema``/a number -> an estimator baseline."""
    import lograd_fast as lf

    key = text.strip().lower()
    if key in ("none", ""):
        return None
    if key in ("mean", "loo", "optimal"):
        return key
    if key == "ema":
        return lf.EMA(ema_decay)
    try:
        return float(text)
    except ValueError:
        raise ValueError("--baseline must be none, mean, loo, optimal, ema or a number, "
                         f"got {text!r}") from None


def _normal_quadratic(args):
    import lograd_fast as lf

    if not args.sigma > 0:
        raise ValueError(f"--sigma must be positive, got {args.sigma}")
    k = args.k

    @numba.njit
    def f(x):
        return (x[0] - k) ** 2

    @numba.njit
    def f_elem(x):
        return (x - k) ** 2

    @numba.njit
    def df_elem(x):
        return 2.0 * (x - k)

    dt = np.dtype(args.dtype)
    d = lf.Normal(dt.type(args.mu), dt.type(np.log(args.sigma)), backend=args.backend)
    exact = {"loc": 2.0 * (args.mu - k), "log_scale": 2.0 * args.sigma**2}
    title = f"x ~ N({args.mu}, {args.sigma}^2), f(x) = (x - {k})^2"
    return d, f, (f_elem, df_elem), exact, title


def _categorical_linear(args):
    import lograd_fast as lf

    logits = np.array([0.5, -1.0, 0.0, 1.5], dtype=args.dtype)
    values = np.array([1.0, 4.0, -2.0, 0.5])

    @numba.njit
    def f(x):
        return values[x[0]]

    d = lf.Categorical(logits, backend=args.backend)
    p = np.exp(logits - np.log(np.exp(logits.astype(float)).sum()))
    exact = {"logits": p * (values - p @ values)}
    title = f"x ~ Categorical(logits={logits.tolist()}), f(x) = v[x], v={values.tolist()}"
    return d, f, None, exact, title


def _one_call(args, d, f, elementwise, baseline, stream):
    import lograd_fast as lf

    if args.estimator == "score":
        if args.backend == "cuda":
            x = d.sample(args.n, seed=args.seed, stream=stream).copy_to_host()
            rewards = np.array([f(row) for row in x.reshape(args.n, -1)])
            return lf.score_function(d, rewards=rewards, x=x, baseline=baseline)
        return lf.score_function(d, f, args.n, seed=args.seed, stream=stream, baseline=baseline,
                                 progress=args.progress)
    if args.estimator == "pathwise":
        if elementwise is None:
            raise ValueError(f"--estimator pathwise needs a reparameterisable example "
                             f"(normal-quadratic), not {args.example}")
        return lf.pathwise(d, *elementwise, args.n, seed=args.seed, stream=stream,
                           progress=args.progress)
    if args.estimator == "antithetic":
        return lf.antithetic(d, f, args.n, seed=args.seed, stream=stream, baseline=baseline,
                             progress=args.progress)
    return lf.measure_valued(d, f, args.n, seed=args.seed, stream=stream, progress=args.progress)


def run(args) -> int:
    if args.calls < 1:
        raise ValueError(f"--calls must be at least 1, got {args.calls}")
    baseline = parse_baseline(args.baseline, args.ema_decay)
    if args.estimator in ("pathwise", "mvd") and baseline is not None:
        raise ValueError(f"--baseline does not apply to --estimator {args.estimator}")
    make = {"normal-quadratic": _normal_quadratic, "categorical-linear": _categorical_linear}
    d, f, elementwise, exact, title = make[args.example](args)
    t0 = time.perf_counter()
    for stream in range(args.calls):
        used = getattr(baseline, "value", baseline)
        est = _one_call(args, d, f, elementwise, baseline, stream)
    wall = time.perf_counter() - t0
    print(title)
    desc = f"baseline={est.baseline!r}, " if args.estimator in ("score", "antithetic") else ""
    if est.baseline == "ema":
        desc += f"(value {float(np.asarray(used)):.6g} after {args.calls - 1} earlier calls), "
    print(f"{est.estimator} estimate, n={args.n}, {desc}backend={args.backend}, "
          f"{wall:.3f} s" + (f" for {args.calls} calls" if args.calls > 1 else ""))
    print(f"{'parameter':<14}{'estimate':>14}{'stderr':>12}{'exact':>14}{'z':>8}")
    worst = 0.0
    for name, g in est.grad.items():
        for idx in np.ndindex(np.shape(g)):
            gi = float(np.asarray(g)[idx])
            se = float(np.asarray(est.stderr[name])[idx])
            ex = float(np.asarray(exact[name])[idx])
            z = (gi - ex) / se if se > 0 else float("nan")
            worst = max(worst, abs(z))
            label = name + (str(list(idx)) if idx else "")
            print(f"{label:<14}{gi:>14.6g}{se:>12.3g}{ex:>14.6g}{z:>8.2f}")
    print("single-term variance: " + ", ".join(
        f"{k}={np.array2string(np.asarray(v), precision=4)}" for k, v in est.var.items()))
    print(f"max |z| = {worst:.2f} ({'within' if worst <= 3 else 'outside'} 3 standard errors)")
    return 0
