"""Checkpoints of a training run, resuming from them, and a clean stop on Ctrl-C.

A checkpoint lives in `RUN_DIR/checkpoint/` and holds everything a run needs to go on where it stopped:
  state.json             format version, algorithm, env id and kwargs, seed, hyperparameters, the algorithm's
                         counters (env steps, updates, ...), the episode window, the stop rule's confirming
                         evaluations, the train log rows so far, optimizer hyperparameters, NumPy RNG states,
                         and the name and SHA-256 of the tensor file below
  tensors-NNNNNN.safetensors  network weights, optimizer state tensors, torch RNG states
No pickle anywhere: tensors go to safetensors under flat names ("optimizer/state/3/exp_avg"), the rest to JSON.

Writes are atomic: the tensor file is written under a new name (temp file, fsync, rename), then state.json is
replaced the same way; state.json is the single commit point, so a crash at any moment leaves the previous
checkpoint or the new one, never a mix. Older tensor files are removed after the commit.

An algorithm adopts all of this with a few calls (docs/adding-an-algorithm.md; ppo.py is the worked example):

    ckpt = Checkpointer(out, "ppo", env_id, seed, asdict(cfg), env_kwargs, options)  # validates a resume first
    ... build network, optimizer, EpisodeStats, StopRule, TrainLog ...
    counters = ckpt.track(network=net, optimizer=optimizer, rng=rng, generator=generator,
                          stats=stats, stop=stop, log=log)      # restores them all when resuming; {} when fresh
    env_steps = counters.get("env_steps", 0)
    envs.reset(seed=ckpt.env_seed)
    with ckpt.interruptible():                                  # Ctrl-C: stop at the next safe point
        while env_steps < cfg.total_steps:
            ... one update; log.log(...); if stop.solved(...): break
            if ckpt.safe_point(env_steps=env_steps):            # saves when due; True once Ctrl-C asked to stop
                break
    return finish_run(out, policy, log, stop, env_steps, cfg.eval_episodes, checkpointer=ckpt)

Vector envs cannot be saved: a resumed run resets them with a seed derived from the checkpoint's env steps
(`env_seed`), so the episodes in progress at the checkpoint are dropped and a resumed run is not bit-identical
to an uninterrupted one (it is a valid continuation: same weights, optimizer, schedules, RNG streams, budget).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from rlship.errors import RlshipError
from rlship.evaluation import EVAL_SEED_OFFSET, EvalResult
from rlship.policy import RESULTS_FILE
from rlship.training.run import EpisodeStats, StopRule, TrainLog

CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.json"
CHECKPOINT_FORMAT = 1
DEFAULT_EVERY_SECONDS = 60.0
# Training env seeds stay below the evaluation seeds (EVAL_SEED_OFFSET) so that a resumed run never trains on an
# evaluation start state; the spare room leaves space for the num_envs consecutive seeds a vector env uses.
_ENV_SEED_RANGE = EVAL_SEED_OFFSET - 100_000


class CheckpointError(RlshipError):
    """A checkpoint to resume from is missing, corrupt, or from another run than the one asked for."""


@dataclass(frozen=True)
class CheckpointOptions:
    """How a run is kept (not how it learns), given to an algorithm's `train(..., checkpoint=...)`.

    every_seconds: wall seconds between periodic checkpoints; 0 writes one at every safe point (every update),
    math.inf only on Ctrl-C. resume: continue the run in `out` from its checkpoint instead of starting afresh.
    """

    every_seconds: float = DEFAULT_EVERY_SECONDS
    resume: bool = False

    def __post_init__(self) -> None:
        if not self.every_seconds >= 0:  # also refuses NaN
            raise ValueError(
                f"checkpoint every_seconds must be >= 0 (0: every update, inf: never); got {self.every_seconds}"
            )


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR


def read_checkpoint_state(run_dir: str | Path) -> dict[str, Any]:
    """state.json of the checkpoint in `run_dir`, checked for format (its tensors are checked when loaded)."""
    run_dir = Path(run_dir)
    path = checkpoint_dir(run_dir) / STATE_FILE
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir}: no such run folder; --resume takes a folder written by `rlship train`")
    if not path.is_file():
        raise CheckpointError(
            f"{run_dir}: no checkpoint to resume from ({CHECKPOINT_DIR}/{STATE_FILE} is missing). Checkpoints are "
            "written every --checkpoint-every seconds and when training is stopped with Ctrl-C; start a new run instead"
        )
    try:
        state = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc}); the checkpoint is corrupt, start a new run") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"{path}: checkpoint format {found!r} is not one this rlship reads ({CHECKPOINT_FORMAT}); start a new run"
        )
    missing = [k for k in ("algorithm", "env_id", "seed", "hyperparameters", "counters", "objects") if k not in state]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {missing}; it is corrupt, start a new run")
    return state


def run_finished(run_dir: str | Path) -> bool:
    """Whether `run_dir` holds a run that ended normally (results.json written and not marked interrupted)."""
    path = Path(run_dir) / RESULTS_FILE
    if not path.is_file():
        return False
    try:
        results = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(results, dict) and not results.get("interrupted", False)


def _jsonable(value: Any) -> Any:
    """`value` as JSON gives it back (tuples become lists, NumPy scalars numbers), to compare with saved values."""
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"a checkpoint cannot hold {type(value).__name__} in JSON: {value!r}")


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Checkpointer:
    """Periodic checkpoints, resume and Ctrl-C handling for one training run (see the module docstring)."""

    def __init__(
        self,
        out: str | Path,
        algorithm: str,
        env_id: str,
        seed: int,
        hyperparameters: dict[str, Any],
        env_kwargs: dict[str, Any] | None = None,
        options: CheckpointOptions | None = None,
    ) -> None:
        self.out = Path(out)
        self.dir = checkpoint_dir(self.out)
        self.options = options or CheckpointOptions()
        self.identity = {
            "algorithm": algorithm,
            "env_id": env_id,
            "env_kwargs": _jsonable(env_kwargs or {}),
            "seed": seed,
            "hyperparameters": _jsonable(hyperparameters),
        }
        self.interrupted = False  # the loop stopped at a safe point because Ctrl-C asked it to
        self._stop_requested = False
        self._objects: dict[str, Any] = {}
        self._saves = 0
        self._last_save = time.monotonic()
        self.resumed_at: list[int] = []  # env steps at which this run was resumed, oldest first
        self._loaded: tuple[dict[str, Any], dict[str, torch.Tensor]] | None = None
        if self.options.resume:
            # Everything is read and checked before the algorithm writes anything into the run folder.
            self._loaded = self._load()
        else:
            self._check_fresh_start()

    # --- starting or resuming

    def _check_fresh_start(self) -> None:
        if (self.dir / STATE_FILE).is_file() and not run_finished(self.out):
            raise CheckpointError(
                f"{self.out} holds an unfinished run with a checkpoint; continue it with --resume {self.out} "
                "(Python: checkpoint=CheckpointOptions(resume=True)), or pick another --out, or delete the folder"
            )

    def _clear_previous_run(self) -> None:
        """A fresh run into a finished run's folder replaces that run: its checkpoint, TensorBoard events and
        results go first (a stale results.json would mark this run's own checkpoints as finished). Done when
        training is about to start, so that a run failing at setup (unknown env, bad space) deletes nothing."""
        if self.dir.is_dir():
            shutil.rmtree(self.dir)
        for path in self.out.glob("events.out.tfevents.*"):
            path.unlink()
        (self.out / RESULTS_FILE).unlink(missing_ok=True)

    def _load(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        if run_finished(self.out):
            raise CheckpointError(
                f"{self.out}: that run finished (see its {RESULTS_FILE}); there is nothing to resume. "
                "Start a new run with another --out"
            )
        state = read_checkpoint_state(self.out)
        path = self.dir / STATE_FILE
        for key in ("algorithm", "env_id", "env_kwargs", "seed"):
            if _jsonable(state.get(key)) != self.identity[key]:
                raise CheckpointError(
                    f"{path}: the checkpoint is of a run with {key}={state.get(key)!r}, not {self.identity[key]!r}; "
                    f"resume it with the {key} it was started with"
                )
        saved_hp, hp = state["hyperparameters"], self.identity["hyperparameters"]
        if saved_hp != hp:
            diff = sorted(k for k in set(saved_hp) | set(hp) if saved_hp.get(k) != hp.get(k))
            details = ", ".join(f"{k}: checkpoint {saved_hp.get(k)!r}, now {hp.get(k)!r}" for k in diff)
            raise CheckpointError(
                f"{path}: hyperparameters differ from the checkpoint's ({details}); a resumed run keeps its own"
            )
        tensor_path = self.dir / str(state.get("tensors_file", ""))
        if not tensor_path.is_file():
            raise CheckpointError(f"{tensor_path}: checkpoint tensor file missing; the checkpoint is incomplete")
        data = tensor_path.read_bytes()
        if hashlib.sha256(data).hexdigest() != state.get("tensors_sha256"):
            raise CheckpointError(f"{tensor_path}: contents do not match the checksum in {STATE_FILE}; it is corrupt")
        try:
            tensors = load_safetensors(data)
        except (SafetensorError, ValueError) as exc:
            raise CheckpointError(f"{tensor_path}: not a readable safetensors file ({exc})") from exc
        return state, tensors

    @property
    def resuming(self) -> bool:
        return self._loaded is not None

    @property
    def env_seed(self) -> int:
        """The seed to reset the training envs with: the run's seed, or on resume one derived from the
        checkpoint's env steps (so each resume starts its envs from new states, below the evaluation seeds)."""
        if self._loaded is None:
            return self.identity["seed"]
        steps = int(self._loaded[0]["counters"].get("env_steps", 0))
        return (self.identity["seed"] + 1 + steps) % _ENV_SEED_RANGE

    def track(self, **objects: Any) -> dict[str, Any]:
        """Register what a checkpoint holds, by name: torch modules and optimizers, NumPy Generators, torch
        Generators, and the run's EpisodeStats, StopRule and TrainLog (any object with `checkpoint_state()` ->
        (tensors, json) and `load_checkpoint_state(tensors, json)` works too). When resuming, loads each from the
        checkpoint and returns the counters saved with it; on a fresh run returns {}."""
        for name, obj in objects.items():
            if "/" in name:
                raise ValueError(f"checkpoint object names cannot hold '/'; got {name!r}")
            _codec(obj)  # refuse an object it cannot save now, not at the first checkpoint
        self._objects = objects
        if self._loaded is None:
            self._clear_previous_run()
            return {}
        state, tensors = self._loaded
        names = set(state["objects"])
        if names != set(objects):
            raise CheckpointError(
                f"{self.dir / STATE_FILE}: the checkpoint holds {sorted(names)}; this version of the algorithm "
                f"saves {sorted(objects)}. It was written by another rlship version; start a new run"
            )
        torch.set_rng_state(tensors["rng/torch"])
        for name, obj in objects.items():
            prefix = f"{name}/"
            own = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            try:
                _codec(obj).load(obj, own, state["objects"][name])
            except (KeyError, RuntimeError, ValueError, TypeError) as exc:
                raise CheckpointError(
                    f"{self.dir}: cannot restore {name!r} from the checkpoint ({exc}); it does not match this run"
                ) from exc
        self._saves = int(state.get("saves", 0))
        self.resumed_at = [*state.get("resumed_at", []), int(state["counters"].get("env_steps", 0))]
        return dict(state["counters"])

    # --- saving

    def save(self, **counters: Any) -> Path:
        """Write a checkpoint now (atomically) with the algorithm's counters (JSON values: env_steps, updates...)."""
        tensors: dict[str, torch.Tensor] = {"rng/torch": torch.get_rng_state()}
        meta: dict[str, Any] = {}
        for name, obj in self._objects.items():
            own, meta[name] = _codec(obj).dump(obj)
            # copies: safetensors refuses tensors that share memory (tied weights, one module tracked twice)
            tensors.update({f"{name}/{k}": v.detach().cpu().contiguous().clone() for k, v in own.items()})
        self.dir.mkdir(parents=True, exist_ok=True)
        self._saves += 1
        tensors_file = f"tensors-{self._saves:06d}.safetensors"
        data = save_safetensors(tensors, metadata={"format": "pt"})
        _atomic_write(self.dir / tensors_file, data)
        state = {
            "format": CHECKPOINT_FORMAT,
            **self.identity,
            "counters": _jsonable(counters),
            "objects": meta,
            "saves": self._saves,
            "resumed_at": self.resumed_at,
            "tensors_file": tensors_file,
            "tensors_sha256": hashlib.sha256(data).hexdigest(),
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        _atomic_write(self.dir / STATE_FILE, (json.dumps(state, indent=1, default=_json_default) + "\n").encode())
        for old in self.dir.glob("tensors-*.safetensors"):  # only after the commit point
            if old.name != tensors_file:
                old.unlink(missing_ok=True)
        self._last_save = time.monotonic()
        return self.dir

    def safe_point(self, **counters: Any) -> bool:
        """Call where the loop's state is consistent (after an update is logged). Saves a checkpoint when one is
        due or Ctrl-C was pressed; returns True when the loop should stop (Ctrl-C), False to go on."""
        if self._stop_requested:
            self.save(**counters)
            self.interrupted = True
            return True
        due = self.options.every_seconds
        if due == 0 or (math.isfinite(due) and time.monotonic() - self._last_save >= due):
            self.save(**counters)
        return False

    # --- Ctrl-C

    def request_stop(self) -> None:
        """Ask the loop to stop at its next safe point (what the first Ctrl-C does)."""
        self._stop_requested = True

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """While inside: the first SIGINT asks for a clean stop at the next safe point (checkpoint + artifact),
        a second one raises KeyboardInterrupt at once. Outside the main thread signals cannot be caught: no-op."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_sigint(signum: int, frame: FrameType | None) -> None:
            if self._stop_requested:
                signal.signal(signal.SIGINT, signal.default_int_handler)
                raise KeyboardInterrupt
            self.request_stop()
            print(
                "\nrlship: stopping at the end of this update to write a checkpoint and the artifact "
                "(Ctrl-C again to abort at once)",
                file=sys.stderr,
                flush=True,
            )

        previous = signal.signal(signal.SIGINT, on_sigint)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def summary(self) -> dict[str, Any]:
        """What results.json says about interruption and resumes."""
        return {"interrupted": self.interrupted, "resumed_at_env_steps": list(self.resumed_at)}


# --- how each kind of object goes into (tensors, JSON) and back


class _Codec:
    def dump(self, obj: Any) -> tuple[dict[str, torch.Tensor], Any]:
        raise NotImplementedError

    def load(self, obj: Any, tensors: dict[str, torch.Tensor], meta: Any) -> None:
        raise NotImplementedError


class _ModuleCodec(_Codec):
    def dump(self, obj: torch.nn.Module) -> tuple[dict[str, torch.Tensor], Any]:
        return dict(obj.state_dict()), {"kind": "module"}

    def load(self, obj: torch.nn.Module, tensors: dict[str, torch.Tensor], meta: Any) -> None:
        obj.load_state_dict(tensors, strict=True)


class _OptimizerCodec(_Codec):
    """Optimizer state_dict: per-parameter tensors flattened to "state/<param id>/<key>", the rest to JSON."""

    def dump(self, obj: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], Any]:
        sd = obj.state_dict()
        tensors: dict[str, torch.Tensor] = {}
        scalars: dict[str, dict[str, Any]] = {}
        for pid, pstate in sd["state"].items():
            for key, value in pstate.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"state/{pid}/{key}"] = value
                else:
                    scalars.setdefault(str(pid), {})[key] = value
        return tensors, {"kind": "optimizer", "param_groups": sd["param_groups"], "scalars": scalars}

    def load(self, obj: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: Any) -> None:
        state: dict[int, dict[str, Any]] = {}
        for name, value in tensors.items():
            _, pid, key = name.split("/", 2)
            state.setdefault(int(pid), {})[key] = value
        for pid, values in meta["scalars"].items():
            state.setdefault(int(pid), {}).update(values)
        obj.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


class _NumpyRngCodec(_Codec):
    def dump(self, obj: np.random.Generator) -> tuple[dict[str, torch.Tensor], Any]:
        return {}, {"kind": "numpy_generator", "state": obj.bit_generator.state}

    def load(self, obj: np.random.Generator, tensors: dict[str, torch.Tensor], meta: Any) -> None:
        obj.bit_generator.state = meta["state"]


class _TorchRngCodec(_Codec):
    def dump(self, obj: torch.Generator) -> tuple[dict[str, torch.Tensor], Any]:
        return {"state": obj.get_state()}, {"kind": "torch_generator"}

    def load(self, obj: torch.Generator, tensors: dict[str, torch.Tensor], meta: Any) -> None:
        obj.set_state(tensors["state"])


class _EpisodeStatsCodec(_Codec):
    """The running-return window and episode count; returns of episodes in progress are dropped (the envs are
    reset on resume)."""

    def dump(self, obj: EpisodeStats) -> tuple[dict[str, torch.Tensor], Any]:
        return {}, {
            "kind": "episode_stats",
            "recent": list(obj.recent),
            "recent_lengths": list(obj.recent_lengths),
            "episodes": obj.episodes,
        }

    def load(self, obj: EpisodeStats, tensors: dict[str, torch.Tensor], meta: Any) -> None:
        obj.recent.clear()
        obj.recent.extend(float(x) for x in meta["recent"])
        obj.recent_lengths.clear()
        obj.recent_lengths.extend(int(x) for x in meta["recent_lengths"])
        obj.episodes = int(meta["episodes"])


class _StopRuleCodec(_Codec):
    def dump(self, obj: StopRule) -> tuple[dict[str, torch.Tensor], Any]:
        return {}, {"kind": "stop_rule", "confirmations": [c.to_dict() for c in obj.confirmations]}

    def load(self, obj: StopRule, tensors: dict[str, torch.Tensor], meta: Any) -> None:
        obj.confirmations = [EvalResult.from_dict(c) for c in meta["confirmations"]]


class _TrainLogCodec(_Codec):
    def dump(self, obj: TrainLog) -> tuple[dict[str, torch.Tensor], Any]:
        return {}, {"kind": "train_log", "fields": obj.fields, "rows": obj.rows, "elapsed": obj.elapsed()}

    def load(self, obj: TrainLog, tensors: dict[str, torch.Tensor], meta: Any) -> None:
        if meta["fields"] != obj.fields:
            raise ValueError(f"train log columns differ: checkpoint {meta['fields']}, now {obj.fields}")
        obj.restore(meta["rows"], float(meta["elapsed"]))


class _ProtocolCodec(_Codec):
    def dump(self, obj: Any) -> tuple[dict[str, torch.Tensor], Any]:
        tensors, meta = obj.checkpoint_state()
        return tensors, {"kind": "custom", "state": meta}

    def load(self, obj: Any, tensors: dict[str, torch.Tensor], meta: Any) -> None:
        obj.load_checkpoint_state(tensors, meta["state"])


_CODECS: list[tuple[type, _Codec]] = [
    (torch.nn.Module, _ModuleCodec()),
    (torch.optim.Optimizer, _OptimizerCodec()),
    (np.random.Generator, _NumpyRngCodec()),
    (torch.Generator, _TorchRngCodec()),
    (EpisodeStats, _EpisodeStatsCodec()),
    (StopRule, _StopRuleCodec()),
    (TrainLog, _TrainLogCodec()),
]


def _codec(obj: Any) -> _Codec:
    for cls, codec in _CODECS:
        if isinstance(obj, cls):
            return codec
    if hasattr(obj, "checkpoint_state") and hasattr(obj, "load_checkpoint_state"):
        return _ProtocolCodec()
    raise TypeError(
        f"a checkpoint cannot hold a {type(obj).__name__}: give it checkpoint_state() -> (tensors, json) and "
        "load_checkpoint_state(tensors, json)"
    )


def resume_settings(
    run_dir: str | Path,
    algorithm: str,
    env_id: str,
    overrides: dict[str, Any],
    seed: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], int, dict[str, Any]]:
    """(hyperparameters, seed, env_kwargs) to resume the run in `run_dir` with, from its checkpoint.

    A resumed run keeps its own settings: explicit settings that differ from the checkpoint's (`overrides` holds
    the hyperparameters a user gave, None for those left out) are an error rather than silently ignored or
    silently changing the run halfway."""
    state = read_checkpoint_state(run_dir)
    path = checkpoint_dir(run_dir) / STATE_FILE
    if state["algorithm"] != algorithm:
        raise CheckpointError(
            f"{path}: the checkpoint is of a {state['algorithm']} run, not {algorithm}; resume it with "
            f"`rlship train {state['algorithm']} {state['env_id']} --resume {run_dir}`"
        )
    if state["env_id"] != env_id:
        raise CheckpointError(
            f"{path}: the checkpoint is of a run on {state['env_id']}, not {env_id}; resume it with "
            f"`rlship train {algorithm} {state['env_id']} --resume {run_dir}`"
        )
    saved_hp: dict[str, Any] = state["hyperparameters"]
    conflicts = [
        f"--{name.replace('_', '-')} {_jsonable(value)!r} (the run has {saved_hp.get(name)!r})"
        for name, value in overrides.items()
        if value is not None and _jsonable(value) != saved_hp.get(name)
    ]
    if seed is not None and seed != state["seed"]:
        conflicts.append(f"--seed {seed} (the run has {state['seed']})")
    if env_kwargs is not None and _jsonable(env_kwargs) != state.get("env_kwargs", {}):
        conflicts.append(f"--env-kwargs {env_kwargs} (the run has {state.get('env_kwargs', {})})")
    if conflicts:
        raise CheckpointError(
            f"--resume {run_dir} continues that run with its own settings; these flags conflict with it: "
            f"{'; '.join(conflicts)}. Drop them, or start a new run with another --out"
        )
    return dict(saved_hp), int(state["seed"]), dict(state.get("env_kwargs") or {})


def start_run(
    algorithm: str,
    env_id: str,
    cfg: Any,
    seed: int,
    out: str | Path | None,
    env_kwargs: dict[str, Any] | None,
    checkpoint: CheckpointOptions | None,
) -> tuple[Path, Checkpointer]:
    """What every algorithm's `train` does first, in this order: its run folder (default
    runs/ALGO-ENV_ID-sSEED), the Checkpointer (which checks a resume before anything is written into the folder),
    the folder itself, one torch thread count (`cfg.torch_threads`) and the seeded torch RNG that initialises
    the network."""
    folder = Path(out or f"runs/{algorithm}-{env_id}-s{seed}")
    ckpt = Checkpointer(folder, algorithm, env_id, seed, asdict(cfg), env_kwargs, checkpoint)
    folder.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.torch_threads)
    torch.manual_seed(seed)
    return folder, ckpt
