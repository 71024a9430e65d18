"""rlship.games.cartpole_vector: CartPole-v1's vector env stepped with fewer NumPy calls is Gymnasium's, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

from rlship.envs import make_vec_env
from rlship.games.cartpole_vector import LeanCartPoleVectorEnv


@pytest.mark.parametrize(
    ("num_envs", "kwargs", "integrator"),
    [
        (8, {}, "euler"),
        (37, {"max_episode_steps": 60}, "euler"),  # time limits, and resets on most steps
        (5, {"sutton_barto_reward": True}, "semi-implicit euler"),
    ],
)
def test_steps_are_gymnasiums_bit_for_bit(num_envs: int, kwargs: dict, integrator: str) -> None:
    ours, theirs = LeanCartPoleVectorEnv(num_envs=num_envs, **kwargs), CartPoleVectorEnv(num_envs=num_envs, **kwargs)
    ours.kinematics_integrator = theirs.kinematics_integrator = integrator
    obs, _ = ours.reset(seed=7)
    ref, _ = theirs.reset(seed=7)
    assert np.array_equal(obs, ref)
    rng = np.random.default_rng(0)
    episodes = truncations = 0
    for t in range(6000):
        # mostly random play (short episodes, many resets), with stretches of a balancing-ish rule (long ones)
        actions = rng.integers(0, 2, num_envs) if t % 1000 < 500 else (ref[:, 2] + ref[:, 3] > 0).astype(np.int64)
        obs, reward, terminated, truncated, _ = ours.step(actions)
        ref, ref_reward, ref_terminated, ref_truncated, _ = theirs.step(actions)
        assert np.array_equal(obs, ref) and obs.dtype == ref.dtype
        assert np.array_equal(reward, ref_reward) and reward.dtype == ref_reward.dtype
        assert np.array_equal(terminated, ref_terminated) and np.array_equal(truncated, ref_truncated)
        assert np.array_equal(ours.state, theirs.state) and np.array_equal(ours.steps, theirs.steps)
        episodes += int((terminated | truncated).sum())
        truncations += int(truncated.sum())
    assert episodes > 200  # the resets were exercised
    if kwargs.get("max_episode_steps"):
        assert truncations > 0  # and the time limit


def test_cartpole_trains_and_confirms_on_it() -> None:
    envs = make_vec_env("CartPole-v1", 4)
    assert isinstance(envs.unwrapped, LeanCartPoleVectorEnv)
    envs.close()


@pytest.mark.parametrize("actions", [[0, 1, 2], [0, 1], [[0], [1], [0]], [0, -1, 1], [0.5, 1, 0], ["a", "b", "c"]])
def test_actions_outside_the_space_are_refused(actions: list) -> None:
    envs = LeanCartPoleVectorEnv(num_envs=3)
    envs.reset(seed=0)
    with pytest.raises(ValueError, match="CartPole actions are 3 numbers, each 0 or 1"):
        envs.step(np.asarray(actions, dtype=object) if isinstance(actions[0], str) else np.asarray(actions))
