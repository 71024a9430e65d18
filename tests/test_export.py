"""`rlship export`: model.onnx run by onnxruntime and agent.pt run by TorchScript (loaded here, in the test process
only: rlship itself never loads one) act like `Policy.act` on 1,000 observations of the real env."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import rlship
from rlship.errors import RlshipError
from rlship.export import MAX_DIFFERENCE, export_policy
from rlship.networks import NetworkSpec
from rlship.policy import Policy
from tests.cli_run import RLSHIP
from tests.conftest import untrained_policy

N_OBSERVATIONS = 1_000


def env_observations(env_id: str = "CartPole-v1", n: int = N_OBSERVATIONS, seed: int = 7) -> np.ndarray:
    """`n` observations the real env produces under random actions (episodes reset as they end)."""
    env = gym.make(env_id)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    rows = []
    while len(rows) < n:
        rows.append(obs)
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    return np.asarray(rows, dtype=np.float32)


def untrained(kind: str, heads: dict[str, int], seed: int = 0) -> Policy:
    algorithm = "dqn" if kind == "epsilon_greedy" else "random"
    spec = NetworkSpec((32, 32), "relu", heads)
    return untrained_policy(algorithm, spec, seed=seed, action_distribution=kind, epsilon=0.05)


def run_onnx(path: Path, observations: np.ndarray) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"observations": observations}), strict=True))


def assert_acts_like(outputs: dict[str, np.ndarray], policy: Policy, observations: np.ndarray) -> None:
    expected = policy.act(observations)
    np.testing.assert_array_equal(outputs["actions"], expected.actions)  # the same greedy actions
    assert outputs["actions"].dtype == np.int64
    assert np.abs(outputs["probabilities"] - expected.probabilities).max() <= MAX_DIFFERENCE
    if expected.values is not None:
        # a value of about 50 is only known to float32's step there (3.8e-6): 1e-5 relative to max(1, |value|)
        scale = np.maximum(1.0, np.abs(expected.values))
        assert (np.abs(outputs["values"] - expected.values) / scale).max() <= MAX_DIFFERENCE
    if expected.q_values is not None:
        scale = np.maximum(1.0, np.abs(expected.q_values))
        assert (np.abs(outputs["q_values"] - expected.q_values) / scale).max() <= MAX_DIFFERENCE


def test_onnx_export_runs_in_onnxruntime_like_policy_act(tmp_path: Path) -> None:
    policy = rlship.load_policy("default")  # a trained PPO policy: logits and value heads
    result = export_policy("default", "onnx", tmp_path / "onnx")
    path = tmp_path / "onnx" / "model.onnx"
    assert result.file == path and sorted(p.name for p in path.parent.iterdir()) == ["config.json", "model.onnx"]

    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    (graph_input,) = model.graph.input
    dims = graph_input.type.tensor_type.shape.dim
    assert graph_input.name == "observations" and dims[0].dim_param and [d.dim_value for d in dims[1:]] == [4]
    names = [o.name for o in model.graph.output]
    assert names == ["actions", "probabilities", "values"]

    # config.json: the policy's own, plus the export entry naming the same inputs and outputs as the graph
    config = json.loads((tmp_path / "onnx" / "config.json").read_text())
    assert {k: v for k, v in config.items() if k != "export"} == policy.config
    export = config["export"]
    assert export["format"] == "onnx" and export["file"] == "model.onnx" and export["opset"] >= 17
    assert export["inputs"] == [{"name": "observations", "shape": ["batch", 4], "dtype": "float32"}]
    assert [o["name"] for o in export["outputs"]] == names

    observations = env_observations()
    outputs = run_onnx(path, observations)
    assert_acts_like(outputs, policy, observations)
    assert set(np.unique(outputs["actions"])) == {0, 1}  # both actions occur: not a constant graph
    # the batch axis is dynamic: one observation, and a batch of another size, give the same rows
    one = run_onnx(path, observations[:1])
    np.testing.assert_allclose(one["probabilities"], outputs["probabilities"][:1], atol=1e-6)
    assert run_onnx(path, observations[:37])["actions"].shape == (37,)


@pytest.mark.parametrize("kind", ["epsilon_greedy", "uniform"])
def test_value_based_and_random_policies_export(tmp_path: Path, kind: str) -> None:
    heads = {"q_values": 2} if kind == "epsilon_greedy" else {"logits": 2}
    policy = untrained(kind, heads)
    folder = policy.save(tmp_path / "policy")
    export_policy(folder, "onnx", tmp_path / "onnx")
    observations = env_observations(n=300)
    outputs = run_onnx(tmp_path / "onnx" / "model.onnx", observations)
    if kind == "epsilon_greedy":
        assert_acts_like(outputs, policy, observations)
        assert np.isclose(outputs["probabilities"].max(), 1 - 0.05 + 0.05 / 2)
    else:  # no greedy action: the graph samples, as `act` does even when deterministic
        np.testing.assert_array_equal(outputs["probabilities"], np.full((300, 2), 0.5, dtype=np.float32))
        assert set(np.unique(outputs["actions"])) == {0, 1}
        assert json.loads((tmp_path / "onnx" / "config.json").read_text())["export"]["action_distribution"] == kind


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_agent_pt_gives_the_greedy_actions_as_the_open_rl_leaderboard_calls_it(tmp_path: Path) -> None:
    policy = rlship.load_policy("default")
    proc = subprocess.run(
        [RLSHIP, "export", "default", "--format", "torchscript", "--out", str(tmp_path / "ts")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["file"] == "agent.pt" and summary["check"]["same_greedy_actions"] is True
    # rlship wrote it without loading it; only this test process loads it
    agent = torch.jit.load(str(tmp_path / "ts" / "agent.pt"))
    observations = env_observations()
    with torch.no_grad():
        actions = agent(torch.tensor(observations))
        as_float64 = agent(torch.tensor(observations.astype(np.float64)))  # torch.tensor of a float64 env's obs
    assert actions.dtype == torch.int64 and actions.shape == (N_OBSERVATIONS,)
    np.testing.assert_array_equal(actions.numpy(), policy.act(observations).actions)
    np.testing.assert_array_equal(as_float64.numpy(), actions.numpy())

    # the leaderboard's loop: a vector env, observations in as a tensor, actions out as numpy
    envs = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")])
    obs, _ = envs.reset(seed=1_000_000)
    total = 0.0
    for _ in range(500):
        with torch.no_grad():
            action = agent(torch.tensor(obs)).numpy()
        obs, reward, terminated, truncated, _ = envs.step(action)
        total += float(reward[0])
        if terminated[0] or truncated[0]:
            break
    envs.close()
    assert total == 500.0  # the embedded policy balances the pole for the whole episode


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(folder.rglob("*"))
    }


def test_out_must_be_new_empty_or_an_earlier_export_and_nothing_of_yours_is_touched(tmp_path: Path) -> None:
    # A folder of someone's files, including names an export writes (config.json, model.onnx) and a policy folder:
    theirs = tmp_path / "theirs"
    (theirs / "sub").mkdir(parents=True)
    (theirs / "thesis.tex").write_text("precious")
    (theirs / "sub" / "data.bin").write_bytes(bytes(range(256)))
    lookalike = rlship.load_policy("default").save(tmp_path / "lookalike")  # config.json + model.safetensors
    (tmp_path / "onlyconfig").mkdir()
    (tmp_path / "onlyconfig" / "config.json").write_text('{"mine": true}')
    (tmp_path / "onlyconfig" / "model.onnx").write_bytes(b"my own model")
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    before = {p: _snapshot(p) for p in (theirs, lookalike, tmp_path / "onlyconfig")}
    for out in (theirs, lookalike, tmp_path / "onlyconfig", a_file):
        for fmt in ("onnx", "torchscript"):
            with pytest.raises(RlshipError, match=r"not empty and not an earlier rlship export|is not a folder"):
                export_policy("default", fmt, out)
    proc = subprocess.run(
        [RLSHIP, "export", "default", "--format", "onnx", "--out", str(theirs)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "not an earlier rlship export (it holds sub, thesis.tex)" in proc.stderr
    for folder, snapshot in before.items():
        assert _snapshot(folder) == snapshot, folder  # every byte survives
    assert a_file.read_text() == "not a folder"
    assert not [p for p in tmp_path.rglob(".*") if p.is_dir()]  # no staging folder left behind

    # new, empty, and an earlier export are all fine; an earlier export is replaced
    empty = tmp_path / "empty"
    empty.mkdir()
    export_policy("default", "torchscript", empty)
    export_policy("default", "onnx", empty)
    assert sorted(p.name for p in empty.iterdir()) == ["config.json", "model.onnx"]


def test_onnx_without_the_extra_is_one_line_naming_it(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['onnx'] = None; sys.modules['onnxruntime'] = None\n"
        "from rlship.cli import main\n"
        f"sys.exit(main(['export', 'default', '--format', 'onnx', '--out', {str(tmp_path / 'x')!r}]))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("rlship export: error: ONNX export needs onnx, ")  # onnxscript needs onnx too
    assert line.endswith('from the export extra: pip install "rlship[export]"')
    assert not (tmp_path / "x").exists()
