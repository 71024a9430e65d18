"""rlship/CartPolePixels-v1: CartPole-v1 seen through Gymnasium's renderer; the NumPy renderer training uses draws
the same frames within a stated tolerance; DQN and PPO train a CNN on it, and the policy packages with a card that
says how its pixels are made and a video that shows what the network sees."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from safetensors import safe_open

import rlship  # noqa: F401 (registers the rlship/ envs)
from rlship import evaluate, load_policy
from rlship.cli import main
from rlship.errors import UsageError
from rlship.games.cartpole_pixels import PREPROCESSING, RENDER_MAX_DIFFERENCE, RENDER_TOLERANCE, draw_frames
from rlship.hub.package import package_policy
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
    assert env.observation_space == gym.spaces.Box(0, 255, (2, 25, 100, 1), np.uint8)
    obs, _ = env.reset(seed=5)
    plain.reset(seed=5)
    assert np.array_equal(obs[0], obs[1])  # an episode starts with copies of its first frame
    first = PREPROCESSING.preprocess(env.render())
    assert np.array_equal(obs[1], first)
    rng = np.random.default_rng(0)
    for _ in range(30):  # same dynamics, reward and termination, step for step
        action = int(rng.integers(2))
        obs, reward, terminated, truncated, _ = env.step(action)
        _, plain_reward, plain_terminated, plain_truncated, _ = plain.step(action)
        np.testing.assert_allclose(env.unwrapped.state, plain.unwrapped.state)
        assert (reward, terminated, truncated) == (plain_reward, plain_terminated, plain_truncated)
        assert np.array_equal(obs[1], PREPROCESSING.preprocess(env.render()))  # the newest frame last
        if terminated or truncated:
            break
    env.close()


def test_the_numpy_renderer_matches_gymnasiums_rendered_and_preprocessed_frames() -> None:
    env = gym.make(ENV)
    rng = np.random.default_rng(1)
    obs, _ = env.reset(seed=0)
    mean_diffs, max_diff = [], 0
    for _ in range(120):  # random play: the cart and pole in many places and angles, up to termination
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(2)))
        state = np.asarray(env.unwrapped.state, dtype=np.float64)
        diff = np.abs(draw_frames(state[None])[0].astype(int) - obs[-1].astype(int))
        mean_diffs.append(diff.mean())
        max_diff = max(max_diff, int(diff.max()))
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    assert max(mean_diffs) <= RENDER_TOLERANCE
    assert max_diff <= RENDER_MAX_DIFFERENCE
    # not trivially equal: a frame of a different state differs by far more than the tolerance
    moved = draw_frames(np.array([[0.5, 0.0, 0.1, 0.0]]))[0].astype(int)
    assert np.abs(moved - obs[-1].astype(int)).mean() > 4 * RENDER_TOLERANCE


def test_the_training_vector_env_steps_cartpole_and_restarts_the_stack_after_a_done() -> None:
    pixels = gym.make_vec(ENV, num_envs=3, vectorization_mode="vector_entry_point")
    plain = gym.make_vec("CartPole-v1", num_envs=3, vectorization_mode="vector_entry_point")
    assert pixels.single_observation_space == gym.make(ENV).observation_space
    assert pixels.metadata["observation_preprocessing"] == PREPROCESSING
    obs, _ = pixels.reset(seed=3)
    states, _ = plain.reset(seed=3)
    assert np.array_equal(obs[:, 0], obs[:, 1])
    rng = np.random.default_rng(0)
    restarted = np.zeros(3, dtype=bool)
    for _ in range(200):
        actions = rng.integers(0, 2, 3)
        previous = obs
        obs, reward, terminated, truncated, _ = pixels.step(actions)
        states, plain_reward, plain_terminated, plain_truncated, _ = plain.step(actions)
        assert np.array_equal(reward, plain_reward) and np.array_equal(terminated, plain_terminated)
        assert np.array_equal(truncated, plain_truncated)
        exact = pixels.unwrapped.state.T  # float64; the plain env's observations are its float32 copy
        assert np.array_equal(states, exact.astype(np.float32))
        assert np.array_equal(obs[:, -1], draw_frames(exact))
        for i in range(3):  # next-step autoreset: the stack restarts from the new episode's first frame
            expected_older = obs[i, -1] if restarted[i] else previous[i, -1]
            assert np.array_equal(obs[i, 0], expected_older)
        restarted = terminated | truncated
    pixels.close()


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
    assert (width, height) == (600 + 8 + 6 * 100, 400)  # the screen, a gutter, the two 25x100 frames upscaled 6x
    frame = np.frombuffer(next(reader), dtype=np.uint8).reshape(height, width, 3)
    # the right panel is the first observation, upscaled: compare it at the centres of its 6x6 blocks
    obs, _ = gym.make(ENV).reset(seed=package.evaluation.episode_seeds[0])
    panel = frame[3:300:6, 608 + 3 :: 6, 0].astype(int)
    assert np.abs(panel - obs.reshape(50, 100).astype(int)).mean() < 6  # H.264 is lossy, but not by much


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
