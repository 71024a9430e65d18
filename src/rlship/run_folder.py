"""The run folder (and the policy folder inside it): its file names, results.json, the config reader, the default
run path, and the rule for which folders rlship may write into. Training, hub and serving all go through here, so
each file has one owner.

A run folder, written by `rlship train`:
  config.json          what rebuilds the policy (policy.py owns its contents)
  model.safetensors    the weights
  results.json         the evaluation and the training record (`Results`: one writer, one reader)
  train_log.csv        one row per update
  training_curve.png   the curve
  checkpoint/          state to resume from (training/checkpoint.py owns its contents)
  events.out.tfevents.*  TensorBoard scalars (when tensorboard is installed)
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlship.errors import ArtifactError, RlshipError
from rlship.evaluation import EvalResult

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
RESULTS_FILE = "results.json"
LOG_FILE = "train_log.csv"
CURVE_FILE = "training_curve.png"
CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.json"  # CHECKPOINT_DIR/STATE_FILE: a checkpoint's commit point (training/checkpoint.py)
TENSORBOARD_GLOB = "events.out.tfevents.*"
# What a training run writes at its top level (the checkpoint folder and event files aside).
RUN_FILES = (CONFIG_FILE, WEIGHTS_FILE, RESULTS_FILE, LOG_FILE, CURVE_FILE)
# A config.json or results.json larger than this is not one rlship wrote: refused before it is read.
MAX_JSON_BYTES = 4 * 1024 * 1024


def default_run_dir(algorithm: str, env_id: str, seed: int) -> Path:
    """runs/ALGO-ENV_ID-sSEED: where `rlship train` writes when no --out is given (a namespaced env id such as
    rlship/Pixelcopter-v0 gives one folder, rlship-Pixelcopter-v0, not a nested one)."""
    return Path("runs") / f"{algorithm}-{env_id.replace('/', '-')}-s{seed}"


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from `path`, or an ArtifactError naming the file and what is wrong with it."""
    if not path.is_file():
        raise ArtifactError(f"{path}: file not found; a policy folder needs {path.name} (written by `rlship train`)")
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise ArtifactError(f"{path}: {size:,} bytes, more than rlship ever writes ({MAX_JSON_BYTES:,}); not read")
    try:
        data = json.loads(path.read_bytes())
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, an integer of 5,000 digits
        raise ArtifactError(f"{path}: not valid JSON ({str(exc)[:200]}); the file is corrupt, re-create it") from exc
    if not isinstance(data, dict):
        raise ArtifactError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def read_config(folder: Path) -> dict[str, Any]:
    """config.json of a policy folder, as a JSON object (policy.py checks its fields)."""
    return read_json(folder / CONFIG_FILE)


# --- results.json


@dataclass(frozen=True)
class Results:
    """results.json: the evaluation by the protocol, the env's threshold, and how training went.

    `interrupted` is True for a run stopped by Ctrl-C and not resumed (its evaluation is short), and for a package
    made from such a run. `training` is the run's record (env steps, seconds, confirming evaluations, resumes);
    a package keeps the record of the run it was made from."""

    evaluation: EvalResult
    reward_threshold: float | None
    solved: bool
    interrupted: bool = False
    training: dict[str, Any] | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            **self.evaluation.to_dict(),
            "reward_threshold": self.reward_threshold,
            "solved": self.solved,
            "interrupted": self.interrupted,
        }
        if self.training is not None:
            data["training"] = self.training
        if self.note is not None:
            data["note"] = self.note
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: Path | str = RESULTS_FILE) -> Results:
        """Checked field by field: a wrong type or a missing field is an ArtifactError naming both."""

        def need(name: str, kinds: tuple[type, ...], optional: bool = False) -> Any:
            if name not in data:
                if optional:
                    return None
                raise ArtifactError(f"{path}: field {name!r} is missing; re-create the file with `rlship evaluate`")
            value = data[name]
            if value is None and optional:
                return None
            if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
                raise ArtifactError(
                    f"{path}: field {name!r} must be {' or '.join(k.__name__ for k in kinds)}; got {str(value)[:80]!r}"
                )
            if isinstance(value, float) and not math.isfinite(value) and name != "reward_threshold":
                raise ArtifactError(f"{path}: field {name!r} must be a finite number; got {value}")
            return value

        number = (int, float)
        evaluation = EvalResult(
            env_id=need("env_id", (str,)),
            mean_reward=float(need("mean_reward", number)),
            std_reward=float(need("std_reward", number)),
            n_eval_episodes=need("n_eval_episodes", (int,)),
            deterministic=need("deterministic", (bool,)),
            seed=need("seed", (int,)),
            episode_seeds=_list_of(need("episode_seeds", (list,)), int, "episode_seeds", path),
            episode_returns=[
                float(x) for x in _list_of(need("episode_returns", (list,)), number, "episode_returns", path)
            ],
            episode_lengths=_list_of(need("episode_lengths", (list,)), int, "episode_lengths", path),
            wall_seconds=float(need("wall_seconds", number)),
            date=need("date", (str,)),
        )
        threshold = need("reward_threshold", number, optional=True)
        # "training_interrupted" is what packages made before rlship 0.2 called it
        interrupted = data.get("interrupted", data.get("training_interrupted", False))
        if not isinstance(interrupted, bool):
            raise ArtifactError(f"{path}: field 'interrupted' must be true or false; got {str(interrupted)[:80]!r}")
        return cls(
            evaluation=evaluation,
            reward_threshold=None if threshold is None else float(threshold),
            solved=need("solved", (bool,)),
            interrupted=interrupted,
            training=need("training", (dict,), optional=True),
            note=need("note", (str,), optional=True),
        )


