"""The RL benchmark: ``lograd_fast.torch`` against ``torch.distributions`` inside the
calls RL code makes, and a PPO run with each.

Per call (CPU time, one torch and one Numba thread, round-robin in one process, the
minimum of the repeats):

* **rollout** (``torch.no_grad``): build the policy's distribution from the network
  outputs, ``sample()``, ``log_prob(action)`` -- one environment step of ``B`` envs;
* **update** (forward and backward): build it from outputs that require grad,
  ``log_prob`` of stored actions and ``entropy``, the PPO-style loss
  ``-(adv * log_prob).mean() - 0.01 * entropy.mean()`` and its gradient.

``Categorical`` has ``K = 6`` classes (logits ``(B, 6)``); ``Normal`` has ``A = 6``
action dims (``Normal(mean, std)``, ``log_prob(a).sum(-1)``: the same code for both
libraries, the drop-in way), float32 as network outputs are.  Batch sizes
``B`` in :data:`BATCHES`.  The target of issue 13: lograd_fast's time <= 0.8x torch's
at every ``B``, rollout and update, both families.

The PPO row runs ``examples/ppo.py`` (when the source tree is at hand) with each
library and reports steps per CPU second of the whole run.

Used by ``lograd-fast bench`` (the cases :data:`RL_CASES`), ``benchmarks/rl_latency.py``
(the generated table of docs/rl.md and the README), ``benchmarks/bench_rl.py``
(pytest-benchmark) and ``benchmarks/asv_rl.py`` (asv).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .timing import Context, Row, best_times

BATCHES = (1, 4, 64, 128, 1024)
K = 6  # classes of the Categorical policy
A = 6  # action dims of the Normal policy
TARGET = 0.8  # lograd_fast's time / torch's, at most
OURS, THEIRS = "lograd_fast.torch", "torch.distributions"
PPO_STEPS = 16384  # environment steps of the benchmark's PPO runs
#: PPO runs per library and env (alternating; the least CPU is kept): a single run of
#: ~1.4 s CPU varies by ~0.05 s between processes, as much as the libraries differ
PPO_RUNS = 3
STAGES = ("build", "forward", "full", "floor")  # of an update, see make_call


def _libraries():
    import torch

    import lograd_fast.torch as lft

    return torch, {OURS: lft, THEIRS: torch.distributions}


def make_call(lib, family: str, phase: str, B: int, seed: int = 0,
              stage: str = "full") -> Callable[[], object]:
    """One RL call of ``family`` ("Categorical" or "Normal") in ``phase`` ("rollout" or
    "update") with ``B`` environments, written once for both libraries (``lib`` is
    ``torch.distributions`` or ``lograd_fast.torch``).

    ``stage`` cuts an update short, to split its time (:func:`update_breakdown`):
    ``"build"`` only constructs the distribution, ``"forward"`` adds ``log_prob`` and
    ``entropy`` (no loss, no backward), ``"full"`` is the whole call; ``"floor"`` (``lib``
    unused) is the same loss and gradient with ``log_prob`` and ``entropy`` replaced by
    plain sums of the network outputs: what the update costs any library.
    """
    import torch

    if stage not in STAGES or (phase == "rollout" and stage != "full"):
        raise ValueError(f"stage must be one of {STAGES} (update only), got {stage!r}")

    g = torch.Generator().manual_seed(seed)
    adv = torch.randn(B, generator=g)
    if family == "Categorical":
        logits = torch.randn(B, K, generator=g)
        actions = torch.randint(0, K, (B,), generator=g)
        if phase == "rollout":
            def call():
                with torch.no_grad():
                    d = lib.Categorical(logits=logits)
                    a = d.sample()
                    return a, d.log_prob(a)
            return call
        logits.requires_grad_()

        def call():
            if stage == "floor":
                lp = ent = logits.sum(-1)
            else:
                d = lib.Categorical(logits=logits)
                if stage == "build":
                    return d
                lp, ent = d.log_prob(actions), d.entropy()
                if stage == "forward":
                    return lp, ent
            loss = -(adv * lp).mean() - 0.01 * ent.mean()
            return torch.autograd.grad(loss, logits)
        return call
    mean = torch.randn(B, A, generator=g)
    log_std = torch.full((A,), -0.5)
    actions = torch.randn(B, A, generator=g)
    if phase == "rollout":
        std = log_std.exp().expand(B, A)

        def call():
            with torch.no_grad():
                d = lib.Normal(mean, std)
                a = d.sample()
                return a, d.log_prob(a).sum(-1)
        return call
    mean.requires_grad_()
    log_std.requires_grad_()

    def call():
        std = log_std.exp().expand(B, A)
        if stage == "floor":
            lp, ent = mean.sum(-1), std.sum(-1)
        else:
            d = lib.Normal(mean, std)
            if stage == "build":
                return d
            lp, ent = d.log_prob(actions).sum(-1), d.entropy().sum(-1)
            if stage == "forward":
                return lp, ent
        loss = -(adv * lp).mean() - 0.01 * ent.mean()
        return torch.autograd.grad(loss, (mean, log_std))
    return call


def cpu_times(calls: dict[str, Callable], repeats: int, n: int) -> dict[str, float]:
    """CPU seconds per call of each contender: round-robin rounds of ``n`` calls each,
    after one warm-up call; the minimum over ``repeats`` rounds."""
    return best_times(calls, repeats, budget_s=math.inf, calls=n, timer=time.process_time)


class _OneThread:
    """One torch intra-op thread and one Numba thread (as RL actors run), and
    torch.distributions' argument validation at its default (on; ``validate=False``:
    off), restored.

    The validation is set explicitly because ``torch.compile`` turns it off for the
    whole process (``torch/_dynamo/eval_frame.py`` calls
    ``Distribution.set_default_validate_args(False)``): after any compiled call --
    the ``categorical`` case's torch.compile contender in ``lograd-fast bench`` -- a
    torch.distributions update costs ~25 % less (no constraint checks), while
    lograd_fast.torch checks its values in every case."""

    def __init__(self, validate: bool = True) -> None:
        self.validate = validate

    def __enter__(self):
        import numba
        import torch

        self.torch, self.numba = torch.get_num_threads(), numba.get_num_threads()
        self.was = torch.distributions.Distribution._validate_args
        torch.set_num_threads(1)
        numba.set_num_threads(1)
        torch.distributions.Distribution.set_default_validate_args(self.validate)

    def __exit__(self, *exc):
        import numba
        import torch

        torch.set_num_threads(self.torch)
        numba.set_num_threads(self.numba)
        torch.distributions.Distribution.set_default_validate_args(self.was)


def measure_calls(family: str, phase: str, batches=BATCHES, repeats: int = 7,
                  budget_s: float = 0.05, validate: bool = True) -> dict[int, dict[str, float]]:
    """``{B: {library: CPU seconds per call}}`` for one family and phase;
    ``validate``: torch.distributions' default argument validation (on by default)."""
    _, libs = _libraries()
    out = {}
    with _OneThread(validate):
        for B in batches:
            calls = {name: make_call(lib, family, phase, B) for name, lib in libs.items()}
            # calls per round: about budget_s of CPU each (at least 5)
            t0 = time.process_time()
            calls[THEIRS]()
            n = max(5, int(budget_s / max(time.process_time() - t0, 1e-6)))
            out[B] = cpu_times(calls, repeats, min(n, 2000))
    return out


