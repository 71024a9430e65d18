"""Temporally correlated exploration for Gaussian policies (`noise_repeat`, distributions.HeldNoise): at 1 the
sampler draws exactly what it drew before the setting existed; above 1 each env's unit noise is held that many of
its steps and drawn anew at its episode starts, in real rollouts of Pendulum-v1; and ppo learns with it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rlship.distributions import Bounding, CategoricalHead, GaussianHead, HeldNoise
from rlship.errors import UsageError
from rlship.evaluation import evaluate
from rlship.network_spec import NetworkSpec
from rlship.policy import load_policy
from rlship.training import ALGORITHMS, resume
from rlship.training.checkpoint import STATE_FILE, CheckpointError, CheckpointOptions
from rlship.training.rollout import actor_critic
from rlship.training.run import Run
from rlship.training.stop_rule import EpisodeStats
from tests.cli_run import run
from tests.conftest import untrained_policy
from tests.training_helpers import train_until_ctrl_c

ENV = "Pendulum-v1"


def _gaussian_out(n: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(3)
    return {"mean": torch.randn(n, 2), "log_std": torch.tensor([-0.5, 0.3])}


def test_at_one_step_the_sampler_draws_what_a_fresh_normal_draws_bit_for_bit() -> None:
    """noise_repeat 1 (the default) keeps every run as it was: the held noise of one step is the very normal
    that GaussianHead drew before (torch.randn of the action batch's shape from the run's generator)."""
    head = GaussianHead(Bounding("clip", np.full(2, -2.0), np.full(2, 2.0)))
    out = _gaussian_out(5)
    plain, held = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    before = torch.Generator().manual_seed(7)
    noise = HeldNoise(1, 5, (2,))
    for _ in range(6):
        u_plain, logp_plain = head.sample(out, plain)
        u_held, logp_held = head.sample(out, held, noise.draw(held))
        # the formula of the sampler as it was: mean + exp(log_std) * randn(mean.shape)
        u_before = out["mean"] + out["log_std"].exp() * torch.randn(out["mean"].shape, generator=before)
        assert torch.equal(u_plain, u_before) and torch.equal(u_held, u_before)
        assert torch.equal(logp_plain, logp_held)


def test_noise_is_held_for_k_steps_per_env_and_drawn_anew_at_an_episode_start() -> None:
    noise = HeldNoise(3, 4, (2,))
    generator = torch.Generator().manual_seed(0)
    starts = np.zeros(4, dtype=bool)
    draws = []
    for t in range(7):
        starts[:] = False
        if t == 1:
            starts[2] = True  # env 2 starts an episode at its step 1
        draws.append(noise.draw(generator, starts))
    d = torch.stack(draws)  # (7 steps, 4 envs, 2)
    for env in (0, 1, 3):  # drawn at steps 0, 3, 6
        assert torch.equal(d[0, env], d[1, env]) and torch.equal(d[1, env], d[2, env])
        assert not torch.equal(d[2, env], d[3, env])
        assert torch.equal(d[3, env], d[4, env]) and torch.equal(d[4, env], d[5, env])
        assert not torch.equal(d[5, env], d[6, env])
    # env 2: drawn at 0, anew at its start (1), then held 3 steps (1, 2, 3) and drawn at 4
    assert not torch.equal(d[0, 2], d[1, 2])
    assert torch.equal(d[1, 2], d[2, 2]) and torch.equal(d[2, 2], d[3, 2])
    assert not torch.equal(d[3, 2], d[4, 2])
    # a draw is a copy: what a caller keeps does not change with the next step's noise
    kept = noise.draw(generator)
    kept_copy = kept.clone()
    for _ in range(4):
        noise.draw(generator)
    assert torch.equal(kept, kept_copy)


def _pendulum_run(tmp_path: Path, algorithm: str, **settings: object) -> tuple[Run, object]:
    cfg = ALGORITHMS[algorithm].make_config(ENV, **settings)
    run = Run(ALGORITHMS[algorithm], ENV, cfg, 0, tmp_path / "run", False, None, None, False)
    return run, cfg


@pytest.mark.parametrize("algorithm", ["ppo", "a2c"])
def test_a_rollout_holds_each_envs_noise_k_steps_and_draws_it_anew_when_an_episode_starts(
    algorithm: str, tmp_path: Path
) -> None:
    """Real Pendulum-v1 rollouts (200-step episodes, next-step autoreset): the unit noise of each taken action,
    (u - mean(s)) / std, is constant over blocks of 7 steps, and the block that would span the episode's end is cut
    there: step 200 only resets the env (the reset step), step 201 starts the next episode with fresh noise."""
    k = 7
    run, cfg = _pendulum_run(tmp_path, algorithm, num_envs=2, n_steps=215, noise_repeat=k)
    actor, rollout = actor_critic(run, cfg)
    rollout.reset(seed=0)
    rollout.collect(run.generator, EpisodeStats(2, 20))
    with torch.no_grad():
        out = actor.forward(rollout.obs[:-1].reshape(-1, 3))
    std = out["log_std"].exp()
    eps = ((rollout.actions.reshape(-1, 1) - out["mean"]) / std).reshape(215, 2)
    assert not rollout.valid[200].any() and rollout.valid[201].all()  # the reset step of both envs
    for env in range(2):
        e = eps[:, env]
        # blocks from step 0: 0-6, 7-13, ..., 196-202 cut at the start (201): 196-200, then 201-207, 208-214
        blocks = [(s, min(s + k, 201)) for s in range(0, 201, k)] + [(201, 208), (208, 215)]
        for start, end in blocks:
            block = e[start:end]
            assert torch.allclose(block, block[0].expand_as(block), atol=1e-5), (env, start)
        firsts = torch.stack([e[start] for start, _ in blocks])
        assert torch.unique(firsts).numel() == len(blocks)  # every block drew a new normal
    # per step, the log-probability stored for the update is that of N(mean(s), std) at the taken action
    logp = (-0.5 * eps.reshape(-1, 1).pow(2) - out["log_std"] - 0.5 * np.log(2 * np.pi)).reshape(215, 2)
    assert torch.allclose(rollout.log_probs, logp, atol=1e-4)


def test_noise_repeat_is_for_box_actions_and_is_bounded(tmp_path: Path) -> None:
    cfg = ALGORITHMS["ppo"].make_config("CartPole-v1", noise_repeat=4, num_envs=2, n_steps=8)
    run = Run(ALGORITHMS["ppo"], "CartPole-v1", cfg, 0, tmp_path / "run", False, None, None, False)
    with pytest.raises(UsageError, match=r"noise_repeat.*Box actions"):
        actor_critic(run, cfg)
    with pytest.raises(UsageError, match="noise_repeat must be"):
        ALGORITHMS["ppo"].make_config(ENV, noise_repeat=0)
    with pytest.raises(ValueError, match="categorical"):
        CategoricalHead().sample({"logits": torch.zeros(2, 3)}, torch.Generator(), torch.zeros(2))


def test_ppo_with_held_noise_learns_pendulum_better_than_random(tmp_path: Path) -> None:
    """A short budget (40k env steps, about 5 seconds): the greedy policy of a held-noise run beats an untrained one
    (the same network, untrained), and config.json records the setting."""
    cfg = ALGORITHMS["ppo"].make_config(ENV, total_steps=40_000, eval_episodes=10)  # the preset: noise held 4 steps
    assert cfg.noise_repeat == 4
    result = ALGORITHMS["ppo"].train(ENV, cfg, seed=1, out=tmp_path / "run", progress=False)
    config = json.loads((result.out / "config.json").read_text())
    assert config["hyperparameters"]["noise_repeat"] == 4
    trained = evaluate(load_policy(result.out), episodes=10, seed=1).mean_reward
    spec = NetworkSpec((64, 64), "tanh", {"mean": 1, "value": 1}, log_std=1)
    untrained = untrained_policy("ppo", spec, env_id=ENV, seed=1, action_distribution="gaussian", bound="clip")
    baseline = evaluate(untrained, episodes=10, seed=1).mean_reward
    assert trained > baseline + 200, (trained, baseline)


@pytest.mark.parametrize("algorithm", ["ppo", "a2c"])
def test_a_checkpoint_from_before_noise_repeat_existed_resumes_at_1_and_held_noise_runs_resume(
    algorithm: str, tmp_path: Path
) -> None:
    """A checkpoint whose hyperparameters have no noise_repeat (written before the setting existed) ran with fresh
    noise every step: it resumes at the default 1, and asking for another value is refused as any changed setting.
    A run with held noise resumes too (the held noise starts afresh, as at a reset)."""
    small = dict(total_steps=1600, num_envs=2, n_steps=200, eval_episodes=2)
    if algorithm == "ppo":
        small.update(epochs=1, minibatch_size=200)
    config = ALGORITHMS[algorithm].make_config(ENV, **small, noise_repeat=1)
    out = tmp_path / "old"
    assert train_until_ctrl_c(ALGORITHMS[algorithm], ENV, config, out).interrupted
    state_path = out / "checkpoint" / STATE_FILE
    state = json.loads(state_path.read_text())
    assert state["hyperparameters"].pop("noise_repeat") == 1  # as written before noise_repeat existed
    state_path.write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match=r"noise_repeat: checkpoint 1, now 4"):
        ALGORITHMS[algorithm].train(
            ENV,
            ALGORITHMS[algorithm].make_config(ENV, **small, noise_repeat=4),
            seed=2,
            out=out,
            progress=False,
            checkpoint=CheckpointOptions(resume=True),
        )
    if algorithm == "ppo":  # the command line's --resume, as a user resumes
        run("train", algorithm, ENV, "--resume", str(out), "--no-progress")
        assert json.loads((out / "results.json").read_text())["training"]["env_steps"] >= 1600
    else:  # the Python API's
        resumed = resume(out, progress=False)
        assert not resumed.interrupted and resumed.env_steps >= 1600
    assert json.loads((out / "config.json").read_text())["hyperparameters"]["noise_repeat"] == 1

    held = ALGORITHMS[algorithm].make_config(ENV, **small, noise_repeat=4)
    out = tmp_path / "held"
    first = train_until_ctrl_c(ALGORITHMS[algorithm], ENV, held, out)
    assert first.interrupted and first.env_steps < 1600
    resumed = ALGORITHMS[algorithm].train(
        ENV, held, seed=2, out=out, progress=False, checkpoint=CheckpointOptions(resume=True)
    )
    assert not resumed.interrupted and resumed.env_steps >= 1600
    assert json.loads((out / "config.json").read_text())["hyperparameters"]["noise_repeat"] == 4
