"""rlship/Pixelcopter-v0: registration, seeding, and the game's rules checked against hand-computed steps.

Numbers used below (PLE's constants on a 48x48 screen at 30 fps): dt = 1000/30 ms, speed = 0.0192 px/ms, so
everything scrolls 0.64 px a frame, climbing adds -0.56 to the momentum and falling +0.0576, before the
momentum is multiplied by 0.99. The copter sits at x = 16 with a 2x2 box; a block's box is 4x9 (4 above its
centre, 5 below); a terrain column's ceiling and floor lie 12 px above and below its middle.
"""

from __future__ import annotations

import importlib
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import rlship
from rlship.games.pixelcopter import STATE_NAMES, PixelcopterEnv
from tests.loaded_modules import modules_after_importing

ENV_ID = "rlship/Pixelcopter-v0"
CLIMB, NOTHING = 1, 0


def flat_cave(seed: int = 0, block: tuple[float, float] = (70.0, 24.0)) -> gym.Env:
    """The real registered env after a seeded reset, with the cave made straight (every column's middle at
    y = 24: ceiling 12, floor 36) and its one block put at `block`, so that steps can be worked out by hand."""
    env = gym.make(ENV_ID)
    env.reset(seed=seed)
    game = env.unwrapped
    assert isinstance(game, PixelcopterEnv)
    game.terrain_y = [24] * len(game.terrain_y)
    game.blocks = [list(block)]
    return env


def test_import_rlship_registers_the_env_with_its_spaces_time_limit_and_no_threshold() -> None:
    spec = gym.spec(ENV_ID)
    assert spec.max_episode_steps == 10_000  # the course's max_t
    assert spec.reward_threshold is None  # no published "solved" score, so the stop rule has nothing to stop on
    env = gym.make(ENV_ID)
    assert env.observation_space == gym.spaces.Box(-np.inf, np.inf, shape=(7,), dtype=np.float32)
    assert env.action_space == gym.spaces.Discrete(2)
    assert env.metadata["render_fps"] == 30
    assert len(STATE_NAMES) == 7 and STATE_NAMES[0] == "player_y" and STATE_NAMES[-1] == "next_gate_block_bottom"


def test_registering_again_is_harmless_and_silent() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Gymnasium warns when an id is registered over an existing one
        importlib.reload(importlib.import_module("rlship.registration"))
        importlib.reload(rlship)
    assert gym.spec(ENV_ID).max_episode_steps == 10_000


def test_registering_imports_neither_the_game_nor_pygame() -> None:
    assert not {"rlship.games.pixelcopter", "pygame"} & modules_after_importing("rlship")


@pytest.mark.filterwarnings("ignore:.*Box observation space m:UserWarning")  # unbounded, as gym_pygame's
def test_passes_gymnasiums_env_checker() -> None:
    check_env(gym.make(ENV_ID, render_mode="rgb_array").unwrapped)


def test_a_seeded_reset_replays_the_same_game_and_seeds_differ() -> None:
    def play(seed: int) -> np.ndarray:
        env = gym.make(ENV_ID)
        obs, _ = env.reset(seed=seed)
        rows = [obs]
        for t in range(200):
            obs, reward, terminated, _truncated, _ = env.step(CLIMB if obs[0] > 24 + 3 * (t % 3) else NOTHING)
            rows.append(np.append(obs, reward))
            if terminated:
                break
        return np.concatenate(rows)

    assert np.array_equal(play(7), play(7))
    starts = {tuple(gym.make(ENV_ID).reset(seed=s)[0]) for s in range(10)}
    assert len(starts) > 1


def test_the_start_state_follows_the_rules() -> None:
    for seed in range(20):
        obs, _ = gym.make(ENV_ID).reset(seed=seed)
        y, vel, to_ceil, to_floor, gate_dist, gate_top, gate_bottom = obs.tolist()
        assert (y, vel) == (24.0, 0.0)
        assert to_ceil + to_floor == 24.0  # the corridor is 24 px high
        assert 18 <= y - to_ceil + 12 <= 30  # the middle of the cave swings 6 px about the screen's middle
        assert gate_dist == int(gate_dist) and 32 <= gate_dist < 56  # a block 48-72 px from the left edge
        assert gate_top in set(range(8, 20)) | {24} | set(range(29, 40))
        assert gate_bottom == gate_top + 9  # PLE's "top" is the block's centre, its "bottom" centre + height


