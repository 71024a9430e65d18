"""Hostile and broken policy artifacts: every one is an ArtifactError naming the file and the field (or tensor),
raised before anything is allocated from it, so a small config.json cannot cost gigabytes; NaN weights are refused
at load; a bad results.json stops `rlship serve` at start instead of a worker restarting forever."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from rlship import ArtifactError, cli, load_policy
from rlship.envs import require_discrete_actions
from rlship.errors import UnsupportedEnvError
from rlship.sources import default_policy_dir
from tests.cli_run import RLSHIP
from tests.conftest import make_untrained
from tests.malformed_artifacts import MALFORMED, write_malformed
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", list(MALFORMED))
def test_each_malformed_config_is_an_artifact_error_naming_file_and_field(saved_policy: Path, name: str) -> None:
    expected = write_malformed(saved_policy, name)
    with pytest.raises(ArtifactError) as info:
        load_policy(saved_policy)
    message = str(info.value)
    assert message.startswith(f"{saved_policy / 'config.json'}: "), message
    assert expected in message, message
    assert len(message) < 700, message  # an image space or a 100,000-deep config is described, never printed whole


def _rewrite_weights(folder: Path, change: Callable[[dict[str, torch.Tensor]], None]) -> Path:
    from safetensors.torch import load_file

    path = folder / "model.safetensors"
    state = load_file(str(path))
    change(state)
    save_file(state, str(path))
    return path


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_refused_naming_the_tensor(saved_policy: Path, bad: float) -> None:
    def poison(state: dict[str, torch.Tensor]) -> None:
        state["heads.value.2.weight"][0, 3] = bad

    path = _rewrite_weights(saved_policy, poison)
    with pytest.raises(ArtifactError) as info:
        load_policy(saved_policy)
    assert str(info.value).startswith(f"{path}: tensor 'heads.value.2.weight' holds NaN or infinite values")


def _raw_safetensors(path: Path, header: dict[str, Any], data: bytes = b"") -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("header claims a huge tensor", "weights do not match the network in config.json"),
        ("header length 2**60", "not a readable safetensors file (header length"),
        ("header not JSON", "not a readable safetensors file"),
        ("header a list", "not a readable safetensors file (the header is not a JSON object)"),
        ("shape not a list", "has no valid shape"),
        ("float64 weights", "has dtype 'F64'; rlship weights are float32"),
        ("file too big", "bytes, more than the float32 weights of the network in config.json need"),
        ("empty file", "not a readable safetensors file"),
    ],
)
def test_weights_files_are_checked_by_size_and_header_before_their_data(
    saved_policy: Path, case: str, expected: str
) -> None:
    path = saved_policy / "model.safetensors"
    good = path.read_bytes()
    if case == "header claims a huge tensor":
        huge = {"dtype": "F32", "shape": [10**6, 10**6], "data_offsets": [0, 4]}
        _raw_safetensors(path, {"heads.logits.0.weight": huge})
    elif case == "header length 2**60":
        path.write_bytes(struct.pack("<Q", 2**60) + b"{}")
    elif case == "header not JSON":
        path.write_bytes(struct.pack("<Q", 5) + b"{{{{{")
    elif case == "header a list":
        _raw_safetensors(path, [])  # type: ignore[arg-type]
    elif case == "shape not a list":
        _raw_safetensors(path, {"w": {"dtype": "F32", "shape": "big", "data_offsets": [0, 4]}})
    elif case == "float64 weights":
        _rewrite_weights(saved_policy, lambda s: s.update({k: v.double() for k, v in s.items()}))
    elif case == "file too big":
        path.write_bytes(good + b"\0" * (2 * 1024 * 1024))
    elif case == "empty file":
        path.write_bytes(b"")
    with pytest.raises(ArtifactError) as info:
        load_policy(saved_policy)
    assert str(info.value).startswith(f"{path}: ") and expected in str(info.value), str(info.value)


@pytest.mark.parametrize("backend", ["torch", "numpy"])
@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("last tensor past the end", "lies outside the file: its data ends at byte"),
        ("largest tensor given 4 bytes", "bytes; its data_offsets span 4"),
    ],
)
def test_a_weights_header_pointing_outside_its_data_is_refused_before_the_data_is_read(
    saved_policy: Path, case: str, expected: str, backend: str
) -> None:
    """Names, shapes and dtypes match the network; only the data_offsets are wrong. The header reader refuses them
    (rlship.safetensors_header), in its words, before safetensors' load_file follows them."""
    path = saved_policy / "model.safetensors"
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    tensors = {n: info for n, info in header.items() if n != "__metadata__"}
    if case == "last tensor past the end":
        name = max(tensors, key=lambda n: tensors[n]["data_offsets"][1])
        begin, end = tensors[name]["data_offsets"]
        tensors[name]["data_offsets"] = [begin + 4, end + 4]
    else:
        name = max(tensors, key=lambda n: tensors[n]["data_offsets"][1] - tensors[n]["data_offsets"][0])
        begin, _ = tensors[name]["data_offsets"]
        tensors[name]["data_offsets"] = [begin, begin + 4]
    _raw_safetensors(path, header, data[8 + length :])
    with pytest.raises(ArtifactError) as info:
        load_policy(saved_policy, backend=backend)
    message = str(info.value)
    assert message.startswith(f"{path}: not a readable safetensors file (tensor {name!r}"), message
    assert expected in message, message


