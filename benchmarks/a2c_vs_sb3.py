"""Time to solve CartPole-v1: rlship A2C (CartPole-v1 preset) beside Stable-Baselines3's A2C with rl-zoo's tuned
settings (n_envs 8, ent_coef 0.0, SB3 defaults otherwise: RMSprop lr 7e-4, n_steps 5; 5e5 steps).

Both run here, alternately seed by seed, one torch thread each. SB3 is stopped by rlship's stop rule (running
mean of the last 20 training returns >= 475, then a confirming 20-episode greedy evaluation), checked after each
rollout by a callback whose evaluation time is not counted; rlship's time counts its confirming evaluations.
Every policy is scored by rlship's evaluation protocol (100 greedy episodes, eval seed 0).
(`benchmarks/algorithms.py` holds the table of all algorithms; this is the A2C comparison alone.)

    python benchmarks/a2c_vs_sb3.py --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from typing import Any

import numpy as np
import torch

from rlship.evaluation import evaluate_fn
from rlship.training import a2c
from rlship.training.run import CONFIRM_EVAL_SEED

ENV, THRESHOLD, WINDOW, CONFIRM_EPISODES = "CartPole-v1", 475.0, 20, 20
ZOO_ENVS, ZOO_STEPS = 8, 500_000


def sb3_a2c(seed: int) -> dict[str, Any]:
    from stable_baselines3 import A2C
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    class SameStopRule(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.eval_seconds, self.confirms = 0.0, 0
            self.solved_at: tuple[float, int] | None = None  # (seconds, env steps)

        def _on_step(self) -> bool:
            return self.solved_at is None  # stop once solved: the time to solve is what is compared

        def _on_rollout_end(self) -> None:
            returns = [e["r"] for e in list(self.model.ep_info_buffer)[-WINDOW:]]
            if self.solved_at or len(returns) < WINDOW or np.mean(returns) < THRESHOLD:
                return
            t = time.perf_counter()
            act = lambda obs: self.model.predict(obs, deterministic=True)[0]  # noqa: E731
            result = evaluate_fn(act, ENV, CONFIRM_EPISODES, CONFIRM_EVAL_SEED + self.confirms)
            self.confirms += 1
            self.eval_seconds += time.perf_counter() - t
            if result.mean_reward >= THRESHOLD:
                self.solved_at = (time.perf_counter() - start - self.eval_seconds, self.num_timesteps)

    model = A2C("MlpPolicy", make_vec_env(ENV, n_envs=ZOO_ENVS, seed=seed), ent_coef=0.0, seed=seed, device="cpu")
    callback = SameStopRule()
    start = time.perf_counter()
    model.learn(ZOO_STEPS, callback=callback)
    evaluation = evaluate_fn(lambda obs: model.predict(obs, deterministic=True)[0], ENV, 100, seed=0)
    return {"solved_at": callback.solved_at, "evaluation": evaluation}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| trainer | seed | env steps to solve | train wall s to solve | final eval mean +/- std |")
    print("|---|---|---|---|---|")
    ours: list[float] = []
    theirs: list[float] = []
    for seed in args.seeds:
        r = a2c.train(ENV, a2c.make_config(ENV), seed=seed, out=tempfile.mkdtemp(prefix="rlship-a2c-"), progress=False)
        ev = r.evaluation
        if r.solved:
            ours.append(r.train_seconds)
        steps, secs = (f"{r.env_steps:,}", f"{r.train_seconds:.1f}") if r.solved else ("-", "not solved")
        print(f"| rlship a2c | {seed} | {steps} | {secs} | {ev.mean_reward:.2f} +/- {ev.std_reward:.2f} |", flush=True)
        sb3 = sb3_a2c(seed)
        ev, solved_at = sb3["evaluation"], sb3["solved_at"]
        if solved_at:
            theirs.append(solved_at[0])
        steps, secs = (f"{solved_at[1]:,}", f"{solved_at[0]:.1f}") if solved_at else ("-", "not solved")
        print(
            f"| sb3 a2c rl-zoo | {seed} | {steps} | {secs} | {ev.mean_reward:.2f} +/- {ev.std_reward:.2f} |", flush=True
        )
    if ours and theirs:
        a, b = statistics.median(ours), statistics.median(theirs)
        print(
            f"\nmedian time to solve: rlship a2c {a:.1f} s ({len(ours)}/{len(args.seeds)} solved), "
            f"sb3 a2c {b:.1f} s ({len(theirs)}/{len(args.seeds)} solved): rlship {b / a:.1f}x faster"
        )


if __name__ == "__main__":
    main()