def update_breakdown(family: str, B: int = 64, repeats: int = 7,
                     n: int = 300) -> dict[str, dict[str, float]]:
    """Where an update's time goes: ``{library: {stage: CPU seconds per call}}`` for
    the stages of :func:`make_call` (cumulative: ``forward`` includes ``build``), and
    ``{"floor": {"full": ...}}``, all round-robin in one process, one thread."""
    _, libs = _libraries()
    calls = {(name, stage): make_call(lib, family, "update", B, stage=stage)
             for name, lib in libs.items() for stage in ("build", "forward", "full")}
    calls[("floor", "full")] = make_call(None, family, "update", B, stage="floor")
    with _OneThread():
        times = cpu_times(calls, repeats, n)
    out: dict[str, dict[str, float]] = {}
    for (name, stage), t in times.items():
        out.setdefault(name, {})[stage] = t
    return out


def breakdown_line(family: str, B: int, parts: dict[str, dict[str, float]]) -> str:
    """Markdown sentence: build, forward and backward (+ loss) per library, and the
    floor, in microseconds."""
    def us(t: float) -> str:
        return f"{t * 1e6:.0f}"

    cells = []
    for name in (OURS, THEIRS):
        p = parts[name]
        cells.append(f"{name} build {us(p['build'])}, log_prob + entropy "
                     f"{us(p['forward'] - p['build'])}, loss + backward "
                     f"{us(p['full'] - p['forward'])} (total {us(p['full'])})")
    floor = parts["floor"]["full"]
    theirs = parts[THEIRS]["full"]
    return (f"{family} update at B = {B}, µs: " + "; ".join(cells)
            + f"; the same loss and gradient without any distribution (the floor every "
              f"library pays) {us(floor)} µs = {floor / theirs:.0%} of "
              f"torch.distributions' total, so {TARGET}× of it leaves "
              f"{us(TARGET * theirs - floor)} µs for build, forward and backward of "
              f"the distribution (torch.distributions takes {us(theirs - floor)}).")


