"""rlship/Pixelcopter-v0 through the rest of rlship like any other env: a short real training run, `rlship
package` (card and a decoded replay.mp4), and `rlship serve` driven by `rlship simulate` on a loopback port."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import rlship
from rlship.hub.package import Package, package_policy
from rlship.training import ALGORITHMS
from rlship.training.run import TrainResult
from tests.cli_run import RLSHIP
from tests.serve_load import kill_server, start_server, wait_ready

ENV_ID = "rlship/Pixelcopter-v0"
EPISODES = 5


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """A few updates of the Pixelcopter PPO preset: a real run folder, in seconds."""
    ppo = ALGORITHMS["ppo"]
    config = ppo.make_config(ENV_ID, total_steps=4096, eval_episodes=EPISODES)
    return ppo.train(ENV_ID, config, seed=0, out=tmp_path_factory.mktemp("runs") / "ppo-pixelcopter", progress=False)


@pytest.fixture(scope="module")
def packaged(run: TrainResult, tmp_path_factory: pytest.TempPathFactory) -> Package:
    return package_policy(
        run.out, tmp_path_factory.mktemp("hub") / "pixelcopter", repo_id="alice/ppo-pixelcopter", episodes=EPISODES
    )


def test_package_writes_a_card_for_the_env(packaged: Package) -> None:
    from huggingface_hub import ModelCard

    card = ModelCard.load(packaged.folder / "README.md")
    result = card.data.eval_results[0]
    assert result.dataset_name == ENV_ID and result.metric_value == packaged.evaluation.metric
    assert f'gymnasium.make("{ENV_ID}")' in card.text and "rlship serve hf://alice/ppo-pixelcopter" in card.text
    results = json.loads((packaged.folder / "results.json").read_text())
    assert results["env_id"] == ENV_ID and results["n_eval_episodes"] == EPISODES
    assert "reward_threshold" not in results or results["reward_threshold"] is None


def test_replay_video_decodes_to_the_first_evaluation_episode(packaged: Package) -> None:
    import imageio.v3 as iio

    frames = list(iio.imiter(packaged.folder / "replay.mp4", plugin="FFMPEG"))
    results = json.loads((packaged.folder / "results.json").read_text())
    assert packaged.replay_steps == results["episode_lengths"][0]
    assert len(frames) == packaged.replay_steps + 1  # the reset frame, then one per step
    assert frames[0].shape == (384, 384, 3)
    assert not np.array_equal(frames[0], frames[-1])  # the cave scrolled: real frames
    # The first frame is the reset state as rendered (within the codec's loss): green cave, black corridor.
    env = gym.make(ENV_ID, render_mode="rgb_array")
    env.reset(seed=results["episode_seeds"][0])
    assert np.abs(frames[0].astype(int) - env.render().astype(int)).mean() < 8


def test_served_policy_scores_like_the_local_evaluation(run: TrainResult) -> None:
    local = rlship.evaluate(rlship.load_policy(run.out), episodes=EPISODES, seed=3)
    proc, url = start_server(str(run.out))
    try:
        wait_ready(proc, url)
        out = subprocess.run(
            [RLSHIP, "simulate", "--url", url, "--env", ENV_ID, "--episodes", str(EPISODES), "--seed", "3"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr
        served = re.search(r"return: (-?[\d.]+) \+/- ([\d.]+)", out.stdout)
        assert served, out.stdout
        assert served.group(0) == f"return: {local.metric}"
        calls = re.search(r"(\d+) calls to /act", out.stdout)
        assert calls and int(calls.group(1)) == sum(local.episode_lengths)  # one call per step of every episode
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        kill_server(proc)


def test_the_run_folder_records_the_env(run: TrainResult) -> None:
    config = json.loads((Path(run.out) / "config.json").read_text())
    assert config["env_id"] == ENV_ID
    assert config["observation_space"]["shape"] == [7] and config["action_space"] == {
        "type": "Discrete",
        "n": 2,
        "start": 0,
    }


def test_cli_trains_reinforce_with_the_courses_settings(tmp_path: Path) -> None:
    out = tmp_path / "reinforce-pixelcopter"
    args = ["--seed", "1", "--out", str(out), "--total-steps", "300", "--eval-episodes", "2", "--no-progress"]
    proc = subprocess.run([RLSHIP, "train", "reinforce", ENV_ID, *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    config = json.loads((out / "config.json").read_text())
    hp = config["hyperparameters"]
    assert (hp["batch_episodes"], hp["learning_rate"], hp["gamma"]) == (1, 1e-4, 0.99)  # the course's
    assert config["network"]["hidden_sizes"] == [64, 128] and config["network"]["activation"] == "relu"
    assert json.loads((out / "results.json").read_text())["n_eval_episodes"] == 2
