"""REINFORCE with a linear softmax policy on gymnasium's CartPole-v1, all in numpy.

The policy is ``pi(a|s) = softmax(phi(s) @ W)`` with ``phi(s) = [s, 1]``.  Every
iteration plays a batch of episodes side by side (gymnasium's vectorised CartPole),
then

* ``lf.Categorical(logits)`` with the logits of every step ``(B, T, 2)`` gives the
  closed-form scores ``d log pi / d logits = onehot(a) - pi``,
* ``lf.policy_gradient`` turns them, with the rewards, into the gradient w.r.t.
  the logits of every step: reward-to-go, discount weights ``gamma**t`` and the
  leave-one-out baseline across episodes (unbiased),
* the chain rule ``dJ/dW = sum phi(s_t) (dJ/dlogits_t)^T`` and an Adam step.

Solved = the average return of the last 100 training episodes reaches 195.

    python examples/cartpole_reinforce.py [--max-episodes 4000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym
import numpy as np

import lograd_fast as lf

MAX_STEPS = 500  # CartPole-v1's time limit


def features(obs: np.ndarray) -> np.ndarray:
    """``[s, 1]``: (..., 4) -> (..., 5), float64."""
    obs = np.asarray(obs, np.float64)
    return np.concatenate([obs, np.ones(obs.shape[:-1] + (1,))], axis=-1)


def rollout(envs, W: np.ndarray, seed: int, it: int) -> dict:
    """Play one episode in each of the ``B`` environments: padded ``(B, T)`` arrays."""
    B = envs.num_envs
    obs, _ = envs.reset(seed=None if it else seed)
    phi = np.zeros((B, MAX_STEPS, W.shape[0]))
    actions = np.zeros((B, MAX_STEPS), np.int64)
    rewards = np.zeros((B, MAX_STEPS))
    alive = np.ones(B, bool)
    length = np.zeros(B, np.int64)
    t = 0
    while alive.any() and t < MAX_STEPS:
        phi[:, t] = features(obs)
        # sample every environment's action in one call; counter-based RNG:
        # (seed, stream) picks an independent stream per iteration and step
        a = lf.Categorical(phi[:, t] @ W).sample(seed=seed, stream=it * MAX_STEPS + t)
        actions[:, t] = a
        obs, r, terminated, truncated, _ = envs.step(a)
        rewards[alive, t] = r[alive]
        length[alive] += 1
        alive &= ~(terminated | truncated)
        t += 1
    T = int(length.max())
    valid = np.arange(T)[None, :] < length[:, None]
    dones = np.arange(T)[None, :] == (length[:, None] - 1)
    return dict(phi=phi[:, :T], actions=actions[:, :T], rewards=rewards[:, :T],
                valid=valid, dones=dones, returns=rewards.sum(axis=1))


class Adam:
    """Adam ascent on one array (Kingma & Ba, 2015)."""

    def __init__(self, lr: float, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8):
        self.lr, self.b1, self.b2, self.eps = lr, b1, b2, eps
        self.m = self.v = 0.0
        self.t = 0

    def step(self, param: np.ndarray, grad: np.ndarray) -> None:
        self.t += 1
        self.m = self.b1 * self.m + (1 - self.b1) * grad
        self.v = self.b2 * self.v + (1 - self.b2) * grad * grad
        m_hat = self.m / (1 - self.b1**self.t)
        v_hat = self.v / (1 - self.b2**self.t)
        param += self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


def train(max_episodes: int = 4000, seed: int = 0, batch: int = 16, gamma: float = 0.99,
          lr: float = 0.05, target: float = 195.0, quiet: bool = False) -> dict:
    envs = gym.make_vec("CartPole-v1", num_envs=batch, vectorization_mode="vector_entry_point")
    W = np.zeros((5, 2))
    opt = Adam(lr)
    history: list[float] = []
    start = time.perf_counter()
    it = 0
    solved_at = None
    while len(history) < max_episodes:
        data = rollout(envs, W, seed, it)
        history.extend(data["returns"].tolist())
        logits = data["phi"] @ W  # (B, T, 2)
        est = lf.policy_gradient(lf.Categorical(logits), data["actions"], data["rewards"],
                                 gamma=gamma, dones=data["dones"], valid=data["valid"],
                                 baseline="loo")
        grad_W = np.einsum("btf,btk->fk", data["phi"], est.grad["logits"])
        opt.step(W, grad_W)
        it += 1
        avg = float(np.mean(history[-100:]))
        if not quiet and it % 10 == 0:
            print(f"episodes {len(history):5d}  average return (last 100) {avg:6.1f}")
        if len(history) >= 100 and avg >= target:
            solved_at = len(history)
            break
    envs.close()
    result = dict(solved=solved_at is not None, episodes=len(history),
                  average_return_last_100=float(np.mean(history[-100:])),
                  seconds=round(time.perf_counter() - start, 2), seed=seed)
    if not quiet:
        print(f"{'solved' if result['solved'] else 'not solved'} after {result['episodes']} "
              f"episodes ({result['seconds']} s): average return of the last 100 episodes "
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
