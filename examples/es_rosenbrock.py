r"""Evolution strategies on the 100-dimensional Rosenbrock function.

Gaussian smoothing turns minimising ``f`` into minimising
``J(mu) = E_{x ~ N(mu, sigma^2 I)}[f(x)]``, whose gradient is a score-function
expectation ``E[f(x) d log p(x) / d mu]``.  Every iteration

* draws ``x`` and its closed-form score in one fused pass
  (``lf.Normal(mu, log_sigma).sample_and_score``),
* pairs each draw with its antithetic partner ``2 mu - x`` (whose score w.r.t.
  ``mu`` is exactly minus that of ``x``: the pair's terms combine into
  ``(f(x) - f(2 mu - x)) / 2 * score``, cancelling the even part of ``f``),
* estimates ``grad J`` with ``lf.score_function(d, rewards=f, x=pairs, baseline="loo")``,
* takes an Adam step on ``mu`` and shrinks ``sigma`` geometrically (the smoothing
  bias of the minimiser is ``O(sigma^2)``).

    python examples/es_rosenbrock.py [--iterations 3000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import lograd_fast as lf


def rosenbrock(x: np.ndarray) -> np.ndarray:
    """``sum_i 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2`` over the last axis; minimum 0 at 1."""
    return (100.0 * (x[..., 1:] - x[..., :-1] ** 2) ** 2 + (1.0 - x[..., :-1]) ** 2).sum(-1)


def minimise(dim: int = 100, iterations: int = 3000, pairs: int = 300, seed: int = 0,
             lr: float = 0.01, sigma0: float = 1e-2, sigma1: float = 1e-4,
             quiet: bool = False) -> dict:
    mu = np.zeros(dim)
    m = np.zeros(dim)
    v = np.zeros(dim)
    b1, b2 = 0.9, 0.999
    trace = [(0, float(rosenbrock(mu)))]
    start = time.perf_counter()
    for it in range(1, iterations + 1):
        frac = (it - 1) / max(iterations - 1, 1)
        log_sigma = np.log(sigma0) + frac * (np.log(sigma1) - np.log(sigma0))
        d = lf.Normal(mu, log_sigma, event_ndims=1)  # one draw = a point in R^dim
        x, _, _ = d.sample_and_score(pairs, seed=seed, stream=it)
        both = np.concatenate([x, 2.0 * mu - x])  # antithetic pairs
        est = lf.score_function(d, rewards=rosenbrock(both), x=both, baseline="loo")
        grad = est.grad["loc"]
        m = b1 * m + (1 - b1) * grad
        v = b2 * v + (1 - b2) * grad * grad
        step = lr * (1 - frac) + 1e-4  # linearly decayed learning rate
        mu -= step * (m / (1 - b1**it)) / (np.sqrt(v / (1 - b2**it)) + 1e-8)
        if it % max(iterations // 10, 1) == 0 or it == iterations:
            trace.append((it, float(rosenbrock(mu))))
            if not quiet:
                print(f"iteration {it:6d}  sigma {np.exp(log_sigma):.1e}  "
                      f"f(mu) = {trace[-1][1]:.3e}")
    result = dict(initial=trace[0][1], final=trace[-1][1], iterations=iterations,
                  evaluations=iterations * 2 * pairs, dim=dim, trace=trace,
                  distance_to_optimum=float(np.abs(mu - 1.0).max()),
                  seconds=round(time.perf_counter() - start, 2), seed=seed)
    if not quiet:
        print(f"f(mu): {result['initial']:.3g} -> {result['final']:.3g} in {iterations} "
              f"iterations ({result['evaluations']} evaluations, {result['seconds']} s); "
              f"max |mu - 1| = {result['distance_to_optimum']:.2e}")
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    result = minimise(iterations=args.iterations, seed=args.seed, quiet=args.quiet)
    print("RESULT " + json.dumps(result))
    return result


if __name__ == "__main__":
    main()
