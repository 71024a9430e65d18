"""Training: one module per algorithm (a config dataclass + a `train` function), and the run code they share.

`ALGORITHMS` is what the CLI and other code look algorithms up in; a new algorithm adds one entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rlship.training import a2c, cem, ppo, reinforce
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
}

__all__ = ["ALGORITHMS", "Algorithm", "TrainResult"]