#: the phases of :func:`ppo_update_phases`, in order
PPO_PHASES = ("actor", "distribution", "loss", "backward", "optimiser")


def ppo_minibatch(family: str, B: int = 128, seed: int = 0) -> Callable:
    """One PPO minibatch update as ``examples/ppo.py`` runs it -- its networks (fresh,
    seeded), loss, Adam and gradient clipping; CartPole's sizes for Categorical (4
    observations, 2 classes), Pendulum's for Normal (3 observations, 1 action dim) --
    as ``update(lib, into=None) -> loss``: ``lib`` builds the distribution; ``into``,
    a dict, gathers the CPU seconds of each phase (:data:`PPO_PHASES`)."""
    import torch

    n_obs, n_act = (4, 2) if family == "Categorical" else (3, 1)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)

    def mlp(out: int) -> torch.nn.Sequential:
        return torch.nn.Sequential(torch.nn.Linear(n_obs, 64), torch.nn.Tanh(),
                                   torch.nn.Linear(64, 64), torch.nn.Tanh(),
                                   torch.nn.Linear(64, out))

    actor, critic = mlp(n_act), mlp(1)
    log_std = torch.nn.Parameter(torch.zeros(n_act))
    params = [*actor.parameters(), *critic.parameters()] + \
        ([log_std] if family == "Normal" else [])
    opt = torch.optim.Adam(params, lr=2.5e-4, eps=1e-5)
    obs = torch.randn(B, n_obs, generator=g)
    act = torch.randint(0, n_act, (B,), generator=g) if family == "Categorical" \
        else torch.randn(B, n_act, generator=g)
    old_lp, adv, ret = (torch.randn(B, generator=g) for _ in range(3))
    clock = time.process_time

    def update(lib, into: dict | None = None) -> float:
        t = [clock()]
        out = actor(obs)
        t.append(clock())
        if family == "Categorical":
            d = lib.Categorical(logits=out)
            lp, ent = d.log_prob(act), d.entropy()
        else:
            d = lib.Normal(out, log_std.exp().expand(B, n_act))
            lp, ent = d.log_prob(act).sum(-1), d.entropy().sum(-1)
        t.append(clock())
        ratio = torch.exp(lp - old_lp)
        a = (adv - adv.mean()) / (adv.std() + 1e-8)
        pg = torch.max(-a * ratio, -a * torch.clamp(ratio, 0.8, 1.2))
        v_loss = 0.5 * ((critic(obs).squeeze(-1) - ret) ** 2).mean()
        loss = pg.mean() - 0.01 * ent.mean() + 0.5 * v_loss
        t.append(clock())
        opt.zero_grad()
        loss.backward()
        t.append(clock())
        torch.nn.utils.clip_grad_norm_(params, 0.5)
        opt.step()
        t.append(clock())
        if into is not None:
            for phase, t0, t1 in zip(PPO_PHASES, t, t[1:]):
                into[phase] += t1 - t0
        return float(loss.detach())

    update.params = params
    return update


def ppo_update_phases(family: str, B: int = 128, rounds: int = 10,
                      n: int = 200) -> dict[str, dict[str, float]]:
    """:func:`ppo_minibatch` timed by phase inside the real client: ``{library: {phase:
    CPU seconds per update}}`` ("distribution": build, ``log_prob``, ``entropy``); the
    libraries alternate in rounds of ``n`` updates of one network, one thread.

    Unlike :func:`make_call` this keeps the rest of the update around the
    distribution's calls: what each library's code leaves in the caches (and costs the
    torch operations after it) counts where users meet it."""
    _, libs = _libraries()
    with _OneThread():
        update = ppo_minibatch(family, B)
        totals = {name: dict.fromkeys(PPO_PHASES, 0.0) for name in libs}
        for lib in libs.values():
            update(lib)  # first calls (kernel loads) outside the timings
        for _ in range(rounds):
            for name, lib in libs.items():
                for _ in range(n):
                    update(lib, totals[name])
    return {name: {k: v / (rounds * n) for k, v in per.items()}
            for name, per in totals.items()}