_MEMORY_PROBE = """
import json, resource, shutil, sys, tempfile
from pathlib import Path
from rlship import ArtifactError, load_policy
from tests.malformed_artifacts import MALFORMED, write_malformed
names = json.loads(sys.argv[1])
root = Path(tempfile.mkdtemp())
load_policy("default").act([[0.0, 0.0, 0.0, 0.0]])  # torch and the load path warmed up: the baseline
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
refused = []
for i, name in enumerate(names):
    folder = root / str(i)
    shutil.copytree(sys.argv[2], folder)
    write_malformed(folder, name)
    try:
        load_policy(folder)
    except ArtifactError:
        refused.append(name)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"baseline_kb": baseline, "peak_kb": peak, "refused": refused}))
"""


def test_malformed_artifacts_allocate_nothing_big(saved_policy: Path) -> None:
    """All the malformed configs loaded in one fresh process: each refused, and the process's peak memory grows by
    less than 100 MB over a warmed-up load (before, hidden_sizes [8192, 8192] alone cost 1.6 GB)."""
    names = list(MALFORMED)
    done = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, json.dumps(names), str(saved_policy)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["refused"] == names
    assert report["peak_kb"] - report["baseline_kb"] < 100 * 1024, report


def _bad_results_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "bad-results"
    folder.mkdir()
    for name in ("config.json", "model.safetensors", "results.json"):
        (folder / name).write_bytes((default_policy_dir() / name).read_bytes())
    results = json.loads((folder / "results.json").read_text())
    results["mean_reward"] = "x"
    (folder / "results.json").write_text(json.dumps(results))
    return folder


def test_a_bad_results_json_is_refused_by_load_policy(tmp_path: Path) -> None:
    folder = _bad_results_folder(tmp_path)
    with pytest.raises(ArtifactError, match=r"results\.json: field 'mean_reward' must be int or float; got 'x'"):
        load_policy(folder)


