"""PPO: solves CartPole-v1, stops by the stop rule, writes the full artifact, and is reproducible."""

from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from rlship import load_policy
from rlship.errors import UsageError
from rlship.evaluation import EVAL_SEED_OFFSET, evaluate
from rlship.training import ppo
from rlship.training.checkpoint import CheckpointOptions
from rlship.training.rollout import compute_gae
from rlship.training.run import TrainResult
from rlship.training.stop_rule import CONFIRM_EVAL_SEED


def test_ppo_solves_cartpole(trained: TrainResult) -> None:
    assert trained.solved
    assert trained.evaluation.n_eval_episodes == 100 and trained.evaluation.deterministic
    assert trained.evaluation.mean_reward >= 475
    # evaluate again from disk, on other evaluation seeds: the policy itself, not the file, solves the task
    fresh = evaluate(load_policy(trained.out), episodes=100, seed=12345)
    assert fresh.mean_reward >= 475


def test_run_folder_holds_the_artifact(trained: TrainResult) -> None:
    names = {p.name for p in trained.out.iterdir()}
    assert {"config.json", "model.safetensors", "results.json", "train_log.csv", "training_curve.png"} <= names
    config = json.loads((trained.out / "config.json").read_text())
    assert config["algorithm"] == "ppo" and config["seed"] == 0
    assert config["hyperparameters"]["gamma"] == ppo.PRESETS["CartPole-v1"]["gamma"]
    results = json.loads((trained.out / "results.json").read_text())
    assert results["mean_reward"] == trained.evaluation.mean_reward
    assert results["n_eval_episodes"] == 100 and len(results["episode_returns"]) == 100
    assert results["episode_seeds"][0] == EVAL_SEED_OFFSET
    assert results["solved"] is True and results["reward_threshold"] == 475
    image = matplotlib.image.imread(trained.out / "training_curve.png")
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_train_log_has_one_row_per_update(trained: TrainResult) -> None:
    with (trained.out / "train_log.csv").open() as f:
        rows = list(csv.DictReader(f))
    cfg = ppo.make_config("CartPole-v1")
    assert len(rows) >= 2
    for col in (
        "env_steps",
        "wall_seconds",
        "episodes",
        "return_mean",
        "policy_loss",
        "value_loss",
        "entropy",
        "approx_kl",
        "clip_fraction",
        "learning_rate",
    ):
        assert col in rows[0], col
    steps = [int(r["env_steps"]) for r in rows]
    assert steps == sorted(steps) and steps[-1] == trained.env_steps
    assert all(0 < b - a <= cfg.num_envs * cfg.n_steps for a, b in itertools.pairwise(steps))
    # the stop rule's running return reached the mean its preset confirms from (then a confirmation passed)
    assert cfg.confirm_from is not None and float(rows[-1]["return_mean"]) >= cfg.confirm_from
    # and it confirmed on its schedule: after each update whose full window of returns had reached that mean, at
    # most once per confirm_every env steps (the preset confirms from the start: from the first full window)
    due, last = 0, None
    for row in rows:
        at = int(row["env_steps"])
        ready = int(row["episodes"]) >= cfg.solve_window and float(row["return_mean"]) >= cfg.confirm_from
        if ready and (last is None or at - last >= cfg.confirm_every):
            due, last = due + 1, at
    confirms = json.loads((trained.out / "results.json").read_text())["training"]["confirming_evaluations"]
    assert len(confirms) == due >= 1
    lrs = [float(r["learning_rate"]) for r in rows]
    assert lrs[0] == cfg.learning_rate and lrs == sorted(lrs, reverse=True)  # annealed


def test_stop_rule_stopped_early_after_a_passing_confirmation(trained: TrainResult) -> None:
    cfg = ppo.make_config("CartPole-v1")
    assert trained.env_steps < cfg.total_steps
    confirms = json.loads((trained.out / "results.json").read_text())["training"]["confirming_evaluations"]
    assert len(confirms) == trained.confirmations >= 1
    # the margin over all the episodes (a confirmation that failed its 20-episode screen had a mean under 475, so
    # under the margin too): only the last one clears it
    margins = [cfg.confirm_std_errors * c["std_reward"] / math.sqrt(cfg.confirm_episodes) for c in confirms]
    passed = [c["mean_reward"] - m >= 475 for c, m in zip(confirms, margins, strict=True)]
    assert passed[-1] and not any(passed[:-1])
    assert confirms[0]["seed"] == CONFIRM_EVAL_SEED  # not the final evaluation's seeds


def test_total_steps_caps_an_unsolved_run(tmp_path: Path) -> None:
    cfg = ppo.make_config("CartPole-v1", total_steps=2000)
    result = ppo.train("CartPole-v1", cfg, seed=1, out=tmp_path / "short", progress=False)
    assert not result.solved
    assert 2000 <= result.env_steps < 2000 + cfg.num_envs * cfg.n_steps
    results = json.loads((tmp_path / "short" / "results.json").read_text())
    # the preset confirms from the first full window of returns: every confirmation of this run failed
    confirms = results["training"]["confirming_evaluations"]
    assert len(confirms) == result.confirmations and all(c["episodes"] < 100 for c in confirms)
    assert results["solved"] is False and results["mean_reward"] < 475
    assert load_policy(tmp_path / "short").spec.env_id == "CartPole-v1"


