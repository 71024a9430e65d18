"""Proximal Policy Optimization (Schulman et al. 2017) for discrete actions, on Gymnasium vector envs.

Reads top to bottom: hyperparameters, then `train`: collect a rollout from all envs, compute GAE advantages,
run a few epochs of clipped-surrogate minibatch updates, log, check the stop rule, repeat.

Implementation details follow the reference implementations (SB3, CleanRL): orthogonal init, separate actor
and critic MLPs, GAE, advantage normalisation per minibatch, clipped surrogate, value loss, entropy bonus,
global gradient-norm clipping, Adam with eps 1e-5, linear annealing of learning rate and clip range. Two
further points they differ on, done the careful way here:
- Truncated episodes (time limits) bootstrap from the value of the final observation instead of counting as
  failures; with next-step autoreset that value is the one the rollout computes at the following step.
- The reset step that next-step autoreset inserts after each episode end is masked out of the update.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from rlship.envs import env_spec, make_vec_env, require_discrete_actions
from rlship.networks import ACTIVATIONS, NetworkSpec
from rlship.policy import new_policy
from rlship.training.checkpoint import CheckpointOptions, start_run
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
class PPOConfig(RunSettings):
    total_steps: int = hp(200_000, "env steps (all envs together) before training stops, solved or not")
    num_envs: int = hp(16, "parallel envs in a rollout")
    n_steps: int = hp(128, "steps per env per rollout; a rollout holds num_envs * n_steps transitions")
    epochs: int = hp(4, "passes over each rollout")
    minibatch_size: int = hp(512, "transitions per gradient step")
    learning_rate: float = hp(3e-4, "Adam learning rate (at the start, when annealed)")
    anneal_lr: bool = hp(True, "anneal learning rate and clip range linearly to 0 at total_steps")
    gamma: float = hp(0.99, "discount factor")
    gae_lambda: float = hp(0.95, "GAE lambda: 0 is one-step TD, 1 is Monte Carlo")
    clip_range: float = hp(0.2, "PPO clip range of the probability ratio")
    ent_coef: float = hp(0.0, "entropy bonus coefficient")
    vf_coef: float = hp(0.5, "value loss coefficient")
    max_grad_norm: float = hp(0.5, "global gradient-norm clip")
    target_kl: float | None = hp(None, "stop an update's epochs early once the approximate KL passes this")
    hidden_sizes: tuple[int, ...] = hp((64, 64), "hidden layer sizes of the actor and critic MLPs")
    activation: str = hp("tanh", "hidden activation: tanh or relu")
    shared_trunk: bool = hp(False, "actor and critic heads on one MLP body instead of two MLPs")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.hidden_sizes = tuple(self.hidden_sizes)
        for name in (
            "total_steps",
            "num_envs",
            "n_steps",
            "epochs",
            "minibatch_size",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")
        for name in ("learning_rate", "clip_range"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0; got {getattr(self, name)}")
        for name in ("gamma", "gae_lambda"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1]; got {getattr(self, name)}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}; got {self.activation!r}")


# Tuned defaults per env, applied over the PPOConfig defaults (user flags go over these).
PRESETS: dict[str, dict[str, Any]] = {
    # Tuned for wall time to solve on a CPU (benchmarks/train_speed.py): many envs and large minibatches keep the
    # number of (overhead-bound) torch calls low; a high learning rate and 15 epochs keep it sample-efficient.
    "CartPole-v1": dict(
        total_steps=100_000,
        num_envs=32,
        n_steps=32,
        epochs=15,
        minibatch_size=1024,
        learning_rate=3e-3,
        gamma=0.98,
        gae_lambda=0.8,
    ),
    "Acrobot-v1": dict(total_steps=300_000, num_envs=16, n_steps=256, gamma=0.99, gae_lambda=0.94, ent_coef=0.0),
    "LunarLander-v3": dict(
        total_steps=1_000_000,
        num_envs=16,
        n_steps=1024,
        epochs=4,
        minibatch_size=64,
        gamma=0.999,
        gae_lambda=0.98,
        ent_coef=0.01,
    ),
    # Tuned on seeds 0-9 (README.md, Pixelcopter): ReLU for the unscaled game state (distances in pixels,
    # up to ~56), a high learning rate with 10 epochs per rollout for sample efficiency.
    "rlship/Pixelcopter-v0": dict(
        total_steps=1_000_000,
        num_envs=16,
        n_steps=256,
        epochs=10,
        minibatch_size=512,
        learning_rate=1e-3,
        activation="relu",
    ),
}


def make_config(env_id: str, **overrides: Any) -> PPOConfig:
    """PPOConfig: defaults < the env's preset < overrides (None values are ignored)."""
    return config_with_preset(PPOConfig, PRESETS, env_id, overrides)


