"""Every rlship algorithm on CartPole-v1, beside Stable-Baselines3's A2C and DQN with rl-zoo's tuned hyperparameters.

All in one process, one torch thread, the same seeds; every agent is scored by rlship's evaluation protocol
(100 greedy episodes of gymnasium.make("CartPole-v1"), eval seed 0). The rlship rows are `rlship train ALGO
CartPole-v1` with its defaults (the CartPole-v1 preset), for each algorithm in rlship's ALGORITHMS registry.
SB3 runs rl-zoo's CartPole-v1 settings (hyperparams/a2c.yml and dqn.yml) and, by default, stops at rlship's stop
rule like an rlship run (`--sb3-full` also runs the whole rl-zoo budget: 5e5 steps for A2C, over a minute a
seed). A run counts as solved when its final evaluation reaches 475; "to solve" figures are the medians
over solved seeds of the wall seconds and env steps of the run (an rlship run ends at its stop rule).

Seeds: the held-out training seeds 100-119 by default (shared/DESIGN.md: presets are tuned on seeds 0-9 only,
published figures come from 100-119). All of them for every rlship algorithm and both SB3 peers take over an hour
on 2 quiet CPU cores (DQN, ours and SB3's, most of it): `rlship sweep` runs the rlship rows in parallel (a process
pool or Ray) and `--sweep` reads them; `--sb3-full` adds SB3 A2C's 5e5-step budget, over a minute a seed more.

    python benchmarks/algorithms.py
    python benchmarks/algorithms.py --algorithms dqn ppo --seeds 100 101 --sb3 dqn   # a quick look
    rlship sweep ppo CartPole-v1 --seeds 100-119 --out sweeps/ppo                # the held-out seeds, on Ray or not
    python benchmarks/algorithms.py --sweep sweeps/ppo --sb3                     # their row, from sweep.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from _common import ENV, THRESHOLD, run_sb3
from rlship.training import ALGORITHMS
from rlship.training.settings import RunSettings
from zoo import SB3_ZOO, sb3_model

HELD_OUT = list(range(100, 120))  # no preset was tuned on these (shared/DESIGN.md)
# rlship's stop rule as the SB3 runs apply it (every algorithm's defaults)
WINDOW, CONFIRM_EPISODES = RunSettings().solve_window, RunSettings().confirm_episodes


@dataclass
class Row:
    name: str
    seeds: list[int] = field(default_factory=list)
    solved: list[bool] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)  # every evaluation episode of every seed

    def add(self, seed: int, seconds: float, steps: int, episode_returns: list[float]) -> None:
        self.seeds.append(seed)
        self.solved.append(float(np.mean(episode_returns)) >= THRESHOLD)
        self.seconds.append(seconds)
        self.steps.append(steps)
        self.returns.extend(episode_returns)
        print(
            f"  {self.name} seed {seed}: {seconds:.1f} s, {steps:,} env steps, eval {np.mean(episode_returns):.1f} "
            f"+/- {np.std(episode_returns):.1f}",
            flush=True,
        )

    def median_seconds(self) -> float | None:
        solved = [s for s, ok in zip(self.seconds, self.solved, strict=True) if ok]
        return statistics.median(solved) if solved else None

    def median_seconds_all(self) -> float:
        return statistics.median(self.seconds)

    def line(self) -> str:
        solved_steps = [s for s, ok in zip(self.steps, self.solved, strict=True) if ok]
        secs = self.median_seconds()
        seeds = (
            f"{min(self.seeds)}-{max(self.seeds)}"
            if self.seeds == list(range(min(self.seeds), max(self.seeds) + 1))
            else ", ".join(map(str, self.seeds))
        )
        return (
            f"| {self.name} | {seeds} | {sum(self.solved)}/{len(self.solved)} ({np.mean(self.solved):.0%}) | "
            f"{f'{secs:.1f}' if secs is not None else '-'} | "
            f"{f'{statistics.median(solved_steps):,.0f}' if solved_steps else '-'} | "
            f"{np.mean(self.returns):.1f} +/- {np.std(self.returns):.1f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS), help="rlship algorithms (default: all)")
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=HELD_OUT, help="seeds of the rlship runs (default: held-out 100-119)"
    )
    parser.add_argument(
        "--sb3", nargs="*", default=["a2c", "dqn"], choices=list(SB3_ZOO), help="SB3 peers to run (default: a2c dqn)"
    )
    parser.add_argument(
        "--sb3-seeds", type=int, nargs="+", default=HELD_OUT, help="seeds of the SB3 runs (default: 100-119)"
    )
    parser.add_argument("--sb3-full", action="store_true", help="also report SB3's full rl-zoo budget (slow)")
    parser.add_argument(
        "--sweep",
        nargs="+",
        default=[],
        metavar="DIR",
        help="take the rlship rows from `rlship sweep` folders (DIR/sweep.json) instead of training them here",
    )
    args = parser.parse_args()
    unknown = set(args.algorithms) - set(ALGORITHMS)
    if unknown:
        parser.error(f"unknown algorithms {sorted(unknown)}; rlship has {list(ALGORITHMS)}")
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="rlship-bench-algos-"))
    print(f"{ENV}; eval: 100 greedy episodes, eval seed 0; torch threads 1; solved: eval mean >= {THRESHOLD:g}\n")

    rows: dict[str, Row] = {}
    for folder in map(Path, args.sweep):
        sweep = json.loads((folder / "sweep.json").read_text())
        if sweep["env_id"] != ENV:
            parser.error(f"{folder}: a sweep on {sweep['env_id']}; this table is {ENV}")
        name = f"rlship {sweep['algorithm']}"
        name = name if name not in rows else f"{name} ({folder.name})"
        row = rows[name] = Row(name)
        for run in (r for r in sweep["runs"] if not r["interrupted"]):
            row.add(run["seed"], run["train_seconds"], run["env_steps"], run["episode_returns"])
    for name in [] if args.sweep else args.algorithms:
        algo = ALGORITHMS[name]
        row = rows[f"rlship {name}"] = Row(f"rlship {name}")
        for seed in args.seeds:
            result = algo.train(ENV, algo.make_config(ENV), seed=seed, out=tmp / f"{name}-{seed}", progress=False)
            row.add(seed, result.train_seconds, result.env_steps, result.evaluation.episode_returns)
    for name in args.sb3:
        zoo = SB3_ZOO[name]
        stop = rows[f"sb3 {name} (rl-zoo, same stop rule)"] = Row(f"sb3 {name} (rl-zoo, same stop rule)")
        full = Row(f"sb3 {name} (rl-zoo, full {zoo['total_steps']:,} steps)")
        for seed in args.sb3_seeds:
            run = run_sb3(sb3_model(name, seed), zoo["total_steps"], WINDOW, CONFIRM_EPISODES, not args.sb3_full)
            if run.solved_at and run.solved_evaluation:
                stop.add(seed, run.solved_at[0], run.solved_at[1], run.solved_evaluation.episode_returns)
            else:  # never met the stop rule: the run went to the full budget; count it as it ended
                stop.add(seed, run.full_seconds, run.env_steps, run.evaluation.episode_returns)
            if args.sb3_full:
                full.add(seed, run.full_seconds, run.env_steps, run.evaluation.episode_returns)
        if args.sb3_full:
            rows[full.name] = full

    print(
        "\n| algorithm | seeds | solved (rate) | median wall s to solve | median env steps to solve "
        "| eval mean +/- std |"
    )
    print("|---|---|---|---|---|---|")
    for row in rows.values():
        print(row.line())
    print("\n(eval mean +/- std: all evaluation episodes of all seeds pooled; to-solve medians over solved seeds)")

    print("ratios SB3 wall / rlship wall (> 1: rlship is faster):")
    for name in args.sb3:
        ours = rows.get(f"rlship {name}")
        if ours is None:
            continue
        for row in (r for r in rows.values() if r.name.startswith(f"sb3 {name} ")):
            solved_ours, solved_theirs = ours.median_seconds(), row.median_seconds()
            to_solve = f"{solved_theirs / solved_ours:.2f}x" if solved_ours and solved_theirs else "n/a (unsolved)"
            print(
                f"  {row.name} / rlship {name}: median wall to solve {to_solve}; "
                f"median wall of all runs {row.median_seconds_all() / ours.median_seconds_all():.2f}x"
            )


if __name__ == "__main__":
    main()
