"""The policy artifact: round trip, act() contract, and every way a folder or an observation can be wrong."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from rlship import ArtifactError, ObservationError, load_policy
from tests.conftest import make_untrained, untrained_policy


def observations(n: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.5, size=(n, 4)).astype(np.float32)


def test_round_trip_gives_same_actions_probabilities_and_values(tmp_path: Path) -> None:
    policy = make_untrained(seed=3, hidden=(32, 32))
    folder = policy.save(tmp_path / "p")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    loaded = load_policy(folder)
    obs = observations()
    before, after = policy.act(obs), loaded.act(obs)
    np.testing.assert_array_equal(before.actions, after.actions)
    np.testing.assert_array_equal(before.probabilities, after.probabilities)
    np.testing.assert_array_equal(before.values, after.values)
    assert loaded.spec.env_id == "CartPole-v1" and loaded.spec.algorithm == "ppo"
    assert loaded.spec.obs_shape == (4,) and loaded.spec.n_actions == 2
    assert loaded.spec.network.hidden_sizes == (32, 32)


def test_config_is_plain_json_with_the_contract_keys(saved_policy: Path) -> None:
    text = (saved_policy / "config.json").read_text()
    assert "Infinity" not in text  # CartPole's unbounded velocities are written as "inf" strings
    config = json.loads(text)
    for key in (
        "format_version",
        "algorithm",
        "env_id",
        "env_kwargs",
        "observation_space",
        "action_space",
        "network",
        "hyperparameters",
        "seed",
        "versions",
    ):
        assert key in config, key
    assert config["action_space"] == {"type": "Discrete", "n": 2, "start": 0}
    assert config["observation_space"]["high"][1] == "inf"
    assert {"torch", "gymnasium", "rlship", "python"} <= set(config["versions"])


def test_act_on_a_batch_and_on_one_observation(saved_policy: Path) -> None:
    policy = load_policy(saved_policy)
    obs = observations(5)
    batch = policy.act(obs)
    assert batch.actions.shape == (5,) and batch.actions.dtype == np.int64
    assert batch.probabilities.shape == (5, 2)
    np.testing.assert_allclose(batch.probabilities.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(batch.actions, batch.probabilities.argmax(axis=1))
    assert batch.values is not None and batch.values.shape == (5,)
    one = policy.act(obs[2].tolist())  # a plain list is fine too
    assert one.actions.shape == (1,)
    assert one.actions[0] == batch.actions[2]
    np.testing.assert_allclose(one.probabilities[0], batch.probabilities[2], rtol=1e-6)


def test_stochastic_act_samples_from_the_probabilities(saved_policy: Path) -> None:
    policy = load_policy(saved_policy)
    obs = np.repeat(observations(1), 4000, axis=0)
    result = policy.act(obs, deterministic=False, rng=np.random.default_rng(0))
    p1 = result.probabilities[0, 1]
    assert abs(result.actions.mean() - p1) < 0.03  # 4000 draws: std of the mean is < 0.008
    again = policy.act(obs, deterministic=False, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(result.actions, again.actions)


@pytest.mark.parametrize(
    ("obs", "message"),
    [
        (np.zeros(3), "shape (3,)"),
        (np.zeros((2, 5)), "shape (2, 5)"),
        (np.zeros((0, 4)), "non-empty"),
        (np.zeros((2, 2, 4)), "shape (2, 2, 4)"),
        ([0.0, float("nan"), 0.0, 0.0], "NaN"),
        ([0.0, 1e300, 0.0, 0.0], "beyond float32's range"),
        (["a", "b", "c", "d"], "numbers"),
    ],
)
def test_bad_observations_say_what_is_expected(saved_policy: Path, obs: object, message: str) -> None:
    policy = load_policy(saved_policy)
    with pytest.raises(ObservationError) as info:
        policy.act(obs)
    assert message in str(info.value)
    assert "(4,)" in str(info.value) or "finite" in str(info.value)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no such policy folder"):
        load_policy(tmp_path / "nope")


@pytest.mark.parametrize("name", ["config.json", "model.safetensors"])
def test_missing_file_is_named(saved_policy: Path, name: str) -> None:
    (saved_policy / name).unlink()
    with pytest.raises(ArtifactError, match=f"{name}: file not found"):
        load_policy(saved_policy)


def test_corrupt_config_is_named(saved_policy: Path) -> None:
    (saved_policy / "config.json").write_text('{"format_version": 1, "algorithm": ')
    with pytest.raises(ArtifactError, match=r"config.json: not valid JSON"):
        load_policy(saved_policy)


def test_config_missing_a_key_names_the_key(saved_policy: Path) -> None:
    config = json.loads((saved_policy / "config.json").read_text())
    del config["observation_space"]
    (saved_policy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ArtifactError, match=r"config.json: invalid policy config: field 'observation_space': is "):
        load_policy(saved_policy)


def test_unknown_format_version(saved_policy: Path) -> None:
    config = json.loads((saved_policy / "config.json").read_text())
    config["format_version"] = 99
    (saved_policy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ArtifactError, match="format_version 99"):
        load_policy(saved_policy)


def test_truncated_weights_are_named(saved_policy: Path) -> None:
    path = saved_policy / "model.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ArtifactError, match=r"model\.safetensors: not a readable safetensors file"):
        load_policy(saved_policy)


def test_a_pickle_in_place_of_the_weights_is_refused_not_unpickled(saved_policy: Path, tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"

    class Exploit:  # unpickling it would create `marker`
        def __reduce__(self) -> tuple[object, tuple[Path]]:
            return (Path.touch, (marker,))

    (saved_policy / "model.safetensors").write_bytes(pickle.dumps({"w": torch.zeros(1), "x": Exploit()}))
    with pytest.raises(ArtifactError, match="not a readable safetensors file"):
        load_policy(saved_policy)
    assert not marker.exists()


def test_weights_from_another_network_are_refused(saved_policy: Path) -> None:
    config = json.loads((saved_policy / "config.json").read_text())
    config["network"]["hidden_sizes"] = [8, 8]
    (saved_policy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ArtifactError, match="weights do not match the network"):
        load_policy(saved_policy)


def _value_based(tmp_path: Path, epsilon: float) -> Path:
    from rlship.networks import NetworkSpec

    spec = NetworkSpec((16,), "relu", {"q_values": 2})
    policy = untrained_policy("dqn", spec, action_distribution="epsilon_greedy", epsilon=epsilon)
    return policy.save(tmp_path / "dqn")


def test_epsilon_greedy_policy_reports_q_values_and_the_distribution_it_samples(tmp_path: Path) -> None:
    policy = load_policy(_value_based(tmp_path, epsilon=0.2))
    obs = observations(6)
    result = policy.act(obs)
    assert result.values is None and result.q_values is not None and result.q_values.shape == (6, 2)
    np.testing.assert_array_equal(result.actions, result.q_values.argmax(axis=1))
    expected = np.full((6, 2), 0.1, dtype=np.float32)
    expected[np.arange(6), result.actions] = 0.9
    np.testing.assert_allclose(result.probabilities, expected, rtol=1e-6)
    many = policy.act(np.repeat(obs[:1], 4000, axis=0), deterministic=False, rng=np.random.default_rng(0))
    greedy_share = (many.actions == result.actions[0]).mean()
    assert abs(greedy_share - 0.9) < 0.03


def test_actions_alone_are_acts_actions(tmp_path: Path, saved_policy: Path) -> None:
    """`Policy.actions` (evaluation's inner loop; greedy DQN actions without the probabilities) picks what `act`
    picks, for a DQN policy in torch and in NumPy, and for a categorical one; and checks observations as act does."""
    obs = observations(500)
    dqn = load_policy(_value_based(tmp_path, epsilon=0.2))
    for policy in (dqn, dqn.in_numpy(), load_policy(saved_policy)):
        actions = policy.actions(obs)
        assert actions.dtype == np.int64
        np.testing.assert_array_equal(actions, policy.act(obs).actions)
        sampled = policy.actions(obs, deterministic=False, rng=np.random.default_rng(1))
        np.testing.assert_array_equal(
            sampled, policy.act(obs, deterministic=False, rng=np.random.default_rng(1)).actions
        )
    with pytest.raises(ObservationError, match="have shape"):
        dqn.actions(np.zeros((3, 5)))


def test_uniform_policy_samples_even_when_deterministic(saved_policy: Path) -> None:
    config = json.loads((saved_policy / "config.json").read_text())
    config["action_distribution"] = {"kind": "uniform"}
    (saved_policy / "config.json").write_text(json.dumps(config))
    result = load_policy(saved_policy).act(np.zeros((4000, 4)), rng=np.random.default_rng(0))
    np.testing.assert_allclose(result.probabilities, 0.5)
    assert 0.45 < result.actions.mean() < 0.55


def test_unknown_action_distribution_is_refused(saved_policy: Path) -> None:
    config = json.loads((saved_policy / "config.json").read_text())
    config["action_distribution"] = {"kind": "boltzmann"}
    (saved_policy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ArtifactError, match="unknown action_distribution kind 'boltzmann'"):
        load_policy(saved_policy)


@pytest.mark.parametrize("source", ["a\x00b", "x\ny\x1b[2J", "z" * 5000])
def test_odd_local_sources_are_escaped_and_cut_in_the_error(tmp_path: Path, source: str) -> None:
    with pytest.raises(ArtifactError, match="no such policy folder") as info:
        load_policy(tmp_path / source)
    message = str(info.value)
    assert not any(ch in message for ch in "\x00\n\x1b") and len(message) < 600
