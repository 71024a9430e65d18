"""The tutorial algorithms (cem, reinforce, a2c): each learns, writes an artifact any rlship code can load, and
refuses bad hyperparameters before training starts."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rlship import load_policy
from rlship.cli import main
from rlship.envs import make_vec_env
from rlship.evaluation import evaluate
from rlship.networks import NetworkSpec
from rlship.policy import new_policy
from rlship.training import ALGORITHMS, a2c, cem, reinforce
from rlship.training.episodes import play_episodes
from rlship.training.run import EpisodeStats, TrainResult

RLSHIP = shutil.which("rlship") or str(Path(sys.executable).parent / "rlship")
RANDOM_FLOOR = 22  # mean return of the uniform random policy on CartPole-v1

# Short runs (a few seconds each): far from solved, clearly better than random.
SHORT_RUNS = {
    "cem": dict(total_steps=25_000),
    "reinforce": dict(total_steps=8_000),
    "a2c-separate": dict(total_steps=15_000),
    "a2c-shared": dict(total_steps=40_000, shared_trunk=True),
}


@pytest.fixture(scope="module", params=list(SHORT_RUNS))
def short_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    name = request.param
    algo = ALGORITHMS[name.split("-")[0]]
    config = algo.make_config("CartPole-v1", eval_episodes=10, **SHORT_RUNS[name])
    return algo.train("CartPole-v1", config, seed=1, out=tmp_path_factory.mktemp(name), progress=False)


def test_short_run_learns_clearly_better_than_random(short_run: TrainResult) -> None:
    result = evaluate(short_run.policy, episodes=20, seed=7)  # the evaluation protocol, on a fresh policy's seeds
    assert result.deterministic and result.n_eval_episodes == 20
    assert result.mean_reward >= 5 * RANDOM_FLOOR, result.metric


def test_artifact_round_trips_with_the_same_actions(short_run: TrainResult) -> None:
    loaded = load_policy(short_run.out)
    assert loaded.spec.algorithm == short_run.policy.spec.algorithm
    obs = np.random.default_rng(0).uniform(-0.2, 0.2, size=(64, 4)).astype(np.float32)
    mine, theirs = short_run.policy.act(obs), loaded.act(obs)
    np.testing.assert_array_equal(mine.actions, theirs.actions)
    np.testing.assert_allclose(mine.probabilities, theirs.probabilities, rtol=1e-6)
    results = json.loads((short_run.out / "results.json").read_text())
    assert results["mean_reward"] == short_run.evaluation.mean_reward


def test_a2c_forms_and_value_head(short_run: TrainResult) -> None:
    config = json.loads((short_run.out / "config.json").read_text())
    if config["algorithm"] != "a2c":
        assert set(config["network"]["heads"]) == {"logits"}  # policy-only methods carry no value head
        assert short_run.policy.act(np.zeros(4, np.float32)).values is None
        return
    assert set(config["network"]["heads"]) == {"logits", "value"}
    assert config["network"]["shared_trunk"] is config["hyperparameters"]["shared_trunk"]
    assert bool(config["hyperparameters"]["shared_trunk"]) == (
        "trunk.0.weight" in short_run.policy.network.state_dict()
    )
    values = load_policy(short_run.out).act(np.zeros((3, 4), np.float32)).values
    assert values is not None and values.shape == (3,) and np.isfinite(values).all()


LOG_COLUMNS = {
    "cem": {"elite_threshold", "elite_episodes", "loss"},
    "reinforce": {"loss", "entropy"},
    "a2c": {"policy_loss", "value_loss", "entropy"},
}


def test_train_log_holds_the_algorithms_own_signals(short_run: TrainResult) -> None:
    with (short_run.out / "train_log.csv").open() as f:
        rows = list(csv.DictReader(f))
    algorithm = short_run.policy.spec.algorithm
    assert LOG_COLUMNS[algorithm] <= set(rows[0])
    steps = [int(r["env_steps"]) for r in rows]
    assert steps == sorted(steps) and steps[-1] == short_run.env_steps
    if algorithm == "cem":  # the threshold is a return of the batch; at least one episode reaches it
        assert all(8 <= float(r["elite_threshold"]) <= 500 and int(r["elite_episodes"]) >= 1 for r in rows)
        assert float(rows[-1]["elite_threshold"]) > float(rows[0]["elite_threshold"])


def test_play_episodes_plays_one_whole_episode_per_env() -> None:
    torch.manual_seed(0)
    envs = make_vec_env("CartPole-v1", 6)
    net = new_policy(
        "cem",
        "CartPole-v1",
        envs.single_observation_space,
        envs.single_action_space,
        NetworkSpec((8,), "relu", {"logits": 2}),
        {},
        0,
    ).network
    stats = EpisodeStats(6, window=100)
    batch = play_episodes(envs, net, torch.Generator().manual_seed(0), stats, seed=0)
    lengths = batch.mask.sum(axis=0)
    # CartPole pays 1 per step: each return is its episode's length; masks are one unbroken run from step 0
    np.testing.assert_array_equal(batch.returns, lengths)
    assert all(batch.mask[:n, i].all() and not batch.mask[n:, i].any() for i, n in enumerate(lengths))
    assert batch.mask.shape[0] == lengths.max() and batch.env_steps == lengths.sum()
    assert stats.episodes == 6 and sorted(stats.recent) == sorted(batch.returns.tolist())
    again = play_episodes(envs, net, torch.Generator().manual_seed(0), EpisodeStats(6, 100), seed=0)
    np.testing.assert_array_equal(again.returns, batch.returns)  # seeded: the same episodes
    envs.close()


def test_discounted_returns_restart_per_episode() -> None:
    rewards = np.array([[1.0, 1.0], [1.0, 0.0], [1.0, 0.0]], dtype=np.float32)  # env 1's episode has one step
    returns = reinforce.discounted_returns(rewards, gamma=0.5)
    np.testing.assert_allclose(returns[:, 0], [1 + 0.5 + 0.25, 1 + 0.5, 1])
    np.testing.assert_allclose(returns[:, 1], [1, 0, 0])


@pytest.mark.parametrize(
    ("module", "overrides", "message"),
    [
        (cem, dict(learning_rate=-0.01), "learning_rate must be > 0"),
        (cem, dict(percentile=100), r"percentile must be in \[0, 100\)"),
        (cem, dict(percentile=-5), r"percentile must be in \[0, 100\)"),
        (cem, dict(batch_episodes=0), "batch_episodes must be >= 1"),
        (cem, dict(fit_steps=0), "fit_steps must be >= 1"),
        (reinforce, dict(learning_rate=0), "learning_rate must be > 0"),
        (reinforce, dict(batch_episodes=0), "batch_episodes must be >= 1"),
        (reinforce, dict(gamma=1.5), r"gamma must be in \[0, 1\]"),
        (a2c, dict(learning_rate=-1e-3), "learning_rate must be > 0"),
        (a2c, dict(n_steps=0), "n_steps must be >= 1"),
        (a2c, dict(value_loss="l3"), "value_loss must be one of"),
        (a2c, dict(optimizer="sgd"), "optimizer must be one of"),
        (a2c, dict(ent_coef=-0.1), "ent_coef must be >= 0"),
    ],
)
def test_bad_hyperparameters_are_refused(module: object, overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        module.make_config("CartPole-v1", **overrides)  # type: ignore[attr-defined]


def test_unknown_hyperparameter_names_are_refused() -> None:
    for module in (cem, reinforce, a2c):
        with pytest.raises(TypeError, match=r"unknown \w+ hyperparameters"):
            module.make_config("CartPole-v1", learning_rat=0.1)


@pytest.mark.parametrize(
    ("algo", "flags", "message"),
    [
        ("cem", ["--percentile", "120"], "percentile must be in [0, 100)"),
        ("reinforce", ["--learning-rate", "-1"], "learning_rate must be > 0"),
        ("a2c", ["--value-loss", "huber"], "value_loss must be one of"),
    ],
)
def test_cli_refuses_bad_hyperparameters_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], algo: str, flags: list[str], message: str
) -> None:
    out = tmp_path / "run"
    code = main(["train", algo, "CartPole-v1", "--out", str(out), "--no-progress", *flags])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(lines) == 1 and lines[0].startswith("rlship train: error: ") and message in lines[0]
    assert not out.exists()  # refused before anything was written


def test_cli_trains_and_evaluates_a2c_shared_trunk(tmp_path: Path) -> None:
    out = tmp_path / "a2c"
    flags = ["--total-steps", "400", "--shared-trunk", "--value-loss", "smooth_l1", "--eval-episodes", "3"]
    proc = subprocess.run(
        [RLSHIP, "train", "a2c", "CartPole-v1", "--seed", "3", "--out", str(out), "--no-progress", *flags],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["algorithm"] == "a2c"
    hp = json.loads((out / "config.json").read_text())["hyperparameters"]
    assert hp["shared_trunk"] is True and hp["value_loss"] == "smooth_l1" and hp["total_steps"] == 400
    proc = subprocess.run(
        [RLSHIP, "evaluate", str(out), "--episodes", "3"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["algorithm"] == "a2c"