def train(
    env_id: str,
    config: PPOConfig | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    progress: bool = True,
    env_kwargs: dict[str, Any] | None = None,
    checkpoint: CheckpointOptions | None = None,
) -> TrainResult:
    cfg = config or make_config(env_id)
    out, ckpt = start_run("ppo", env_id, cfg, seed, out, env_kwargs, checkpoint)
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)

    envs = make_vec_env(env_id, cfg.num_envs, env_kwargs)
    n_actions = require_discrete_actions(env_id, envs.single_action_space, "PPO")
    policy = new_policy(
        "ppo",
        env_id,
        envs.single_observation_space,
        envs.single_action_space,
        NetworkSpec(cfg.hidden_sizes, cfg.activation, {"logits": n_actions, "value": 1}, cfg.shared_trunk),
        hyperparameters=asdict(cfg),
        seed=seed,
        env_kwargs=env_kwargs,
    )
    net = policy.network
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate, eps=1e-5, fused=True)

    T, N = cfg.n_steps, cfg.num_envs
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    obs_buf = torch.zeros(T + 1, N, obs_dim)
    actions_buf = torch.zeros(T, N, dtype=torch.int64)
    logp_buf = torch.zeros(T, N)
    values_buf = torch.zeros(T + 1, N)
    rewards = np.zeros((T, N), dtype=np.float32)
    terminated = np.zeros((T, N), dtype=bool)
    dones = np.zeros((T, N), dtype=bool)
    valid = np.zeros((T, N), dtype=bool)

    stats = EpisodeStats(N, cfg.solve_window)
    stop = StopRule(env_spec(env_id).reward_threshold, cfg.confirm_episodes)
    log = TrainLog(
        out,
        cfg.total_steps,
        ["learning_rate", "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction"],
        progress,
        desc=f"ppo {env_id} s{seed}",
    )
    counters = ckpt.track(
        network=net, optimizer=optimizer, rng=rng, generator=generator, stats=stats, stop=stop, log=log
    )
    env_steps, updates = counters.get("env_steps", 0), counters.get("updates", 0)
    next_obs, _ = envs.reset(seed=ckpt.env_seed)
    obs_buf[0] = torch.from_numpy(np.asarray(next_obs, dtype=np.float32).reshape(N, obs_dim))
    prev_done = np.zeros(N, dtype=bool)
    with ckpt.interruptible():
        try:
            while env_steps < cfg.total_steps:
                frac = 1.0 - env_steps / cfg.total_steps if cfg.anneal_lr else 1.0
                lr, clip = cfg.learning_rate * frac, cfg.clip_range * frac
                for group in optimizer.param_groups:
                    group["lr"] = lr

                # --- rollout: T steps of all N envs with the current policy
                with torch.inference_mode():
                    for t in range(T):
                        heads = net(obs_buf[t])
                        values_buf[t] = heads["value"].squeeze(-1)
                        log_probs = torch.log_softmax(heads["logits"], dim=-1)
                        action = torch.multinomial(log_probs.exp(), 1, generator=generator).squeeze(-1)
                        actions_buf[t] = action
                        logp_buf[t] = log_probs.gather(1, action[:, None]).squeeze(-1)
                        next_obs, reward, term, trunc, _ = envs.step(action.numpy())
                        obs_buf[t + 1] = torch.from_numpy(np.asarray(next_obs, dtype=np.float32).reshape(N, obs_dim))
                        rewards[t], terminated[t] = reward, term
                        dones[t] = term | trunc
                        valid[t] = ~prev_done  # False: this step only reset an env that ended at the previous step
                        prev_done = dones[t].copy()
                        stats.update(rewards[t], dones[t], valid[t])
                    values_buf[T] = net(obs_buf[T])["value"].squeeze(-1)
                env_steps += int(valid.sum())

                advantages = compute_gae(rewards, values_buf.numpy(), terminated, dones, cfg.gamma, cfg.gae_lambda)
                returns = advantages + values_buf.numpy()[:T]

                # --- update on the valid transitions
                keep = torch.from_numpy(valid.reshape(-1))
                b_obs = obs_buf[:T].reshape(T * N, obs_dim)[keep]
                b_actions = actions_buf.reshape(-1)[keep]
                b_logp = logp_buf.reshape(-1)[keep]
                b_adv = torch.from_numpy(advantages.reshape(-1))[keep]
                b_returns = torch.from_numpy(returns.reshape(-1))[keep]
                n = b_obs.shape[0]
                metrics = []
                for _ in range(cfg.epochs):
                    order = torch.from_numpy(rng.permutation(n))
                    for start in range(0, n, cfg.minibatch_size):
                        idx = order[start : start + cfg.minibatch_size]
                        if idx.numel() < 2:  # advantage normalisation needs two samples
                            continue
                        metrics.append(
                            _update(
                                net,
                                optimizer,
                                net.parameters(),
                                cfg,
                                clip,
                                b_obs[idx],
                                b_actions[idx],
                                b_logp[idx],
                                b_adv[idx],
                                b_returns[idx],
                            )
                        )
                    if cfg.target_kl is not None and metrics and metrics[-1][3] > cfg.target_kl:
                        break
                m = torch.stack([torch.stack(x) for x in metrics]).mean(0).tolist()
                log.log(
                    env_steps,
                    stats,
                    learning_rate=lr,
                    policy_loss=m[0],
                    value_loss=m[1],
                    entropy=m[2],
                    approx_kl=m[3],
                    clip_fraction=m[4],
                )
                updates += 1
                if stop.solved(stats, policy):
                    break
                if ckpt.safe_point(env_steps=env_steps, updates=updates):  # True: Ctrl-C, checkpoint written
                    break
        finally:
            envs.close()
            log.close()
    return finish_run(out, policy, log, stop, env_steps, cfg.eval_episodes, checkpointer=ckpt)


