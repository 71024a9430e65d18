from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

from rlship.networks import NetworkSpec
from rlship.policy import Policy, new_policy
from rlship.training import ppo
from rlship.training.run import TrainResult


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """PPO trained on CartPole-v1 with the default preset, seed 0: the real run the suite checks."""
    out = tmp_path_factory.mktemp("runs") / "ppo-CartPole-v1-s0"
    return ppo.train("CartPole-v1", seed=0, out=out, progress=False)


def untrained_policy(
    algorithm: str,
    spec: NetworkSpec,
    *,
    env_id: str = "CartPole-v1",
    seed: int = 0,
    hyperparameters: dict[str, Any] | None = None,
    **options: Any,
) -> Policy:
    """A policy of `algorithm` for `env_id`'s spaces with fresh weights (torch seeded with `seed` first): fast input
    for the artifact, packaging, export and serving tests. `options` are `new_policy`'s (action_distribution,
    epsilon, log_std, bound, normalize_obs, ...)."""
    import torch

    torch.manual_seed(seed)
    env = gym.make(env_id)
    try:
        spaces = env.observation_space, env.action_space
        return new_policy(algorithm, env_id, *spaces, spec, hyperparameters or {}, seed, **options)
    finally:
        env.close()


def make_untrained(seed: int = 0, hidden: tuple[int, ...] = (16, 16)) -> Policy:
    """An untrained PPO actor-critic for CartPole-v1 (tanh hidden layers)."""
    return untrained_policy("ppo", NetworkSpec(hidden, "tanh", {"logits": 2, "value": 1}), seed=seed)


@pytest.fixture
def saved_policy(tmp_path: Path) -> Path:
    """An untrained policy written to a folder: fast input for the artifact and error tests."""
    return make_untrained().save(tmp_path / "policy")
