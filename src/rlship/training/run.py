"""What every algorithm's training run shares: episode bookkeeping, the stop rule, the log, the run folder.

An algorithm module owns its update; this module owns everything a user sees of a run (progress bar,
train_log.csv, training_curve.png, results.json) so that all algorithms report the same way.
"""

from __future__ import annotations

import csv
import json
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
from tqdm import tqdm

from rlship.evaluation import EvalResult, evaluate
from rlship.policy import RESULTS_FILE, Policy

LOG_FILE = "train_log.csv"
CURVE_FILE = "training_curve.png"
# The confirming evaluations of the stop rule use their own evaluation seeds, away from the final evaluation's
# (seed 0 and up), so that the reported score is not the one the stop decision was taken on.
CONFIRM_EVAL_SEED = 100_000


def hp(default: Any, help: str) -> Any:
    """A hyperparameter field of an algorithm's config dataclass; `help` becomes the CLI flag's help."""
    if isinstance(default, (list, tuple, dict)):
        return field(default_factory=lambda: default, metadata={"help": help})
    return field(default=default, metadata={"help": help})


class EpisodeStats:
    """Returns and lengths of the episodes finished in a vector env with next-step autoreset."""

    def __init__(self, num_envs: int, window: int) -> None:
        self._returns = np.zeros(num_envs)
        self._lengths = np.zeros(num_envs, dtype=np.int64)
        self.recent: deque[float] = deque(maxlen=window)
        self.recent_lengths: deque[int] = deque(maxlen=window)
        self.episodes = 0

    def update(self, rewards: np.ndarray, dones: np.ndarray, valid: np.ndarray) -> None:
        # `valid` is False on the reset step that follows a done: its reward is 0 and it is no env step of an episode
        self._returns += rewards
        self._lengths += valid
        if dones.any():
            self.recent.extend(self._returns[dones].tolist())
            self.recent_lengths.extend(self._lengths[dones].tolist())
            self.episodes += int(dones.sum())
            self._returns[dones] = 0.0
            self._lengths[dones] = 0

    @property
    def full(self) -> bool:
        return len(self.recent) == self.recent.maxlen

    def mean(self) -> float:
        return float(np.mean(self.recent)) if self.recent else float("nan")

    def std(self) -> float:
        return float(np.std(self.recent)) if self.recent else float("nan")


@dataclass
class StopRule:
    """Solved when the mean of the last `window` training returns reaches `threshold` and a confirming
    evaluation (the evaluation protocol, `episodes` greedy episodes) reaches it too."""

    threshold: float | None
    episodes: int = 100

    def __post_init__(self) -> None:
        self.confirmations: list[EvalResult] = []

    def solved(self, stats: EpisodeStats, policy: Policy) -> bool:
        if self.threshold is None or not stats.full or stats.mean() < self.threshold:
            return False
        result = evaluate(policy, episodes=self.episodes, seed=CONFIRM_EVAL_SEED + len(self.confirmations))
        self.confirmations.append(result)
        return result.mean_reward >= self.threshold


class TrainLog:
    """train_log.csv (one row per update, flushed as it goes so a run can be watched) and the progress bar."""

    def __init__(self, out: Path, total_steps: int, fields: Sequence[str], progress: bool, desc: str) -> None:
        self.fields = ["env_steps", "wall_seconds", "episodes", "return_mean", "return_std", *fields]
        self.rows: list[dict[str, float]] = []
        self._file: IO[str] = (out / LOG_FILE).open("w", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=self.fields)
        self._writer.writeheader()
        self._bar = tqdm(total=total_steps, desc=desc, unit="step", disable=not progress, dynamic_ncols=True)
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def log(self, env_steps: int, stats: EpisodeStats, **values: float) -> None:
        row = {
            "env_steps": env_steps,
            "wall_seconds": round(self.elapsed(), 4),
            "episodes": stats.episodes,
            "return_mean": stats.mean(),
            "return_std": stats.std(),
            **values,
        }
        self.rows.append(row)
        self._writer.writerow(row)
        self._file.flush()
        self._bar.update(env_steps - self._bar.n)
        self._bar.set_postfix(
            episodes=stats.episodes,
            ret=f"{stats.mean():.1f}",
            sps=f"{env_steps / max(self.elapsed(), 1e-9):.0f}",
            refresh=False,
        )

    def close(self) -> None:  # the algorithm closes its log when its loop ends, failed or not
        self._bar.close()
        self._file.close()


@dataclass(frozen=True)
class TrainResult:
    """What `train` returns: the trained policy, where it was written and how the run went."""

    policy: Policy
    out: Path
    evaluation: EvalResult
    reward_threshold: float | None
    solved: bool
    env_steps: int
    train_seconds: float  # from the first env step until training stopped (confirming evaluations included)
    confirmations: int  # confirming evaluations the stop rule ran

    def summary(self) -> dict[str, Any]:
        return {
            "env_id": self.evaluation.env_id,
            "algorithm": self.policy.spec.algorithm,
            "solved": self.solved,
            "reward_threshold": self.reward_threshold,
            "env_steps": self.env_steps,
            "train_seconds": round(self.train_seconds, 3),
            "confirmations": self.confirmations,
            "mean_reward": self.evaluation.mean_reward,
            "std_reward": self.evaluation.std_reward,
            "out": str(self.out),
        }


def finish_run(
    out: Path,
    policy: Policy,
    log: TrainLog,
    stop: StopRule,
    env_steps: int,
    eval_episodes: int,
) -> TrainResult:
    """Evaluate by the protocol and write the artifact: weights, config, results, curve (`log` is closed)."""
    train_seconds = log.elapsed()
    policy.save(out)
    evaluation = evaluate(policy, episodes=eval_episodes, seed=0)
    solved = stop.threshold is not None and evaluation.mean_reward >= stop.threshold
    results = {
        **evaluation.to_dict(),
        "reward_threshold": stop.threshold,
        "solved": solved,
        "training": {
            "env_steps": env_steps,
            "train_seconds": round(train_seconds, 3),
            "confirming_evaluations": [
                {"mean_reward": c.mean_reward, "std_reward": c.std_reward, "seed": c.seed} for c in stop.confirmations
            ],
        },
    }
    (out / RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n")
    from rlship.training.curve import plot_training_curve  # matplotlib is slow to import: only once a run ends

    plot_training_curve(
        log.rows, out / CURVE_FILE, title=f"{policy.spec.algorithm} on {policy.spec.env_id}", threshold=stop.threshold
    )
    return TrainResult(
        policy, out, evaluation, stop.threshold, solved, env_steps, train_seconds, len(stop.confirmations)
    )