def _list_of(values: list[Any], kinds: Any, name: str, path: Path | str) -> list[Any]:
    if not all(isinstance(v, kinds) and not isinstance(v, bool) for v in values):
        raise ArtifactError(f"{path}: field {name!r} must be a list of numbers")
    return values


def write_results(folder: Path, results: Results) -> Path:
    path = folder / RESULTS_FILE
    path.write_text(json.dumps(results.to_dict(), indent=2) + "\n")
    return path


def read_results(folder: Path) -> Results | None:
    """results.json of `folder`, checked; None when the folder has none (a policy saved without an evaluation)."""
    path = folder / RESULTS_FILE
    if not path.is_file():
        return None
    return Results.from_dict(read_json(path), path)


def run_finished(folder: Path) -> bool:
    """Whether `folder` holds a run that ended normally (results.json written and not marked interrupted); an
    unreadable results.json counts as not finished."""
    try:
        results = read_results(folder)
    except ArtifactError:
        return False
    return results is not None and not results.interrupted


# --- which folders rlship writes into


@dataclass(frozen=True)
class OutputRule:
    """What may be written where: `out` may be written when it does not exist, is an empty folder, or holds
    something this rule calls its own (`is_own`), and then only with `replace` said explicitly when `needs_flag`."""

    what: str  # "run folder", "package", "export": for messages
    is_own: Callable[[Path], bool]
    flag: str | None = None  # the flag that allows replacing an own folder ("--overwrite"), if one is needed
    extra_hint: str = ""


def folder_arg(text: str) -> str:
    """argparse type of a folder to write (--out): an empty one is refused. Path("") is the current folder, so an
    unset shell variable (`--out "$DIR"`) would otherwise write the run beside whatever the user is in."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; name the folder to write, for example runs/my-run")
    return text


def check_output_folder(out: Path, rule: OutputRule, replace: bool = False) -> bool:
    """Refuse (RlshipError, nothing touched) to write into anything but a new or empty folder or one of `rule`'s
    own; an own folder needs `replace` when the rule has a flag. Returns True when `out` holds an own folder that
    will be replaced (its own files only: the caller removes just the names it writes)."""
    if not out.exists():
        return False
    if not out.is_dir():
        raise RlshipError(f"{out}: exists and is not a folder; pass a new folder to --out")
    if not any(out.iterdir()):
        return False
    if not rule.is_own(out):
        held = sorted(p.name for p in out.iterdir())
        shown = ", ".join(held[:5]) + (f" and {len(held) - 5} more" if len(held) > 5 else "")
        raise RlshipError(
            f"{out}: not empty and not an earlier rlship {rule.what} (it holds {shown}); "
            f"pass a new or empty folder to --out, so that nothing of yours is overwritten{rule.extra_hint}"
        )
    if rule.flag is not None and not replace:
        raise RlshipError(
            f"{out} already holds an rlship {rule.what}; pass {rule.flag} to replace it{rule.extra_hint}, "
            "or pick another --out"
        )
    return True
