"""rlship's NumPy vector twin of Pendulum-v1 (rlship/games/pendulum_vector.py): each step equals Gymnasium's
Pendulum step from the same state, the episode truncates at 200 steps with next-step autoreset, reset is seeded,
and `rlship train ppo Pendulum-v1` rolls out on it while evaluation plays the real env."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from rlship import evaluate, load_policy
from rlship.envs import has_vector_twin, make_vec_env
from rlship.games.pendulum_vector import PendulumVectorEnv
from tests.cli_run import run

ENV = "Pendulum-v1"


def twin(num_envs: int, **env_kwargs: float) -> PendulumVectorEnv:
    """The twin as training gets it (envs.py's lookup), checked to be rlship's class."""
    envs = make_vec_env(ENV, num_envs, env_kwargs or None)
    assert isinstance(envs.unwrapped, PendulumVectorEnv)
    return envs.unwrapped


def real_steps(
    states: np.ndarray, actions: np.ndarray, **env_kwargs: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One step of a real `gymnasium.make(ENV)` from each (theta, theta_dot) in `states` with its action: the
    observations, rewards and new states."""
    env = gym.make(ENV, **env_kwargs)
    obs, rewards, new_states = [], [], []
    for state, action in zip(states, actions, strict=True):
        env.reset(seed=0)  # a fresh episode each time, far from the time limit
        env.unwrapped.state = state.copy()  # type: ignore[attr-defined]
        o, r, terminated, truncated, _ = env.step(action)
        assert not terminated and not truncated
        obs.append(o)
        rewards.append(r)
        new_states.append(env.unwrapped.state)  # type: ignore[attr-defined]
    env.close()
    return np.array(obs), np.array(rewards), np.array(new_states)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("g", [10.0, 9.81])
def test_one_step_equals_gymnasiums_pendulum_from_the_same_state(dtype: type, g: float) -> None:
    rng = np.random.default_rng(1)
    n = 500
    # any angle (also beyond +/-pi, where angle_normalize matters), speeds up to and beyond the clip at 8, and
    # torques beyond the bounds of +/-2 (clipped by the env, costed after clipping)
    states = np.stack([rng.uniform(-3 * np.pi, 3 * np.pi, n), rng.uniform(-9, 9, n)], axis=1)
    actions = rng.uniform(-4, 4, (n, 1)).astype(dtype)
    actions[:4, 0] = [-2.0, 2.0, -1e6, 1e6]

    envs = twin(n, **({} if g == 10.0 else {"g": g}))
    envs.reset(seed=0)
    envs.state = states.T.copy()
    obs, rewards, terminated, truncated, _ = envs.step(actions)

    want_obs, want_rewards, want_states = real_steps(states, actions, **({} if g == 10.0 else {"g": g}))
    assert obs.dtype == np.float32 and obs.shape == (n, 3)
    np.testing.assert_allclose(obs, want_obs, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(rewards, want_rewards, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(envs.state.T, want_states, rtol=1e-12, atol=1e-12)
    assert not terminated.any() and not truncated.any()
    # the speed is clipped to 8 and the out-of-range torques cost what +/-2 cost
    assert np.abs(obs[:, 2]).max() <= 8.0
    assert rewards[2] == pytest.approx(real_steps(states[2:3], np.array([[-2.0]], dtype))[1][0])


def test_an_episode_follows_the_real_env_truncates_at_200_steps_and_then_autoresets() -> None:
    n = 3
    envs = twin(n)
    obs, _ = envs.reset(seed=7)
    start = envs.state.T.copy()
    reals = [gym.make(ENV) for _ in range(n)]
    for env, state in zip(reals, start, strict=True):
        env.reset(seed=0)
        env.unwrapped.state = state.copy()  # type: ignore[attr-defined]
    rng = np.random.default_rng(2)
    for t in range(1, 201):
        actions = rng.uniform(-3, 3, (n, 1)).astype(np.float32)
        obs, rewards, terminated, truncated, _ = envs.step(actions)
        for i, env in enumerate(reals):
            o, r, term, trunc, _ = env.step(actions[i])
            np.testing.assert_allclose(obs[i], o, rtol=1e-5, atol=1e-5)
            assert rewards[i] == pytest.approx(r, rel=1e-5, abs=1e-5)
            assert (terminated[i], truncated[i]) == (term, trunc) == (False, t == 200)
    assert truncated.all() and not terminated.any()

    # the step after the time limit is the reset: reward 0, no flags, a start state in [-pi, pi] x [-1, 1]
    obs, rewards, terminated, truncated, _ = envs.step(np.zeros((n, 1), np.float32))
    assert (rewards == 0).all() and not terminated.any() and not truncated.any()
    assert (np.abs(envs.state[0]) <= np.pi).all() and (np.abs(envs.state[1]) <= 1).all()
    np.testing.assert_allclose(obs, np.stack([np.cos(envs.state[0]), np.sin(envs.state[0]), envs.state[1]], 1))
    # and the new episode runs its full 200 steps again
    flags = [envs.step(np.zeros((n, 1), np.float32))[3] for _ in range(200)]
    assert not np.any(flags[:-1]) and flags[-1].all()


def test_reset_is_seeded_and_so_are_the_autoresets() -> None:
    def play(seed: int) -> list[np.ndarray]:
        envs = twin(4)
        seen = [envs.reset(seed=seed)[0]]
        seen += [envs.step(np.ones((4, 1), np.float32))[0] for _ in range(205)]
        return seen

    first, again, other = play(3), play(3), play(4)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(first[0], other[0])
    assert not np.allclose(first[201], other[201])  # the states drawn by the autoreset


def test_bad_actions_and_render_modes_are_refused_clearly() -> None:
    envs = twin(2)
    with pytest.raises(RuntimeError, match="reset"):
        envs.step(np.zeros((2, 1)))
    envs.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(2, 1\)"):
        envs.step(np.zeros(2))
    with pytest.raises(ValueError, match="render"):
        PendulumVectorEnv(2, render_mode="rgb_array")


def test_training_rolls_out_on_the_twin_and_the_policy_acts_on_the_real_env(tmp_path: Path) -> None:
    assert has_vector_twin(ENV)
    out = tmp_path / "run"
    run("train", "ppo", ENV, "--total-steps", "4096", "--eval-episodes", "5", "--out", str(out), "--no-progress")
    policy = load_policy(out)
    assert policy.spec.env_id == ENV
    results = json.loads((out / "results.json").read_text())
    assert results["training"]["env_steps"] >= 4096

    # the final evaluation and `evaluate` play real gymnasium.make envs: 200-step episodes of Pendulum's rewards
    result = evaluate(policy, episodes=3, seed=1)
    assert result.n_eval_episodes == 3 and set(result.episode_lengths) == {200}
    assert -16.3 * 200 <= result.mean_reward <= 0
    # the stop rule's confirmations may play the twin: the same protocol, the same kind of episodes
    confirmed = evaluate(policy, episodes=3, seed=1, vector_twin=True)
    assert set(confirmed.episode_lengths) == {200} and -16.3 * 200 <= confirmed.mean_reward <= 0