def test_climb_and_fall_momentum_by_hand() -> None:
    env = flat_cave()
    # climb: v = (0 - 0.56) * 0.99 = -0.5544, y = 24 - 0.5544 = 23.4456
    obs, reward, terminated, *_ = env.step(CLIMB)
    np.testing.assert_allclose(obs[:4], [23.4456, -0.5544, 23.4456 - 12, 36 - 23.4456], rtol=0, atol=1e-5)
    assert (reward, terminated) == (0.0, False)
    # fall: v = (-0.5544 + 0.0576) * 0.99 = -0.491832, y = 22.953768
    obs, *_ = env.step(NOTHING)
    np.testing.assert_allclose(obs[:2], [22.953768, -0.491832], rtol=0, atol=1e-5)
    # fall: v = (-0.491832 + 0.0576) * 0.99 = -0.42988968, y = 22.52387832
    obs, *_ = env.step(np.int64(NOTHING))
    np.testing.assert_allclose(obs[:2], [22.52387832, -0.42988968], rtol=0, atol=1e-5)
    # climb again: v = (-0.42988968 - 0.56) * 0.99 = -0.97999078, y = 21.54388754
    obs, *_ = env.step(CLIMB)
    np.testing.assert_allclose(obs[:2], [21.54388754, -0.97999078], rtol=0, atol=1e-5)
    # the block (placed at x = 70) came 4 x 0.64 px closer: 70 - 2.56 - 16
    np.testing.assert_allclose(obs[4:], [51.44, 24, 33], rtol=0, atol=1e-5)


def test_hitting_the_ceiling_ends_the_episode_with_minus_five() -> None:
    env = flat_cave()
    # Climbing from rest: v = -0.5544, -1.103256, -1.64662344, -2.18455721, -2.71711163, -3.24434052 and
    # y = 23.4456, 22.342344, 20.69572056, 18.51116335, 15.79405172, 12.5497112. The ceiling (12) is hit when
    # y - 2.4 <= 12, at the sixth climb.
    for expected_y in (23.4456, 22.342344, 20.69572056, 18.51116335, 15.79405172):
        obs, reward, terminated, truncated, _ = env.step(CLIMB)
        assert obs[0] == pytest.approx(expected_y, abs=1e-5)
        assert (reward, terminated, truncated) == (0.0, False, False)
    obs, reward, terminated, truncated, _ = env.step(CLIMB)
    assert obs[0] == pytest.approx(12.5497112, abs=1e-5)
    assert (reward, terminated, truncated) == (-5.0, True, False)
    with pytest.raises(RuntimeError, match="call reset"):
        env.unwrapped.step(NOTHING)


def test_a_block_kills_on_overlap_and_misses_by_a_hair() -> None:
    # One step of falling: y = 24.057024, the copter's box spans y 23.057024-25.057024 and x 15-17. A block at
    # x = 19.5 comes to 18.86: its box spans x 16.86-20.86, overlapping the copter's sideways.
    _, reward, terminated, *_ = flat_cave(block=(19.5, 24.0)).step(NOTHING)
    assert (reward, terminated) == (-5.0, True)
    # The same block with its centre at 18 spans y 14-23: it ends 0.057 px above the copter's box.
    _, reward, terminated, *_ = flat_cave(block=(19.5, 18.0)).step(NOTHING)
    assert (reward, terminated) == (0.0, False)
    # ... and with its centre at 18.1 (box 14.1-23.1) it touches.
    _, reward, terminated, *_ = flat_cave(block=(19.5, 18.1)).step(NOTHING)
    assert (reward, terminated) == (-5.0, True)


