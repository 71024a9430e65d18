"""Training speed as users feel it: whole processes, rlship against Stable-Baselines3 with rl-zoo's settings.

For each algorithm (ppo, dqn, a2c) and each seed, in the same run, one process at a time:
- rlship: `rlship train ALGO CartPole-v1 --seed S --out DIR --no-progress`, timed from process start to its exit
  (imports, env construction, training to the stop rule, the 100-episode evaluation, the artifact on disk);
- SB3: `python benchmarks/sb3_train.py ALGO --seed S --out DIR`, a script the way SB3's users write one: import
  SB3, train rl-zoo's CartPole-v1 settings for rl-zoo's budget (ppo 1e5 steps, dqn 5e4, a2c 5e5), evaluate 100
  greedy episodes with `evaluate_policy`, save the model; timed the same way;
- the same stop rule (unless --no-same-stop): SB3 run in this process and stopped by rlship's stop rule (running
  return of the last 20 training episodes >= 475, then a confirming evaluation), its training wall seconds
  against the rlship run's own `train_seconds` (both: first env step to the stop; imports and evaluation out).
"solved": the 100-episode evaluation's mean >= 475 (rlship: its results.json; SB3: evaluate_policy's episodes).
Seeds: the held-out training seeds 100-119 by default (no preset was tuned on them). Ratios are SB3 / rlship
per seed (> 1: rlship is faster); the summary gives their median.

    python benchmarks/train_speed.py                                   # ppo, dqn, a2c on seeds 100-119
    python benchmarks/train_speed.py --algorithms ppo --seeds 100 101  # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from _common import ENV, THRESHOLD
from _process import RLSHIP, timed_process
from zoo import SB3_ZOO

HERE = Path(__file__).resolve().parent
HELD_OUT = list(range(100, 120))
GOALS = {"ppo": 10.0, "dqn": 5.0, "a2c": 5.0}  # issue 10: median whole-process ratio against SB3
# One thread each: both trainers' networks are tiny, and the machine's other cores belong to other jobs.
CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass
class Process:
    seconds: float  # wall seconds from process start to exit
    cpu: float  # its CPU seconds (user + system, children included): on a shared machine they grow far less
    mean_reward: float
    solved: bool
    env_steps: int
    train_seconds: float | None = None  # rlship's own: first env step to the stop decision


def timed(command: list[str], cwd: Path | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one process, start to exit."""
    wall, cpu, _ = timed_process(command, cwd, CHILD_ENV)
    return wall, cpu


def rlship_process(algo: str, seed: int, out: Path) -> Process:
    cmd = [RLSHIP, "train", algo, ENV, "--seed", str(seed), "--out", str(out), "--no-progress"]
    seconds, cpu = timed(cmd)
    results = json.loads((out / "results.json").read_text())
    mean, training = results["mean_reward"], results["training"]
    return Process(seconds, cpu, mean, mean >= THRESHOLD, training["env_steps"], training["train_seconds"])


def sb3_process(algo: str, seed: int, out: Path) -> Process:
    command = [sys.executable, str(HERE / "sb3_train.py"), algo, "--seed", str(seed), "--out", str(out)]
    seconds, cpu = timed(command, HERE)
    results = json.loads((out / "results.json").read_text())
    return Process(seconds, cpu, results["mean_reward"], results["mean_reward"] >= THRESHOLD, results["env_steps"])


def sb3_same_stop(algo: str, seed: int) -> float | None:
    """Wall seconds SB3 trains until rlship's stop rule is met (None: never met within rl-zoo's budget)."""
    import torch

    from _common import run_sb3
    from zoo import sb3_model

    torch.set_num_threads(1)
    run = run_sb3(sb3_model(algo, seed), SB3_ZOO[algo]["total_steps"], 20, 20, stop_when_solved=True)
    return run.solved_at[0] if run.solved_at else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algorithms", nargs="+", default=["ppo", "dqn", "a2c"], choices=list(SB3_ZOO))
    parser.add_argument("--seeds", type=int, nargs="+", default=HELD_OUT, help="(default: held-out 100-119)")
    parser.add_argument("--no-same-stop", action="store_true", help="skip the same-stop-rule SB3 runs")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rlship-train-speed-"))
    print(f"{ENV}, seeds {args.seeds}; one process at a time, 1 torch thread each; solved: 100-episode eval >= 475")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n", flush=True)
    summary = []
    for algo in args.algorithms:
        print(f"### {algo}: `rlship train {algo} {ENV}` vs SB3 {algo.upper()} (rl-zoo), whole processes\n")
        print(
            "| seed | rlship s | rlship eval | sb3 s | sb3 eval | ratio | CPU s rlship / sb3 | CPU ratio "
            "| rlship train s | sb3 train s (same stop) | ratio (same stop) |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        ratios, cpu_ratios, stop_ratios, ours_solved, theirs_solved = [], [], [], [], []
        for seed in args.seeds:
            ours = rlship_process(algo, seed, tmp / f"rlship-{algo}-{seed}")
            theirs = sb3_process(algo, seed, tmp / f"sb3-{algo}-{seed}")
            stop = None if args.no_same_stop else sb3_same_stop(algo, seed)
            ratio = theirs.seconds / ours.seconds
            ratios.append(ratio)
            cpu_ratios.append(theirs.cpu / ours.cpu)
            ours_solved.append(ours.solved)
            theirs_solved.append(theirs.solved)
            stop_cell, stop_ratio_cell = "-", "-"
            if stop is not None and ours.train_seconds:
                stop_ratios.append(stop / ours.train_seconds)
                stop_cell, stop_ratio_cell = f"{stop:.1f}", f"{stop / ours.train_seconds:.2f}x"
            elif not args.no_same_stop:
                stop_cell = "not met"
            print(
                f"| {seed} | {ours.seconds:.1f} | {ours.mean_reward:.1f} {'solved' if ours.solved else 'NOT solved'} "
                f"| {theirs.seconds:.1f} | {theirs.mean_reward:.1f} {'solved' if theirs.solved else 'NOT solved'} "
                f"| {ratio:.2f}x | {ours.cpu:.1f} / {theirs.cpu:.1f} | {cpu_ratios[-1]:.2f}x "
                f"| {ours.train_seconds:.1f} | {stop_cell} | {stop_ratio_cell} |",
                flush=True,
            )
        median = statistics.median(ratios)
        line = (
            f"{algo}: median whole-process ratio {median:.2f}x (goal {GOALS[algo]:g}x: "
            f"{'met' if median >= GOALS[algo] and all(ours_solved) else 'NOT met'}); rlship solved "
            f"{sum(ours_solved)}/{len(ours_solved)}, SB3 {sum(theirs_solved)}/{len(theirs_solved)}; "
            f"median CPU-seconds ratio {statistics.median(cpu_ratios):.2f}x; "
            + (
                f"same stop rule: median {statistics.median(stop_ratios):.2f}x over {len(stop_ratios)} seeds"
                if stop_ratios
                else "same stop rule: not measured"
            )
        )
        summary.append(line)
        print(f"\n{line}\n", flush=True)
    print("Summary:")
    for line in summary:
        print(f"- {line}")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
