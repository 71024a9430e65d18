"""Training: one module per algorithm (a config dataclass + a `train` function), and the run code they share.

`ALGORITHMS` is what the CLI and other code look algorithms up in; a new algorithm adds one entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rlship.training import dqn, ppo
from rlship.training.run import TrainResult


@dataclass(frozen=True)
class Algorithm:
    name: str
    summary: str
    config_cls: type
    make_config: Callable[..., Any]  # (env_id, **overrides) -> config: defaults < env preset < overrides
    train: Callable[..., TrainResult]  # (env_id, config, seed, out, progress, env_kwargs) -> TrainResult


ALGORITHMS: dict[str, Algorithm] = {
    "ppo": Algorithm(
        "ppo", "Proximal Policy Optimization (clipped surrogate, GAE)", ppo.PPOConfig, ppo.make_config, ppo.train
    ),
    "dqn": Algorithm(
        "dqn",
        "Deep Q-Network (replay memory, target network, double DQN, epsilon-greedy)",
        dqn.DQNConfig,
        dqn.make_config,
        dqn.train,
    ),
}

__all__ = ["ALGORITHMS", "Algorithm", "TrainResult"]
