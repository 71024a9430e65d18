"""The contract every registered algorithm keeps, checked by one suite parametrised over `ALGORITHMS` (the way
Stable-Baselines3 runs every algorithm through the same tests): the artifact round trip, `act`'s shapes and
probabilities, the evaluation protocol, packaging for the Hub, the serving protocol's answer, Ctrl-C with a
checkpoint and a resume, and bad hyperparameters refused before anything is written. What is specific to one
algorithm (does it learn, its own maths) lives in that algorithm's own test file."""

from __future__ import annotations

import csv
import json
import math
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rlship import load_policy
from rlship.cli import main
from rlship.evaluation import evaluate
from rlship.hub.package import package_policy
from rlship.serving import protocol
from rlship.training import ALGORITHMS, Algorithm
from rlship.training.checkpoint import read_checkpoint_state
from rlship.training.run import TrainResult
from rlship.training.settings import Bounds
from tests.training_helpers import train_until_ctrl_c

# Tiny budgets: a few updates each, seconds per algorithm. cem keeps two batches of elites so that its elite set is
# more than the batch at hand and must come back from the checkpoint.
TINY: dict[str, dict[str, Any]] = {
    "random": {},
    "cem": dict(total_steps=3000, elite_iterations=2),
    "reinforce": dict(total_steps=1500),
    "a2c": dict(total_steps=1500),
    "dqn": dict(total_steps=1500, learning_starts=200),
    "ppo": dict(total_steps=4000, num_envs=8, n_steps=64),
}
ENV = "CartPole-v1"


def test_every_registered_algorithm_is_covered() -> None:
    assert set(TINY) == set(ALGORITHMS)


def tiny_config(algo: Algorithm[Any], **extra: Any) -> Any:
    run_settings = {"eval_episodes": 3, "confirm_episodes": 3} if algo.name != "random" else {"eval_episodes": 3}
    return algo.make_config(ENV, **{**TINY[algo.name], **run_settings, **extra})


@pytest.fixture(scope="module", params=list(ALGORITHMS))
def tiny_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    algo = ALGORITHMS[request.param]
    out = tmp_path_factory.mktemp(algo.name) / "run"
    return algo.train(ENV, tiny_config(algo), seed=3, out=out, progress=False)


