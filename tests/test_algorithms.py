"""What is specific to the tutorial algorithms (cem, reinforce, a2c): each learns, logs its own signals, and its
own maths (episodes, returns-to-go, elite sets, a2c's two network forms). The contract every algorithm keeps
(artifact, checkpoints, Ctrl-C, bad hyperparameters) is tests/test_algorithm_contract.py."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from rlship import load_policy
from rlship.envs import make_vec_env
from rlship.evaluation import evaluate
from rlship.networks import NetworkSpec
from rlship.training import ALGORITHMS, cem, reinforce
from rlship.training.checkpoint import Checkpointer, CheckpointOptions, read_checkpoint_state
from rlship.training.episodes import play_episodes
from rlship.training.run import TrainResult
from rlship.training.stop_rule import EpisodeStats
from tests.cli_run import RLSHIP
from tests.conftest import untrained_policy

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
    net = untrained_policy("cem", NetworkSpec((8,), "relu", {"logits": 2})).network
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


# Tiny runs (a dozen updates or so) for the checkpoint tests; cem keeps two batches of elites so that its elite set
# is more than the batch at hand and must come back from the checkpoint.
CHECKPOINT_RUNS: dict[str, dict[str, Any]] = {
    "cem": dict(total_steps=3000, elite_iterations=2),
    "reinforce": dict(total_steps=1500),
    "a2c": dict(total_steps=1500),
}


def log_rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "train_log.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("name", list(CHECKPOINT_RUNS))
def test_checkpointing_leaves_the_run_unchanged(tmp_path: Path, name: str) -> None:
    algo = ALGORITHMS[name]
    config = algo.make_config("CartPole-v1", eval_episodes=3, **CHECKPOINT_RUNS[name])
    plain = algo.train("CartPole-v1", config, seed=4, out=tmp_path / "plain", progress=False)
    # a checkpoint after every update reads the RNG states, never draws from them: the same run, byte for byte
    kept = algo.train(
        "CartPole-v1", config, seed=4, out=tmp_path / "kept", progress=False, checkpoint=CheckpointOptions(0)
    )
    plain_rows, kept_rows = log_rows(plain.out), log_rows(kept.out)
    assert len(plain_rows) > 1  # several updates, each followed by a checkpoint
    assert read_checkpoint_state(kept.out)["counters"] == {"env_steps": kept.env_steps, "updates": len(kept_rows)}
    assert (plain.out / "model.safetensors").read_bytes() == (kept.out / "model.safetensors").read_bytes()
    assert plain.env_steps == kept.env_steps
    untimed = [{k: v for k, v in row.items() if k != "wall_seconds"} for row in plain_rows]
    assert untimed == [{k: v for k, v in row.items() if k != "wall_seconds"} for row in kept_rows]  # losses too


def test_the_cem_elite_set_round_trips_through_a_checkpoint(tmp_path: Path) -> None:
    elites = cem.EliteSet(batches=2)
    for n in (3, 5, 7):  # three batches: the oldest drops out
        elites.add(torch.randn(n, 4), torch.randint(0, 2, (n,)))
    out = tmp_path / "run"
    ckpt = Checkpointer(out, "cem", "CartPole-v1", 0, {})
    ckpt.track(elites=elites)
    ckpt.save(env_steps=15)
    again = cem.EliteSet(batches=2)
    again.add(torch.zeros(1, 4), torch.zeros(1, dtype=torch.int64))  # replaced by the checkpoint's
    Checkpointer(out, "cem", "CartPole-v1", 0, {}, resume=True).track(elites=again)
    assert again.observations().shape == (12, 4)
    assert torch.equal(again.observations(), elites.observations())
    assert torch.equal(again.actions(), elites.actions())