def test_passing_a_gate_scores_one_and_brings_the_next_block() -> None:
    env = flat_cave(block=(16.5, 40.0))  # below the cave's floor: it cannot touch the copter
    obs, reward, terminated, *_ = env.step(NOTHING)  # the block reaches x = 15.86 <= 16: passed
    assert (reward, terminated) == (1.0, False)
    # the next block appears 48-72 px from the left edge (it does not scroll on the frame it appears)
    assert obs[4] == int(obs[4]) and 32 <= obs[4] < 56
    assert len(env.unwrapped.blocks) == 2  # the passed one stays until it leaves the screen
    rewards = [env.step(NOTHING)[1] for _ in range(5)]
    assert rewards == [0.0] * 5  # a passed block scores once


def test_each_terrain_column_that_scrolls_off_scores_one() -> None:
    env = flat_cave()
    # Columns start at x = 2, 6, 10, ... and leave at x <= -4: the first after ceil(6 / 0.64) = 10 steps,
    # the second after ceil(10 / 0.64) = 16. Falling from rest stays above the floor for these 16 steps.
    rewards = [env.step(NOTHING)[1] for _ in range(16)]
    assert [t + 1 for t, r in enumerate(rewards) if r] == [10, 16]
    assert sum(rewards) == 2.0


def test_a_new_stretch_of_cave_comes_every_48_columns_overlapping_the_old() -> None:
    env = flat_cave()
    game = env.unwrapped
    rewards = []
    for _ in range(222):
        game.y, game.momentum, game.blocks = 24.0, 0.0, [[200.0, 40.0]]  # the copter held still, no block near
        rewards.append(env.step(NOTHING)[1])
        if len(game.terrain_x) > 48:
            break
    # Column i (x = 2 + 4i) leaves once 0.64 k >= 6 + 4i: after step 221 (0.64 x 221 = 141.44) columns 0-33
    # are gone, after step 222 (142.08) column 34 too, leaving 13 (x = -0.08 ... 47.92): a new stretch of 48
    # columns starts at x = 50, 1.92 px inside the last old column's box, with a sine wave of its own.
    assert len(rewards) == 222 and sum(rewards) == 35.0
    assert len(game.terrain_x) == 13 + 48
    screen_x = np.array(game.terrain_x) - game.scroll
    np.testing.assert_allclose(screen_x[[0, 12, 13, 60]], [-0.08, 47.92, 50, 238], atol=1e-9)


def test_the_time_limit_truncates() -> None:
    env = gym.make(ENV_ID, max_episode_steps=3)  # the registered TimeLimit, shortened
    env.reset(seed=0)
    steps = [env.step(NOTHING)[2:4] for _ in range(3)]
    assert steps == [(False, False), (False, False), (False, True)]


def test_bad_actions_are_refused() -> None:
    env = gym.make(ENV_ID).unwrapped
    env.reset(seed=0)
    for bad in (2, -1, "up"):
        with pytest.raises(ValueError, match="0 \\(nothing\\) or 1 \\(climb\\)"):
            env.step(bad)


def test_rgb_array_draws_the_copter_the_cave_and_the_blocks() -> None:
    env = flat_cave(block=(30.0, 24.0))
    env.unwrapped.render_mode = "rgb_array"
    big = env.render()
    assert big.shape == (384, 384, 3) and big.dtype == np.uint8  # 8 screen pixels per game pixel by default
    env.unwrapped.render_scale = 1
    frame = env.render()
    assert frame.shape == (48, 48, 3) and np.array_equal(big[::8, ::8], frame)
    assert (frame[23:25, 15:17] == 255).all()  # the copter: 2x2 white at x 15-16, y 23-24
    assert (frame[23, 14] == 0).all() and (frame[23, 17] == 0).all()
    assert (frame[20:29, 28:32] == [120, 240, 80]).all()  # the block: 4x9 green around (30, 24)
    assert (frame[:12, :] == [120, 240, 80]).all() and (frame[12, 0] == 0).all()  # the ceiling above y = 12
    assert (frame[38:, :] == [120, 240, 80]).all()  # PLE draws the floor from 14 px below the middle
    assert flat_cave().render() is None  # no render_mode: nothing drawn
    with pytest.raises(ValueError, match="render_mode"):
        PixelcopterEnv(render_mode="ansi")
    with pytest.raises(ValueError, match="render_scale"):
        PixelcopterEnv(render_scale=0)
