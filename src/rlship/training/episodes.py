"""Whole episodes from a vector env, for the episodic methods (cross-entropy method, REINFORCE).

`play_episodes` resets every env and plays one episode in each, all with the current policy (sampled actions),
in one batched forward pass per step. Envs whose episode has ended keep stepping (the vector env steps all of
its copies together) until the longest episode ends; those steps belong to no episode of the batch: they are
masked out and not counted as env steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import gymnasium as gym
import numpy as np
import torch

from rlship.distributions import sample_categorical
from rlship.training.stop_rule import EpisodeStats

if TYPE_CHECKING:
    from rlship.training.actor import Actor


@dataclass(frozen=True)
class EpisodeBatch:
    """One episode per env, padded to the longest: index [t, i] is step t of env i's episode."""

    obs: torch.Tensor  # (T, N, obs_dim) float32 (normalised when the actor normalises)
    actions: torch.Tensor  # (T, N) int64, or (T, N, *action_shape) float32 Gaussian samples before clipping
    rewards: np.ndarray  # (T, N) float32, 0 after an episode's end
    mask: np.ndarray  # (T, N) bool: True where step t belongs to env i's episode

    @property
    def returns(self) -> np.ndarray:  # (N,) undiscounted episode returns
        return self.rewards.sum(axis=0)

    @property
    def env_steps(self) -> int:
        return int(self.mask.sum())


def play_episodes(
    envs: gym.vector.VectorEnv,
    net: torch.nn.Module,
    generator: torch.Generator,
    stats: EpisodeStats,
    seed: int | None = None,
    actor: Actor | None = None,
) -> EpisodeBatch:
    """Reset `envs` (with `seed` at a run's first batch, and at the first after a resume; None goes on from the
    envs' own RNG) and play one episode per env, sampling actions from the network's "logits" head; finished
    episodes go into `stats`. With `actor`, its action distribution (categorical or Gaussian) and its observation
    normalisation are used instead."""
    n = envs.num_envs
    obs, _ = envs.reset(seed=seed)
    alive = np.ones(n, dtype=bool)
    obs_steps, action_steps, reward_steps, mask_steps = [], [], [], []
    with torch.inference_mode():
        while alive.any():
            if actor is not None:
                obs_t = actor.observe(obs)
                action, _ = actor.head.sample(net(obs_t), generator)
                env_action = actor.head.to_env(action)
            else:
                obs_t = torch.from_numpy(np.asarray(obs, dtype=np.float32).reshape(n, -1))
                probs = torch.softmax(net(obs_t)["logits"], dim=-1)
                action = sample_categorical(probs, generator)
                env_action = action.numpy()
            obs, reward, term, trunc, _ = envs.step(env_action)
            reward = np.where(alive, reward, 0.0).astype(np.float32)
            done = (term | trunc) & alive
            stats.update(reward, done, alive)
            obs_steps.append(obs_t)
            action_steps.append(action)
            reward_steps.append(reward)
            mask_steps.append(alive.copy())
            alive &= ~done
    return EpisodeBatch(torch.stack(obs_steps), torch.stack(action_steps), np.stack(reward_steps), np.stack(mask_steps))
