"""On-policy rollouts for the actor-critic methods (a2c, ppo): T steps of N vector envs with the current policy,
then generalized advantage estimates over them.

Next-step autoreset, done the careful way: the step after an episode ends only resets that env; it is no
transition of the MDP, so it is marked invalid (masked out of the update, not counted as an env step). Truncated
episodes (time limits) bootstrap from the value of their final observation, which under next-step autoreset is the
observation the env returned at the truncating step, i.e. the next row of the buffer.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch

from rlship.distributions import GaussianHead, HeldNoise
from rlship.errors import UsageError
from rlship.training.actor import Actor, new_actor
from rlship.training.memory import check_memory
from rlship.training.stop_rule import EpisodeStats

if TYPE_CHECKING:
    from rlship.training.run import Run


def actor_critic(run: Run, cfg: Any) -> tuple[Actor, Rollout]:
    """What a2c and ppo both train with: the run's `cfg.num_envs` envs, a policy with an action head (categorical
    or Gaussian, by the action space) and a "value" head (separate actor and critic MLPs, or one shared trunk), and
    the rollout buffers for `cfg.n_steps` steps of those envs (a Gaussian's noise held `cfg.noise_repeat` steps)."""
    envs = run.vec_env(cfg.num_envs)
    actor = new_actor(run, envs, cfg, value=True)
    return actor, Rollout(envs, cfg.n_steps, actor, noise_repeat=getattr(cfg, "noise_repeat", 1))


class Rollout:
    """Buffers for T steps of N envs: observations (T + 1 rows: the last one bootstraps; normalised when the
    policy normalises), actions (as sampled: for a Gaussian before clipping), their log-probabilities, values
    (T + 1 rows), rewards (scaled when the actor scales them), and the terminated / done / valid masks.

    `noise_repeat` above 1 holds a Gaussian policy's unit noise that many steps per env (distributions.HeldNoise),
    drawn anew at each episode start; 1 draws fresh noise every step (the same draws as without it)."""

    def __init__(self, envs: gym.vector.VectorEnv, n_steps: int, actor: Actor, noise_repeat: int = 1) -> None:
        self.envs = envs
        self.actor = actor
        T, N = n_steps, envs.num_envs
        check_rollout_memory(T, N, actor)
        self.obs_shape = actor.input_shape
        self.obs = torch.zeros(T + 1, N, *self.obs_shape, dtype=actor.input_dtype)
        self.actions = torch.zeros(T, N, *actor.head.action_shape, dtype=actor.head.action_dtype)
        self.log_probs = torch.zeros(T, N)
        self.values = torch.zeros(T + 1, N)
        self.rewards = np.zeros((T, N), dtype=np.float32)
        self.terminated = np.zeros((T, N), dtype=bool)
        self.dones = np.zeros((T, N), dtype=bool)
        self.valid = np.zeros((T, N), dtype=bool)
        self._prev_done = np.zeros(N, dtype=bool)
        self.noise: HeldNoise | None = None
        if noise_repeat > 1:
            if not isinstance(actor.head, GaussianHead):
                raise UsageError("noise_repeat holds a Gaussian policy's noise: it applies to Box actions only")
            self.noise = HeldNoise(noise_repeat, N, actor.head.action_shape)
        # envs whose next step is the first of an episode (the held noise is drawn anew there)
        self._starts = np.ones(N, dtype=bool)

    def reset(self, seed: int | None) -> None:
        obs, _ = self.envs.reset(seed=seed)
        self.obs[-1] = self.actor.observe(obs)  # the next rollout starts from the last row
        self._prev_done[:] = False
        self._starts[:] = True

    def collect(self, generator: torch.Generator, stats: EpisodeStats) -> int:
        """Step every env T times, sampling actions from the actor's distribution; returns the env steps taken
        (valid transitions). Finished episodes go into `stats` (with the env's own rewards)."""
        T = self.rewards.shape[0]
        self.obs[0] = self.obs[T]  # where the previous rollout (or the reset) left the envs
        forward = self.actor.forward
        with torch.inference_mode():
            for t in range(T):
                heads = forward(self.obs[t])
                self.values[t] = heads["value"].squeeze(-1)
                noise = None if self.noise is None else self.noise.draw(generator, self._starts)
                action, self.log_probs[t] = self.actor.head.sample(heads, generator, noise)
                self.actions[t] = action
                next_obs, reward, term, trunc, _ = self.envs.step(self.actor.head.to_env(action))
                self.obs[t + 1] = self.actor.observe(next_obs)
                self.terminated[t] = term
                self.dones[t] = term | trunc
                self.valid[t] = ~self._prev_done  # False: this step only reset an env that ended at the previous step
                self._prev_done = self.dones[t].copy()
                self._starts = ~self.valid[t]  # this step only reset the env: the next one starts its episode
                stats.update(np.asarray(reward, dtype=np.float32), self.dones[t], self.valid[t])
                self.rewards[t] = self.actor.scale_rewards(reward, self.dones[t], self.valid[t])
            self.values[T] = forward(self.obs[T])["value"].squeeze(-1)
        return int(self.valid.sum())

    def batch(self, gamma: float, gae_lambda: float) -> dict[str, torch.Tensor]:
        """The valid transitions, flattened: obs, actions, log_probs (at collection), advantages, returns."""
        values = self.values.numpy()
        advantages = compute_gae(self.rewards, values, self.terminated, self.dones, gamma, gae_lambda)
        returns = advantages + values[:-1]
        keep = torch.from_numpy(self.valid.reshape(-1))
        return {
            "obs": self.obs[:-1].reshape(-1, *self.obs_shape)[keep],
            "actions": self.actions.reshape(-1, *self.actions.shape[2:])[keep],
            "log_probs": self.log_probs.reshape(-1)[keep],
            "advantages": torch.from_numpy(advantages.reshape(-1))[keep],
            "returns": torch.from_numpy(returns.reshape(-1))[keep],
        }


def check_rollout_memory(n_steps: int, num_envs: int, actor: Actor) -> None:
    """A UsageError, before the buffers are allocated, when a rollout of `num_envs` x `n_steps` transitions would
    need more than this machine's memory can give (training/memory.py): 4096 envs x 100000 steps of an image
    observation is petabytes. Per transition: the buffers (observation, action, log-probability, value, reward,
    three masks) and the batch `batch` makes from them (observation and action again, log-probability, advantage
    and return, each also as NumPy)."""
    obs_bytes = math.prod(actor.input_shape) * actor.input_dtype.itemsize
    action_bytes = math.prod(actor.head.action_shape) * actor.head.action_dtype.itemsize
    per_transition = 2 * (obs_bytes + action_bytes) + 4 + 4 + 4 + 3 + 4 + 2 * 4 + 2 * 4
    check_memory(
        f"a rollout of {num_envs:,} envs x {n_steps:,} steps ({num_envs * n_steps:,} transitions)",
        num_envs * n_steps,
        per_transition,
        lambda fits: f"lower --num-envs or --n-steps so that num_envs x n_steps is at most {fits:,}",
    )


def compute_gae(
    rewards: np.ndarray, values: np.ndarray, terminated: np.ndarray, dones: np.ndarray, gamma: float, lam: float
) -> np.ndarray:
    """Generalized advantage estimates for a (T, N) rollout; `values` is (T + 1, N), the last row bootstrapping.

    A_t = delta_t + gamma * lambda * A_{t+1}, cut where an episode ends (`dones`: terminated or truncated),
    delta_t = r_t + gamma * V_{t+1} - V_t, with V_{t+1} = 0 only at a termination. At a truncation V_{t+1} is the
    value of the final observation: under next-step autoreset that is the observation the env returned at t.
    With lambda = 1 this is the n-step return minus the value (A2C's advantage).
    """
    T = rewards.shape[0]
    advantages = np.zeros_like(rewards, dtype=np.float32)
    last = np.zeros(rewards.shape[1], dtype=np.float32)
    for t in reversed(range(T)):
        delta = rewards[t] + gamma * values[t + 1] * ~terminated[t] - values[t]
        last = delta + gamma * lam * ~dones[t] * last
        advantages[t] = last
    return advantages