def ppo_phases_line(family: str, phases: dict[str, dict[str, float]]) -> str:
    """Markdown sentence: the phases of :func:`ppo_update_phases` per library (µs)."""
    cells = []
    for name in (OURS, THEIRS):
        p = phases[name]
        cells.append(f"{name} " + ", ".join(f"{k} {v * 1e6:.0f}" for k, v in p.items())
                     + f" (total {sum(p.values()) * 1e6:.0f})")
    ours, theirs = (phases[name]["distribution"] for name in (OURS, THEIRS))
    after = [sum(phases[name][k] for k in PPO_PHASES[2:]) for name in (OURS, THEIRS)]
    return (f"{family} (µs per update): " + "; ".join(cells)
            + f"; distribution calls {ours / theirs:.2f}×, the phases after them "
              f"{after[0] / after[1]:.2f}×, the whole update "
              f"{sum(phases[OURS].values()) / sum(phases[THEIRS].values()):.2f}×.")


def ppo_example() -> Path | None:
    """``examples/ppo.py`` of the source tree, if this is one."""
    path = Path(__file__).resolve().parents[2] / "examples" / "ppo.py"
    return path if path.is_file() else None


def run_ppo(env: str, dist: str, steps: int = PPO_STEPS, seed: int = 0) -> dict:
    """One PPO run of the example in a fresh process (one thread); its RESULT dict."""
    script = ppo_example()
    if script is None:
        raise FileNotFoundError("examples/ppo.py (the source tree) is needed for the PPO run")
    env_vars = dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1",
                    OMP_WAIT_POLICY="PASSIVE")
    proc = subprocess.run([sys.executable, str(script), "--env", env, "--dist", dist,
                           "--total-steps", str(steps), "--seed", str(seed), "--quiet"],
                          capture_output=True, text=True, env=env_vars, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"{script} failed:\n{proc.stderr[-3000:]}")
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def measure_ppo(steps: int = PPO_STEPS, repeats: int = 1) -> dict[str, dict[str, dict]]:
    """``{env: {dist: best RESULT}}`` (the run with the least CPU of ``repeats``,
    the two libraries alternating)."""
    out: dict = {}
    for env in ("CartPole-v1", "Pendulum-v1"):
        out[env] = {}
        for _ in range(repeats):
            for dist in ("torch", "lograd_fast"):
                r = run_ppo(env, dist, steps)
                best = out[env].get(dist)
                if best is None or r["cpu_s"] < best["cpu_s"]:
                    out[env][dist] = r
    return out


# ----------------------------------------------------------------------------- tables
def ratios_line(results: dict) -> str:
    """Markdown: the ratios of ``results[(family, phase)][B][library]`` per family and
    phase, B = 1 ... 1024 (no times)."""
    return "; ".join(
        f"{family} {phase} " + " / ".join(f"{t[OURS] / t[THEIRS]:.2f}" for t in per_b.values())
        for (family, phase), per_b in results.items())


