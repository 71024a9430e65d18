from __future__ import annotations

from pathlib import Path

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


def make_untrained(seed: int = 0, hidden: tuple[int, ...] = (16, 16)) -> Policy:
    import torch

    torch.manual_seed(seed)
    env = gym.make("CartPole-v1")
    return new_policy(
        "ppo",
        "CartPole-v1",
        env.observation_space,
        env.action_space,
        NetworkSpec(hidden, "tanh", {"logits": 2, "value": 1}),
        hyperparameters={},
        seed=seed,
    )


@pytest.fixture
def saved_policy(tmp_path: Path) -> Path:
    """An untrained policy written to a folder: fast input for the artifact and error tests."""
    return make_untrained().save(tmp_path / "policy")