def test_serve_with_a_bad_results_json_exits_1_at_start_and_never_restarts(tmp_path: Path) -> None:
    """A real `rlship serve` on a loopback port: it exits 1 with the message, before any worker is started (a
    worker that failed after start-up used to be restarted by BentoML forever). The timeout bounds a loop."""
    folder = _bad_results_folder(tmp_path)
    port = free_port()  # in case it got as far as listening
    done = subprocess.run(
        [RLSHIP, "serve", str(folder), "--host", "127.0.0.1", "--port", str(port)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "results.json: field 'mean_reward' must be int or float; got 'x'" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.count("results.json: field 'mean_reward'") == 1  # said once: no worker retried it


class ImageEnv(gym.Env[np.ndarray, int]):
    """A real Gymnasium env with an Atari-sized image observation, which rlship's MLP policies do not take."""

    observation_space = gym.spaces.Box(0, 255, (210, 160, 3), np.uint8)
    action_space = gym.spaces.Discrete(3)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        return np.zeros((210, 160, 3), np.uint8), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        return np.zeros((210, 160, 3), np.uint8), 0.0, True, False, {}


@pytest.mark.parametrize("algorithm", ["ppo", "dqn"])
def test_an_image_env_gets_a_short_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], algorithm: str
) -> None:
    """The issue saw a 254 KB line: the space's 100,800 bounds printed whole. Now the space is described."""
    if "HardeningImage-v0" not in gym.registry:
        gym.register(id="HardeningImage-v0", entry_point=ImageEnv, max_episode_steps=10)
    assert cli.main(["train", algorithm, "HardeningImage-v0", "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and len(err) < 300, err
    assert "must be a 1-D Box, or an image described by observation_preprocessing; got Box(shape (210, 160, 3)" in err


def test_a_wide_action_box_is_described_not_printed() -> None:
    space = gym.spaces.Box(np.arange(999, dtype=np.float32), 1000.0)
    with pytest.raises(UnsupportedEnvError) as info:
        require_discrete_actions("Wide-v0", space, "ppo")
    assert "Wide-v0 has Box(shape (999,), float32)" in str(info.value) and len(str(info.value)) < 300


@pytest.mark.parametrize("seed", ["-1", "4294967296", "abc"])
def test_a_bad_train_seed_names_the_flag(capsys: pytest.CaptureFixture[str], seed: str) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "ppo", "CartPole-v1", "--seed", seed])
    assert info.value.code == 2
    assert f"argument --seed: must be a whole number in [0, 2**32); got '{seed}'" in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_a_weights_file_swapped_after_its_checks_is_not_read(
    saved_policy: Path, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    """The checks and the read use one open file: a file renamed into place between them is not the one loaded,
    and one rewritten in place (other shapes) is refused, not loaded unchecked."""
    from rlship import policy as policy_module

    path = saved_policy / "model.safetensors"
    obs = np.array([[0.02, -0.3, 0.05, 0.4]], dtype=np.float32)
    original = load_policy(saved_policy).act(obs).probabilities
    other = make_untrained(seed=1).save(saved_policy.parent / "other") / "model.safetensors"
    assert not np.allclose(load_policy(other.parent).act(obs).probabilities, original)
    small = make_untrained(hidden=(8, 8)).save(saved_policy.parent / "small") / "model.safetensors"
    real_check = policy_module._check_weights_header

    def swap_during_check(*args: Any) -> None:
        real_check(*args)
        os.replace(other, path)  # a new file (another inode) under the checked name

    monkeypatch.setattr(policy_module, "_check_weights_header", swap_during_check)
    loaded = load_policy(saved_policy, backend=backend)  # the checked file's weights, not the swapped-in one's
    np.testing.assert_allclose(loaded.act(obs).probabilities, original, rtol=1e-6)

    def rewrite_during_check(*args: Any) -> None:
        real_check(*args)
        with path.open("r+b") as f:  # the same file rewritten in place: a network of other shapes
            f.truncate(0)
            f.write(small.read_bytes())

    monkeypatch.setattr(policy_module, "_check_weights_header", rewrite_during_check)
    with pytest.raises(ArtifactError, match="its tensors differ from its header"):
        load_policy(saved_policy, backend=backend)


def test_env_kwargs_may_not_choose_how_an_env_renders(
    saved_policy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An artifact (from the Hub, say) whose env_kwargs ask for render_mode "human" would open a window per episode
    and pace each step to the screen: evaluating it is a one-line error instead; training refuses the flag too."""
    config = json.loads((saved_policy / "config.json").read_text())
    config["env_kwargs"] = {"render_mode": "human"}
    (saved_policy / "config.json").write_text(json.dumps(config))
    assert cli.main(["evaluate", str(saved_policy), "--episodes", "2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "rlship evaluate: error: CartPole-v1: env_kwargs may not set render_mode (got 'human'): rlship renders only "
        "for the replay video; remove it from --env-kwargs (or from the policy's config.json)"
    ]
    out = tmp_path / "run"
    argv = ["train", "ppo", "CartPole-v1", "--out", str(out), "--env-kwargs", '{"render_mode": "rgb_array"}']
    assert cli.main(argv) == 1
    assert "env_kwargs may not set render_mode (got 'rgb_array')" in capsys.readouterr().err and not out.exists()
