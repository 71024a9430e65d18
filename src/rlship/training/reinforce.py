"""REINFORCE (vanilla policy gradient, Williams 1992) for Discrete and Box actions (a diagonal
Gaussian, clipped for the env, as in ppo.py), on Gymnasium vector envs.

Reads top to bottom: hyperparameters, then `learn`: play a batch of whole episodes with the current policy
(one per vector env, actions sampled), compute each step's discounted return-to-go, normalise the returns over
the batch (mean 0, std 1: a baseline and a step size in one), take one gradient step on
loss = -sum(log_prob(action) * return) / episodes, log, check the stop rule, repeat.

Episodes cut by the time limit count as ended (a Monte Carlo return has nothing to bootstrap from); on
CartPole-v1 the cut comes at 500 steps, where a policy that gets there is solved anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from rlship.lazy_torch import torch
from rlship.training.algorithm import Algorithm
from rlship.training.settings import ACTIVATIONS, MAX_HIDDEN_SIZE, MAX_TOTAL_STEPS, RunSettings, hp

if TYPE_CHECKING:
    from rlship.training.run import Run


@dataclass
class ReinforceConfig(RunSettings):
    total_steps: int = hp(
        500_000, "env steps (of played episodes) before training stops, solved or not", ge=1, le=MAX_TOTAL_STEPS
    )
    batch_episodes: int = hp(8, "episodes per gradient step, one per vector env", ge=1, le=4096)
    learning_rate: float = hp(0.01, "Adam learning rate", gt=0)
    gamma: float = hp(0.99, "discount factor of the returns-to-go", ge=0, le=1)
    normalize_returns: bool = hp(True, "normalise the returns-to-go over each batch (mean 0, std 1)")
    hidden_sizes: tuple[int, ...] = hp((128,), "hidden layer sizes of the policy MLP", ge=1, le=MAX_HIDDEN_SIZE)
    activation: str = hp("relu", "hidden activation: tanh or relu", choices=tuple(ACTIVATIONS))
    normalize_obs: bool = hp(False, "normalise observations by running mean/std (kept inside the artifact)")
    log_std_init: float = hp(0.0, "initial log std of a Gaussian policy (Box actions)", ge=-20, le=2)


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


def learn(run: Run, cfg: ReinforceConfig) -> None:
    # the helpers below import torch: imported when a run starts, not when `rlship train --help` reads the config
    from rlship.training.actor import new_actor
    from rlship.training.episodes import play_episodes

    envs = run.vec_env(cfg.batch_episodes)
    actor = new_actor(run, envs, cfg, value=False)
    net = actor.network
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate)
    run.start(["loss", "entropy"], cfg.batch_episodes, optimizer=optimizer, **actor.checkpointed())
    reset_seed = run.env_seed  # seeds the first batch's resets (the run's seed; a derived one on resume)
    while run.env_steps < cfg.total_steps:
        # --- play a batch of whole episodes with the current policy
        batch = play_episodes(envs, net, run.generator, run.stats, seed=reset_seed, actor=actor)
        reset_seed = None  # later batches go on from the envs' own RNG

        # --- discounted returns-to-go, G_t = r_t + gamma * G_{t+1} (rewards are 0 after an episode's end)
        returns_to_go = discounted_returns(batch.rewards, cfg.gamma)
        mask = torch.from_numpy(batch.mask)
        returns = torch.from_numpy(returns_to_go)[mask]
        if cfg.normalize_returns and returns.numel() > 1:  # the std of one number is undefined
            returns = (returns - returns.mean()) / (returns.std() + 1e-8)

        # --- one policy-gradient step on all the batch's steps
        logp, entropies = actor.head.log_prob_entropy(net(batch.obs[mask]), batch.actions[mask])
        loss = -(logp * returns).sum() / cfg.batch_episodes
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

        entropy = entropies.mean()
        if run.update(loss=loss.item(), entropy=entropy.item()):
            break


def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """Returns-to-go of a (T, N) reward array holding one episode per column, zero-padded after its end."""
    returns = np.zeros_like(rewards, dtype=np.float32)
    running = np.zeros(rewards.shape[1], dtype=np.float32)
    for t in reversed(range(rewards.shape[0])):
        running = rewards[t] + gamma * running
        returns[t] = running
    return returns


ALGORITHM = Algorithm(
    "reinforce", "REINFORCE (vanilla policy gradient on whole episodes)", ReinforceConfig, PRESETS, learn
)
train, make_config = ALGORITHM.train, ALGORITHM.make_config
