"""REINFORCE (vanilla policy gradient, Williams 1992) for discrete actions, on Gymnasium vector envs.

Reads top to bottom: hyperparameters, then `train`: play a batch of whole episodes with the current policy
(one per vector env, actions sampled), compute each step's discounted return-to-go, normalise the returns over
the batch (mean 0, std 1: a baseline and a step size in one), take one gradient step on
loss = -sum(log_prob(action) * return) / episodes, log, check the stop rule, repeat.

Episodes cut by the time limit count as ended (a Monte Carlo return has nothing to bootstrap from); on
CartPole-v1 the cut comes at 500 steps, where a policy that gets there is solved anyway.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlship.envs import env_spec, make_vec_env, require_discrete_actions
from rlship.networks import ACTIVATIONS, NetworkSpec
from rlship.policy import new_policy
from rlship.training.checkpoint import CheckpointOptions, start_run
from rlship.training.episodes import play_episodes
from rlship.training.run import (
    EpisodeStats,
    RunSettings,
    StopRule,
    TrainLog,
    TrainResult,
    config_with_preset,
    finish_run,
    hp,
)


@dataclass
class ReinforceConfig(RunSettings):
    total_steps: int = hp(500_000, "env steps (of played episodes) before training stops, solved or not")
    batch_episodes: int = hp(8, "episodes per gradient step, one per vector env")
    learning_rate: float = hp(0.01, "Adam learning rate")
    gamma: float = hp(0.99, "discount factor of the returns-to-go")
    normalize_returns: bool = hp(True, "normalise the returns-to-go over each batch (mean 0, std 1)")
    hidden_sizes: tuple[int, ...] = hp((128,), "hidden layer sizes of the policy MLP")
    activation: str = hp("relu", "hidden activation: tanh or relu")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.hidden_sizes = tuple(self.hidden_sizes)
        for name in (
            "total_steps",
            "batch_episodes",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0; got {self.learning_rate}")
        if not 0 <= self.gamma <= 1:
            raise ValueError(f"gamma must be in [0, 1]; got {self.gamma}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}; got {self.activation!r}")
        if any(h < 1 for h in self.hidden_sizes):
            raise ValueError(f"hidden_sizes must be positive; got {list(self.hidden_sizes)}")


# Tuned defaults per env, applied over the ReinforceConfig defaults (user flags go over these).
PRESETS: dict[str, dict[str, Any]] = {
    "CartPole-v1": dict(),
    # The Hugging Face Deep RL course's Pixelcopter settings (unit 4): one episode per update, lr 1e-4, gamma
    # 0.99, ReLU layers of 64 and 128 (its `h_size` 64 and `h_size * 2`). Its budget of 50,000 episodes is cut
    # to 200,000 env steps (about 2,800 episodes here, 1/18 of it) to run on a shared CPU: README.md, Pixelcopter.
    "rlship/Pixelcopter-v0": dict(
        total_steps=200_000,
        batch_episodes=1,
        learning_rate=1e-4,
        gamma=0.99,
        hidden_sizes=(64, 128),
        activation="relu",
    ),
}


def make_config(env_id: str, **overrides: Any) -> ReinforceConfig:
    """ReinforceConfig: defaults < the env's preset < overrides (None values are ignored)."""
    return config_with_preset(ReinforceConfig, PRESETS, env_id, overrides)


def train(
    env_id: str,
    config: ReinforceConfig | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    progress: bool = True,
    env_kwargs: dict[str, Any] | None = None,
    checkpoint: CheckpointOptions | None = None,
) -> TrainResult:
    cfg = config or make_config(env_id)
    out, ckpt = start_run("reinforce", env_id, cfg, seed, out, env_kwargs, checkpoint)
    generator = torch.Generator().manual_seed(seed)

    envs = make_vec_env(env_id, cfg.batch_episodes, env_kwargs)
    n_actions = require_discrete_actions(env_id, envs.single_action_space, "REINFORCE")
    policy = new_policy(
        "reinforce",
        env_id,
        envs.single_observation_space,
        envs.single_action_space,
        NetworkSpec(cfg.hidden_sizes, cfg.activation, {"logits": n_actions}),
        hyperparameters=asdict(cfg),
        seed=seed,
        env_kwargs=env_kwargs,
    )
    net = policy.network
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate)

    stats = EpisodeStats(cfg.batch_episodes, cfg.solve_window)
    stop = StopRule(env_spec(env_id).reward_threshold, cfg.confirm_episodes)
    log = TrainLog(out, cfg.total_steps, ["loss", "entropy"], progress, desc=f"reinforce {env_id} s{seed}")
    counters = ckpt.track(network=net, optimizer=optimizer, generator=generator, stats=stats, stop=stop, log=log)
    env_steps, updates = counters.get("env_steps", 0), counters.get("updates", 0)
    reset_seed = ckpt.env_seed  # seeds the first batch's resets (the run's seed; a derived one on resume)
    with ckpt.interruptible():
        try:
            while env_steps < cfg.total_steps:
                # --- play a batch of whole episodes with the current policy
                batch = play_episodes(envs, net, generator, stats, seed=reset_seed)
                reset_seed = None  # later batches go on from the envs' own RNG
                env_steps += batch.env_steps

                # --- discounted returns-to-go, G_t = r_t + gamma * G_{t+1} (rewards are 0 after an episode's end)
                returns_to_go = discounted_returns(batch.rewards, cfg.gamma)
                mask = torch.from_numpy(batch.mask)
                returns = torch.from_numpy(returns_to_go)[mask]
                if cfg.normalize_returns and returns.numel() > 1:  # the std of one number is undefined
                    returns = (returns - returns.mean()) / (returns.std() + 1e-8)

                # --- one policy-gradient step on all the batch's steps
                log_probs = torch.log_softmax(net(batch.obs[mask])["logits"], dim=-1)
                logp = log_probs.gather(1, batch.actions[mask][:, None]).squeeze(-1)
                loss = -(logp * returns).sum() / cfg.batch_episodes
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

                entropy = -(log_probs.exp() * log_probs).sum(-1).mean()
                log.log(env_steps, stats, loss=loss.item(), entropy=entropy.item())
                updates += 1
                if stop.solved(stats, policy):
                    break
                if ckpt.safe_point(env_steps=env_steps, updates=updates):  # True: Ctrl-C, checkpoint written
                    break
        finally:
            envs.close()
            log.close()
    return finish_run(out, policy, log, stop, env_steps, cfg.eval_episodes, checkpointer=ckpt)


def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """Returns-to-go of a (T, N) reward array holding one episode per column, zero-padded after its end."""
    returns = np.zeros_like(rewards, dtype=np.float32)
    running = np.zeros(rewards.shape[1], dtype=np.float32)
    for t in reversed(range(rewards.shape[0])):
        running = rewards[t] + gamma * running
        returns[t] = running
    return returns