def calls_table(results: dict) -> str:
    """Markdown: ``results[(family, phase)][B][library]`` in microseconds, with ratios."""
    head = "| family | phase | " + " | ".join(f"B = {B}" for B in BATCHES) + " |"
    lines = [head, "|---|---|" + "---:|" * len(BATCHES)]
    for (family, phase), per_b in results.items():
        cells = []
        for B in BATCHES:
            t = per_b.get(B)
            if t is None:
                cells.append("")
                continue
            ratio = t[OURS] / t[THEIRS]
            mark = "" if ratio <= TARGET else " ✗"
            cells.append(f"{t[OURS] * 1e6:.0f} / {t[THEIRS] * 1e6:.0f} µs = "
                         f"**{ratio:.2f}×**{mark}")
        lines.append(f"| {family} | {phase} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ppo_table(results: dict) -> str:
    lines = ["| env | library | steps | CPU s | steps / CPU s | CPU s in rollout dist calls "
             "| CPU s in updates | final return (last 20 episodes) |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for env, per_dist in results.items():
        for dist in ("torch", "lograd_fast"):
            r = per_dist.get(dist)
            if r is None:
                continue
            name = THEIRS if dist == "torch" else OURS
            lines.append(f"| {env} | {name} | {r['steps']} | {r['cpu_s']:.2f} | "
                         f"{r['steps_per_cpu_s']:.0f} | {r['cpu_rollout_dist_s']:.2f} | "
                         f"{r['cpu_update_s']:.2f} | {r['final_return']:.1f} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- bench cases
def _calls_case(family: str, phase: str) -> Callable[[Context], Row]:
    def case(ctx: Context) -> Row:
        if ctx.torch is None:
            return _skipped(f"rl-{family.lower()}-{phase}", f"torch adapter, {family} {phase}",
                            "needs torch (not installed, or --no-optional)")
        batches = (4, 128) if ctx.quick else BATCHES
        per_b = measure_calls(family, phase, batches, repeats=max(ctx.repeats, 3),
                              budget_s=0.01 if ctx.quick else 0.05)
        ratios = {B: t[OURS] / t[THEIRS] for B, t in per_b.items()}
        head = 128 if 128 in per_b else batches[-1]
        note = ("lograd_fast / torch CPU time per call at B = " + ", ".join(
            f"{B}: {r:.2f}×" for B, r in ratios.items()) + f"; one thread; K = A = {K}")
        return Row(f"rl-{family.lower()}-{phase}",
                   f"torch adapter, {family} {phase} "
                   f"({'no_grad' if phase == 'rollout' else 'fwd+bwd'})",
                   f"B = {head} (all B in the note)",
                   {OURS: per_b[head][OURS], THEIRS: per_b[head][THEIRS]},
                   f"≤ {TARGET}× torch.distributions at every B",
                   all(r <= TARGET for r in ratios.values()), primary=OURS, baseline=THEIRS,
                   unit="µs", note=note, extra={"per_batch": {str(B): t for B, t in
                                                              per_b.items()}})
    return case


def _skipped(case_id: str, title: str, why: str) -> Row:
    nan = float("nan")
    return Row(case_id, title, "", {OURS: nan, THEIRS: nan}, "", None, primary=OURS,
               baseline=THEIRS, unit="µs", note=f"skipped: {why}")


def case_rl_ppo(ctx: Context) -> Row:
    import importlib.util

    if ctx.torch is None or importlib.util.find_spec("gymnasium") is None \
            or ppo_example() is None:
        return _skipped("rl-ppo", "PPO (examples/ppo.py)", "needs torch, gymnasium and the "
                        "source tree's examples/")
    steps, runs = (4096, 1) if ctx.quick else (PPO_STEPS, PPO_RUNS)
    res = measure_ppo(steps, runs)
    times = {}
    for env, per in res.items():
        for dist, r in per.items():
            times[f"{env} {OURS if dist == 'lograd_fast' else THEIRS}"] = r["cpu_s"] / r["steps"]
    ratios = {env: per["lograd_fast"]["cpu_s"] / per["torch"]["cpu_s"]
              for env, per in res.items()}
    primary, baseline = f"CartPole-v1 {OURS}", f"CartPole-v1 {THEIRS}"
    note = ("whole-run CPU, lograd_fast / torch: " + ", ".join(
        f"{env} {r:.2f}×" for env, r in ratios.items()) + f" ({steps} steps, one thread, "
        f"the least CPU of {runs} runs per library)")
    return Row("rl-ppo", "PPO (examples/ppo.py), CPU per environment step",
               f"{steps} steps", times, "whole run: less CPU with lograd_fast",
               all(r < 1.0 for r in ratios.values()), primary=primary, baseline=baseline,
               unit="µs", note=note, extra={"runs": res})


RL_CASES: dict[str, Callable[[Context], Row]] = {
    "rl-categorical-rollout": _calls_case("Categorical", "rollout"),
    "rl-categorical-update": _calls_case("Categorical", "update"),
    "rl-normal-rollout": _calls_case("Normal", "rollout"),
    "rl-normal-update": _calls_case("Normal", "update"),
    "rl-ppo": case_rl_ppo,
}
