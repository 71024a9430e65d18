"""Image policies in the artifact: a CNN described in config.json, rebuilt by load_policy from it alone, and the
hostile descriptions it refuses before allocating anything."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from safetensors import safe_open

from rlship import schema
from rlship.errors import ArtifactError, ObservationError, UsageError
from rlship.games.cartpole_pixels import PREPROCESSING
from rlship.networks import MAX_PARAMETERS, CNNSpec, ConvLayer
from rlship.policy import MAX_IMAGE_BATCH_BYTES, load_policy, new_policy

OBS_SPACE = gym.spaces.Box(0, 255, PREPROCESSING.observation_shape, dtype=np.uint8)
CNN = CNNSpec((ConvLayer(4, 5, 2), ConvLayer(8, 3, 2)), (16,), "relu", {"q_values": 2}, norm="batch")


def make_policy(spec: CNNSpec = CNN) -> Any:
    torch.manual_seed(0)
    return new_policy(
        "dqn",
        "rlship/CartPolePixels-v1",
        OBS_SPACE,
        gym.spaces.Discrete(2),
        spec,
        {},
        seed=0,
        action_distribution="epsilon_greedy",
        epsilon=0.05,
        frames=PREPROCESSING,
    )


def frames(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *PREPROCESSING.observation_shape), dtype=np.uint8)


def test_cnn_round_trips_through_config_json_with_its_batch_norm_statistics(tmp_path: Path) -> None:
    policy = make_policy()
    net = policy.network
    net.train()
    with torch.no_grad():  # a training-mode pass moves BatchNorm's running statistics away from their start
        net(torch.from_numpy(frames(32)))
    net.eval()
    policy.save(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["network"]["kind"] == "cnn_heads"
    assert config["network"]["conv"] == [
        {"channels": 4, "kernel": 5, "stride": 2},
        {"channels": 8, "kernel": 3, "stride": 2},
    ]
    assert config["network"]["norm"] == "batch"
    assert config["observation_preprocessing"] == PREPROCESSING.to_dict()
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        names = set(f.keys())
        running_mean = f.get_tensor("encoder.1.running_mean")
    assert "encoder.1.running_var" in names
    assert not torch.allclose(running_mean, torch.zeros_like(running_mean))  # the statistics were saved, not reset

    loaded = load_policy(tmp_path)
    assert loaded.spec.network == CNN
    assert not loaded.network.training  # acting uses the running statistics, whatever the batch
    obs = frames(5, seed=1)
    a, b = policy.act(obs), loaded.act(obs)
    assert np.array_equal(a.actions, b.actions)
    np.testing.assert_allclose(a.q_values, b.q_values, rtol=1e-5, atol=1e-6)
    # one observation is a batch of one, and acting on it alone gives what it got inside the batch
    np.testing.assert_allclose(loaded.act(obs[2]).q_values[0], b.q_values[2], rtol=1e-5, atol=1e-6)
    # pixels sent as nested lists of integers act the same as the uint8 array
    assert np.array_equal(loaded.act(obs.tolist()).actions, b.actions)


def test_a_gapped_frame_stack_is_format_version_2_which_older_rlship_refuses(tmp_path: Path) -> None:
    """rlship before format_version 2 ignores `frame_gap` (it would stack consecutive frames for a policy trained on
    frames 2 steps apart, and act wrongly without a word); it refuses any format_version but 1 by name."""
    assert PREPROCESSING.frame_gap > 1
    gapped = make_policy().save(tmp_path / "gapped")
    config = json.loads((gapped / "config.json").read_text())
    assert config["format_version"] == 2 and config["observation_preprocessing"]["frame_gap"] == 2
    assert load_policy(gapped).spec.frames == PREPROCESSING
    # consecutive frames: nothing an older rlship misreads, so format_version 1 as before
    consecutive = replace(PREPROCESSING, frame_stack=2, frame_gap=1)
    torch.manual_seed(0)
    plain = new_policy(
        "dqn", "rlship/CartPolePixels-v1", gym.spaces.Box(0, 255, consecutive.observation_shape, dtype=np.uint8),
        gym.spaces.Discrete(2), CNN, {}, seed=0, action_distribution="epsilon_greedy", frames=consecutive,
    ).save(tmp_path / "plain")  # fmt: skip
    assert json.loads((plain / "config.json").read_text())["format_version"] == 1
    # a gapped artifact written as format_version 1 (by rlship of 2026-11-30, before the bump) reads as it was meant
    config["format_version"] = 1
    (gapped / "config.json").write_text(json.dumps(config))
    assert load_policy(gapped).spec.frames == PREPROCESSING
    config["format_version"] = 3
    (gapped / "config.json").write_text(json.dumps(config))
    with pytest.raises(ArtifactError, match=r"format_version 3 is not one this rlship reads \(1 or 2\)"):
        load_policy(gapped)


def test_mlp_artifacts_stay_as_they_were() -> None:
    policy = load_policy("default")
    assert "kind" not in policy.config["network"] or policy.config["network"]["kind"] == "mlp_heads"
    assert policy.spec.frames is None


def write_config(folder: Path, network: dict[str, Any]) -> Path:
    make_policy(CNNSpec((ConvLayer(2, 3, 2),), (4,), "relu", {"q_values": 2})).save(folder)
    config = json.loads((folder / "config.json").read_text())
    config["network"] = network
    (folder / "config.json").write_text(json.dumps(config))
    return folder


BASE = {"kind": "cnn_heads", "hidden_sizes": [4], "activation": "relu", "heads": {"q_values": 2}}


@pytest.mark.parametrize(
    ("conv", "field"),
    [
        ([], "network.conv"),
        ([{"channels": 0, "kernel": 3, "stride": 1}], "network.conv[0].channels"),
        ([{"channels": 4, "kernel": 3, "stride": 0}], "network.conv[0].stride"),
        ([{"channels": 4, "kernel": "3"}], "network.conv[0].kernel"),
        ([{"channels": 4}], "network.conv[0].kernel"),
        (["conv"], "network.conv[0]"),
    ],
)
def test_malformed_conv_layers_are_refused_naming_the_field(tmp_path: Path, conv: Any, field: str) -> None:
    write_config(tmp_path, {**BASE, "conv": conv})
    with pytest.raises(ArtifactError, match=re.escape(f"field '{field}'")):
        load_policy(tmp_path)


def test_a_kernel_larger_than_its_feature_map_is_refused(tmp_path: Path) -> None:
    # 25x100 frames: 5x5/2 -> 11x48, 5x5/2 -> 4x22, then a 5x5 kernel does not fit in 4 rows
    conv = [{"channels": 4, "kernel": 5, "stride": 2}] * 3
    write_config(tmp_path, {**BASE, "conv": conv})
    with pytest.raises(ArtifactError, match=r"conv layer 2 .* 4x22 feature map, smaller than its kernel"):
        load_policy(tmp_path)
    with pytest.raises(UsageError, match="smaller than its kernel"):
        make_policy(CNNSpec((ConvLayer(4, 5, 2),) * 3, (4,), "relu", {"q_values": 2}))


def test_a_huge_network_is_refused_before_allocation(tmp_path: Path) -> None:
    conv = [{"channels": 4096, "kernel": 16, "stride": 1}, {"channels": 4096, "kernel": 1}]
    write_config(tmp_path, {**BASE, "conv": conv, "hidden_sizes": [4096]})
    with pytest.raises(ArtifactError, match=f"more than rlship builds \\({MAX_PARAMETERS:,}\\)"):
        load_policy(tmp_path)
    # the flattened features feeding a wide layer count too: 4096 channels of 21x96 into 64k units
    wide = CNNSpec((ConvLayer(4096, 5, 1),), (65_536,), "relu", {"q_values": 2})
    with pytest.raises(UsageError, match="parameters"):
        make_policy(wide)


def test_an_unknown_norm_and_a_gaussian_head_are_refused(tmp_path: Path) -> None:
    conv = [{"channels": 4, "kernel": 3, "stride": 2}]
    write_config(tmp_path, {**BASE, "conv": conv, "norm": "layer"})
    with pytest.raises(ArtifactError, match=r"field 'network\.norm'"):
        load_policy(tmp_path)
    with pytest.raises(schema.ConfigError, match="discrete-action heads"):
        CNNSpec.from_dict({**BASE, "conv": conv, "heads": {"mean": 1}})


def test_image_observations_are_checked_and_the_batch_is_bounded() -> None:
    policy = make_policy()
    shape = PREPROCESSING.observation_shape
    with pytest.raises(ObservationError, match=r"integers in 0\.\.255"):
        policy.act(np.full(shape, 0.5))
    with pytest.raises(ObservationError, match=r"integers in 0\.\.255"):
        policy.act(np.full(shape, 256))
    with pytest.raises(ObservationError, match=re.escape(f"stacks of frames of shape {shape}")):
        policy.act(np.zeros((1, 25, 100, 1), np.uint8))
    limit = MAX_IMAGE_BATCH_BYTES // int(np.prod(shape))
    too_many = np.broadcast_to(np.zeros(shape, np.uint8), (limit + 1, *shape))  # no memory behind it
    with pytest.raises(ObservationError, match=f"at most {limit:,} image observations"):
        policy.act(too_many)
    with pytest.raises(ObservationError, match=f"at most {limit:,} image observations"):
        policy.act([0] * (limit + 1))  # refused before the list is converted


def test_a_cnn_policy_exports_to_torchscript_with_the_greedy_actions_of_act(tmp_path: Path) -> None:
    from rlship.export import export_policy

    policy = make_policy()
    export = export_policy(policy, "torchscript", tmp_path / "ts")
    # the traced module took whole-number pixels as float32 (the export's input dtype) and agreed with act
    assert export.check["same_greedy_actions"] is True
    assert export.description["inputs"][0]["shape"] == ["batch", *PREPROCESSING.observation_shape]
