"""The tutorial algorithms (cem, reinforce, a2c): each learns, writes an artifact any rlship code can load,
refuses bad hyperparameters before training starts, and checkpoints, stops on Ctrl-C and resumes like PPO."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

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
from rlship.training.checkpoint import Checkpointer, CheckpointOptions, read_checkpoint_state
from rlship.training.episodes import play_episodes
from rlship.training.run import EpisodeStats, TrainResult
from tests.test_tensorboard import read_scalars

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


# Tiny runs (a dozen updates or so) for the checkpoint tests; cem keeps two batches of elites so that its elite set
# is more than the batch at hand and must come back from the checkpoint.
CHECKPOINT_RUNS: dict[str, dict[str, Any]] = {
    "cem": dict(total_steps=3000, elite_iterations=2),
    "reinforce": dict(total_steps=1500),
    "a2c": dict(total_steps=1500),
}
# The algorithm's own signals, as TrainLog columns and so as TensorBoard scalars
OWN_TAGS = {
    "cem": ["train/elite_threshold", "train/loss"],
    "reinforce": ["train/loss", "train/entropy"],
    "a2c": ["train/entropy", "train/value_loss", "train/policy_loss"],
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


@pytest.mark.parametrize("name", list(CHECKPOINT_RUNS))
def test_ctrl_c_leaves_a_checkpoint_and_an_artifact_then_resume_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    algo, out = ALGORITHMS[name], tmp_path / "run"
    config = algo.make_config("CartPole-v1", eval_episodes=3, **CHECKPOINT_RUNS[name])
    real_safe_point = Checkpointer.safe_point

    def ctrl_c_after_the_first_update(self: Checkpointer, **counters: Any) -> bool:
        stop = real_safe_point(self, **counters)
        if counters["updates"] == 1:  # a real SIGINT, as from a terminal: the algorithm must be interruptible()
            os.kill(os.getpid(), signal.SIGINT)
        return stop

    monkeypatch.setattr(Checkpointer, "safe_point", ctrl_c_after_the_first_update)
    reset_seeds: list[int | None] = []  # the episodic methods reset their envs in play_episodes: record its seeds
    algo_module = sys.modules[algo.train.__module__]
    if hasattr(algo_module, "play_episodes"):

        def recording_play_episodes(*args: Any, seed: int | None = None) -> Any:
            reset_seeds.append(seed)
            return play_episodes(*args, seed=seed)

        monkeypatch.setattr(algo_module, "play_episodes", recording_play_episodes)
    # every_seconds=inf: no periodic checkpoint, so the one there is the one Ctrl-C wrote
    first = algo.train("CartPole-v1", config, seed=2, out=out, progress=False, checkpoint=CheckpointOptions(math.inf))
    monkeypatch.undo()
    assert first.interrupted and not first.solved and first.evaluation.n_eval_episodes == 3
    state = read_checkpoint_state(out)
    assert state["algorithm"] == name and state["counters"] == {"env_steps": first.env_steps, "updates": 2}
    assert 0 < first.env_steps < config.total_steps
    if name == "cem":  # the elite set is in the checkpoint: the elites of both batches so far
        assert state["objects"]["elites"] == {"kind": "custom", "state": {"batches": 2}}
    results = json.loads((out / "results.json").read_text())
    assert results["interrupted"] is True and results["solved"] is False
    assert load_policy(out).act(np.zeros(4, np.float32)).actions.shape == (1,)
    assert [int(r["env_steps"]) for r in log_rows(out)][-1] == first.env_steps

    if reset_seeds:
        assert reset_seeds == [2, None]  # the run's seed for the first batch only
        monkeypatch.setattr(algo_module, "play_episodes", recording_play_episodes)
        reset_seeds.clear()

    capsys.readouterr()
    assert main(["train", name, "CartPole-v1", "--resume", str(out), "--no-progress"]) == 0  # the CLI's own path
    summary = json.loads(capsys.readouterr().out)
    assert summary["interrupted"] is False and summary["env_steps"] >= config.total_steps
    results = json.loads((out / "results.json").read_text())
    assert results["interrupted"] is False and results["training"]["resumed_at_env_steps"] == [first.env_steps]
    if reset_seeds:  # a resumed run reseeds its first batch, with a seed of its own (Checkpointer.env_seed)
        assert reset_seeds[0] not in (None, 2) and set(reset_seeds[1:]) == {None}
    steps = [int(r["env_steps"]) for r in log_rows(out)]
    # one log: the first part's two rows, then the resumed part's, env steps going on from the checkpoint's
    assert len(steps) > 3 and steps[1] == first.env_steps and steps == sorted(set(steps))
    assert steps[-1] == summary["env_steps"]
    assert len(list(out.glob("events.out.tfevents.*"))) == 2  # one event file per part
    scalars = read_scalars(out)
    for tag in OWN_TAGS[name]:
        assert [step for step, _ in scalars[tag]] == steps, tag


def test_the_cem_elite_set_round_trips_through_a_checkpoint(tmp_path: Path) -> None:
    elites = cem.EliteSet(batches=2)
    for n in (3, 5, 7):  # three batches: the oldest drops out
        elites.add(torch.randn(n, 4), torch.randint(0, 2, (n,)))
    out = tmp_path / "run"
    ckpt = Checkpointer(out, "cem", "CartPole-v1", 0, {}, None, CheckpointOptions())
    ckpt.track(elites=elites)
    ckpt.save(env_steps=15)
    again = cem.EliteSet(batches=2)
    again.add(torch.zeros(1, 4), torch.zeros(1, dtype=torch.int64))  # replaced by the checkpoint's
    Checkpointer(out, "cem", "CartPole-v1", 0, {}, None, CheckpointOptions(resume=True)).track(elites=again)
    assert again.observations().shape == (12, 4)
    assert torch.equal(again.observations(), elites.observations())
    assert torch.equal(again.actions(), elites.actions())
