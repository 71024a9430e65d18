"""What checkpoints and TensorBoard cost a PPO CartPole-v1 run, measured side by side in one process.

Three ways of running the same seeds, interleaved (so machine load drifts hit all three alike):
- "bare": no periodic checkpoint (every_seconds=inf) and no TensorBoard: the run as it was before both existed;
- "default": what `rlship train` does (a checkpoint every 60 s, TensorBoard event files);
- "every update": a checkpoint after every PPO update (the worst case; the Ctrl-C test uses it).
Same seed, same env steps and weights in all three (checkpointing only reads RNG states). Figures: train wall
seconds as the run reports them (first env step to stop decision) and CPU seconds of the whole `train` call.

    python benchmarks/checkpoint_overhead.py                 # seeds 0 1 2, 2 repetitions
    python benchmarks/checkpoint_overhead.py --seeds 0 --reps 1
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from rlship.training import ppo, train_log
from rlship.training.checkpoint import CheckpointOptions

MODES = {"bare": math.inf, "default": 60.0, "every update": 0.0}


def one_run(seed: int, every: float, tensorboard: bool) -> tuple[float, float, int, int]:
    """(train wall s, cpu s, env steps, checkpoints written) of one PPO CartPole-v1 run."""
    saved = sys.modules.get("torch.utils.tensorboard")
    if not tensorboard:
        sys.modules["torch.utils.tensorboard"] = None  # type: ignore[assignment]  # what "not installed" looks like
        train_log._tensorboard_notice_given = True  # keep the output to the table
    try:
        with tempfile.TemporaryDirectory() as d:
            cpu = time.process_time()
            result = ppo.train(
                "CartPole-v1", seed=seed, out=d, progress=False, checkpoint=CheckpointOptions(every_seconds=every)
            )
            cpu = time.process_time() - cpu
            state = Path(d) / "checkpoint" / "state.json"
            saves = 0
            if state.exists():
                import json

                saves = json.loads(state.read_text())["saves"]
            return result.train_seconds, cpu, result.env_steps, saves
    finally:
        if not tensorboard and saved is not None:
            sys.modules["torch.utils.tensorboard"] = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    one_run(0, math.inf, True)  # warm-up: imports (torch, tensorboard, matplotlib) out of the figures
    walls: dict[str, list[float]] = {m: [] for m in MODES}
    cpus: dict[str, list[float]] = {m: [] for m in MODES}
    print("| rep | seed | mode | env steps | checkpoints | train wall s | cpu s |\n|---|---|---|---|---|---|---|")
    for rep in range(args.reps):
        for seed in args.seeds:
            order = list(MODES) if rep % 2 == 0 else list(reversed(MODES))
            for mode in order:
                wall, cpu, steps, saves = one_run(seed, MODES[mode], tensorboard=mode != "bare")
                walls[mode].append(wall)
                cpus[mode].append(cpu)
                print(f"| {rep} | {seed} | {mode} | {steps:,} | {saves} | {wall:.2f} | {cpu:.2f} |", flush=True)
    print()
    for mode in MODES:
        w, c = sum(walls[mode]), sum(cpus[mode])
        print(
            f"{mode:>13}: train wall {w:.2f} s total (median run {statistics.median(walls[mode]):.2f}), "
            f"cpu {c:.2f} s total -> ratio to bare: wall {w / sum(walls['bare']):.3f}, cpu {c / sum(cpus['bare']):.3f}"
        )


if __name__ == "__main__":
    main()
