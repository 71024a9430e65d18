"""Box (continuous) actions end to end: the artifact contract (Gaussian distribution, observation normalisation
inside model.safetensors), the algorithms that train Box envs (a contract suite over ppo, a2c, reinforce on
Pendulum-v1 with tiny budgets), serving through a real `rlship serve`, export, and packaging for the Hub."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from rlship import load_policy
from rlship.errors import ArtifactError
from rlship.evaluation import evaluate
from rlship.policy import Policy
from rlship.serving.simulate import simulate
from rlship.training import ALGORITHMS
from rlship.training.checkpoint import CheckpointOptions, read_checkpoint_state
from rlship.training.run import TrainResult
from tests.cli_run import RLSHIP
from tests.conftest import untrained_policy
from tests.serve_load import served
from tests.training_helpers import train_until_ctrl_c

ENV = "Pendulum-v1"
BOX_ALGORITHMS = ("ppo", "a2c", "reinforce")
TINY: dict[str, dict[str, Any]] = {
    "ppo": dict(total_steps=1200, num_envs=2, n_steps=200, epochs=2, minibatch_size=200),
    "a2c": dict(total_steps=1200, num_envs=2, n_steps=20),
    "reinforce": dict(total_steps=1200, batch_episodes=2),
}


def tiny_config(name: str, **extra: Any) -> Any:
    settings = dict(eval_episodes=2, confirm_episodes=2, normalize_obs=True)
    return ALGORITHMS[name].make_config(ENV, **{**TINY[name], **settings, **extra})


@pytest.fixture(scope="module", params=BOX_ALGORITHMS)
def box_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    out = tmp_path_factory.mktemp(request.param) / "run"
    return ALGORITHMS[request.param].train(ENV, tiny_config(request.param), seed=5, out=out, progress=False)


OBS = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, -3.0], [-0.6, 0.8, 7.5]], dtype=np.float32)


def _normalised(policy: Policy, obs: np.ndarray) -> np.ndarray:
    norm = policy.obs_norm
    assert norm is not None
    return np.clip((obs - norm.mean) / np.sqrt(norm.var + norm.epsilon), -norm.clip, norm.clip).astype(np.float32)


# --- the contract, for every algorithm that trains Box actions


def test_config_describes_the_box_space_the_gaussian_and_the_normalisation(box_run: TrainResult) -> None:
    config = json.loads((box_run.out / "config.json").read_text())
    assert config["action_space"] == {"type": "Box", "shape": [1], "dtype": "float32", "low": [-2.0], "high": [2.0]}
    assert config["action_distribution"] == {"kind": "gaussian", "log_std": "state_independent", "bound": "clip"}
    assert config["observation_normalization"]["clip"] == 10.0
    assert config["reward_scaling"] == {"kind": "none"}
    tensors = load_file(str(box_run.out / "model.safetensors"))
    assert tensors["obs_norm.mean"].shape == (3,) and tensors["obs_norm.var"].shape == (3,)
    assert float(tensors["obs_norm.count"][0]) > 100  # updated from the observations training collected
    assert tensors["log_std"].shape == (1,)


def test_act_returns_box_actions_mean_and_std(box_run: TrainResult) -> None:
    policy = load_policy(box_run.out)
    greedy = policy.act(OBS)
    assert greedy.actions.shape == (3, 1) and greedy.actions.dtype == np.float32
    assert greedy.probabilities is None and greedy.mean is not None and greedy.std is not None
    assert greedy.mean.shape == greedy.std.shape == (3, 1) and (greedy.std > 0).all()
    np.testing.assert_array_equal(greedy.actions, np.clip(greedy.mean, -2, 2))  # deterministic: the clipped mean
    one = policy.act(OBS[0])  # a single observation is a batch of one
    assert one.actions.shape == (1, 1)
    a = policy.act(OBS, deterministic=False, rng=np.random.default_rng(7)).actions
    b = policy.act(OBS, deterministic=False, rng=np.random.default_rng(7)).actions
    np.testing.assert_array_equal(a, b)
    assert ((a >= -2) & (a <= 2)).all() and not np.array_equal(a, greedy.actions)
    # the saved policy answers like the trained one
    np.testing.assert_allclose(box_run.policy.act(OBS).mean, greedy.mean, rtol=1e-6)  # type: ignore[arg-type]


def test_normalisation_is_applied_inside_act(box_run: TrainResult, tmp_path: Path) -> None:
    policy = load_policy(box_run.out)
    with torch.inference_mode():
        raw = policy.network(torch.from_numpy(_normalised(policy, OBS)))["mean"].numpy()
    np.testing.assert_allclose(policy.act(OBS).mean, raw, rtol=1e-6)  # type: ignore[arg-type]
    # other statistics in model.safetensors give other actions: they are read from the artifact, nothing else
    folder = tmp_path / "moved"
    folder.mkdir()
    (folder / "config.json").write_text((box_run.out / "config.json").read_text())
    tensors = load_file(str(box_run.out / "model.safetensors"))
    tensors["obs_norm.mean"] = tensors["obs_norm.mean"] + 5.0
    save_file(tensors, str(folder / "model.safetensors"))
    moved = load_policy(folder)
    np.testing.assert_allclose(moved.obs_norm.mean, policy.obs_norm.mean + 5.0, rtol=1e-6)  # type: ignore[union-attr]
    assert not np.allclose(moved.act(OBS).mean, policy.act(OBS).mean)  # type: ignore[arg-type]


def test_evaluation_follows_the_protocol(box_run: TrainResult) -> None:
    result = evaluate(load_policy(box_run.out), episodes=2, seed=0)
    assert result.episode_lengths == [200, 200] and result.deterministic
    assert result.to_dict() == evaluate(load_policy(box_run.out), episodes=2, seed=0).to_dict() | {
        "wall_seconds": result.wall_seconds,
        "date": result.date,
    }


@pytest.mark.parametrize("name", BOX_ALGORITHMS)
def test_ctrl_c_checkpoints_the_normaliser_and_resume_goes_on(name: str, tmp_path: Path) -> None:
    out, config = tmp_path / "run", tiny_config(name)
    first = train_until_ctrl_c(ALGORITHMS[name], ENV, config, out)
    assert first.interrupted and 0 < first.env_steps < config.total_steps
    state = read_checkpoint_state(out)
    assert "obs_norm" in json.dumps(state)  # the running statistics are part of the checkpoint
    count_at_stop = load_policy(out).obs_norm.count  # type: ignore[union-attr]
    resumed = ALGORITHMS[name].train(
        ENV, config, seed=2, out=out, progress=False, checkpoint=CheckpointOptions(resume=True)
    )
    assert not resumed.interrupted and resumed.env_steps >= config.total_steps
    # the statistics went on from the checkpoint's (a fresh normaliser would have counted fewer observations)
    assert load_policy(out).obs_norm.count > count_at_stop + resumed.env_steps - first.env_steps - 1  # type: ignore[union-attr]


def test_reward_scaling_is_recorded_and_does_not_change_acting(tmp_path: Path) -> None:
    config = tiny_config("ppo", normalize_reward=True)
    result = ALGORITHMS["ppo"].train(ENV, config, seed=1, out=tmp_path / "run", progress=False)
    saved = json.loads((result.out / "config.json").read_text())
    assert saved["reward_scaling"]["kind"] == "return_std" and saved["reward_scaling"]["gamma"] == config.gamma
    # acting never sees the reward scale: the artifact holds no tensor of it
    assert not any("reward" in name for name in load_file(str(result.out / "model.safetensors")))


# --- malformed Box artifacts are refused, naming the field


def _broken(box_folder: Path, tmp_path: Path, edit: Any) -> Path:
    folder = tmp_path / "broken"
    folder.mkdir()
    config = json.loads((box_folder / "config.json").read_text())
    edit(config)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").write_bytes((box_folder / "model.safetensors").read_bytes())
    return folder


@pytest.mark.parametrize(
    ("case", "edit", "field"),
    [
        ("bound", lambda c: c["action_distribution"].update(bound="squash"), "action_distribution.bound"),
        ("log_std", lambda c: c["action_distribution"].update(log_std=3), "action_distribution.log_std"),
        ("infinite", lambda c: c["action_space"].update(low=["-inf"]), "action_space.low"),
        ("no log_std", lambda c: c["network"].update(log_std=0), "network.heads"),
        ("softmax", lambda c: c["action_distribution"].update(kind="softmax"), "action_space"),
        ("clip", lambda c: c["observation_normalization"].update(clip=-1), "observation_normalization.clip"),
        ("norm", lambda c: c.update(observation_normalization=[1]), "observation_normalization"),
    ],
)
def test_a_malformed_box_config_is_an_artifact_error(tmp_path: Path, case: str, edit: Any, field: str) -> None:
    run = ALGORITHMS["a2c"].train(ENV, tiny_config("a2c", total_steps=100), seed=0, out=tmp_path / "r", progress=False)
    with pytest.raises(ArtifactError, match=field.replace(".", r"\.")):
        load_policy(_broken(run.out, tmp_path, edit))


def test_missing_or_damaged_normalisation_tensors_are_refused(tmp_path: Path) -> None:
    run = ALGORITHMS["a2c"].train(ENV, tiny_config("a2c", total_steps=100), seed=0, out=tmp_path / "r", progress=False)
    tensors = load_file(str(run.out / "model.safetensors"))
    for name, tensor in (("missing", None), ("negative", -torch.ones(3))):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text((run.out / "config.json").read_text())
        edited = {k: v for k, v in tensors.items() if k != "obs_norm.var"}
        if tensor is not None:
            edited["obs_norm.var"] = tensor
        save_file(edited, str(folder / "model.safetensors"))
        with pytest.raises(ArtifactError, match="obs_norm"):
            load_policy(folder)


# --- serving, export and packaging of one trained Pendulum policy


@pytest.fixture(scope="module")
def pendulum(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    out = tmp_path_factory.mktemp("pendulum") / "run"
    return ALGORITHMS["ppo"].train(ENV, tiny_config("ppo"), seed=0, out=out, progress=False)


@pytest.fixture(scope="module")
def box_server(pendulum: TrainResult) -> Iterator[str]:
    with served(str(pendulum.out)) as url:
        yield url


def test_serving_answers_box_actions(box_server: str, pendulum: TrainResult) -> None:
    policy = load_policy(pendulum.out)
    with httpx.Client(base_url=box_server, timeout=10) as client:
        one = client.post("/act", json={"observation": OBS[1].tolist()}).json()
        expected = policy.act(OBS[1])
        assert set(one) == {"action", "mean", "std", "value"}
        np.testing.assert_allclose(one["action"], expected.actions[0], rtol=1e-5)
        np.testing.assert_allclose(one["mean"], expected.mean[0], rtol=1e-5)  # type: ignore[index]
        np.testing.assert_allclose(one["std"], expected.std[0], rtol=1e-5)  # type: ignore[index]
        batch = client.post("/act_batch", json={"observations": OBS.tolist()}).json()
        assert set(batch) == {"actions", "mean", "std", "values"} and len(batch["actions"]) == 3
        np.testing.assert_allclose(batch["actions"], policy.act(OBS).actions, rtol=1e-5)
        sampled = [
            client.post("/act", json={"observation": OBS[1].tolist(), "deterministic": False, "seed": 3}).json()
            for _ in range(2)
        ]
        assert sampled[0]["action"] == sampled[1]["action"] != one["action"]
        info = client.get("/policy").json()
        assert info["action_bounds"] == {"low": [-2.0], "high": [2.0], "bound": "clip", "log_std": "state_independent"}
        norm = info["observation_normalization"]
        np.testing.assert_allclose(norm["mean"], policy.obs_norm.mean, rtol=1e-5)  # type: ignore[union-attr]
        assert norm["clip"] == 10.0 and norm["count"] > 0
        bad = client.post("/act", json={"observation": [0.0, 1.0]})
        assert bad.status_code == 422 and "shape (3,)" in bad.json()["error"]


def test_simulate_scores_like_the_local_evaluation(box_server: str, pendulum: TrainResult) -> None:
    local = evaluate(load_policy(pendulum.out), episodes=2, seed=4)
    out = subprocess.run(
        [RLSHIP, "simulate", "--url", box_server, "--env", ENV, "--episodes", "2", "--seed", "4"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert f"return: {local.mean_reward:.2f} +/- {local.std_reward:.2f}" in out.stdout
    batched = simulate(box_server, ENV, episodes=2, seed=4, batch=True)
    assert batched.evaluation.mean_reward == pytest.approx(local.mean_reward, abs=1e-3)


def test_onnx_export_computes_normalisation_and_the_gaussian(pendulum: TrainResult, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from rlship.export import export_policy

    result = export_policy(str(pendulum.out), "onnx", tmp_path / "onnx")
    assert result.check["max_abs_difference"]["actions"] <= 1e-5  # compared with Policy.act on 1,000 observations
    names = [o["name"] for o in result.description["outputs"]]
    assert names == ["actions", "mean", "std", "values"]
    assert "obs_norm" in result.description["preprocessing"]


def test_packaging_a_pendulum_policy_gives_a_card_and_a_replay(pendulum: TrainResult, tmp_path: Path) -> None:
    import imageio.v3 as iio
    from huggingface_hub import ModelCard

    from rlship.hub.package import package_policy

    package = package_policy(pendulum.out, tmp_path / "hub", repo_id="someone/pendulum", episodes=2)
    card = ModelCard.load(package.folder / "README.md")
    assert card.data.library_name == "rlship" and ENV in card.data.tags
    assert card.data.eval_results[0].metric_value == package.evaluation.metric
    # what differs for Box actions comes from config.json: the card names mean/std and the normalisation
    assert "result.mean, result.std" in card.text and "obs_norm" in card.text
    assert "result.probabilities" not in card.text
    frames = list(iio.imiter(package.folder / "replay.mp4", plugin="FFMPEG"))
    # the replay is the first evaluation episode: 200 steps of Pendulum-v1 plus the reset frame
    assert len(frames) == package.evaluation.episode_lengths[0] + 1 == 201


def test_a_tanh_state_dependent_artifact_acts_and_exports_as_config_json_says(tmp_path: Path) -> None:
    from rlship.networks import NetworkSpec

    spec = NetworkSpec((8,), "tanh", {"mean": 1, "log_std": 1, "value": 1})
    made = untrained_policy(
        "ppo", spec, env_id=ENV, action_distribution="gaussian", log_std="state_dependent", bound="tanh"
    )
    with torch.no_grad():  # a mean far outside the bounds, and a log std that varies with the state
        made.network.heads["mean"][-1].bias.fill_(5.0)
        made.network.heads["log_std"][-1].weight.normal_()
    policy = load_policy(made.save(tmp_path / "p"))
    assert policy.obs_norm is None and policy.config["action_distribution"]["bound"] == "tanh"
    result = policy.act(OBS)
    np.testing.assert_allclose(result.actions, 2.0 * np.tanh(result.mean), rtol=1e-5)  # type: ignore[arg-type]
    assert (np.abs(result.actions) < 2.0).all() and len(set(result.std.ravel().tolist())) == 3  # type: ignore[union-attr]
    pytest.importorskip("onnxruntime")
    from rlship.export import export_policy

    exported = export_policy(policy, "onnx", tmp_path / "onnx")  # checked against Policy.act before writing
    assert exported.check["max_abs_difference"]["actions"] <= 1e-5
