"""What every algorithm's training run shares: episode bookkeeping, the stop rule, the log, the run folder.

An algorithm module owns its update; this module owns everything a user sees of a run (progress bar,
train_log.csv, training_curve.png, results.json) so that all algorithms report the same way.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import numpy as np
from tqdm import tqdm

from rlship.evaluation import EvalResult, evaluate
from rlship.policy import RESULTS_FILE, Policy

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

    from rlship.training.checkpoint import Checkpointer

C = TypeVar("C")

LOG_FILE = "train_log.csv"
CURVE_FILE = "training_curve.png"
# The confirming evaluations of the stop rule use their own evaluation seeds, away from the final evaluation's
# (seed 0 and up), so that the reported score is not the one the stop decision was taken on.
CONFIRM_EVAL_SEED = 100_000
# An interrupted run (Ctrl-C) still writes its artifact, evaluated on this many episodes so the stop stays quick;
# results.json says so ("interrupted": true, "solved": false): it is not the protocol's 100-episode score.
INTERRUPTED_EVAL_EPISODES = 10
# TensorBoard tags of the columns every TrainLog has; an algorithm's own columns go under "train/".
TENSORBOARD_TAGS = {
    "wall_seconds": "time/wall_seconds",
    "episodes": "rollout/episodes",
    "return_mean": "rollout/return_mean",
    "return_std": "rollout/return_std",
}
_tensorboard_notice_given = False


def hp(default: Any, help: str) -> Any:
    """A hyperparameter field of an algorithm's config dataclass; `help` becomes the CLI flag's help."""
    if isinstance(default, (list, tuple, dict)):
        return field(default_factory=lambda: default, metadata={"help": help})
    return field(default=default, metadata={"help": help})


def config_with_preset(
    config_cls: type[C], presets: dict[str, dict[str, Any]], env_id: str, overrides: dict[str, Any]
) -> C:
    """An algorithm's config: the dataclass defaults, then the env's preset, then `overrides` (None values, the
    CLI's flags left out, are ignored). An unknown name is a TypeError naming the known ones."""
    known = {f.name for f in fields(config_cls)}  # type: ignore[arg-type]
    unknown = set(overrides) - known
    if unknown:
        raise TypeError(f"unknown {config_cls.__name__} hyperparameters {sorted(unknown)}; known: {sorted(known)}")
    values = {**presets.get(env_id, {}), **{k: v for k, v in overrides.items() if v is not None}}
    return config_cls(**values)


@dataclass
class RunSettings:
    """The settings every training algorithm's config shares (its dataclass derives from this one): the stop
    rule, the final evaluation and torch's thread count. A subclass's `__post_init__` calls this one first."""

    solve_window: int = hp(20, "training episodes whose mean return must reach the threshold before a confirming eval")
    confirm_episodes: int = hp(20, "episodes of each confirming evaluation of the stop rule (the final one has 100)")
    eval_episodes: int = hp(100, "episodes of the final evaluation written to results.json")
    torch_threads: int = hp(1, "torch threads; small networks run fastest on one (more threads only add sync)")

    def __post_init__(self) -> None:
        for name in RUN_SETTINGS:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")


RUN_SETTINGS = tuple(f.name for f in fields(RunSettings))


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
    """train_log.csv (one row per update, flushed as it goes so a run can be watched), the same rows as
    TensorBoard scalars beside it (when the tensorboard package is installed; x axis: env steps), and the
    progress bar."""

    def __init__(self, out: Path, total_steps: int, fields: Sequence[str], progress: bool, desc: str) -> None:
        self.out = out
        self.fields = ["env_steps", "wall_seconds", "episodes", "return_mean", "return_std", *fields]
        self.rows: list[dict[str, float]] = []
        # Opened at the first row (or restore, or close): until then a resume that fails leaves the old log intact.
        self._file: IO[str] | None = None
        self._writer: csv.DictWriter[str] | None = None
        self._bar = tqdm(total=total_steps, desc=desc, unit="step", disable=not progress, dynamic_ncols=True)
        # Imported here, before the clock starts (about 0.3 s, once per process); the writer itself opens at the
        # first row, once a resume (if any) has said which steps to purge.
        self._summary_writer_cls = import_summary_writer()
        self._tensorboard: SummaryWriter | None = None
        self._tensorboard_opened = False
        self._restored_steps: int | None = None
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def _csv(self) -> csv.DictWriter[str]:
        if self._writer is None:
            self._file = (self.out / LOG_FILE).open("w", newline="")
            self._writer = csv.DictWriter(self._file, fieldnames=self.fields)
            self._writer.writeheader()
        return self._writer

    def restore(self, rows: list[dict[str, float]], elapsed: float) -> None:
        """Go on from a checkpoint: its rows are the log so far (rows written after it, by a run that crashed,
        are dropped), and the clock goes on from its elapsed seconds."""
        if self._file is not None:  # rows logged before the restore are replaced, not kept
            self._file.close()
            self._file = self._writer = None
        self._csv().writerows(rows)
        assert self._file is not None
        self._file.flush()
        self.rows = list(rows)
        self.start = time.perf_counter() - elapsed
        self._restored_steps = int(rows[-1]["env_steps"]) if rows else 0
        self._bar.update(self._restored_steps - self._bar.n)

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
        self._csv().writerow(row)
        assert self._file is not None
        self._file.flush()
        self._log_tensorboard(row)
        self._bar.update(env_steps - self._bar.n)
        self._bar.set_postfix(
            episodes=stats.episodes,
            ret=f"{stats.mean():.1f}",
            sps=f"{env_steps / max(self.elapsed(), 1e-9):.0f}",
            refresh=False,
        )

    def _log_tensorboard(self, row: dict[str, float]) -> None:
        if not self._tensorboard_opened:
            self._tensorboard_opened = True
            # A resumed run drops the events a crashed run wrote after its checkpoint (TensorBoard's purge_step).
            purge = None if self._restored_steps is None else self._restored_steps + 1
            if self._summary_writer_cls is not None:
                # A deep queue: with the default (10) each add_scalar waits for the writer thread (~0.4 ms a scalar)
                self._tensorboard = self._summary_writer_cls(
                    str(self.out), purge_step=purge, max_queue=10_000, flush_secs=30
                )
        if self._tensorboard is None:
            return
        step = int(row["env_steps"])
        for name, value in row.items():
            if name != "env_steps" and value is not None:
                self._tensorboard.add_scalar(TENSORBOARD_TAGS.get(name, f"train/{name}"), value, step)
        self._tensorboard.add_scalar("time/steps_per_second", step / max(row["wall_seconds"], 1e-9), step)

    def close(self) -> None:  # the algorithm closes its log when its loop ends, failed or not
        self._bar.close()
        if self._file is None or not self._file.closed:
            self._csv()  # a run without rows still leaves its header
            assert self._file is not None
            self._file.close()
        if self._tensorboard is not None:
            self._tensorboard.close()


def import_summary_writer() -> type[SummaryWriter] | None:
    """torch's SummaryWriter, or None (said once per process) when the tensorboard package is not installed."""
    global _tensorboard_notice_given
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        if not _tensorboard_notice_given:
            _tensorboard_notice_given = True
            print(
                "rlship: TensorBoard logging is off (the tensorboard package is not installed); "
                "pip install 'rlship[tensorboard]' to write event files beside train_log.csv",
                file=sys.stderr,
            )
        return None
    return SummaryWriter


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
    interrupted: bool = False  # stopped by Ctrl-C: the evaluation is short and the run can be resumed

    def summary(self) -> dict[str, Any]:
        return {
            "env_id": self.evaluation.env_id,
            "algorithm": self.policy.spec.algorithm,
            "solved": self.solved,
            "reward_threshold": self.reward_threshold,
            "env_steps": self.env_steps,
            "train_seconds": round(self.train_seconds, 3),
            "confirmations": self.confirmations,
            "interrupted": self.interrupted,
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
    checkpointer: Checkpointer | None = None,
) -> TrainResult:
    """Evaluate by the protocol and write the artifact: weights, config, results, curve (`log` is closed).

    A run stopped by Ctrl-C (`checkpointer.interrupted`) writes the same artifact, evaluated on a few episodes
    only and marked interrupted in results.json, so it can be loaded and looked at, then resumed."""
    train_seconds = log.elapsed()
    interrupted = checkpointer is not None and checkpointer.interrupted
    policy.save(out)
    episodes = min(eval_episodes, INTERRUPTED_EVAL_EPISODES) if interrupted else eval_episodes
    evaluation = evaluate(policy, episodes=episodes, seed=0)
    solved = not interrupted and stop.threshold is not None and evaluation.mean_reward >= stop.threshold
    training: dict[str, Any] = {
        "env_steps": env_steps,
        "train_seconds": round(train_seconds, 3),
        "confirming_evaluations": [
            {"mean_reward": c.mean_reward, "std_reward": c.std_reward, "seed": c.seed} for c in stop.confirmations
        ],
    }
    if checkpointer is not None:
        training.update(checkpointer.summary())
    results = {
        **evaluation.to_dict(),
        "reward_threshold": stop.threshold,
        "solved": solved,
        "interrupted": interrupted,
        "training": training,
    }
    if interrupted:
        results["note"] = (
            f"training was interrupted at {env_steps} env steps; this is a short evaluation ({episodes} episodes), "
            "not the final one. Resume the run to finish it"
        )
    (out / RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n")
    from rlship.training.curve import plot_training_curve  # matplotlib is slow to import: only once a run ends

    title = f"{policy.spec.algorithm} on {policy.spec.env_id}" + (" (interrupted)" if interrupted else "")
    plot_training_curve(
        log.rows, out / CURVE_FILE, title=title, threshold=stop.threshold, evaluation=evaluation.mean_reward
    )
    return TrainResult(
        policy,
        out,
        evaluation,
        stop.threshold,
        solved,
        env_steps,
        train_seconds,
        len(stop.confirmations),
        interrupted,
    )
