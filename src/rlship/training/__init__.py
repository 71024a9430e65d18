"""Training: one module per algorithm (a config dataclass, presets and a `learn` loop, declared as its
`ALGORITHM`), and the run code they share (training/run.py).

`ALGORITHMS` is what the CLI and other code look algorithms up in; a new algorithm adds one line below. Importing
this package (and every algorithm's config) does not import torch: `rlship train --help` stays quick. The run
machinery, which does, is imported when a run starts; `CheckpointOptions` and `TrainResult` load on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlship.training import a2c, cem, dqn, ppo, random_policy, reinforce
from rlship.training.algorithm import Algorithm
from rlship.training.settings import DEFAULT_EVERY_SECONDS

if TYPE_CHECKING:
    from rlship.training.checkpoint import CheckpointOptions
    from rlship.training.run import TrainResult

# In the order the tutorials teach them; `rlship train --help` and the benchmark table list them so.
ALGORITHMS: dict[str, Algorithm[Any]] = {
    module.ALGORITHM.name: module.ALGORITHM for module in (random_policy, cem, reinforce, a2c, dqn, ppo)
}

_EXPORTS = {"CheckpointOptions": "rlship.training.checkpoint", "TrainResult": "rlship.training.run"}


def __getattr__(name: str) -> Any:  # PEP 562: the names that import torch load on first use
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rlship.training' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def resume(run_dir: str | Path, progress: bool = True, checkpoint_every: float = DEFAULT_EVERY_SECONDS) -> TrainResult:
    """Continue the run in `run_dir` from its checkpoint, with the algorithm, env, seed and hyperparameters it was
    started with (what `rlship train ALGO ENV_ID --resume RUN_DIR` does)."""
    from rlship.training.checkpoint import CheckpointError, CheckpointOptions, read_checkpoint_state

    state = read_checkpoint_state(run_dir)
    algo = ALGORITHMS.get(state["algorithm"])
    if algo is None:
        raise CheckpointError(f"{run_dir}: the checkpoint is of a {state['algorithm']!r} run, unknown to this rlship")
    return algo.train(
        state["env_id"],
        algo.make_config(state["env_id"], **algo.checkpoint_settings(state["hyperparameters"])),
        seed=int(state["seed"]),
        out=run_dir,
        progress=progress,
        env_kwargs=dict(state.get("env_kwargs") or {}),
        checkpoint=CheckpointOptions(every_seconds=checkpoint_every, resume=True),
    )


__all__ = ["ALGORITHMS", "Algorithm", "CheckpointOptions", "TrainResult", "resume"]
