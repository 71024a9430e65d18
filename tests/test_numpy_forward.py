"""rlship/numpy_forward.py, the torch-free way to act: for an artifact of every algorithm (Discrete CartPole-v1;
Box Pendulum-v1 with observation normalisation, state-dependent log std and tanh bounds), a policy loaded with
`backend="numpy"` acts as the torch policy does: the same greedy actions (Box: within 1e-6), probabilities and
Gaussian means within 1e-6, std, values and Q-values within float32 rounding (relative 1e-5); and
`rlship evaluate` runs without importing torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from rlship.network_spec import NetworkSpec
from rlship.networks import HeadsNetwork
from rlship.numpy_forward import NumpyNetwork, state_shapes
from rlship.policy import Policy, load_policy
from rlship.training import ALGORITHMS
from tests.conftest import untrained_policy

# (algorithm, env, hyperparameters of a tiny run): every algorithm on Discrete actions, those that train Gaussian
# policies on Box actions with observation normalisation and a shared trunk as well
RUNS: list[tuple[str, str, dict[str, Any]]] = [
    ("random", "CartPole-v1", {}),
    ("cem", "CartPole-v1", dict(total_steps=2000)),
    ("reinforce", "CartPole-v1", dict(total_steps=1500)),
    ("a2c", "CartPole-v1", dict(total_steps=1500, shared_trunk=True)),
    ("dqn", "CartPole-v1", dict(total_steps=1500, learning_starts=200)),
    ("ppo", "CartPole-v1", dict(total_steps=2048, num_envs=8, n_steps=64)),
    ("ppo", "Pendulum-v1", dict(total_steps=2048, num_envs=4, n_steps=128, normalize_obs=True)),
    ("a2c", "Pendulum-v1", dict(total_steps=1000, normalize_obs=True, shared_trunk=True)),
    ("reinforce", "Pendulum-v1", dict(total_steps=1000, normalize_obs=True)),
]


@pytest.fixture(scope="module", params=RUNS, ids=[f"{a}-{e}" for a, e, _ in RUNS])
def artifact(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    algo_name, env_id, overrides = request.param
    algo = ALGORITHMS[algo_name]
    settings = {"eval_episodes": 2} | ({"confirm_episodes": 2} if algo_name != "random" else {})
    out = tmp_path_factory.mktemp(f"{algo_name}-{env_id}") / "run"
    algo.train(env_id, algo.make_config(env_id, **overrides, **settings), seed=5, out=out, progress=False)
    return out


def observations(policy: Policy, n: int = 256) -> np.ndarray:
    space = policy.spec.observation_space
    low, high = np.maximum(space.low, -5.0), np.minimum(space.high, 5.0)
    return np.random.default_rng(0).uniform(low, high, size=(n, *space.shape)).astype(np.float32)


def assert_same_acting(torch_policy: Policy, numpy_policy: Policy) -> None:
    assert isinstance(numpy_policy.network, NumpyNetwork) and isinstance(torch_policy.network, torch.nn.Module)
    obs = observations(torch_policy)
    ours, theirs = numpy_policy.act(obs), torch_policy.act(obs)
    if torch_policy.spec.continuous:  # the bounded Gaussian mean: float32 rounding apart
        np.testing.assert_allclose(ours.actions, theirs.actions, rtol=0, atol=1e-6)
    elif torch_policy.spec.action_distribution != "uniform":  # the random baseline samples even when greedy
        np.testing.assert_array_equal(ours.actions, theirs.actions)
    for name in ("probabilities", "mean"):
        a, b = getattr(ours, name), getattr(theirs, name)
        assert (a is None) == (b is None), name
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6, err_msg=name)
    for name in ("std", "values", "q_values"):  # unbounded outputs: float32 rounding relative to their size
        a, b = getattr(ours, name), getattr(theirs, name)
        assert (a is None) == (b is None), name
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=name)
    # sampled actions from the same generator state: the same draws
    sampled = numpy_policy.act(obs, deterministic=False, rng=np.random.default_rng(1)).actions
    np.testing.assert_allclose(
        sampled, torch_policy.act(obs, deterministic=False, rng=np.random.default_rng(1)).actions, atol=1e-5
    )


def test_numpy_acts_as_torch(artifact: Path) -> None:
    torch_policy, numpy_policy = load_policy(artifact), load_policy(artifact, backend="numpy")
    assert (numpy_policy.obs_norm is None) == (torch_policy.obs_norm is None)
    assert_same_acting(torch_policy, numpy_policy)


def test_a_trained_policy_acts_the_same_in_numpy(artifact: Path) -> None:
    """Evaluation acts through `Policy.in_numpy()`: a copy of the trained network's weights in NumPy."""
    trained = load_policy(artifact)
    copy = trained.in_numpy()
    assert isinstance(copy.network, NumpyNetwork) and copy.in_numpy() is copy
    assert_same_acting(trained, copy)


def test_a_tanh_state_dependent_gaussian_acts_the_same(tmp_path: Path) -> None:
    spec = NetworkSpec((8,), "relu", {"mean": 1, "log_std": 1, "value": 1}, shared_trunk=True)
    made = untrained_policy(
        "ppo", spec, env_id="Pendulum-v1",
        action_distribution="gaussian", log_std="state_dependent", bound="tanh", normalize_obs=True,
    )  # fmt: skip
    with torch.no_grad():  # a log std that varies with the state, a mean often beyond the bounds
        made.network.heads["log_std"][-1].weight.normal_()
        made.network.heads["mean"][-1].weight.normal_()
    made.obs_norm.update(np.random.default_rng(2).normal(3.0, 2.0, size=(50, 3)))  # type: ignore[union-attr]
    folder = made.save(tmp_path / "p")
    assert_same_acting(load_policy(folder), load_policy(folder, backend="numpy"))


@pytest.mark.parametrize(
    "spec",
    [
        NetworkSpec((64, 64), "tanh", {"logits": 2, "value": 1}),
        NetworkSpec((32,), "relu", {"q_values": 3}, shared_trunk=True),
        NetworkSpec((), "tanh", {"logits": 4}),
        NetworkSpec((), "tanh", {"logits": 4, "value": 1}, shared_trunk=True),
        NetworkSpec((16, 8), "tanh", {"mean": 2, "value": 1}, log_std=2),
    ],
)
def test_the_state_dict_layout_is_heads_networks(spec: NetworkSpec) -> None:
    network = HeadsNetwork(5, spec)
    assert state_shapes(spec, 5) == {name: tuple(t.shape) for name, t in network.state_dict().items()}


def test_a_cnn_or_unknown_network_is_not_taken(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="MLP networks only"):
        NumpyNetwork(object(), {})  # type: ignore[arg-type]


def test_evaluate_does_not_import_torch_and_reports_as_before() -> None:
    script = (
        "import json, sys, contextlib, io\n"
        "from rlship.cli import main\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        "    main(['evaluate', 'default', '--episodes', '5', '--json'])\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'report': json.loads(buf.getvalue())}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    out = json.loads(done.stdout)
    assert not out["torch"]
    from rlship.evaluation import evaluate

    expected = evaluate(load_policy("default"), episodes=5)  # the torch policy, by the same protocol
    assert out["report"]["episode_returns"] == expected.episode_returns
    assert out["report"]["episode_lengths"] == expected.episode_lengths
