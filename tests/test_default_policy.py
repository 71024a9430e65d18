"""The CartPole-v1 policy shipped inside the package."""

from __future__ import annotations

import json

from rlship import evaluate, load_policy
from rlship.sources import default_policy_dir


def test_default_policy_is_small_and_solves_cartpole() -> None:
    folder = default_policy_dir()
    assert (folder / "model.safetensors").stat().st_size < 64 * 1024
    policy = load_policy("default")
    assert policy.spec.env_id == "CartPole-v1" and policy.spec.algorithm == "ppo"
    result = evaluate(policy, episodes=100, seed=0)
    assert result.mean_reward >= 475
    shipped = json.loads((folder / "results.json").read_text())
    assert shipped["mean_reward"] >= 475 and shipped["n_eval_episodes"] == 100
    assert shipped["mean_reward"] == result.mean_reward  # same protocol, same seeds: the shipped numbers hold
