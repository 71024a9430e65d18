"""Checkpoints of a training run: what one holds, how it is encoded, written and read back.

A checkpoint lives in `RUN_DIR/checkpoint/` and holds everything a run needs to go on where it stopped:
  state.json             format version, algorithm, env id and kwargs, seed, hyperparameters, the algorithm's
                         counters (env steps, updates, ...), the JSON state of each tracked object (episode window,
                         confirming evaluations, train log rows, optimizer hyperparameters, NumPy RNG states), and
                         the name and SHA-256 of the tensor file below
  tensors-NNNNNN.safetensors  network weights, optimizer state tensors, torch RNG states, replay memories
No pickle anywhere: tensors go to safetensors under flat names ("optimizer/state/3/exp_avg"), the rest to JSON.

Resuming reads the tensor file once to check its SHA-256 (in chunks), then tensor by tensor as each object is restored:
a replay memory is read straight into its own arrays (`CheckpointTensors.read_into`), so resuming a run with a
1 GB memory costs that memory and no copy of it (reading the file into bytes, then tensors, cost 2 GB more).

Writes are atomic: the tensor file is written under a new name (temp file, fsync, rename), straight from the
tensors' own memory (a replay memory of 1 GB is not copied), then state.json is replaced the same way;
state.json is the single commit point, so a crash at any moment leaves the previous checkpoint or the new one,
never a mix. Older tensor files are removed after the commit.

When to write one (periodically, on Ctrl-C) is the run's business (training/run.py), not this module's.
Vector envs cannot be saved: a resumed run resets them with a seed derived from the checkpoint's env steps
(`env_seed`), so the episodes in progress at the checkpoint are dropped and a resumed run is not bit-identical
to an uninterrupted one (it is a valid continuation: same weights, optimizer, schedules, RNG streams, budget).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file as save_safetensors_file

from rlship.errors import RlshipError, UsageError
from rlship.evaluation import EVAL_SEED_OFFSET
from rlship.run_folder import CHECKPOINT_DIR, STATE_FILE
from rlship.safetensors_header import DTYPES, HeaderError, TensorEntry, read_header
from rlship.training.settings import DEFAULT_EVERY_SECONDS, RUN_SETTING_DEFAULTS

CHECKPOINT_FORMAT = 2  # 2: the run's own objects (episode stats, stop rule, log) are saved as tracked objects
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
            raise UsageError(
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


def _atomic_write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> str:
    """Write `tensors` as a safetensors file at `path` atomically; returns the file's SHA-256.

    safetensors writes the file straight from the tensors' memory (`save_file`; `save` would first build the
    whole file in memory), and the checksum is taken by reading the file back in chunks: a replay memory of 1 GB
    costs no copy of itself, where building bytes, copying and cloning it cost 3.7 GiB of extra memory and 15 s of
    CPU a checkpoint (benchmarks/checkpoint_memory.py)."""
    tmp = path.with_name(f".{path.name}.tmp")
    save_safetensors_file(tensors, tmp, metadata={"format": "pt"})
    with tmp.open("rb+") as f:
        os.fsync(f.fileno())
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    os.replace(tmp, path)
    return digest


def _unshared(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`tensors` with a copy of each one whose memory another already holds (tied weights, one module tracked
    twice), which safetensors refuses; the others are written from their own memory, uncopied. That is safe
    because a checkpoint is taken synchronously in the training loop: nothing changes them while it is written."""
    seen: set[int] = set()
    out: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        t = tensor.detach().cpu().contiguous()  # no copy for a CPU tensor that is contiguous already
        storage = t.untyped_storage().data_ptr()
        if t.numel() and storage in seen:
            t = t.clone()
        seen.add(storage)
        out[name] = t
    return out


# safetensors' dtype names -> the torch dtypes a checkpoint's tensors come back as
_DTYPES: dict[str, torch.dtype] = {name: getattr(torch, torch_name) for name, (_, torch_name) in DTYPES.items()}

_MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit (a checkpoint's header is a few KB an object)


class _TensorFile:
    """A checkpoint's tensor file, open on one file descriptor: its SHA-256 is checked first, reading the file in
    chunks, before any tensor is built; safetensors then checks the format; tensors are read one by one when asked.

    Everything goes through the one descriptor that was hashed, so a file put in its place meanwhile is not read
    (safetensors opens it as /proc/self/fd/N, the very file open on it, where /proc exists: Linux). Elsewhere
    safetensors reopens the path: acceptable, because the checksum guards against a damaged file, not against the
    run folder's owner (who could rewrite the checksum in state.json as well), and every read below is checked
    against the header read from the hashed descriptor."""

    def __init__(self, path: Path, sha256: Any) -> None:
        self.path = path
        self._file = path.open("rb", buffering=0)  # unbuffered: `readinto` reads straight into a tensor's memory
        try:
            if hashlib.file_digest(self._file, "sha256").hexdigest() != sha256:
                raise CheckpointError(f"{path}: contents do not match the checksum in {STATE_FILE}; it is corrupt")
            try:
                with safe_open(self._same_file(), framework="pt"):  # the library's check of the format
                    pass
                # each tensor checked to lie in the file and to be as long as its dtype and shape say
                self._entries = read_header(self._file, _MAX_HEADER_BYTES)
            except (SafetensorError, HeaderError) as exc:
                raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
        except BaseException:
            self.close()
            raise

    def _same_file(self) -> str:
        own = f"/proc/self/fd/{self._file.fileno()}"
        return own if os.path.exists(own) else str(self.path)

    def _read_into(self, entry: TensorEntry, out: np.ndarray) -> None:
        """The entry's bytes into `out`'s memory (C-contiguous, entry.end - entry.begin bytes), in place: the file
        is unbuffered, so each read goes from the page cache into `out` (a long one comes back in parts)."""
        view, done = memoryview(out.reshape(-1).view(np.uint8)), 0
        self._file.seek(entry.begin)
        while done < len(view):
            n = self._file.readinto(view[done:])
            if not n:
                raise CheckpointError(f"{self.path}: it ends inside tensor data; the checkpoint is corrupt")
            done += n

    def tensor(self, name: str) -> torch.Tensor:
        """Tensor `name`, in memory of its own."""
        entry = self._entries[name]
        tensor = torch.empty(entry.shape, dtype=_DTYPES[entry.dtype])
        self._read_into(entry, tensor.reshape(-1).view(torch.uint8).numpy())
        return tensor

    def read_into(self, name: str, out: np.ndarray) -> None:
        """Tensor `name` straight into `out` when `out` is a contiguous array of its dtype and shape (no copy of
        it on the way); otherwise (an older checkpoint's dtype) copied, NumPy casting or refusing as any assignment."""
        entry = self._entries[name]
        if out.flags.c_contiguous and out.flags.writeable and out.shape == entry.shape and out.dtype == _numpy(entry):
            self._read_into(entry, out)
        else:
            out[...] = self.tensor(name).numpy()

    def names(self) -> list[str]:
        return list(self._entries)

    def holds(self, name: str) -> bool:
        return name in self._entries

    def close(self) -> None:
        self._file.close()


def _numpy(entry: TensorEntry) -> np.dtype | None:
    """The entry's NumPy dtype (the shared table's name), None for bfloat16, which NumPy lacks."""
    return None if entry.dtype == "BF16" else np.dtype(DTYPES[entry.dtype][1])


class CheckpointTensors(Mapping[str, torch.Tensor]):
    """The tensors a checkpoint holds for one object (names under `prefix`, without it), read from its file when
    asked: `tensors[name]` reads one into memory of its own; `read_into(name, array)` reads one straight into the
    array that will hold it, which a large object (dqn's replay memory) uses to avoid a copy of itself."""

    def __init__(self, file: _TensorFile, prefix: str = "") -> None:
        self._file, self._prefix = file, prefix
        self._names = [n[len(prefix) :] for n in file.names() if n.startswith(prefix)]

    def under(self, prefix: str) -> CheckpointTensors:
        return CheckpointTensors(self._file, self._prefix + prefix)

    def __getitem__(self, name: str) -> torch.Tensor:
        return self._file.tensor(self._prefix + name)

    def read_into(self, name: str, out: np.ndarray) -> None:
        self._file.read_into(self._prefix + name, out)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._file.holds(self._prefix + name)


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
        resume: bool = False,
        defaults: dict[str, Any] | None = None,
    ) -> None:
        self.out = Path(out)
        # Every hyperparameter's default (the algorithm's config class's; the shared settings' when not given): what
        # a run ran with for a setting added after its checkpoint was written, since a new setting's default keeps
        # the behaviour from before it existed.
        self.defaults = _jsonable(RUN_SETTING_DEFAULTS if defaults is None else defaults)
        self.dir = checkpoint_dir(self.out)
        self.identity = {
            "algorithm": algorithm,
            "env_id": env_id,
            "env_kwargs": _jsonable(env_kwargs or {}),
            "seed": seed,
            "hyperparameters": _jsonable(hyperparameters),
        }
        self._objects: dict[str, Any] = {}
        self._saves = 0
        self.last_save = time.monotonic()
        self.resumed_at: list[int] = []  # env steps at which this run was resumed, oldest first
        self._loaded: tuple[dict[str, Any], _TensorFile] | None = None
        if resume:
            # Everything is read and checked before the algorithm writes anything into the run folder.
            self._loaded = self._load()

    # --- resuming

    def _load(self) -> tuple[dict[str, Any], _TensorFile]:
        state = read_checkpoint_state(self.out)
        path = self.dir / STATE_FILE
        for key in ("algorithm", "env_id", "env_kwargs", "seed"):
            if _jsonable(state.get(key)) != self.identity[key]:
                raise CheckpointError(
                    f"{path}: the checkpoint is of a run with {key}={state.get(key)!r}, not {self.identity[key]!r}; "
                    f"resume it with the {key} it was started with"
                )
        hp = self.identity["hyperparameters"]
        # a setting added since the checkpoint was written (stop_on_solve, keep_best, ppo's anneal_to...) ran at
        # its default
        added = {k: v for k, v in self.defaults.items() if k in hp}
        saved_hp = {**added, **state["hyperparameters"]}
        if saved_hp != hp:
            diff = sorted(k for k in set(saved_hp) | set(hp) if saved_hp.get(k) != hp.get(k))
            details = ", ".join(f"{k}: checkpoint {saved_hp.get(k)!r}, now {hp.get(k)!r}" for k in diff)
            raise CheckpointError(
                f"{path}: hyperparameters differ from the checkpoint's ({details}); a resumed run keeps its own"
            )
        tensor_path = self.dir / str(state.get("tensors_file", ""))
        if not tensor_path.is_file():
            raise CheckpointError(f"{tensor_path}: checkpoint tensor file missing; the checkpoint is incomplete")
        # checked against its SHA-256 now, read tensor by tensor by `track` (which closes it)
        return state, _TensorFile(tensor_path, state.get("tensors_sha256"))

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
        Generators, and any object with `checkpoint_state()` -> (tensors, json) and
        `load_checkpoint_state(tensors, json)` (a replay memory, the run's episode stats, stop rule and log). When
        resuming, loads each from the checkpoint and returns the counters saved with it; on a fresh run {}. The
        checkpoint must hold the same names, but for objects with `checkpoint_optional = True`, which an older
        checkpoint may lack (they stay as they are). `load_checkpoint_state` gets its tensors as a
        `CheckpointTensors` mapping, read from the file as it asks; `read_into` avoids a copy of a large one."""
        for name, obj in objects.items():
            if "/" in name:
                raise ValueError(f"checkpoint object names cannot hold '/'; got {name!r}")
            _codec(obj)  # refuse an object it cannot save now, not at the first checkpoint
        self._objects = objects
        if self._loaded is None:
            return {}
        state, file = self._loaded
        try:
            self._restore(objects, state, CheckpointTensors(file))
        finally:
            file.close()  # every tensor is read: nothing keeps the file open
        self._saves = int(state.get("saves", 0))
        self.resumed_at = [*state.get("resumed_at", []), int(state["counters"].get("env_steps", 0))]
        return dict(state["counters"])

    def _restore(self, objects: dict[str, Any], state: dict[str, Any], tensors: CheckpointTensors) -> None:
        names = set(state["objects"])
        # an object that says it may be absent (`checkpoint_optional`: added to an algorithm's checkpoint later) is
        # left as it was made when an older checkpoint lacks it
        absent = {name for name, obj in objects.items() if getattr(obj, "checkpoint_optional", False)} - names
        if names != set(objects) - absent:
            raise CheckpointError(
                f"{self.dir / STATE_FILE}: the checkpoint holds {sorted(names)}; this version of the algorithm "
                f"saves {sorted(objects)}. It was written by another rlship version; start a new run"
            )
        torch.set_rng_state(tensors["rng/torch"])
        for name, obj in objects.items():
            if name in absent:
                continue
            own = tensors.under(f"{name}/")  # read as the object asks: a replay memory straight into its arrays
            try:
                _codec(obj).load(obj, own, state["objects"][name])
            except (KeyError, RuntimeError, ValueError, TypeError) as exc:
                raise CheckpointError(
                    f"{self.dir}: cannot restore {name!r} from the checkpoint ({exc}); it does not match this run"
                ) from exc

    # --- saving

    def save(self, **counters: Any) -> Path:
        """Write a checkpoint now (atomically) with the algorithm's counters (JSON values: env_steps, updates...)."""
        tensors: dict[str, torch.Tensor] = {"rng/torch": torch.get_rng_state()}
        meta: dict[str, Any] = {}
        for name, obj in self._objects.items():
            own, meta[name] = _codec(obj).dump(obj)
            tensors.update({f"{name}/{k}": v for k, v in own.items()})
        self.dir.mkdir(parents=True, exist_ok=True)
        self._saves += 1
        tensors_file = f"tensors-{self._saves:06d}.safetensors"
        digest = _atomic_write_tensors(self.dir / tensors_file, _unshared(tensors))
        state = {
            "format": CHECKPOINT_FORMAT,
            **self.identity,
            "counters": _jsonable(counters),
            "objects": meta,
            "saves": self._saves,
            "resumed_at": self.resumed_at,
            "tensors_file": tensors_file,
            "tensors_sha256": digest,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        _atomic_write(self.dir / STATE_FILE, (json.dumps(state, indent=1, default=_json_default) + "\n").encode())
        for old in self.dir.glob("tensors-*.safetensors"):  # only after the commit point
            if old.name != tensors_file:
                old.unlink(missing_ok=True)
        self.last_save = time.monotonic()
        return self.dir

    def seconds_since_save(self) -> float:
        """Seconds since the last checkpoint was written (or the run started)."""
        return time.monotonic() - self.last_save


# --- how each kind of object goes into (tensors, JSON) and back


class _Codec:
    def dump(self, obj: Any) -> tuple[dict[str, torch.Tensor], Any]:
        raise NotImplementedError

    def load(self, obj: Any, tensors: Mapping[str, torch.Tensor], meta: Any) -> None:
        raise NotImplementedError


class _ModuleCodec(_Codec):
    def dump(self, obj: torch.nn.Module) -> tuple[dict[str, torch.Tensor], Any]:
        return dict(obj.state_dict()), {"kind": "module"}

    def load(self, obj: torch.nn.Module, tensors: Mapping[str, torch.Tensor], meta: Any) -> None:
        obj.load_state_dict(dict(tensors), strict=True)


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

    def load(self, obj: torch.optim.Optimizer, tensors: Mapping[str, torch.Tensor], meta: Any) -> None:
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

    def load(self, obj: np.random.Generator, tensors: Mapping[str, torch.Tensor], meta: Any) -> None:
        obj.bit_generator.state = meta["state"]


class _TorchRngCodec(_Codec):
    def dump(self, obj: torch.Generator) -> tuple[dict[str, torch.Tensor], Any]:
        return {"state": obj.get_state()}, {"kind": "torch_generator"}

    def load(self, obj: torch.Generator, tensors: Mapping[str, torch.Tensor], meta: Any) -> None:
        obj.set_state(tensors["state"])


class _ProtocolCodec(_Codec):
    def dump(self, obj: Any) -> tuple[dict[str, torch.Tensor], Any]:
        tensors, meta = obj.checkpoint_state()
        return tensors, {"kind": "custom", "state": meta}

    def load(self, obj: Any, tensors: Mapping[str, torch.Tensor], meta: Any) -> None:
        obj.load_checkpoint_state(tensors, meta["state"])


_CODECS: list[tuple[type, _Codec]] = [
    (torch.nn.Module, _ModuleCodec()),
    (torch.optim.Optimizer, _OptimizerCodec()),
    (np.random.Generator, _NumpyRngCodec()),
    (torch.Generator, _TorchRngCodec()),
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
