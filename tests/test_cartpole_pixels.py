"""rlship/CartPolePixels-v1: CartPole-v1 seen through Gymnasium's renderer; the NumPy renderer training uses draws
the same frames within a stated tolerance; DQN and PPO train a CNN on it, and the policy packages with a card that
says how its pixels are made and a video that shows what the network sees."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from safetensors import safe_open

import rlship  # noqa: F401 (registers the rlship/ envs)
from rlship import evaluate, load_policy
from rlship.cli import main
from rlship.errors import UsageError
from rlship.frames import FramePreprocessing
from rlship.games.cartpole_pixels import (
    PREPROCESSING,
    RENDER_TOLERANCE,
    TWO_FRAMES_25X100,
    draw_frames,
    render_max_difference,
)
from rlship.hub.package import package_policy
from rlship.hub.video import record_replay
from rlship.networks import CNNSpec, ConvLayer
from rlship.policy import new_policy
from rlship.training import ALGORITHMS
from rlship.training.checkpoint import read_checkpoint_state
from rlship.training.run import TrainResult
from tests.training_helpers import train_until_ctrl_c

ENV = "rlship/CartPolePixels-v1"
TINY_DQN = dict(
    total_steps=600, learning_starts=200, buffer_size=1000, batch_size=16, eval_episodes=2, confirm_episodes=2
)


def test_it_is_cartpole_v1_with_the_preprocessed_screen_as_observation() -> None:
    env, plain = gym.make(ENV), gym.make("CartPole-v1")
    assert env.spec is not None and plain.spec is not None
    assert env.spec.max_episode_steps == plain.spec.max_episode_steps == 500
    assert env.spec.reward_threshold == plain.spec.reward_threshold == 475.0
    # three 25x100 grey frames 2 steps apart: t-4, t-2, t
    assert env.observation_space == gym.spaces.Box(0, 255, (3, 25, 100, 1), np.uint8)
    obs, _ = env.reset(seed=5)
    plain.reset(seed=5)
    first = PREPROCESSING.preprocess(env.render())
    assert all(np.array_equal(frame, first) for frame in obs)  # an episode starts with copies of its first frame
    images = [first] * 4
    rng = np.random.default_rng(0)
    for _ in range(30):  # same dynamics, reward and termination, step for step
        action = int(rng.integers(2))
        obs, reward, terminated, truncated, _ = env.step(action)
        _, plain_reward, plain_terminated, plain_truncated, _ = plain.step(action)
        np.testing.assert_allclose(env.unwrapped.state, plain.unwrapped.state)
        assert (reward, terminated, truncated) == (plain_reward, plain_terminated, plain_truncated)
        images.append(PREPROCESSING.preprocess(env.render()))
        assert np.array_equal(obs, np.stack(images[-5::2]))  # the newest frame last, 2 steps apart
        if terminated or truncated:
            break
    env.close()


# the preprocessings the twin is checked against Gymnasium's renderer for: the env's default, the two-frame 25x100
# one of the policies made before it changed, and a 3x finer horizontal resolution
PREPROCESSINGS = {
    "default": PREPROCESSING,
    "two frames 25x100": TWO_FRAMES_25X100,
    "25x200, 3 frames 2 apart": replace(PREPROCESSING, width=200, frame_stack=3, frame_gap=2),
}


@pytest.mark.parametrize("prep", PREPROCESSINGS.values(), ids=PREPROCESSINGS.keys())
def test_the_numpy_renderer_matches_gymnasiums_rendered_and_preprocessed_frames(prep: FramePreprocessing) -> None:
    env = gym.make(ENV, observation_preprocessing=prep.to_dict())
    rng = np.random.default_rng(1)
    obs, _ = env.reset(seed=0)
    mean_diffs, max_diff = [], 0
    for _ in range(120):  # random play: the cart and pole in many places and angles, up to termination
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(2)))
        state = np.asarray(env.unwrapped.state, dtype=np.float64)
        diff = np.abs(draw_frames(state[None], prep)[0].astype(int) - obs[-1].astype(int))
        mean_diffs.append(diff.mean())
        max_diff = max(max_diff, int(diff.max()))
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    assert max(mean_diffs) <= RENDER_TOLERANCE
    assert max_diff <= render_max_difference(prep)
    # not trivially equal: a frame of a different state differs by far more than the tolerance
    moved = draw_frames(np.array([[0.5, 0.0, 0.1, 0.0]]), prep)[0].astype(int)
    assert np.abs(moved - obs[-1].astype(int)).mean() > 4 * RENDER_TOLERANCE


@pytest.mark.parametrize("prep", PREPROCESSINGS.values(), ids=PREPROCESSINGS.keys())
def test_the_training_vector_env_steps_cartpole_and_restarts_the_stack_after_a_done(prep: FramePreprocessing) -> None:
    pixels = gym.make_vec(ENV, num_envs=3, vectorization_mode="vector_entry_point", observation_preprocessing=prep)
    plain = gym.make_vec("CartPole-v1", num_envs=3, vectorization_mode="vector_entry_point")
    assert pixels.single_observation_space == gym.make(ENV, observation_preprocessing=prep).observation_space
    assert pixels.single_observation_space.shape == prep.observation_shape
    assert pixels.metadata["observation_preprocessing"] == prep
    obs, _ = pixels.reset(seed=3)
    states, _ = plain.reset(seed=3)
    assert all(np.array_equal(obs[:, 0], obs[:, k]) for k in range(prep.frame_stack))
    rng = np.random.default_rng(0)
    # each env's frames since its episode began (the observation: every frame_gap-th of the latest, padded at an
    # episode's start with copies of its first frame)
    drawn: list[list[np.ndarray]] = [[obs[i, -1]] for i in range(3)]
    for _ in range(200):
        actions = rng.integers(0, 2, 3)
        restarted = pixels.unwrapped.prev_done.copy()
        obs, reward, terminated, truncated, _ = pixels.step(actions)
        states, plain_reward, plain_terminated, plain_truncated, _ = plain.step(actions)
        assert np.array_equal(reward, plain_reward) and np.array_equal(terminated, plain_terminated)
        assert np.array_equal(truncated, plain_truncated)
        exact = pixels.unwrapped.state.T  # float64; the plain env's observations are its float32 copy
        assert np.array_equal(states, exact.astype(np.float32))
        assert np.array_equal(obs[:, -1], draw_frames(exact, prep))
        for i in range(3):  # next-step autoreset: the stack restarts from the new episode's first frame
            drawn[i] = [obs[i, -1]] if restarted[i] else [*drawn[i], obs[i, -1]]
            padded = [drawn[i][0]] * prep.history + drawn[i]
            expected = padded[len(padded) - prep.history :: prep.frame_gap]
            assert np.array_equal(obs[i], np.stack(expected))
    pixels.close()


def test_preprocessings_the_envs_cannot_make_are_refused_with_what_to_do() -> None:
    with pytest.raises(ValueError, match="renders 600x400 RGB frames"):
        gym.make(ENV, observation_preprocessing={**PREPROCESSING.to_dict(), "frame_width": 300, "right": 300})
    # a crop that is not a whole number of screen px per output px: Gymnasium's renderer and Pillow make it,
    # the NumPy twin does not
    odd = {**PREPROCESSING.to_dict(), "width": 160}
    shape = gym.make(ENV, observation_preprocessing=odd).observation_space.shape
    assert shape == (PREPROCESSING.frame_stack, 25, 160, 1)
    with pytest.raises(ValueError, match=r"use gymnasium\.make"):
        gym.make_vec(ENV, num_envs=2, vectorization_mode="vector_entry_point", observation_preprocessing=odd)


def test_a_policy_made_with_another_preprocessing_is_evaluated_and_recorded_on_its_own(tmp_path: Path) -> None:
    """A policy's config.json says how its observations are made; evaluation, the stop rule's vector twin and the
    replay video make the env with that preprocessing, not the env's default (which changed once: the policies
    made before act on two consecutive 25x100 frames)."""
    other = TWO_FRAMES_25X100 if PREPROCESSING != TWO_FRAMES_25X100 else replace(PREPROCESSING, frame_stack=3)
    torch.manual_seed(0)
    space = gym.spaces.Box(0, 255, other.observation_shape, np.uint8)
    network = CNNSpec((ConvLayer(4, 5, 2),), (8,), "relu", {"q_values": 2})
    made = new_policy(
        "dqn", ENV, space, gym.spaces.Discrete(2), network, {}, 0, action_distribution="epsilon_greedy", frames=other
    )
    policy = load_policy(made.save(tmp_path / "old"))
    assert policy.spec.env_kwargs == {} and policy.spec.frames == other
    assert policy.spec.env_make_kwargs == {"observation_preprocessing": other.to_dict()}
    real = evaluate(policy, episodes=2, seed=1)
    twin = evaluate(policy, episodes=2, seed=1, vector_twin=True)
    assert real.n_eval_episodes == twin.n_eval_episodes == 2 and min(real.episode_returns) >= 8
    replay = record_replay(policy, tmp_path / "replay.mp4", max_steps=20)
    scale = min(400 // (other.frame_stack * other.height), 600 // other.width)
    assert replay.size == (600 + 8 + scale * other.width, 400)  # the screen, a gutter, what the network sees


@pytest.fixture(scope="module")
def dqn_run(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    cfg = ALGORITHMS["dqn"].make_config(ENV, **TINY_DQN)
    out = tmp_path_factory.mktemp("dqn") / "run"
    return ALGORITHMS["dqn"].train(ENV, cfg, seed=1, out=out, progress=False)


def test_dqn_writes_a_cnn_policy_that_acts_on_the_envs_observations(dqn_run: TrainResult) -> None:
    config = json.loads((dqn_run.out / "config.json").read_text())
    assert config["network"]["kind"] == "cnn_heads" and config["observation_preprocessing"] == PREPROCESSING.to_dict()
    policy = load_policy(dqn_run.out)
    assert policy.spec.frames == PREPROCESSING
    obs, _ = gym.make(ENV).reset(seed=0)
    assert policy.act(obs).actions.shape == (1,)
    result = evaluate(policy, episodes=2, seed=4)  # the real env, Gymnasium's renderer
    assert result.episode_returns == [float(n) for n in result.episode_lengths]


def test_the_package_says_pixels_and_its_video_shows_what_the_network_sees(
    dqn_run: TrainResult, tmp_path: Path
) -> None:
    import imageio_ffmpeg
    from huggingface_hub import ModelCard

    package = package_policy(dqn_run.out, tmp_path / "hub", repo_id="someone/pixels", episodes=2)
    card = ModelCard.load(package.folder / "README.md")
    assert "acts on pixels" in card.text and "box filter" in card.text and "rows 162-311 and columns 0-599" in card.text
    assert "a CNN (conv layers: 16 5x5/2, 32 5x5/2, 32 3x3/1" in card.text
    reader = imageio_ffmpeg.read_frames(str(package.folder / "replay.mp4"))
    meta = next(reader)
    width, height = meta["size"]
    assert (width, height) == (600 + 8 + 5 * 100, 400)  # the screen, a gutter, the three 25x100 frames upscaled 5x
    frame = np.frombuffer(next(reader), dtype=np.uint8).reshape(height, width, 3)
    # the right panel is the first observation, upscaled: compare it at the centres of its 5x5 blocks
    obs, _ = gym.make(ENV).reset(seed=package.evaluation.episode_seeds[0])
    panel = frame[2:375:5, 608 + 2 :: 5, 0].astype(int)
    assert np.abs(panel - obs.reshape(75, 100).astype(int)).mean() < 6  # H.264 is lossy, but not by much


def test_dqn_ctrl_c_checkpoints_its_uint8_replay_memory_and_resumes(tmp_path: Path) -> None:
    algo, out = ALGORITHMS["dqn"], tmp_path / "run"
    config = algo.make_config(ENV, **TINY_DQN)
    first = train_until_ctrl_c(algo, ENV, config, out)
    assert first.interrupted and 0 < first.env_steps < config.total_steps
    (tensors,) = (out / "checkpoint").glob("tensors-*.safetensors")
    with safe_open(str(tensors), "pt") as f:
        replay = f.get_tensor("buffer/obs")
    assert str(replay.dtype) == "torch.uint8" and tuple(replay.shape[1:]) == PREPROCESSING.observation_shape
    assert read_checkpoint_state(out)["counters"]["env_steps"] == first.env_steps
    assert main(["train", "dqn", ENV, "--resume", str(out), "--no-progress"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["interrupted"] is False and results["training"]["resumed_at_env_steps"] == [first.env_steps]


def test_ppo_trains_the_same_cnn_with_policy_and_value_heads(tmp_path: Path) -> None:
    cfg = ALGORITHMS["ppo"].make_config(
        ENV, total_steps=512, num_envs=4, n_steps=64, minibatch_size=128, epochs=1, eval_episodes=2
    )
    run = ALGORITHMS["ppo"].train(ENV, cfg, seed=0, out=tmp_path / "run", progress=False)
    config = json.loads((run.out / "config.json").read_text())
    assert config["network"]["kind"] == "cnn_heads" and config["network"]["heads"] == {"logits": 2, "value": 1}
    policy = load_policy(run.out)
    obs, _ = gym.make(ENV).reset(seed=0)
    result = policy.act(obs)
    assert result.values is not None and result.probabilities.shape == (1, 2)
    np.testing.assert_allclose(result.probabilities, run.policy.act(obs).probabilities, rtol=1e-6)
    with pytest.raises(UsageError, match="drop --normalize-obs"):  # the network scales pixels itself
        ALGORITHMS["ppo"].train(
            ENV, ALGORITHMS["ppo"].make_config(ENV, normalize_obs=True), seed=0, out=tmp_path / "x", progress=False
        )


def test_ppo_on_pixels_learns_to_balance_better_than_a_uniformly_random_policy(tmp_path: Path) -> None:
    """A small budget (16k env steps; about 40 s of one core with the evaluations): PPO with rewards scaled by the
    return's std (without it the value loss of the shared CNN dominates the clipped gradient and the policy does not
    move: docs/algorithms.md), compared with the random baseline on the same evaluation episodes (the real env)."""
    episodes = "30"
    ppo_flags = ["--total-steps", "16384", "--n-steps", "64", "--minibatch-size", "64", "--learning-rate", "5e-4"]
    common = ["--seed", "0", "--eval-episodes", episodes, "--no-progress"]
    assert main(["train", "ppo", ENV, "--out", str(tmp_path / "ppo"), *common, *ppo_flags, "--normalize-reward"]) == 0
    assert main(["train", "random", ENV, "--out", str(tmp_path / "random"), *common]) == 0
    trained, uniform = (json.loads((tmp_path / name / "results.json").read_text()) for name in ("ppo", "random"))
    assert trained["episode_seeds"] == uniform["episode_seeds"] and trained["deterministic"]

    def bounds(result: dict[str, Any]) -> tuple[float, float]:
        error = 3 * result["std_reward"] / math.sqrt(result["n_eval_episodes"])  # 3 standard errors of the mean
        return result["mean_reward"] - error, result["mean_reward"] + error

    assert 15 < uniform["mean_reward"] < 30  # what uniform actions score on CartPole (about 22)
    assert bounds(trained)[0] > bounds(uniform)[1]  # clearly better, not a lucky draw
