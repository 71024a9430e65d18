"""`rlship package`: the folder for the Hub (card, replay video, fresh results), checked by reading it back with
huggingface_hub's own card parser and by decoding the video."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import rlship
from rlship import evaluate, load_policy
from rlship.errors import RlshipError
from rlship.hub.package import Package, package_policy
from rlship.networks import NetworkSpec
from rlship.run_folder import Results, write_results
from rlship.training.run import TrainResult
from tests.cli_run import RLSHIP
from tests.conftest import untrained_policy
from tests.loaded_modules import modules_after_importing

EPISODES = 10


@pytest.fixture(scope="module")
def packaged(trained: TrainResult, tmp_path_factory: pytest.TempPathFactory) -> Package:
    return package_policy(trained.out, tmp_path_factory.mktemp("hub") / "ppo", episodes=EPISODES, seed=0)


def test_package_holds_weights_config_results_and_the_run_files(packaged: Package, trained: TrainResult) -> None:
    files = {p.name for p in packaged.folder.iterdir()}
    assert files == {
        "README.md",
        "config.json",
        "model.safetensors",
        "results.json",
        "hyperparameters.json",
        "training_curve.png",
        "train_log.csv",
        "replay.mp4",
    }
    for name in ("config.json", "model.safetensors", "training_curve.png"):
        assert (packaged.folder / name).read_bytes() == (trained.out / name).read_bytes(), name
    config = json.loads((packaged.folder / "config.json").read_text())
    assert json.loads((packaged.folder / "hyperparameters.json").read_text()) == config["hyperparameters"]
    results = json.loads((packaged.folder / "results.json").read_text())
    assert results["n_eval_episodes"] == EPISODES and results["deterministic"] is True and results["seed"] == 0
    assert results["episode_seeds"] == [1_000_000 + i for i in range(EPISODES)]
    assert results["reward_threshold"] == 475.0
    shipped = json.loads((trained.out / "results.json").read_text())
    assert results["episode_returns"] == shipped["episode_returns"][:EPISODES]  # a fresh run of the same protocol
    assert results["training"] == shipped["training"]


def test_card_metadata_parses_back_with_huggingface_hub_and_equals_results_json(packaged: Package) -> None:
    from huggingface_hub import ModelCard

    card = ModelCard.load(packaged.folder / "README.md")
    results = json.loads((packaged.folder / "results.json").read_text())
    assert card.data.library_name == "rlship" and card.data.pipeline_tag == "reinforcement-learning"
    assert set(card.data.tags) == {
        "reinforcement-learning",
        "deep-reinforcement-learning",
        "CartPole-v1",
        "ppo",
        "custom-implementation",
    }
    (result,) = card.data.eval_results
    assert result.task_type == "reinforcement-learning"
    assert result.dataset_type == "CartPole-v1" and result.dataset_name == "CartPole-v1"
    assert result.metric_type == "mean_reward"
    assert result.metric_value == f"{results['mean_reward']:.2f} +/- {results['std_reward']:.2f}"
    body = card.text
    assert f'pip install "rlship=={rlship.__version__}"' in body  # the version that made the card
    assert 'rlship.load_policy("hf://OWNER/NAME")' in body  # placeholder until push names the repo
    assert "rlship serve hf://OWNER/NAME" in body
    assert "rlship train ppo CartPole-v1 --seed 0" in body and "--gamma 0.98" in body
    assert "![training curve](training_curve.png)" in body and 'src="replay.mp4"' in body
    assert f"over {EPISODES} episodes" in body and "deterministic (greedy)" in body and "1000000" in body
    assert "| learning_rate |" in body


def test_replay_video_is_h264_yuv420p_with_one_frame_per_step_plus_the_reset_frame(packaged: Package) -> None:
    import imageio.v3 as iio
    import imageio_ffmpeg

    video = packaged.folder / "replay.mp4"
    reader = imageio_ffmpeg.read_frames(str(video))
    meta = next(reader)
    reader.close()
    assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p")
    assert meta["fps"] == gym.make("CartPole-v1").metadata["render_fps"]
    frames = [frame for frame in iio.imiter(video, plugin="FFMPEG")]
    results = json.loads((packaged.folder / "results.json").read_text())
    # The replay is the first evaluation episode (same seed, greedy actions): its length is in results.json.
    assert packaged.replay_steps == results["episode_lengths"][0]
    assert len(frames) == packaged.replay_steps + 1
    assert frames[0].shape == (400, 600, 3)
    assert not np.array_equal(frames[0], frames[-1])  # the cart moved: real frames, not one image repeated


def test_any_algorithms_artifact_packages(tmp_path: Path) -> None:
    """A value-based policy (q_values head, epsilon-greedy) with other hyperparameters: the card follows config.json."""
    policy = untrained_policy(
        "dqn",
        NetworkSpec((32,), "relu", {"q_values": 2}),
        hyperparameters={"buffer_size": 50_000, "target_update_interval": 500, "double_q": True},
        seed=3,
        action_distribution="epsilon_greedy",
        epsilon=0.05,
    )
    run = policy.save(tmp_path / "dqn-run")
    package = package_policy(run, tmp_path / "hub", repo_id="alice/dqn-cartpole", episodes=3)
    from huggingface_hub import ModelCard

    card = ModelCard.load(package.folder / "README.md")
    assert "dqn" in card.data.tags and card.data.eval_results[0].metric_value == package.evaluation.metric
    assert "rlship train dqn CartPole-v1 --seed 3" in card.text and "--double-q" in card.text
    assert 'rlship.load_policy("hf://alice/dqn-cartpole")' in card.text
    assert "rlship serve hf://alice/dqn-cartpole" in card.text
    assert "training_curve.png" not in card.text  # this run has no curve: the card does not point at one
    assert "| buffer_size | `50000` |" in card.text


def test_package_refuses_a_folder_that_is_not_a_package(tmp_path: Path, saved_policy: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    with pytest.raises(RlshipError, match="not an earlier rlship package"):
        package_policy(saved_policy, out, episodes=2)
    assert (out / "thesis.tex").read_text() == "precious"
    with pytest.raises(ValueError, match="not OWNER/NAME"):
        package_policy(saved_policy, tmp_path / "x", repo_id="no-owner", episodes=2)


def test_cli_package_and_a_video_failure_that_leaves_no_card(tmp_path: Path) -> None:
    out = tmp_path / "hub"
    proc = subprocess.run(
        [RLSHIP, "package", "default", "--out", str(out), "--episodes", "3", "--repo-id", "alice/cartpole"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["mean_reward"] == "500.00 +/- 0.00" and summary["replay_steps"] == 500
    assert set(summary["seconds"]) >= {"evaluation", "video_render", "video_encode", "card"}
    assert "hf://alice/cartpole" in (out / "README.md").read_text()

    # An ffmpeg that cannot run: packaging fails with one clear line, and writes no folder at all.
    broken = tmp_path / "broken"
    env = {**os.environ, "IMAGEIO_FFMPEG_EXE": str(tmp_path / "no-ffmpeg-here")}
    proc = subprocess.run(
        [RLSHIP, "package", "default", "--out", str(broken), "--episodes", "2"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 1
    assert "could not encode replay.mp4" in proc.stderr and "Traceback" not in proc.stderr
    assert not broken.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".broken")]  # no staging folder left behind


def test_importing_rlship_and_its_cli_leaves_the_hub_libraries_unloaded() -> None:
    assert not {"huggingface_hub", "imageio_ffmpeg", "pygame"} & modules_after_importing("rlship", "rlship.cli")


def test_an_interrupted_run_is_refused_unless_allowed(tmp_path: Path, saved_policy: Path) -> None:
    evaluation = evaluate(load_policy(saved_policy), episodes=2)
    write_results(saved_policy, Results(evaluation, 475.0, False, interrupted=True, training={"env_steps": 512}))
    with pytest.raises(RlshipError, match=r"was interrupted.*--resume"):
        package_policy(saved_policy, tmp_path / "hub", episodes=2)
    assert not (tmp_path / "hub").exists()
    package = package_policy(saved_policy, tmp_path / "hub", episodes=2, allow_interrupted=True)
    results = json.loads((package.folder / "results.json").read_text())
    assert results["interrupted"] is True and results["n_eval_episodes"] == 2


class NoRenderEnv(gym.Env):
    """An env that cannot render off-screen (a simulator wrapper without a renderer): 20 steps of reward 1."""

    metadata: dict = {"render_modes": []}  # noqa: RUF012

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.np_random.uniform(-1, 1, 3).astype(np.float32), {}

    def step(self, action):
        self.t += 1
        return self.np_random.uniform(-1, 1, 3).astype(np.float32), 1.0, self.t >= 20, False, {}


@pytest.mark.filterwarnings("ignore:.*render_mode='rgb_array' that is not in the possible render_modes")
def test_no_video_packages_a_policy_whose_env_cannot_render(tmp_path: Path) -> None:
    gym.register("RlshipTest/NoRender-v0", entry_point=NoRenderEnv)
    try:
        policy = untrained_policy("ppo", NetworkSpec((8,), "tanh", {"logits": 2}), env_id="RlshipTest/NoRender-v0")
        run = policy.save(tmp_path / "run")
        with pytest.raises(RlshipError, match="cannot render RlshipTest/NoRender-v0 off-screen"):
            package_policy(run, tmp_path / "hub", episodes=2)
        assert not (tmp_path / "hub").exists()
        package = package_policy(run, tmp_path / "hub", episodes=2, video=False, tags=["deep-rl-course"])
    finally:
        gym.registry.pop("RlshipTest/NoRender-v0")
    from huggingface_hub import ModelCard

    assert "replay.mp4" not in package.files and package.replay_steps is None
    card = ModelCard.load(package.folder / "README.md")
    assert "<video" not in card.text and "## Replay" not in card.text
    assert card.data.eval_results[0].metric_value == "20.00 +/- 0.00"
    assert card.data.tags[:3] == ["reinforcement-learning", "deep-reinforcement-learning", "RlshipTest/NoRender-v0"]
    assert card.data.tags[-1] == "deep-rl-course"


def test_package_with_onnx_and_tags_from_the_cli(tmp_path: Path) -> None:
    out = tmp_path / "hub"
    proc = subprocess.run(
        [
            RLSHIP,
            "package",
            "default",
            "--out",
            str(out),
            "--episodes",
            "2",
            "--onnx",
            "--no-video",
            "--tag",
            "deep-rl-course",
            "--tag",
            "my-team",
            "--tag",
            "deep-rl-course",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert set(json.loads(proc.stdout)["files"]) == {
        "README.md",
        "config.json",
        "model.safetensors",
        "results.json",
        "hyperparameters.json",
        "model.onnx",
    }
    from huggingface_hub import ModelCard

    card = ModelCard.load(out / "README.md")
    assert card.data.tags[-2:] == ["deep-rl-course", "my-team"]  # once each, after rlship's own
    assert "## Run it with onnxruntime" in card.text and 'hf_hub_download("OWNER/NAME", "model.onnx")' in card.text
    assert 'actions, probabilities, values = session.run(None, {"observations": observations})' in card.text
    # the packaged graph is the policy: onnxruntime gives its greedy actions
    import onnxruntime as ort

    observations = np.random.default_rng(0).uniform(-0.2, 0.2, (200, 4)).astype(np.float32)
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    actions = session.run(["actions"], {"observations": observations})[0]
    np.testing.assert_array_equal(actions, rlship.load_policy("default").act(observations).actions)
    # config.json stays the run's own, byte for byte
    shipped = Path(rlship.sources.default_policy_dir()) / "config.json"
    assert (out / "config.json").read_bytes() == shipped.read_bytes()

    bad = subprocess.run(
        [RLSHIP, "package", "default", "--out", str(tmp_path / "x"), "--tag", "no spaces"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 1 and "--tag 'no spaces' is not a Hub tag" in bad.stderr
    assert not (tmp_path / "x").exists()


def test_the_random_baseline_card_says_its_actions_are_random(tmp_path: Path) -> None:
    policy = untrained_policy("random", NetworkSpec((4,), "tanh", {"logits": 2}), action_distribution="uniform")
    package = package_policy(policy.save(tmp_path / "run"), tmp_path / "hub", episodes=3, video=False)
    text = (package.folder / "README.md").read_text()
    assert "its actions are random even when deterministic actions are asked for" in text
    assert "deterministic (greedy) actions" not in text


def test_card_describes_the_algorithm_from_config_and_hub_never_imports_training(tmp_path: Path) -> None:
    from rlship.hub.card import render_card
    from rlship.policy import load_policy

    policy = load_policy("default")
    evaluation = package_policy("default", tmp_path / "hub", episodes=2, video=False).evaluation
    described = render_card(
        {**policy.config, "algorithm_summary": "proximal policy optimization"}, evaluation, None, None, None
    )
    assert "A `ppo` (proximal policy optimization) agent" in described.text
    plain = render_card(
        {k: v for k, v in policy.config.items() if k != "algorithm_summary"}, evaluation, None, None, None
    )
    assert "A `ppo` agent for the Gymnasium environment" in plain.text

    hub = [f"rlship.hub.{name}" for name in ("card", "package", "push", "pull", "cli", "video")]
    assert not [m for m in modules_after_importing(*hub) if m.startswith("rlship.training")]