def test_the_run_folder_holds_the_artifact(tiny_run: TrainResult) -> None:
    names = {p.name for p in tiny_run.out.iterdir()}
    assert {"config.json", "model.safetensors", "results.json", "train_log.csv", "training_curve.png"} <= names
    config = json.loads((tiny_run.out / "config.json").read_text())
    algo = ALGORITHMS[config["algorithm"]]
    assert config["env_id"] == ENV and config["seed"] == 3
    assert config["algorithm_summary"] == algo.summary  # what the model card describes the algorithm with
    assert set(config["hyperparameters"]) == set(algo.hyperparameter_names())
    results = json.loads((tiny_run.out / "results.json").read_text())
    assert results["mean_reward"] == tiny_run.evaluation.mean_reward and results["interrupted"] is False
    assert results["training"]["env_steps"] == tiny_run.env_steps
    with (tiny_run.out / "train_log.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == tiny_run.updates
    assert (tiny_run.updates == 0) == (config["algorithm"] == "random")  # the baseline is a run with no updates
    if rows:
        assert int(rows[-1]["env_steps"]) == tiny_run.env_steps


def test_the_artifact_round_trips_with_the_same_answers(tiny_run: TrainResult) -> None:
    loaded = load_policy(tiny_run.out)
    assert loaded.spec == tiny_run.policy.spec
    obs = np.random.default_rng(0).uniform(-0.2, 0.2, size=(32, 4)).astype(np.float32)
    mine, theirs = tiny_run.policy.act(obs), loaded.act(obs)
    assert theirs.actions.shape == (32,) and theirs.actions.dtype == np.int64
    assert theirs.probabilities.shape == (32, 2)
    np.testing.assert_allclose(theirs.probabilities.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(mine.probabilities, theirs.probabilities, rtol=1e-6)
    if loaded.spec.action_distribution != "uniform":  # uniform samples even when greedy: no fixed action
        np.testing.assert_array_equal(mine.actions, theirs.actions)
    single = loaded.act(obs[0])  # a single observation is a batch of one
    assert single.actions.shape == (1,) and single.probabilities.shape == (1, 2)


def test_evaluate_follows_the_protocol(tiny_run: TrainResult) -> None:
    result = evaluate(load_policy(tiny_run.out), episodes=4, seed=11)
    assert result.n_eval_episodes == 4 and result.deterministic and len(result.episode_returns) == 4
    assert result.episode_seeds == [1_000_011 + i for i in range(4)]
    # CartPole pays 1 per step: every return is its episode's length
    assert result.episode_returns == [float(n) for n in result.episode_lengths]


def test_packaging_gives_a_card_and_fresh_results(tiny_run: TrainResult, tmp_path: Path) -> None:
    from huggingface_hub import ModelCard

    package = package_policy(tiny_run.out, tmp_path / "hub", repo_id="someone/tiny", episodes=3)
    card = ModelCard.load(package.folder / "README.md")
    assert card.data.library_name == "rlship" and tiny_run.policy.spec.algorithm in card.data.tags
    assert card.data.eval_results[0].metric_value == package.evaluation.metric
    summary = json.loads((tiny_run.out / "config.json").read_text())["algorithm_summary"]
    assert summary in card.text  # the card describes the algorithm from config.json, which training wrote


def test_the_serving_protocol_answers(tiny_run: TrainResult) -> None:
    policy = load_policy(tiny_run.out)
    rng = np.random.default_rng(0)
    one = protocol.act(policy, b'{"observation": [0.01, 0.0, 0.02, 0.0]}', 16, False, rng)
    assert one["action"] in (0, 1) and len(one["probabilities"]) == 2
    many = protocol.act(policy, json.dumps({"observations": [[0.0] * 4] * 3}).encode(), 16, True, rng)
    assert len(many["actions"]) == 3 and np.asarray(many["probabilities"]).shape == (3, 2)
    heads = policy.spec.network.heads
    assert ("value" in one) == ("value" in heads) and ("q_values" in one) == ("q_values" in heads)


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_ctrl_c_leaves_a_checkpoint_and_an_artifact_then_resume_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    algo, out = ALGORITHMS[name], tmp_path / "run"
    config = tiny_config(algo)
    if name == "random":  # a run with no updates has nothing to interrupt and no checkpoint to resume
        algo.train(ENV, config, seed=2, out=out, progress=False)
        assert main(["train", name, ENV, "--resume", str(out), "--no-progress"]) == 1
        assert "no checkpoint to resume" in capsys.readouterr().err
        return
    first = train_until_ctrl_c(algo, ENV, config, out)
    assert first.interrupted and not first.solved and first.evaluation.n_eval_episodes == 3
    state = read_checkpoint_state(out)
    assert state["algorithm"] == name and state["counters"]["updates"] == 2
    assert state["counters"]["env_steps"] == first.env_steps and 0 < first.env_steps < config.total_steps
    results = json.loads((out / "results.json").read_text())
    assert results["interrupted"] is True and results["solved"] is False and "Resume" in results["note"]
    assert load_policy(out).act(np.zeros(4, np.float32)).actions.shape == (1,)

    capsys.readouterr()
    assert main(["train", name, ENV, "--resume", str(out), "--no-progress"]) == 0  # the CLI's own path
    summary = json.loads(capsys.readouterr().out)
    assert summary["interrupted"] is False and summary["env_steps"] >= config.total_steps
    results = json.loads((out / "results.json").read_text())
    assert results["interrupted"] is False and results["training"]["resumed_at_env_steps"] == [first.env_steps]
    with (out / "train_log.csv").open() as f:
        steps = [int(r["env_steps"]) for r in csv.DictReader(f)]
    # one log: the first part's two rows, then the resumed part's, env steps going on from the checkpoint's (dqn
    # plays the steps after its last learning round without a row of their own)
    assert steps[1] == first.env_steps and steps == sorted(set(steps)) and steps[-1] <= summary["env_steps"]


def _violations(f: Any, hint: Any) -> list[Any]:
    """Values just outside the field's declared range, of the field's own type (NaN too, for a float range)."""
    bounds: Bounds = f.metadata["bounds"]
    if bounds.choices is not None:
        return ["not-a-choice"]
    element = typing.get_args(hint)[0] if typing.get_origin(hint) is tuple else hint
    if typing.get_origin(element) is not None:  # `float | None`: the bounds are the float's
        element = next(a for a in typing.get_args(element) if a is not type(None))
    step = 1 if element is int else 1e-3
    values: list[Any] = [] if element is int else [math.nan]
    values += [b - step for b in (bounds.ge,) if b is not None] + [b for b in (bounds.gt, bounds.lt) if b is not None]
    values += [b + step for b in (bounds.le,) if b is not None]
    values = [element(v) if isinstance(v, float) and not math.isnan(v) else v for v in values]
    return [[v] for v in values] if typing.get_origin(hint) is tuple else values


CASES = [
    (name, f.name, value)
    for name, algo in ALGORITHMS.items()
    for f in fields(algo.config_cls)
    for value in _violations(f, typing.get_type_hints(algo.config_cls)[f.name])
    if f.metadata["bounds"] != Bounds()
]


@pytest.mark.parametrize(("name", "field", "value"), CASES, ids=[f"{n}-{f}-{v}" for n, f, v in CASES])
def test_each_declared_range_is_refused_naming_the_field(name: str, field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=rf"^{field} must be"):
        ALGORITHMS[name].make_config(ENV, **{field: value})


FLOAT_FIELDS = [
    (name, f.name)
    for name, algo in ALGORITHMS.items()
    for f in fields(algo.config_cls)
    if typing.get_type_hints(algo.config_cls)[f.name] in (float, float | None)
]


@pytest.mark.parametrize(("name", "field"), FLOAT_FIELDS, ids=[f"{n}-{f}" for n, f in FLOAT_FIELDS])
def test_no_float_setting_takes_infinity_or_nan(name: str, field: str) -> None:
    # whatever its range: learning_rate=1e400 reads as inf, which passed "> 0" and failed in a training step
    for value in (math.inf, -math.inf, math.nan, 10**400):  # 10**400: an int past float's range
        with pytest.raises(ValueError, match=rf"^{field} must be a finite number \(such as 0.01\)"):
            ALGORITHMS[name].make_config(ENV, **{field: value})


@pytest.mark.parametrize("name", [n for n, a in ALGORITHMS.items() if "hidden_sizes" in a.hyperparameter_names()])
def test_hidden_sizes_hold_no_more_layers_than_an_artifact_may(name: str) -> None:
    from rlship.network_spec import MAX_LAYERS

    assert ALGORITHMS[name].make_config(ENV, hidden_sizes=[4] * MAX_LAYERS).hidden_sizes == (4,) * MAX_LAYERS
    with pytest.raises(ValueError, match=f"^hidden_sizes may hold at most {MAX_LAYERS} values; got {MAX_LAYERS + 1}$"):
        ALGORITHMS[name].make_config(ENV, hidden_sizes=[4] * (MAX_LAYERS + 1))


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_the_cli_refuses_a_bad_hyperparameter_in_one_line_before_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    out = tmp_path / "run"
    code = main(["train", name, ENV, "--out", str(out), "--no-progress", "--eval-episodes", "0"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert lines == ["rlship train: error: eval_episodes must be in [1, 10000]; got 0"]
    assert not out.exists()
    with pytest.raises(TypeError, match=r"unknown \w+ hyperparameters"):
        ALGORITHMS[name].make_config(ENV, learning_rat=0.1)


@pytest.mark.parametrize("name", ["a2c", "ppo"])  # the actor-critics' rollout (training/rollout.py)
def test_a_rollout_larger_than_the_machine_is_refused_before_allocation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """Each flag within its bounds, together 4096 x 100000 two-frame image stacks: petabytes, which NumPy and torch
    would try to allocate. Refused in one line saying what it needs, what the machine has and which flags to lower;
    no run folder is left behind."""
    out = tmp_path / "run"
    argv = ["train", name, "rlship/CartPolePixels-v1", "--out", str(out), "--no-progress"]
    assert main([*argv, "--num-envs", "4096", "--n-steps", "100000"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("rlship train: error: a rollout of 4,096 envs x 100,000 steps")
    assert "more than half of this machine's" in lines[0]
    assert "lower --num-envs or --n-steps so that num_envs x n_steps is at most" in lines[0]
    assert not out.exists()


@pytest.mark.parametrize(("name", "num_envs"), [("a2c", "1"), ("ppo", "2")])
def test_the_smallest_rollout_trains(tmp_path: Path, name: str, num_envs: str) -> None:
    """Rollouts of one step: after an episode's end an env's step is only its reset, so a rollout may hold no
    transition to learn from (a2c, 1 env) or a single one (ppo, 2 envs: its advantages are normalised per
    minibatch of at least 2). Such a rollout is skipped: the run ends normally, not with torch's empty-stack error
    (ppo) or a NaN loss reported as divergence (a2c)."""
    out = tmp_path / "run"
    argv = ["train", name, ENV, "--out", str(out), "--no-progress", "--num-envs", num_envs, "--n-steps", "1"]
    assert main([*argv, "--total-steps", "600", "--eval-episodes", "2"]) == 0
    assert load_policy(out).spec.algorithm == name
    with (out / "train_log.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert rows and all(math.isfinite(float(r["policy_loss"])) for r in rows)


def test_a_ppo_rollout_of_one_transition_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["train", "ppo", ENV, "--out", str(out), "--num-envs", "1", "--n-steps", "1", "--no-progress"]) == 1
    assert capsys.readouterr().err.strip() == (
        "rlship train: error: a ppo rollout needs at least 2 transitions: raise --num-envs or --n-steps above 1"
    )
    assert not out.exists()


# Every algorithm that learns, on CartPole-v1 (a categorical policy: its sampling fails first, or its loss); reinforce
# also on Pendulum-v1 (a Gaussian policy: its actions would reach the env as NaN).
DIVERGING = [(name, ENV) for name in ALGORITHMS if name != "random"] + [("reinforce", "Pendulum-v1")]


@pytest.mark.parametrize(("name", "env_id"), DIVERGING, ids=[f"{n}-{e}" for n, e in DIVERGING])
def test_a_diverging_run_ends_in_one_line_saying_where_and_what_to_lower(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, env_id: str
) -> None:
    """A learning rate of 1e30 wrecks the network in its first update: a one-line error naming the env step and the
    flags to lower, not torch's traceback from a later step; the run folder keeps its log and holds no policy."""
    out = tmp_path / "run"
    argv = ["train", name, env_id, "--out", str(out), "--no-progress", "--learning-rate", "1e30"]
    budget = {"dqn": ["--learning-starts", "200"]}.get(name, [])
    assert main([*argv, "--total-steps", "20000", "--checkpoint-every", "0", *budget]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("rlship train: error: training diverged at env step ")
    assert "lower --learning-rate (now 1e+30)" in lines[0]
    if "max_grad_norm" in ALGORITHMS[name].hyperparameter_names():
        assert "or --max-grad-norm" in lines[0]
    env_steps = int(lines[0].split("env step ")[1].split(" ")[0].replace(",", ""))
    assert 0 < env_steps < 20000  # it stopped where it diverged, not at the end of its budget
    assert f"{out} keeps what this run wrote up to there (train_log.csv" in lines[0]
    with (out / "train_log.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert rows and int(rows[-1]["env_steps"]) <= env_steps
    assert not (out / "model.safetensors").exists() and not (out / "config.json").exists()
    from safetensors.torch import load_file

    # a checkpoint is written at every update (--checkpoint-every 0) that did not diverge: none holds a NaN or inf
    for path in (out / "checkpoint").glob("tensors-*.safetensors"):
        for key, tensor in load_file(path).items():
            assert not tensor.is_floating_point() or bool(tensor.isfinite().all()), (path.name, key)
