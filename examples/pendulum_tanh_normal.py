"""REINFORCE with a squashed-Gaussian (``TanhNormal``) policy on gymnasium's Pendulum-v1.

The torque is ``2 tanh(u)`` with ``u ~ N(net(obs), exp(log_std)**2)``: the policy is
``lograd_fast.torch.TanhNormal(loc, log_scale=...)`` (scores w.r.t. the *pre-squash*
``loc``/``log_scale``, in closed form), ``loc`` from a small torch network and
``log_std`` a free parameter.  A batch of episodes runs side by side; the
reward-to-go ``G_t`` (``lf.returns``, ``gamma = 0.95``) minus a learned state-value
baseline ``V(s_t)`` (a second small network fitted to ``G_t``; a baseline that
depends on the state only keeps the estimator unbiased), normalised per batch,
weights each step's ``log_prob``: ``loss = -(adv * log_prob).mean()``.

Learning is judged against a uniformly random policy, on the same 50 evaluation
episodes (seeded starts), with the trained policy sampling its actions (the
policy that REINFORCE optimises; acting with the mode ``2 tanh(loc)`` is reported
too).

    python examples/pendulum_tanh_normal.py [--iterations 100] [--seed 0]
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

STEPS = 200  # Pendulum-v1's time limit
MAX_TORQUE = 2.0


def mlp(out: int) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(3, 64), torch.nn.Tanh(),
                               torch.nn.Linear(64, 64), torch.nn.Tanh(), torch.nn.Linear(64, out))


class Policy(torch.nn.Module):
    def __init__(self, init_log_std: float) -> None:
        super().__init__()
        self.net = mlp(1)
        self.log_std = torch.nn.Parameter(torch.full((1,), init_log_std))

    def forward(self, obs: torch.Tensor) -> lft.TanhNormal:
        # event_ndims=1: the action vector (here of length 1) is one event
        return lft.TanhNormal(self.net(obs), log_scale=self.log_std, event_ndims=1)


def evaluate(envs, act, seed: int, episodes: int) -> float:
    """Average return of ``act(obs) -> torque (B, 1)`` over ``episodes`` seeded starts."""
    total = 0.0
    for k in range(episodes // envs.num_envs):
        obs, _ = envs.reset(seed=seed + 1000 * k)
        for _ in range(STEPS):
            obs, r, _, _, _ = envs.step(act(obs))
            total += r.sum()
    return total / (episodes // envs.num_envs * envs.num_envs)


def train(iterations: int = 100, seed: int = 0, batch: int = 25, gamma: float = 0.95,
          lr: float = 3e-3, critic_lr: float = 1e-2, clip: float = 1.0,
          init_log_std: float = 0.0, eval_episodes: int = 50,
          quiet: bool = False) -> dict:
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    envs = gym.make_vec("Pendulum-v1", num_envs=batch, vectorization_mode="sync")
    policy = Policy(init_log_std)
    critic = mlp(1)
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    opt_critic = torch.optim.Adam(critic.parameters(), lr=critic_lr)
    rng = np.random.default_rng(seed)

    def random_act(obs):
        return rng.uniform(-MAX_TORQUE, MAX_TORQUE, (len(obs), 1))

    def greedy_act(obs):
        with torch.no_grad():
            return (MAX_TORQUE * policy(torch.as_tensor(obs)).mode).numpy()

    def stochastic_act(obs):
        with torch.no_grad():
            return (MAX_TORQUE * policy(torch.as_tensor(obs)).sample()).numpy()

    start = time.perf_counter()
    random_return = evaluate(envs, random_act, seed + 1, eval_episodes)
    initial_return = evaluate(envs, stochastic_act, seed + 1, eval_episodes)
    obs_buf = np.zeros((batch, STEPS, 3), np.float32)
    act_buf = np.zeros((batch, STEPS, 1), np.float32)
    rew_buf = np.zeros((batch, STEPS))
    curve = []
    for it in range(iterations):
        obs, _ = envs.reset(seed=seed if it == 0 else None)
        with torch.no_grad():
            for t in range(STEPS):
                obs_buf[:, t] = obs
                a = policy(torch.from_numpy(obs_buf[:, t])).sample()  # (B, 1) in (-1, 1)
                act_buf[:, t] = a.numpy()
                obs, r, _, _, _ = envs.step(MAX_TORQUE * act_buf[:, t])
                rew_buf[:, t] = r
        curve.append(float(rew_buf.sum(axis=1).mean()))
        obs_t = torch.from_numpy(obs_buf)
        returns = torch.from_numpy(lf.returns(rew_buf / 10.0, gamma)).float()  # (B, T)
        value = critic(obs_t)[..., 0]
        adv = returns - value.detach()  # a state-dependent baseline: still unbiased
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        log_prob = policy(obs_t).log_prob(torch.from_numpy(act_buf))  # (B, T)
        loss = -(adv * log_prob).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), clip)  # no batch wrecks it
        opt.step()
        critic_loss = ((value - returns) ** 2).mean()
        opt_critic.zero_grad()
        critic_loss.backward()
        opt_critic.step()
        if not quiet and (it + 1) % 10 == 0:
            print(f"iteration {it + 1:4d}  average training return (last 10 batches) "
                  f"{np.mean(curve[-10:]):8.1f}")
    final_return = evaluate(envs, stochastic_act, seed + 1, eval_episodes)
    final_mode_return = evaluate(envs, greedy_act, seed + 1, eval_episodes)
    envs.close()
    result = dict(random_return=round(float(random_return), 1),
                  initial_return=round(float(initial_return), 1),
                  final_return=round(float(final_return), 1),
                  final_mode_return=round(float(final_mode_return), 1),
                  training_return_first_10=round(float(np.mean(curve[:10])), 1),
                  training_return_last_10=round(float(np.mean(curve[-10:])), 1),
                  episodes=iterations * batch, seconds=round(time.perf_counter() - start, 2),
                  seed=seed)
    if not quiet:
        print(f"average return over {eval_episodes} evaluation episodes: random policy "
              f"{result['random_return']}, untrained {result['initial_return']}, trained "
              f"{result['final_return']} (acting with 2 tanh(loc): "
              f"{result['final_mode_return']}) after {result['episodes']} training episodes, "
              f"{result['seconds']} s")
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    result = train(args.iterations, args.seed, quiet=args.quiet)
    print("RESULT " + json.dumps(result))
    return result


if __name__ == "__main__":
    main()
