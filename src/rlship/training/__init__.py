"""Training: one module per algorithm (a config dataclass + a `train` function), and the run code they share.

`ALGORITHMS` is what the CLI and other code look algorithms up in; a new algorithm adds one entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlship.training import a2c, cem, dqn, ppo, random_policy, reinforce
from rlship.training.checkpoint import (
    DEFAULT_EVERY_SECONDS,
    CheckpointError,
    CheckpointOptions,
    read_checkpoint_state,
    resume_settings,
)
from rlship.training.run import TrainResult


@dataclass(frozen=True)
class Algorithm:
    name: str
    summary: str
    config_cls: type
    make_config: Callable[..., Any]  # (env_id, **overrides) -> config: defaults < env preset < overrides
    # (env_id, config, seed, out, progress, env_kwargs[, checkpoint: CheckpointOptions]) -> TrainResult; the CLI
    # offers --resume only to algorithms whose train takes `checkpoint` (docs/adding-an-algorithm.md: how to adopt it)
    train: Callable[..., TrainResult]


ALGORITHMS: dict[str, Algorithm] = {
    # In the order the tutorials teach them; `rlship train --help` and the benchmark table list them so.
    "random": Algorithm(
        "random",
        "uniform random actions: the baseline every algorithm is read against (trains for zero steps)",
        random_policy.RandomConfig,
        random_policy.make_config,
        random_policy.train,
    ),
    "cem": Algorithm(
        "cem", "cross-entropy method (fit the policy to the elite episodes)", cem.CEMConfig, cem.make_config, cem.train
    ),
    "reinforce": Algorithm(
        "reinforce",
        "REINFORCE (vanilla policy gradient on whole episodes)",
        reinforce.ReinforceConfig,
        reinforce.make_config,
        reinforce.train,
    ),
    "a2c": Algorithm(
        "a2c", "advantage actor-critic (n-step returns, synchronous)", a2c.A2CConfig, a2c.make_config, a2c.train
    ),
    "dqn": Algorithm(
        "dqn",
        "Deep Q-Network (replay memory, target network, double DQN, epsilon-greedy)",
        dqn.DQNConfig,
        dqn.make_config,
        dqn.train,
    ),
    "ppo": Algorithm(
        "ppo", "Proximal Policy Optimization (clipped surrogate, GAE)", ppo.PPOConfig, ppo.make_config, ppo.train
    ),
}


def resume(run_dir: str | Path, progress: bool = True, checkpoint_every: float = DEFAULT_EVERY_SECONDS) -> TrainResult:
    """Continue the run in `run_dir` from its checkpoint, with the algorithm, env, seed and hyperparameters it was
    started with (what `rlship train ALGO ENV_ID --resume RUN_DIR` does)."""
    state = read_checkpoint_state(run_dir)
    algo = ALGORITHMS.get(state["algorithm"])
    if algo is None:
        raise CheckpointError(f"{run_dir}: the checkpoint is of a {state['algorithm']!r} run, unknown to this rlship")
    hyperparameters, seed, env_kwargs = resume_settings(run_dir, algo.name, state["env_id"], {})
    return algo.train(
        state["env_id"],
        algo.make_config(state["env_id"], **hyperparameters),
        seed=seed,
        out=run_dir,
        progress=progress,
        env_kwargs=env_kwargs,
        checkpoint=CheckpointOptions(every_seconds=checkpoint_every, resume=True),
    )


__all__ = ["ALGORITHMS", "Algorithm", "CheckpointOptions", "TrainResult", "resume"]
