"""REINFORCE with a small torch network on CartPole-v1, through ``lograd_fast.torch``.

``lft.Categorical(logits=net(obs))`` replaces ``torch.distributions.Categorical``:
sampling runs in lograd_fast's kernels, and ``log_prob``'s backward is the
closed-form score ``onehot(a) - softmax(logits)`` (no autodiff through a softmax).
The per-step weights come from ``lf.advantages`` (reward-to-go, ``gamma**t``
weights, leave-one-out baseline across the episodes of a batch), so the loss

    loss = -(psi * dist.log_prob(actions)).sum() / B

has exactly the gradient of ``lf.policy_gradient``.  Solved = the average return of
the last 100 training episodes reaches 195.

    python examples/cartpole_torch.py [--max-episodes 4000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym
import numpy as np
import torch

import lograd_fast as lf
import lograd_fast.torch as lft

MAX_STEPS = 500


def rollout(envs, net: torch.nn.Module, seed: int | None) -> dict:
    """One episode in each environment; padded ``(B, T)`` arrays."""
    B = envs.num_envs
    obs, _ = envs.reset(seed=seed)
    observations = np.zeros((B, MAX_STEPS, 4), np.float32)
    actions = np.zeros((B, MAX_STEPS), np.int64)
    rewards = np.zeros((B, MAX_STEPS))
    alive = np.ones(B, bool)
    length = np.zeros(B, np.int64)
    t = 0
    with torch.no_grad():
        while alive.any() and t < MAX_STEPS:
            observations[:, t] = obs
            # the Philox seed of each call comes from torch's generator (torch.manual_seed)
            a = lft.Categorical(logits=net(torch.from_numpy(observations[:, t]))).sample()
            actions[:, t] = a.numpy()
            obs, r, terminated, truncated, _ = envs.step(actions[:, t])
            rewards[alive, t] = r[alive]
            length[alive] += 1
            alive &= ~(terminated | truncated)
            t += 1
    T = int(length.max())
    steps = np.arange(T)[None, :]
    return dict(obs=observations[:, :T], actions=actions[:, :T], rewards=rewards[:, :T],
                valid=steps < length[:, None], dones=steps == length[:, None] - 1,
                returns=rewards.sum(axis=1))


def train(max_episodes: int = 4000, seed: int = 0, batch: int = 16, gamma: float = 0.99,
          lr: float = 0.01, target: float = 195.0, quiet: bool = False) -> dict:
    torch.manual_seed(seed)
    torch.set_num_threads(1)  # tiny matrices: threads cost more than they give
    envs = gym.make_vec("CartPole-v1", num_envs=batch, vectorization_mode="vector_entry_point")
    net = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.Tanh(), torch.nn.Linear(32, 2))
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    history: list[float] = []
    start = time.perf_counter()
    it = 0
    solved = False
    while len(history) < max_episodes:
        data = rollout(envs, net, seed if it == 0 else None)
        history.extend(data["returns"].tolist())
        psi = lf.advantages(data["rewards"], gamma, data["dones"], valid=data["valid"],
                            baseline="loo")
        dist = lft.Categorical(logits=net(torch.from_numpy(data["obs"])))  # (B, T, 2)
        log_prob = dist.log_prob(torch.from_numpy(data["actions"]))  # (B, T)
        loss = -(torch.from_numpy(psi).float() * log_prob).sum() / batch
        opt.zero_grad()
        loss.backward()  # closed-form scores into the network
        opt.step()
        it += 1
        avg = float(np.mean(history[-100:]))
        if not quiet and it % 10 == 0:
            print(f"episodes {len(history):5d}  average return (last 100) {avg:6.1f}")
        if len(history) >= 100 and avg >= target:
            solved = True
            break
    envs.close()
    result = dict(solved=solved, episodes=len(history),
                  average_return_last_100=float(np.mean(history[-100:])),
                  seconds=round(time.perf_counter() - start, 2), seed=seed)
    if not quiet:
        print(f"{'solved' if solved else 'not solved'} after {result['episodes']} episodes "
              f"({result['seconds']} s): average return of the last 100 episodes "
              f"{result['average_return_last_100']:.1f}")
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-episodes", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    result = train(args.max_episodes, args.seed, quiet=args.quiet)
    print("RESULT " + json.dumps(result))
    return result


if __name__ == "__main__":
    main()
