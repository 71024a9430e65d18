"""DQN: learns, writes an epsilon-greedy artifact that round-trips, stores only real transitions (truncation
bootstraps, termination does not, autoreset steps are dropped), computes the double-DQN target, and refuses
bad hyperparameters before training."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlship import load_policy
from rlship.training import ALGORITHMS, dqn
from rlship.training.run import TrainResult
from tests.cli_run import RLSHIP
from tests.training_helpers import twin_mlps

RANDOM_FLOOR = 22.0  # a uniform-random CartPole-v1 policy scores about 22 on the evaluation protocol


@pytest.fixture(scope="module")
def short_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainResult, dqn.ReplayBuffer]:
    """One short real DQN run on CartPole-v1 (CartPole preset, fewer steps), and the replay memory it filled."""
    buffers: list[dqn.ReplayBuffer] = []

    class RecordedBuffer(dqn.ReplayBuffer):  # the real buffer; the test only keeps a reference to look inside
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            buffers.append(self)

    cfg = dqn.make_config("CartPole-v1", total_steps=SHORT_STEPS, eval_episodes=100)
    mp = pytest.MonkeyPatch()
    mp.setattr(dqn, "ReplayBuffer", RecordedBuffer)
    try:
        result = dqn.train("CartPole-v1", cfg, seed=0, out=tmp_path_factory.mktemp("dqn") / "run", progress=False)
    finally:
        mp.undo()
    return result, buffers[0]


SHORT_STEPS = 20_000


def test_short_run_learns_clearly_better_than_random(short_run: tuple[TrainResult, dqn.ReplayBuffer]) -> None:
    result, _ = short_run
    assert result.evaluation.n_eval_episodes == 100 and result.evaluation.deterministic
    assert result.evaluation.mean_reward > 3 * RANDOM_FLOOR  # 95 on seed 0 (a full run solves at ~60k steps)
    assert result.env_steps <= SHORT_STEPS + dqn.make_config("CartPole-v1").num_envs


def test_artifact_round_trips_with_q_values_and_epsilon_greedy_probabilities(
    short_run: tuple[TrainResult, dqn.ReplayBuffer],
) -> None:
    result, _ = short_run
    loaded = load_policy(result.out)
    cfg = dqn.make_config("CartPole-v1")
    assert loaded.spec.algorithm == "dqn" and loaded.spec.action_distribution == "epsilon_greedy"
    assert loaded.spec.epsilon == cfg.exploration_final_eps
    assert set(loaded.spec.network.heads) == {"q_values"}
    obs = np.random.default_rng(0).normal(0, 0.5, size=(64, 4)).astype(np.float32)
    a, b = result.policy.act(obs), loaded.act(obs)
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_array_equal(a.q_values, b.q_values)
    assert b.q_values.shape == (64, 2) and b.values is None
    np.testing.assert_array_equal(b.actions, b.q_values.argmax(axis=1))  # greedy = argmax Q
    eps = cfg.exploration_final_eps
    expected = np.full((64, 2), eps / 2, dtype=np.float32)
    expected[np.arange(64), b.actions] += 1 - eps
    np.testing.assert_allclose(b.probabilities, expected, rtol=1e-6)
    # deterministic=False samples that distribution: the non-greedy action about eps/2 of the time
    sampled = loaded.act(np.repeat(obs[:1], 20_000, axis=0), deterministic=False, rng=np.random.default_rng(1))
    off = float(np.mean(sampled.actions != b.actions[0]))
    assert abs(off - eps / 2) < 0.01
    # and the evaluation written to results.json is reproduced from the folder
    results = json.loads((result.out / "results.json").read_text())
    assert results["mean_reward"] == result.evaluation.mean_reward


def test_replay_memory_holds_the_presets_n_step_transitions(short_run: tuple[TrainResult, dqn.ReplayBuffer]) -> None:
    """The preset stores 3-step transitions: each counted env step starts one (those of the last steps of each env
    still wait in the window), each reward is CartPole's 1 a step discounted over the transition's steps, fewer
    than 3 only where an episode ended, and `terminated` is exactly "the pole fell or the cart left" at its end."""
    result, buffer = short_run
    cfg = dqn.make_config("CartPole-v1")
    assert cfg.n_steps == 3
    n = buffer.size
    assert 0 <= result.env_steps - n <= cfg.num_envs * (cfg.n_steps - 1)
    steps = buffer.steps[:n]
    assert set(np.unique(steps).tolist()) == {1.0, 2.0, 3.0} and (steps == 3).mean() > 0.9
    np.testing.assert_allclose(buffer.rewards[:n], (1 - cfg.gamma**steps) / (1 - cfg.gamma), rtol=1e-5)
    fell = (np.abs(buffer.next_obs[:n, 0]) > 2.4) | (np.abs(buffer.next_obs[:n, 2]) > 12 * 2 * np.pi / 360)
    np.testing.assert_array_equal(buffer.terminated[:n], fell.astype(np.float32))


def test_truncation_bootstraps_and_termination_does_not(tmp_path: Path) -> None:
    """With a 10-step time limit most episodes are truncated: those transitions must be stored as not terminated.
    One-step transitions here, so that each stored (obs, action) -> next_obs can be checked against CartPole's own
    dynamics: no autoreset step (final obs -> a new episode's start) was stored."""
    buffers: list[dqn.ReplayBuffer] = []

    class RecordedBuffer(dqn.ReplayBuffer):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            buffers.append(self)

    cfg = dqn.make_config("CartPole-v1", total_steps=1000, learning_starts=500, eval_episodes=2, n_steps=1)
    mp = pytest.MonkeyPatch()
    mp.setattr(dqn, "ReplayBuffer", RecordedBuffer)
    try:
        result = dqn.train(
            "CartPole-v1", cfg, seed=3, out=tmp_path / "run", progress=False, env_kwargs={"max_episode_steps": 10}
        )
    finally:
        mp.undo()
    buffer = buffers[0]
    n = buffer.size
    assert n == result.env_steps  # one transition per counted env step; reset steps neither
    fell = (np.abs(buffer.next_obs[:n, 0]) > 2.4) | (np.abs(buffer.next_obs[:n, 2]) > 12 * 2 * np.pi / 360)
    np.testing.assert_array_equal(buffer.terminated[:n], fell.astype(np.float32))
    assert np.all(buffer.steps[:n] == 1) and np.all(buffer.rewards[:n] == 1)
    env = gym.make("CartPole-v1").unwrapped
    env.reset(seed=0)
    for i in range(n):
        env.state = buffer.obs[i].astype(np.float64)
        env.steps_beyond_terminated = None  # a state set by hand starts a fresh step
        expected, _, terminated, _, _ = env.step(int(buffer.actions[i]))
        np.testing.assert_allclose(buffer.next_obs[i], expected, atol=1e-5)
        assert buffer.terminated[i] == float(terminated)
    with (tmp_path / "run" / "train_log.csv").open() as f:
        episodes = int(list(csv.DictReader(f))[-1]["episodes"])
    assert 0 < fell.sum() < episodes / 2  # some terminations; most episodes ended by the time limit


def test_replay_buffer_wraps_around_and_drops_invalid_rows() -> None:
    buffer = dqn.ReplayBuffer(capacity=5, obs_dim=1)

    def add(values: list[float], valid: list[bool]) -> None:
        v = np.array(values, dtype=np.float32)
        buffer.add(v[:, None], v.astype(np.int64), v, v[:, None] + 0.5, v > 100, np.array(valid))

    add([1, 2, 3], [True, True, True])
    assert (buffer.pos, buffer.size) == (3, 3)
    add([4, 99, 5, 6], [True, False, True, True])  # 99 is an autoreset step: dropped
    assert (buffer.pos, buffer.size) == (1, 5)
    assert buffer.obs[:, 0].tolist() == [6, 2, 3, 4, 5]  # 1 was the oldest: overwritten by 6
    assert buffer.next_obs[:, 0].tolist() == [6.5, 2.5, 3.5, 4.5, 5.5]
    assert buffer.actions.tolist() == [6, 2, 3, 4, 5] and buffer.rewards.tolist() == [6, 2, 3, 4, 5]
    add([101], [True])
    assert buffer.terminated.tolist() == [0, 1, 0, 0, 0]
    obs, actions, rewards, next_obs, terminated, steps = buffer.sample(1000, np.random.default_rng(0))
    assert set(obs[:, 0].tolist()) == {101, 3, 4, 5, 6}  # uniform over everything held, nothing else
    assert torch.equal(obs[:, 0] + 0.5, next_obs[:, 0]) and torch.equal(actions.float(), rewards)
    assert torch.equal(terminated, (rewards > 100).float()) and torch.all(steps == 1)


def test_n_step_window_sums_discounted_rewards_and_stops_at_episode_ends() -> None:
    """Two envs, n = 3, gamma 0.5. Env 0: an episode terminated at step 4, the autoreset step 5, then an episode
    truncated at step 8. Env 1: no episode end. Reward at step t is t + 1, observation t, next observation t + 0.5."""
    buffer = dqn.ReplayBuffer(capacity=100, obs_dim=1)
    window = dqn.NStepWindow(n=3, num_envs=2, obs_shape=(1,), gamma=0.5)
    for t in range(9):
        obs = np.full((2, 1), t, dtype=np.float32)
        window.push(
            buffer,
            obs,
            np.array([t, t]),
            np.full(2, t + 1.0, dtype=np.float32),
            obs + 0.5,
            np.array([t == 4, False]),
            np.array([t == 8, False]),
            np.array([t != 5, True]),
        )
    stored = {
        (
            int(buffer.obs[i, 0]),
            float(buffer.rewards[i]),
            float(buffer.next_obs[i, 0]),
            bool(buffer.terminated[i]),
            int(buffer.steps[i]),
        )
        for i in range(buffer.size)
    }
    env0 = {
        (0, 1 + 0.5 * 2 + 0.25 * 3, 2.5, False, 3),  # a full window bootstraps from the obs after step 2
        (1, 2 + 0.5 * 3 + 0.25 * 4, 3.5, False, 3),
        (2, 3 + 0.5 * 4 + 0.25 * 5, 4.5, True, 3),  # ends with the termination at step 4: no bootstrap
        (3, 4 + 0.5 * 5, 4.5, True, 2),
        (4, 5.0, 4.5, True, 1),
        (6, 7 + 0.5 * 8 + 0.25 * 9, 8.5, False, 3),  # truncated at step 8: bootstraps from the final obs
        (7, 8 + 0.5 * 9, 8.5, False, 2),
        (8, 9.0, 8.5, False, 1),
    }  # step 5 (the autoreset) starts nothing and no sum crosses it
    env1 = {(t, t + 1 + 0.5 * (t + 2) + 0.25 * (t + 3), t + 2.5, False, 3) for t in range(7)}  # 7, 8: still open
    assert buffer.size == len(env0) + len(env1) and stored == env0 | env1

    # A resume: the window goes through a checkpoint, then its pending transitions (env 1's from steps 7 and 8; env
    # 0's episode was truncated at step 8, so none) are cut at the latest observation: not terminated, k steps
    tensors, meta = window.checkpoint_state()
    resumed = dqn.NStepWindow(n=3, num_envs=2, obs_shape=(1,), gamma=0.5)
    resumed.load_checkpoint_state(tensors, json.loads(json.dumps(meta)))
    before = buffer.size
    assert resumed.flush(buffer) == 2 and buffer.size == before + 2
    flushed = {
        (int(buffer.obs[i, 0]), float(buffer.rewards[i]), float(buffer.next_obs[i, 0]), float(buffer.terminated[i]))
        for i in range(before, buffer.size)
    }
    assert flushed == {(7, 8 + 0.5 * 9, 8.5, 0.0), (8, 9.0, 8.5, 0.0)}
    assert buffer.steps[before : buffer.size].tolist() == [1.0, 2.0]  # step 8's (1 step), then step 7's (2)
    assert resumed.flush(buffer) == 0  # the window is empty: nothing is added twice
    with pytest.raises(ValueError, match="n-step window holds obs"):
        dqn.NStepWindow(n=3, num_envs=4, obs_shape=(1,), gamma=0.5).load_checkpoint_state(tensors, meta)


def test_one_step_window_stores_the_plain_transitions() -> None:
    rng = np.random.default_rng(0)
    plain, windowed = dqn.ReplayBuffer(64, 2), dqn.ReplayBuffer(64, 2)
    window = dqn.NStepWindow(n=1, num_envs=3, obs_shape=(2,), gamma=0.99)
    for _ in range(10):
        obs, next_obs = rng.normal(size=(2, 3, 2)).astype(np.float32)
        actions, rewards = rng.integers(0, 2, 3), rng.normal(size=3).astype(np.float32)
        term, trunc, valid = rng.random(3) < 0.2, rng.random(3) < 0.2, rng.random(3) < 0.8
        plain.add(obs, actions, rewards, next_obs, term, valid)
        window.push(windowed, obs, actions, rewards, next_obs, term, trunc, valid)
    for name in ("obs", "next_obs", "actions", "rewards", "terminated", "steps"):
        np.testing.assert_array_equal(getattr(windowed, name), getattr(plain, name))


def test_learning_rate_decays_linearly_to_its_final_fraction() -> None:
    cfg = dqn.make_config("CartPole-v1", total_steps=10_000, learning_rate=1e-3, final_lr_fraction=0.1)
    assert cfg.lr(0) == pytest.approx(1e-3) and cfg.lr(5000) == pytest.approx(0.55e-3)
    assert cfg.lr(10_000) == pytest.approx(1e-4) and cfg.lr(50_000) == pytest.approx(1e-4)
    assert dqn.make_config("CartPole-v1", final_lr_fraction=1.0, learning_rate=2e-3).lr(700) == 2e-3


def test_double_dqn_target_on_a_hand_example() -> None:
    rewards = torch.tensor([1.0, 1.0, 0.5])
    terminated = torch.tensor([0.0, 1.0, 0.0])
    next_q_target = torch.tensor([[10.0, 20.0], [10.0, 20.0], [3.0, 7.0]])
    next_q_online = torch.tensor([[5.0, 1.0], [5.0, 1.0], [0.0, 2.0]])  # picks action 0, 0, 1
    gamma = 0.9
    double = dqn.td_targets(rewards, terminated, next_q_target, next_q_online, gamma)
    torch.testing.assert_close(double, torch.tensor([1 + 0.9 * 10, 1.0, 0.5 + 0.9 * 7]))
    vanilla = dqn.td_targets(rewards, terminated, next_q_target, None, gamma)  # max over the target's values
    torch.testing.assert_close(vanilla, torch.tensor([1 + 0.9 * 20, 1.0, 0.5 + 0.9 * 7]))


def test_epsilon_decays_linearly_then_stays() -> None:
    cfg = dqn.make_config(
        "CartPole-v1", total_steps=1000, exploration_fraction=0.5, exploration_initial_eps=1.0, learning_starts=0
    )
    final = cfg.exploration_final_eps
    assert cfg.epsilon(0) == 1.0
    assert cfg.epsilon(250) == pytest.approx((1.0 + final) / 2)
    assert cfg.epsilon(500) == pytest.approx(final) and cfg.epsilon(900) == pytest.approx(final)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"learning_rate": -1e-3}, "learning_rate must be > 0"),
        ({"batch_size": 512, "buffer_size": 256}, "batch_size .512. is larger than buffer_size .256."),
        ({"exploration_final_eps": 1.5}, "exploration_final_eps must be in"),
        ({"exploration_initial_eps": -0.1}, "exploration_initial_eps must be in"),
        ({"learning_starts": 5000, "total_steps": 4000}, r"learning_starts \(5000\) \+ train_freq \(16\) is beyond"),
        ({"learning_starts": -1}, "learning_starts must be >= 0"),
        ({"gamma": 1.01}, "gamma must be in"),
        ({"tau": 0.0}, "tau must be in"),
        ({"gradient_steps": 0}, r"gradient_steps must be in \[1, 1000\]"),
        ({"activation": "gelu"}, "activation must be one of"),
    ],
)
def test_bad_hyperparameters_are_refused_before_training(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dqn.make_config("CartPole-v1", **overrides)


def test_unknown_hyperparameter_and_presets() -> None:
    with pytest.raises(TypeError, match="unknown DQNConfig hyperparameters"):
        dqn.make_config("CartPole-v1", learning_rat=1e-3)
    assert dqn.make_config("CartPole-v1", gamma=0.9).gamma == 0.9
    assert dqn.make_config("MountainCar-v0").buffer_size == dqn.DQNConfig().buffer_size  # no preset: defaults
    assert ALGORITHMS["dqn"].config_cls is dqn.DQNConfig


def test_cli_refuses_bad_hyperparameters_in_one_line(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.run(
        [RLSHIP, "train", "dqn", "CartPole-v1", "--out", str(out), "--batch-size", "128", "--buffer-size", "64"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlship train: error: batch_size (128) is larger than buffer_size")
    assert not out.exists()  # refused before anything was written
    text = subprocess.run([RLSHIP, "train", "dqn", "--help"], capture_output=True, text=True, timeout=120).stdout
    for flag in ("--double-dqn", "--tau", "--target-update-interval", "--exploration-final-eps", "--train-freq"):
        assert flag in text, flag


def test_replay_memory_survives_a_checkpoint() -> None:
    rng = np.random.default_rng(0)
    buffer = dqn.ReplayBuffer(8, 2)
    for _ in range(5):  # 10 rows into 8 slots: wrapped
        obs = rng.normal(size=(2, 2)).astype(np.float32)
        buffer.add(obs, np.array([0, 1]), np.ones(2), obs + 1, np.array([False, True]), np.ones(2, dtype=bool))
    tensors, meta = buffer.checkpoint_state()
    for name, tensor in tensors.items():  # views of the memory, not copies (a pixel memory is 1 GB)
        assert np.shares_memory(tensor.numpy(), getattr(buffer, name)), name
    restored = dqn.ReplayBuffer(8, 2)
    restored.load_checkpoint_state(tensors, json.loads(json.dumps(meta)))
    assert (restored.pos, restored.size) == (buffer.pos, buffer.size) == (2, 8)
    for name in ("obs", "next_obs", "actions", "rewards", "terminated", "steps"):
        np.testing.assert_array_equal(getattr(restored, name), getattr(buffer, name))
    with pytest.raises(ValueError, match="replay memory holds 8"):
        dqn.ReplayBuffer(16, 2).load_checkpoint_state(tensors, meta)


def test_a_checkpoint_without_the_n_step_window_resumes_and_other_gaps_are_refused(tmp_path: Path) -> None:
    """A dqn checkpoint from before the window was saved resumes with an empty window (nothing to flush); any
    other object missing from a checkpoint is still an error naming both sets."""
    from rlship.training.checkpoint import Checkpointer, CheckpointError

    out = tmp_path / "run"
    buffer = dqn.ReplayBuffer(8, 2)
    buffer.add(np.ones((2, 2)), np.array([0, 1]), np.ones(2), np.ones((2, 2)), np.zeros(2), np.ones(2, dtype=bool))
    old = Checkpointer(out, "dqn", "CartPole-v1", 0, {})
    old.track(buffer=buffer)
    old.save(env_steps=2)
    restored, window = dqn.ReplayBuffer(8, 2), dqn.NStepWindow(3, 2, (2,), 0.99)
    assert Checkpointer(out, "dqn", "CartPole-v1", 0, {}, resume=True).track(buffer=restored, window=window) == {
        "env_steps": 2
    }
    assert restored.size == 2 and window.flush(restored) == 0
    with pytest.raises(CheckpointError, match=r"holds \['buffer'\]; this version of the algorithm saves"):
        Checkpointer(out, "dqn", "CartPole-v1", 0, {}, resume=True).track(buffer=restored, other=dqn.ReplayBuffer(8, 2))


def checkpoint_of(out: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A run's checkpoint: state.json and its tensors."""
    from safetensors.torch import load_file

    from rlship.training.checkpoint import read_checkpoint_state

    state = read_checkpoint_state(out)
    return state, load_file(str(out / "checkpoint" / state["tensors_file"]))


def pending_in(checkpoint: tuple[dict[str, Any], dict[str, torch.Tensor]], cfg: dqn.DQNConfig) -> dqn.ReplayBuffer:
    """The transitions pending in a CartPole checkpoint's n-step window, cut as a resume cuts them."""
    state, tensors = checkpoint
    window = dqn.NStepWindow(cfg.n_steps, cfg.num_envs, (4,), cfg.gamma)
    own = {k.removeprefix("window/"): v for k, v in tensors.items() if k.startswith("window/")}
    window.load_checkpoint_state(own, state["objects"]["window"]["state"])
    pending = dqn.ReplayBuffer(cfg.num_envs * cfg.n_steps, 4)
    window.flush(pending)
    return pending


def interrupt_when(saved: Any) -> threading.Thread:
    """A thread that sends this process SIGINT once `saved()` is true (a checkpoint was written)."""

    def watch() -> None:
        deadline = time.monotonic() + 120
        while not saved() and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=watch)
    thread.start()
    return thread


def test_interrupted_dqn_run_resumes_with_its_replay_memory_and_n_step_window(tmp_path: Path) -> None:
    """SIGINT stops `dqn.train` at a safe point with a checkpoint; `resume` goes on from its counters. No
    transition is lost: every counted env step starts one, held by the replay memory or pending in the 3-step
    window, at every checkpoint; a resume cuts the pending ones (its envs are reset) into the memory as truncated
    k-step transitions, bootstrapping from the last observation, before its first step."""
    from rlship.training import resume
    from rlship.training.checkpoint import STATE_FILE, CheckpointOptions

    out = tmp_path / "run"
    cfg = dqn.make_config("CartPole-v1", total_steps=4000, learning_starts=500, eval_episodes=5)
    assert cfg.n_steps == 3
    thread = interrupt_when((out / "checkpoint" / STATE_FILE).exists)
    first = dqn.train("CartPole-v1", cfg, seed=1, out=out, progress=False, checkpoint=CheckpointOptions(0))
    thread.join()
    assert first.interrupted and not first.solved
    state, tensors = checkpoint = checkpoint_of(out)
    assert first.env_steps == state["counters"]["env_steps"] < 4000
    held, pending = state["objects"]["buffer"]["state"]["size"], pending_in(checkpoint, cfg)
    assert pending.size > 0 and held + pending.size == first.env_steps
    assert load_policy(out).spec.algorithm == "dqn"

    # resumed, then stopped again a few updates on: the first run's pending transitions are in the memory
    saves = state["saves"]
    thread = interrupt_when(lambda: json.loads((out / "checkpoint" / STATE_FILE).read_text())["saves"] > saves)
    second = resume(out, progress=False, checkpoint_every=0)
    thread.join()
    assert second.interrupted and second.env_steps > first.env_steps
    state2, tensors2 = checkpoint2 = checkpoint_of(out)
    assert state2["objects"]["buffer"]["state"]["size"] + pending_in(checkpoint2, cfg).size == second.env_steps
    cut = slice(held, held + pending.size)  # added at the resume, before its first step
    for name in ("obs", "actions", "rewards", "next_obs", "terminated", "steps"):
        np.testing.assert_array_equal(tensors2[f"buffer/{name}"][cut].numpy(), getattr(pending, name)[: pending.size])
    steps = tensors2["buffer/steps"][cut].numpy()
    assert set(steps.tolist()) <= {1.0, 2.0} and not tensors2["buffer/terminated"][cut].any()
    rewards = tensors2["buffer/rewards"][cut].numpy()  # CartPole pays 1 a step
    np.testing.assert_allclose(rewards, (1 - cfg.gamma**steps) / (1 - cfg.gamma), rtol=1e-5)
    last_obs = tensors["window/last_obs"].numpy()  # each bootstraps from its env's last observation
    assert all(any(np.array_equal(row, obs) for obs in last_obs) for row in tensors2["buffer/next_obs"][cut].numpy())

    third = resume(out, progress=False)
    assert not third.interrupted and third.env_steps >= 4000
    with (out / "train_log.csv").open() as f:
        log_steps = [int(row["env_steps"]) for row in csv.DictReader(f)]
    assert log_steps == sorted(log_steps) and log_steps[0] <= first.env_steps < log_steps[-1]


def test_a_replay_memory_larger_than_the_machine_is_refused_before_allocation(tmp_path: Path) -> None:
    """10M pixel transitions (about 140 GiB of 3-frame stacks) would be allocated lazily by NumPy and kill the run
    when it fills: refused in one line naming a --buffer-size that fits, and no run folder is left behind."""
    import os

    if os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") > 2 * 140 * 2**30:
        pytest.skip("this machine could hold that replay memory")
    out = tmp_path / "run"
    proc = subprocess.run(
        [RLSHIP, "train", "dqn", "rlship/CartPolePixels-v1", "--out", str(out), "--buffer-size", "10000000"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "replay memory of 10,000,000 transitions" in proc.stderr and "--buffer-size" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_plain_q_forward_gives_the_networks_outputs_and_gradients_bit_for_bit(activation: str) -> None:
    net, twin = twin_mlps(activation)
    obs = torch.randn(64, 4)
    q = dqn.q_values_fn(twin)
    assert torch.equal(q(obs), net(obs)["q_values"])
    net(obs)["q_values"].square().sum().backward()
    q(obs).square().sum().backward()
    for a, b in zip(net.parameters(), twin.parameters(), strict=True):
        assert a.grad is not None and b.grad is not None and torch.equal(a.grad, b.grad)


def test_plain_q_forward_calls_any_other_network_as_it_is() -> None:
    from rlship.network_spec import NetworkSpec
    from rlship.networks import HeadsNetwork

    net = HeadsNetwork(4, NetworkSpec((8,), "relu", {"q_values": 2}, shared_trunk=True))
    obs = torch.randn(5, 4)
    assert torch.equal(dqn.q_values_fn(net)(obs), net(obs)["q_values"])