def test_anneal_to_leaves_a_floor_under_the_learning_rate(tmp_path: Path) -> None:
    # rollouts of 512 steps (a few fewer env steps: reset steps are not counted) over a 1536-step budget
    cfg = ppo.make_config(
        "CartPole-v1", total_steps=1536, num_envs=4, n_steps=128, anneal_lr=True, anneal_to=0.25, eval_episodes=2
    )
    ppo.train("CartPole-v1", cfg, seed=0, out=tmp_path / "floor", progress=False)
    with (tmp_path / "floor" / "train_log.csv").open() as f:
        rows = list(csv.DictReader(f))
    steps_before = [0] + [int(r["env_steps"]) for r in rows[:-1]]  # the rate is set before each rollout
    lrs = [float(r["learning_rate"]) for r in rows]
    assert len(rows) >= 3
    for before, lr in zip(steps_before, lrs, strict=True):
        assert lr == pytest.approx(cfg.learning_rate * (1 - 0.75 * before / cfg.total_steps))
    # the last rollout starts past two thirds of the budget: at most half the starting rate, still above the floor
    assert steps_before[-1] >= 1024 and cfg.learning_rate * 0.25 < lrs[-1] <= cfg.learning_rate * 0.5
    with pytest.raises(UsageError, match="anneal_to"):
        ppo.make_config("CartPole-v1", anneal_to=1.5)


def test_same_seed_same_weights(tmp_path: Path) -> None:
    # the whole budget (seed 5's first confirmation may pass: the preset confirms from the first full window)
    cfg = ppo.make_config("CartPole-v1", total_steps=3000, eval_episodes=5, stop_on_solve=False)
    a = ppo.train("CartPole-v1", cfg, seed=5, out=tmp_path / "a", progress=False)
    # checkpointing after every update leaves the run unchanged: it reads the RNG states, never draws from them
    every_update = CheckpointOptions(every_seconds=0)
    b = ppo.train("CartPole-v1", cfg, seed=5, out=tmp_path / "b", progress=False, checkpoint=every_update)
    assert (tmp_path / "b" / "checkpoint" / "state.json").exists()
    c = ppo.train("CartPole-v1", cfg, seed=6, out=tmp_path / "c", progress=False)
    wa, wb, wc = (dict(r.policy.network.state_dict()) for r in (a, b, c))
    assert all(np.array_equal(wa[k].numpy(), wb[k].numpy()) for k in wa)
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()
    assert not all(np.array_equal(wa[k].numpy(), wc[k].numpy()) for k in wa)


def test_gae_matches_a_direct_computation() -> None:
    gamma, lam = 0.9, 0.8
    # one env, 5 steps: an episode truncated at t=1 (bootstrap from the final obs, whose value sits at t=2),
    # the reset step t=2, then an episode that terminates at t=4
    rewards = np.array([[1.0], [1.0], [0.0], [1.0], [1.0]], dtype=np.float32)
    values = np.array([[0.5], [0.6], [0.7], [0.2], [0.3], [9.9]], dtype=np.float32)
    terminated = np.array([[0], [0], [0], [0], [1]], dtype=bool)
    dones = np.array([[0], [1], [0], [0], [1]], dtype=bool)
    adv = compute_gae(rewards, values, terminated, dones, gamma, lam)[:, 0]
    d1 = 1.0 + gamma * 0.7 - 0.6  # truncated: bootstrapped from V(final obs)
    d0 = 1.0 + gamma * 0.6 - 0.5
    d4 = 1.0 - 0.3  # terminated: no bootstrap, and 9.9 (next rollout's value) never leaks in
    d3 = 1.0 + gamma * 0.3 - 0.2
    assert adv[1] == pytest.approx(d1)
    assert adv[0] == pytest.approx(d0 + gamma * lam * d1)
    assert adv[4] == pytest.approx(d4)
    assert adv[3] == pytest.approx(d3 + gamma * lam * d4)


def test_presets_and_overrides() -> None:
    cfg = ppo.make_config("CartPole-v1", gamma=0.9, learning_rate=None)
    assert cfg.gamma == 0.9  # an override beats the preset
    assert cfg.learning_rate == ppo.PRESETS["CartPole-v1"]["learning_rate"]  # None means "not given"
    assert ppo.make_config("MountainCar-v0").gamma == ppo.PPOConfig().gamma  # no preset: the defaults
    with pytest.raises(TypeError, match="unknown PPOConfig hyperparameters"):
        ppo.make_config("CartPole-v1", gama=0.9)
    with pytest.raises(ValueError, match=r"num_envs must be in \[1, 4096\]"):
        ppo.make_config("CartPole-v1", num_envs=0)
    with pytest.raises(ValueError, match="gae_lambda must be in"):
        ppo.make_config("CartPole-v1", gae_lambda=1.5)


def test_unknown_envs_and_box_actions_for_discrete_only_algorithms_are_refused(tmp_path: Path) -> None:
    from rlship.errors import UnsupportedEnvError
    from rlship.training import ALGORITHMS

    # ppo trains Box actions since issue 13 (tests/test_continuous.py); dqn still handles Discrete ones only
    with pytest.raises(UnsupportedEnvError, match="Discrete action spaces; Pendulum-v1 has Box"):
        dqn = ALGORITHMS["dqn"]
        dqn.train("Pendulum-v1", dqn.make_config("Pendulum-v1", total_steps=2000), out=tmp_path / "x", progress=False)
    with pytest.raises(UnsupportedEnvError, match="unknown Gymnasium env"):
        ppo.train("NoSuchEnv-v0", out=tmp_path / "y", progress=False)
