"""Env steps/s of rlship/CartPolePixels-v1, both ways it is stepped, beside plain CartPole-v1:

- `gymnasium.make`: CartPole-v1 + Gymnasium's pygame renderer (600x400) + rlship.frames preprocessing, one env at
  a time (what evaluation, the stop rule's confirmations and replay videos play);
- `gymnasium.make_vec` (vector_entry_point): CartPole-v1's NumPy vector env + rlship's NumPy renderer drawing the
  preprocessed frames directly (what training steps);
- plain CartPole-v1 (`gymnasium.make`), the state-vector env, for scale.

Random actions, one process, one thread:

    OMP_NUM_THREADS=1 python benchmarks/pixel_env_speed.py [--steps 3000] [--num-envs 8]
"""

from __future__ import annotations

import argparse
import os
import time

import gymnasium as gym
import numpy as np

import rlship  # noqa: F401 (registers rlship/CartPolePixels-v1)

ENV = "rlship/CartPolePixels-v1"


def single(env_id: str, steps: int) -> float:
    env = gym.make(env_id)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(int(rng.integers(2)))
        if terminated or truncated:
            env.reset()
    rate = steps / (time.perf_counter() - start)
    env.close()
    return rate


def vector(steps: int, num_envs: int) -> float:
    envs = gym.make_vec(ENV, num_envs=num_envs, vectorization_mode="vector_entry_point")
    rng = np.random.default_rng(0)
    envs.reset(seed=0)
    start = time.perf_counter()
    for _ in range(steps // num_envs):
        envs.step(rng.integers(0, 2, num_envs))
    rate = (steps // num_envs) * num_envs / (time.perf_counter() - start)
    envs.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--num-envs", type=int, default=8)
    args = parser.parse_args()
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    rows = [
        (f"{ENV} gymnasium.make (Gymnasium renderer + preprocess)", single(ENV, args.steps)),
        (f"{ENV} gymnasium.make_vec x{args.num_envs} (NumPy renderer)", vector(args.steps * 4, args.num_envs)),
        ("CartPole-v1 gymnasium.make (state vector, no rendering)", single("CartPole-v1", args.steps * 4)),
    ]
    for name, rate in rows:
        print(f"{name:<66} {rate:>10,.0f} env steps/s")


if __name__ == "__main__":
    main()
