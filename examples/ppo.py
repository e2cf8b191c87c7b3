"""PPO (clipped surrogate, GAE), one file, discrete or continuous, with the action
distribution from ``torch.distributions`` or from ``lograd_fast.torch``.

The two runs differ in one line: ``dists = torch.distributions`` or
``dists = lograd_fast.torch``; everything else (networks, seeds, optimiser, the PPO
update) is the same code.  ``lograd_fast.torch``'s classes take torch's signatures
(``Categorical(logits=...)``, ``Normal(mean, std)``), so this is a drop-in.

    python examples/ppo.py --env CartPole-v1 --dist lograd_fast
    python examples/ppo.py --env Pendulum-v1 --dist torch --total-steps 100000

It prints one line ``RESULT {json}``: the training returns, the CPU time of the run and
of its two distribution-heavy phases (the rollout's ``sample``/``log_prob`` under
``no_grad``; the minibatch updates, forward and backward), and steps per CPU second;
the first calls (lograd_fast loads its compiled kernels from the on-disk cache) run
before the timer and are reported as ``warmup_cpu_s``.
Threads: one torch thread and one Numba thread (``--threads``), as RL actors run.
``--device cuda`` keeps the networks and tensors on a GPU (the environments step on the
CPU); compare ``wall_s`` there, since GPU work is not CPU time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="CartPole-v1", help="CartPole-v1 (discrete) or "
                   "Pendulum-v1 (continuous), or any gymnasium env with such spaces")
    p.add_argument("--dist", choices=("torch", "lograd_fast"), default="lograd_fast")
    p.add_argument("--total-steps", type=int, default=50_000)
    p.add_argument("--num-envs", type=int, default=4)
    p.add_argument("--num-steps", type=int, default=128, help="rollout length per env")
    p.add_argument("--minibatches", type=int, default=4)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--lr", type=float, default=2.5e-4)
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--gae-lambda", type=float, default=0.95)
    p.add_argument("--clip", type=float, default=0.2)
    p.add_argument("--ent-coef", type=float, default=0.01)
    p.add_argument("--vf-coef", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", help="where the networks and tensors live "
                   "(cpu or cuda; the environments step on the CPU)")
    p.add_argument("--quiet", action="store_true")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    os.environ.setdefault("NUMBA_NUM_THREADS", str(args.threads))
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import gymnasium as gym
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    if args.dist == "torch":
        dists = torch.distributions
    else:
        import lograd_fast.torch as dists

    dev = torch.device(args.device)
    torch.manual_seed(args.seed)
    envs = gym.vector.SyncVectorEnv([lambda: gym.make(args.env)] * args.num_envs)
    discrete = isinstance(envs.single_action_space, gym.spaces.Discrete)
    n_obs = int(np.prod(envs.single_observation_space.shape))
    n_act = int(envs.single_action_space.n) if discrete else \
        int(np.prod(envs.single_action_space.shape))

    def mlp(out: int, std: float) -> torch.nn.Sequential:
        layers = [torch.nn.Linear(n_obs, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64),
                  torch.nn.Tanh(), torch.nn.Linear(64, out)]
        for layer in layers[::2]:
            torch.nn.init.orthogonal_(layer.weight, std if layer is layers[-1] else 2**0.5)
            torch.nn.init.zeros_(layer.bias)
        return torch.nn.Sequential(*layers)

    actor, critic = mlp(n_act, 0.01).to(dev), mlp(1, 1.0).to(dev)
    log_std = torch.nn.Parameter(torch.zeros(n_act, device=dev))
    params = list(actor.parameters()) + list(critic.parameters()) + \
        ([] if discrete else [log_std])
    opt = torch.optim.Adam(params, lr=args.lr, eps=1e-5)

    def policy(obs: torch.Tensor):
        if discrete:
            return dists.Categorical(logits=actor(obs))
        return dists.Normal(actor(obs), log_std.exp().expand(obs.shape[0], n_act))

    def log_prob(dist, action):
        lp = dist.log_prob(action)
        return lp if discrete else lp.sum(-1)

    def entropy(dist):
        ent = dist.entropy()
        return ent if discrete else ent.sum(-1)

    N, T = args.num_envs, args.num_steps
    buf_obs = torch.zeros(T, N, n_obs, device=dev)
    buf_act = torch.zeros((T, N) if discrete else (T, N, n_act),
                          dtype=torch.int64 if discrete else torch.float32, device=dev)
    buf_lp, buf_rew, buf_done, buf_val = (torch.zeros(T, N, device=dev) for _ in range(4))
    low = None if discrete else envs.single_action_space.low
    high = None if discrete else envs.single_action_space.high

    # warm-up outside the timings: lograd_fast loads its compiled kernels from the
    # on-disk cache on first use (reported as warmup_cpu_s), torch its own lazy state
    c0 = time.process_time()
    probe = torch.zeros(2, n_obs, device=dev, requires_grad=True)
    for _ in range(2):
        d = policy(probe)
        a = d.sample()
        (log_prob(d, a).sum() + entropy(d).sum()).backward()
        with torch.no_grad():
            log_prob(policy(probe[:1]), d.sample()[:1])
    opt.zero_grad()
    warmup = time.process_time() - c0
    torch.manual_seed(args.seed)

    obs_np, _ = envs.reset(seed=args.seed)
    obs = torch.as_tensor(obs_np, dtype=torch.float32, device=dev)
    done = torch.zeros(N, device=dev)
    episode_return = np.zeros(N)
    finished: list = []
    cpu = {"rollout_dist": 0.0, "update": 0.0}
    iterations = max(1, args.total_steps // (N * T))
    batch = N * T
    mb = batch // args.minibatches
    t_start, c_start = time.perf_counter(), time.process_time()
    for it in range(iterations):
        for step in range(T):
            buf_obs[step], buf_done[step] = obs, done
            with torch.no_grad():
                c0 = time.process_time()
                dist = policy(obs)
                action = dist.sample()
                buf_lp[step] = log_prob(dist, action)
                cpu["rollout_dist"] += time.process_time() - c0
                buf_val[step] = critic(obs).squeeze(-1)
            buf_act[step] = action
            act_np = action.cpu().numpy()
            act_np = act_np if discrete else np.clip(act_np, low, high)
            obs_np, reward, term, trunc, _ = envs.step(act_np)
            episode_return += reward
            for i in np.flatnonzero(term | trunc):
                finished.append(float(episode_return[i]))
                episode_return[i] = 0.0
            buf_rew[step] = torch.as_tensor(reward, dtype=torch.float32, device=dev)
            obs = torch.as_tensor(obs_np, dtype=torch.float32, device=dev)
            done = torch.as_tensor(term | trunc, dtype=torch.float32, device=dev)
        with torch.no_grad():  # generalised advantage estimation
            next_val = critic(obs).squeeze(-1)
            adv = torch.zeros(T, N, device=dev)
            last = torch.zeros(N, device=dev)
            for step in reversed(range(T)):
                nonterminal = 1.0 - (done if step == T - 1 else buf_done[step + 1])
                value_next = next_val if step == T - 1 else buf_val[step + 1]
                delta = buf_rew[step] + args.gamma * value_next * nonterminal - buf_val[step]
                last = delta + args.gamma * args.gae_lambda * nonterminal * last
                adv[step] = last
            ret = adv + buf_val
        b_obs, b_act = buf_obs.reshape(batch, n_obs), buf_act.reshape((batch,) + buf_act.shape[2:])
        b_lp, b_adv, b_ret = buf_lp.reshape(batch), adv.reshape(batch), ret.reshape(batch)
        for _ in range(args.epochs):
            order = torch.randperm(batch, device=dev)
            for start in range(0, batch, mb):
                idx = order[start:start + mb]
                c0 = time.process_time()
                dist = policy(b_obs[idx])
                new_lp, ent = log_prob(dist, b_act[idx]), entropy(dist)
                ratio = torch.exp(new_lp - b_lp[idx])
                a = b_adv[idx]
                a = (a - a.mean()) / (a.std() + 1e-8)
                pg = torch.max(-a * ratio, -a * torch.clamp(ratio, 1 - args.clip, 1 + args.clip))
                v_loss = 0.5 * ((critic(b_obs[idx]).squeeze(-1) - b_ret[idx]) ** 2).mean()
                loss = pg.mean() - args.ent_coef * ent.mean() + args.vf_coef * v_loss
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 0.5)
                opt.step()
                cpu["update"] += time.process_time() - c0
        if not args.quiet:
            recent = finished[-20:]
            print(f"iter {it + 1}/{iterations}  steps {(it + 1) * batch}  "
                  f"return(last 20) {np.mean(recent) if recent else float('nan'):.1f}",
                  file=sys.stderr)
    wall, cpu_total = time.perf_counter() - t_start, time.process_time() - c_start
    envs.close()
    steps = iterations * batch
    result = {
        "env": args.env, "dist": args.dist, "device": args.device, "steps": steps,
        "episodes": len(finished),
        "first_returns": float(np.mean(finished[:20])) if finished else None,
        "final_return": float(np.mean(finished[-20:])) if finished else None,
        "cpu_s": cpu_total, "wall_s": wall, "steps_per_cpu_s": steps / cpu_total,
        "cpu_rollout_dist_s": cpu["rollout_dist"], "cpu_update_s": cpu["update"],
        "warmup_cpu_s": warmup,
    }
    print("RESULT " + json.dumps(result))
    return result


if __name__ == "__main__":
    main()
