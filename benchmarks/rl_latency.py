"""The RL benchmark tables of docs/rl.md and the README, generated (never typed).

    python benchmarks/rl_latency.py [--repeats 7] [--ppo-steps 16384] [--no-ppo]
                                    [--update-docs] [--json FILE]

Measures, in this process, one torch and one Numba thread, CPU time
(``time.process_time``), the minimum of round-robin repeats:

* the torch adapter inside RL calls against ``torch.distributions``
  (``lograd_fast.bench.rl``: rollout and update, Categorical and Normal, every B),
  and where an update's time goes at B = 64 (build, forward, backward, and the floor:
  the same loss and gradient without a distribution);
* the core's small policy step: ``lf.Categorical(logits (64, 6)).sample_and_score(None)``
  and ``lf.Normal`` of 6 actions, construction included;
* the JAX adapter under ``jit(grad)`` against the same loss with ``jax.nn.log_softmax``
  (B = 128), and the cost of one ``jax.pure_callback`` round trip alone;
* PPO (``examples/ppo.py``) with each library, in fresh processes.

``--update-docs`` writes the Markdown between the ``<!-- rl-bench:start -->`` and
``<!-- rl-bench:end -->`` markers of docs/rl.md and README.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- rl-bench:start -->", "<!-- rl-bench:end -->"
BREAKDOWN_B = 64  # batch of the update breakdown


def _min_cpu(fn, calls: int, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        for _ in range(calls):
            fn()
        best = min(best, (time.process_time() - t0) / calls)
    return best


def core_step(repeats: int) -> dict:
    import numpy as np

    import lograd_fast as lf

    logits = np.random.default_rng(0).normal(size=(64, 6))
    loc, log_scale = np.zeros(6), np.zeros(6)
    cases = {
        "Categorical (64, 6): construct + sample_and_score": lambda: lf.Categorical(
            logits).sample_and_score(None, seed=1),
        "Normal (6,): construct + sample_and_score": lambda: lf.Normal(
            loc, log_scale).sample_and_score(None, seed=1),
    }
    out = {}
    for _ in range(repeats):  # round-robin: load hits both alike
        for name, fn in cases.items():
            out[name] = min(out.get(name, float("inf")), _min_cpu(fn, 2000, 1))
    return out


def jax_step(repeats: int) -> dict | None:
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    import numpy as np

    import lograd_fast.jax as lfj

    jax.config.update("jax_enable_x64", True)
    B, K = 128, 6
    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.normal(size=(B, K)))
    actions = jnp.asarray(rng.integers(0, K, B))
    adv = jnp.asarray(rng.normal(size=B))

    def ours(z):
        return -(adv * lfj.categorical_log_prob(actions, z)).mean()

    def native(z):
        lp = jnp.take_along_axis(jax.nn.log_softmax(z), actions[:, None], 1)[:, 0]
        return -(adv * lp).mean()

    g_ours, g_native = jax.jit(jax.grad(ours)), jax.jit(jax.grad(native))
    identity = jax.jit(lambda z: jax.pure_callback(
        lambda a: np.asarray(a), jax.ShapeDtypeStruct(z.shape, z.dtype), z))
    fns = {"lograd_fast.jax": lambda: g_ours(logits).block_until_ready(),
           "jax.nn.log_softmax": lambda: g_native(logits).block_until_ready(),
           "one pure_callback round trip (identity)":
               lambda: identity(logits).block_until_ready()}
    out: dict = {}
    for _ in range(repeats):
        for name, fn in fns.items():
            out[name] = min(out.get(name, float("inf")), _min_cpu(fn, 300, 1))
    return out


def measure(repeats: int, ppo_steps: int | None, ppo_repeats: int = 3) -> dict:
    import numba
    import torch

    from lograd_fast.bench import rl

    torch.set_num_threads(1)
    numba.set_num_threads(1)
    calls = {}
    for family in ("Categorical", "Normal"):
        for phase in ("rollout", "update"):
            print(f"[rl] {family} {phase} ...", file=sys.stderr, flush=True)
            calls[(family, phase)] = rl.measure_calls(family, phase, repeats=repeats)
    print("[rl] the same, torch.distributions without validation ...", file=sys.stderr,
          flush=True)
    unchecked = {key: rl.measure_calls(*key, repeats=max(3, repeats // 2), validate=False)
                 for key in calls}
    print("[rl] core step, JAX ...", file=sys.stderr, flush=True)
    print("[rl] update breakdown ...", file=sys.stderr, flush=True)
    breakdown = {family: rl.update_breakdown(family, BREAKDOWN_B, repeats)
                 for family in ("Categorical", "Normal")}
    print("[rl] PPO update phases ...", file=sys.stderr, flush=True)
    phases = {family: rl.ppo_update_phases(family) for family in ("Categorical", "Normal")}
    result = {"calls": calls, "unchecked": unchecked, "breakdown": breakdown,
              "phases": phases,
              "core": core_step(repeats),
              "jax": jax_step(repeats)}
    if ppo_steps and rl.ppo_example() is not None:
        print("[rl] PPO ...", file=sys.stderr, flush=True)
        result["ppo"] = rl.measure_ppo(ppo_steps, ppo_repeats)
        result["ppo_repeats"] = ppo_repeats
    return result


def markdown(result: dict, command: str, load: tuple) -> str:
    import numba
    import torch

    from lograd_fast.bench import rl

    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Generated by `{command}` on {when}: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, torch {torch.__version__}, numba {numba.__version__}; "
        f"load average {load[0]:.1f} at start, {load[1]:.1f} at end.  CPU time per call "
        "(`time.process_time`), one torch and one Numba thread, the minimum of "
        "round-robin repeats in one process.",
        "",
        "**torch adapter inside RL calls**: `lograd_fast.torch` / `torch.distributions` "
        f"(target ≤ {rl.TARGET}×; ✗ marks a miss).  Rollout: build, `sample()`, "
        "`log_prob(action)` under `no_grad`; update: `log_prob` of stored actions, "
        "`entropy`, loss and gradient.  Categorical K = 6, Normal 6 action dims, float32.",
        "",
        rl.calls_table(result["calls"]),
        "",
        "Against torch.distributions with `validate_args=False` (its argument checks off, "
        "as `torch.compile` leaves them for the whole process: torch/_dynamo/eval_frame.py; "
        "lograd_fast.torch checks its values either way), lograd_fast.torch / "
        "torch.distributions at B = " + ", ".join(str(B) for B in rl.BATCHES) + ": "
        + rl.ratios_line(result["unchecked"]) + ".",
        "",
        "**Where an update's time goes** (CPU µs, one thread; stages cumulative in the "
        "same calls as above; the floor replaces `log_prob` and `entropy` by plain sums "
        "of the network outputs): " + " ".join(
            rl.breakdown_line(family, BREAKDOWN_B, parts)
            for family, parts in result["breakdown"].items()),
        "",
        "**Inside the real client** (`bench.rl.ppo_update_phases`: `examples/ppo.py`'s "
        "minibatch update -- its networks, loss, Adam and clipping -- at B = 128 with "
        "CartPole's sizes for Categorical (K = 2), Pendulum's for Normal (1 action dim), "
        "CPU by phase, the libraries alternating): " + " ".join(
            rl.ppo_phases_line(family, parts) for family, parts in result["phases"].items())
        + "  The calls above run in a tight loop, where the code stays in the caches; "
          "here each update runs the networks and the optimiser between them.",
        "",
        "**core small step** (construction included, no adapter): " + "; ".join(
            f"{name}: **{t * 1e6:.1f} µs**" for name, t in result["core"].items())
        + " (target ≤ 10 µs).",
    ]
    if result.get("jax"):
        j = result["jax"]
        ratio = j["lograd_fast.jax"] / j["jax.nn.log_softmax"]
        lines += ["", f"**JAX** `jit(grad)` of the policy-gradient loss at B = 128, K = 6: "
                      f"`lograd_fast.jax` {j['lograd_fast.jax'] * 1e6:.0f} µs, the same loss "
                      f"with `jax.nn.log_softmax` {j['jax.nn.log_softmax'] * 1e6:.0f} µs "
                      f"(**{ratio:.1f}×**); one `jax.pure_callback` round trip alone "
                      f"(identity) {j['one pure_callback round trip (identity)'] * 1e6:.0f} "
                      "µs."]
    if result.get("ppo"):
        runs = result.get("ppo_repeats", 1)
        lines += ["", "**PPO** (`examples/ppo.py`, fresh process per run, one thread; the "
                      "first kernel loads run before the timer; "
                      + (f"the run with the least CPU of {runs} per library, the two "
                         "alternating" if runs > 1 else "one run per library") + "):", "",
                  rl.ppo_table(result["ppo"])]
    return "\n".join(lines) + "\n"


def splice(path: Path, block: str) -> None:
    text = path.read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise SystemExit(f"{path}: no {START} ... {END} markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    path.write_text(head + START + "\n" + block + END + tail, encoding="utf-8")
    print(f"updated {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--ppo-steps", type=int, default=16384)
    parser.add_argument("--ppo-repeats", type=int, default=3,
                        help="PPO runs per library and env (the least CPU is kept)")
    parser.add_argument("--no-ppo", action="store_true")
    parser.add_argument("--update-docs", action="store_true")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    load0 = os.getloadavg()
    result = measure(args.repeats, None if args.no_ppo else args.ppo_steps, args.ppo_repeats)
    command = "python benchmarks/rl_latency.py" + (" --update-docs" if args.update_docs else "")
    block = markdown(result, command, (load0[0], os.getloadavg()[0]))
    print(block)
    if args.json:
        serial = dict(result, **{key: {f"{f} {p}": {str(b): t for b, t in v.items()}
                                       for (f, p), v in result[key].items()}
                                 for key in ("calls", "unchecked")})
        Path(args.json).write_text(json.dumps(serial, indent=1, default=str))
    if args.update_docs:
        for path in (ROOT / "docs" / "rl.md", ROOT / "README.md"):
            splice(path, block)


if __name__ == "__main__":
    main()
