"""The PPO presets for LunarLander-v3, LunarLanderContinuous-v3 and MountainCarContinuous-v0 run end to end: each
env's preset (everything but its budget, cut to a short rollout) trains, writes an artifact whose config.json holds
the preset, and the loaded policy acts on the real env by the evaluation protocol. How well the presets solve their
envs is measured by benchmarks/control.py (docs/algorithms.md), not here: a test cannot afford 1e6 env steps.
Box2D comes with the dev setup (`rlship[box2d]`, wheels only); where it is missing the LunarLander cases skip."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from rlship import load_policy
from rlship.evaluation import evaluate
from rlship.training import ppo

CASES = [
    pytest.param("LunarLander-v3", True, id="LunarLander-v3"),
    pytest.param("LunarLanderContinuous-v3", True, id="LunarLanderContinuous-v3"),
    pytest.param("MountainCarContinuous-v0", False, id="MountainCarContinuous-v0"),
]


@pytest.mark.parametrize(("env_id", "box2d"), CASES)
def test_the_preset_trains_one_rollout_and_the_artifact_acts(env_id: str, box2d: bool, tmp_path: Path) -> None:
    if box2d:
        pytest.importorskip("Box2D", reason="LunarLander needs the box2d extra: pip install 'rlship[box2d]'")
    preset = ppo.PRESETS[env_id]
    n_steps = min(preset["n_steps"], 64)  # a short rollout keeps the test quick; the rest is the preset's
    one_rollout = preset["num_envs"] * n_steps
    cut = dict(n_steps=n_steps, total_steps=one_rollout, eval_episodes=2, confirm_episodes=2)
    config = ppo.make_config(env_id, **cut)
    result = ppo.train(env_id, config, seed=3, out=tmp_path / "run", progress=False)

    assert result.env_steps >= one_rollout and not result.interrupted
    saved = json.loads((result.out / "config.json").read_text())
    for name, value in preset.items():
        if name not in cut:
            expected = list(value) if isinstance(value, tuple) else value
            assert saved["hyperparameters"][name] == expected, name

    policy = load_policy(result.out)
    env = gym.make(env_id)
    obs = np.stack([env.reset(seed=s)[0] for s in range(4)])
    out = policy.act(obs)
    space = env.action_space
    if isinstance(space, gym.spaces.Discrete):
        assert out.actions.shape == (4,) and out.probabilities is not None
        np.testing.assert_allclose(out.probabilities.sum(axis=1), 1.0, rtol=1e-5)
    else:
        assert out.actions.shape == (4, *space.shape) and out.std is not None
        assert ((out.actions >= space.low) & (out.actions <= space.high)).all()
        assert (policy.obs_norm is not None) == bool(preset.get("normalize_obs", False))
    evaluation = evaluate(policy, episodes=2, seed=0)
    assert len(evaluation.episode_returns) == 2 and all(np.isfinite(evaluation.episode_returns))
