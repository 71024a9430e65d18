"""The random baseline: an artifact like any other, scoring the floor of CartPole-v1."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rlship import evaluate, load_policy
from rlship.cli import main


def test_random_baseline_is_a_full_artifact_at_the_random_floor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "random"
    assert main(["train", "random", "CartPole-v1", "--out", str(out)]) == 0  # the CLI's code, in this process
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert "not solved" not in captured.err  # a baseline is not expected to solve anything
    assert summary["algorithm"] == "random" and summary["env_steps"] == 0 and summary["solved"] is False
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "results.json", "train_log.csv", "training_curve.png"} <= names
    results = json.loads((out / "results.json").read_text())
    assert results["n_eval_episodes"] == 100 and results["deterministic"] is True
    assert 15 <= results["mean_reward"] <= 30  # uniform actions on CartPole-v1: about 22

    policy = load_policy(out)
    assert policy.spec.algorithm == "random" and policy.spec.action_distribution == "uniform"
    obs = np.zeros((200, 4), dtype=np.float32)
    act = policy.act(obs, deterministic=True, rng=np.random.default_rng(0))
    assert np.allclose(act.probabilities, 0.5)
    assert 60 < act.actions.sum() < 140  # even "greedy" actions are coin flips: uniform has no greedy action
    assert evaluate(policy, episodes=100, seed=0).mean_reward == results["mean_reward"]  # same protocol, same score