def compute_gae(
    rewards: np.ndarray, values: np.ndarray, terminated: np.ndarray, dones: np.ndarray, gamma: float, lam: float
) -> np.ndarray:
    """Generalized advantage estimates for a (T, N) rollout; `values` is (T + 1, N), the last row bootstrapping.

    A_t = delta_t + gamma * lambda * A_{t+1}, cut where an episode ends (`dones`: terminated or truncated),
    delta_t = r_t + gamma * V_{t+1} - V_t, with V_{t+1} = 0 only at a termination. At a truncation V_{t+1} is the
    value of the final observation: under next-step autoreset that is the observation the env returned at t.
    """
    T = rewards.shape[0]
    advantages = np.zeros_like(rewards, dtype=np.float32)
    last = np.zeros(rewards.shape[1], dtype=np.float32)
    for t in reversed(range(T)):
        delta = rewards[t] + gamma * values[t + 1] * ~terminated[t] - values[t]
        last = delta + gamma * lam * ~dones[t] * last
        advantages[t] = last
    return advantages


def _update(
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    params: Any,
    cfg: PPOConfig,
    clip: float,
    obs: torch.Tensor,
    actions: torch.Tensor,
    old_logp: torch.Tensor,
    adv: torch.Tensor,
    returns: torch.Tensor,
) -> tuple[torch.Tensor, ...]:
    """One gradient step of the PPO loss; returns (policy loss, value loss, entropy, approx KL, clip fraction)."""
    out = net(obs)
    log_probs = torch.log_softmax(out["logits"], dim=-1)
    logp = log_probs.gather(1, actions[:, None]).squeeze(-1)
    entropy = -(log_probs.exp() * log_probs).sum(-1).mean()
    log_ratio = logp - old_logp
    ratio = log_ratio.exp()
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    policy_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - clip, 1 + clip)).mean()
    value_loss = 0.5 * F.mse_loss(out["value"].squeeze(-1), returns)
    loss = policy_loss - cfg.ent_coef * entropy + cfg.vf_coef * value_loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
    optimizer.step()
    with torch.no_grad():
        approx_kl = ((ratio - 1) - log_ratio).mean()
        clip_fraction = ((ratio - 1).abs() > clip).float().mean()
    return policy_loss.detach(), value_loss.detach(), entropy.detach(), approx_kl, clip_fraction
