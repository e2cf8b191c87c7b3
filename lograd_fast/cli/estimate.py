"""``lograd-fast estimate``: a score-function gradient next to its exact value.

Built-in examples (exact gradients in closed form):

``normal-quadratic``   x ~ N(mu, sigma), f(x) = (x - k)^2:
                       E f = sigma^2 + (mu - k)^2, so d/dmu = 2 (mu - k) and
                       d/dlog_sigma = 2 sigma^2.
``categorical-linear`` x ~ Categorical(logits), f(x) = v[x]:
                       d/dlogit_j = p_j (v_j - p . v)  (exact enumeration).
"""

from __future__ import annotations

import time

import numba
import numpy as np

NAME = "estimate"
HELP = "estimate grad E[f] for a built-in example and compare with the exact value"
EXAMPLES = ("normal-quadratic", "categorical-linear")


def add_arguments(parser) -> None:
    parser.add_argument("--example", choices=EXAMPLES, default="normal-quadratic")
    parser.add_argument("-n", "--n", type=int, default=1_000_000, help="number of draws")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline", default="none",
                        help="none, mean, loo or a number (default: none)")
    parser.add_argument("--backend", default="cpu", choices=("cpu", "numpy", "cuda"))
    parser.add_argument("--mu", type=float, default=1.0, help="normal-quadratic: mean")
    parser.add_argument("--sigma", type=float, default=1.0, help="normal-quadratic: std dev")
    parser.add_argument("-k", "--k", type=float, default=-3.0, help="normal-quadratic: target k")
    parser.add_argument("--dtype", default="float64", choices=("float32", "float64"))


def parse_baseline(text: str):
    if text.lower() in ("none", ""):
        return None
    if text in ("mean", "loo"):
        return text
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"--baseline must be none, mean, loo or a number, got {text!r}") from None


def _normal_quadratic(args):
    import lograd_fast as lf

    if not args.sigma > 0:
        raise ValueError(f"--sigma must be positive, got {args.sigma}")
    k = args.k

    @numba.njit
    def f(x):
        return (x[0] - k) ** 2

    dt = np.dtype(args.dtype)
    d = lf.Normal(dt.type(args.mu), dt.type(np.log(args.sigma)), backend=args.backend)
    exact = {"loc": 2.0 * (args.mu - k), "log_scale": 2.0 * args.sigma**2}
    title = f"x ~ N({args.mu}, {args.sigma}^2), f(x) = (x - {k})^2"
    return d, f, exact, title


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
    return d, f, exact, title


def run(args) -> int:
    import lograd_fast as lf

    baseline = parse_baseline(args.baseline)
    make = {"normal-quadratic": _normal_quadratic, "categorical-linear": _categorical_linear}
    d, f, exact, title = make[args.example](args)
    t0 = time.perf_counter()
    if args.backend == "cuda":
        x = d.sample(args.n, seed=args.seed).copy_to_host()
        rewards = np.array([f(row) for row in x.reshape(args.n, -1)])
        est = lf.score_function(d, rewards=rewards, x=x, baseline=baseline)
    else:
        est = lf.score_function(d, f, args.n, seed=args.seed, baseline=baseline)
    wall = time.perf_counter() - t0
    print(title)
    print(f"score-function estimate, n={args.n}, baseline={baseline!r}, backend={args.backend}, "
          f"{wall:.3f} s")
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
    print("single-draw variance: " + ", ".join(
        f"{k}={np.array2string(np.asarray(v), precision=4)}" for k, v in est.var.items()))
    print(f"max |z| = {worst:.2f} ({'within' if worst <= 3 else 'outside'} 3 standard errors)")
    return 0
