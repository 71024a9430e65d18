"""Advantage actor-critic (A2C, the synchronous form of Mnih et al. 2016) for discrete actions, on vector envs.

Reads top to bottom: hyperparameters, then `train`: step all envs `n_steps` times with the current policy,
compute n-step bootstrapped returns R_t = r_t + gamma r_{t+1} + ... + gamma^k V(s_{t+k}) and advantages
A_t = R_t - V(s_t), take one gradient step on
    policy loss -mean(log_prob(a_t) * A_t) + vf_coef * value loss(V(s_t), R_t) - ent_coef * entropy,
log, check the stop rule, repeat.

The two forms the tutorials show, chosen by `shared_trunk`: separate actor and critic MLPs (the default,
as in Stable-Baselines3), or one MLP trunk with a policy head and a value head. The shared form wants a small
`vf_coef` (0.05 solved CartPole-v1 on seeds 0-4; at 0.5 the value gradient crowds out the policy's in the trunk).

Returns are computed like PPO's (`compute_gae` with lambda = 1 is exactly the n-step return minus the value):
a termination bootstraps nothing; a truncation (time limit) bootstraps from the value of the final
observation, which with next-step autoreset is the observation the env returned at the truncating step; the
reset step next-step autoreset inserts after each episode end is masked out of the update.
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
from rlship.training.ppo import compute_gae
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

VALUE_LOSSES = {"mse": F.mse_loss, "smooth_l1": F.smooth_l1_loss}
OPTIMIZERS = ("adam", "rmsprop")


@dataclass
class A2CConfig(RunSettings):
    total_steps: int = hp(500_000, "env steps (all envs together) before training stops, solved or not")
    num_envs: int = hp(8, "parallel envs")
    n_steps: int = hp(5, "steps per env between updates; returns bootstrap after at most this many steps")
    optimizer: str = hp("rmsprop", "adam or rmsprop (RMSprop with alpha 0.99, eps 1e-5, as SB3 and the paper)")
    learning_rate: float = hp(7e-4, "optimizer learning rate")
    gamma: float = hp(0.99, "discount factor")
    gae_lambda: float = hp(1.0, "1: plain n-step returns (A2C); below 1: GAE over the n steps")
    ent_coef: float = hp(0.0, "entropy bonus coefficient")
    vf_coef: float = hp(0.5, "value loss coefficient")
    value_loss: str = hp("mse", "value loss: mse or smooth_l1 (Huber)")
    max_grad_norm: float = hp(0.5, "global gradient-norm clip")
    normalize_advantage: bool = hp(False, "normalise the advantages of each update (mean 0, std 1)")
    hidden_sizes: tuple[int, ...] = hp((64, 64), "hidden layer sizes of the actor and critic MLPs (or shared trunk)")
    activation: str = hp("tanh", "hidden activation: tanh or relu")
    shared_trunk: bool = hp(False, "one MLP trunk with policy and value heads instead of separate actor and critic")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.hidden_sizes = tuple(self.hidden_sizes)
        for name in (
            "total_steps",
            "num_envs",
            "n_steps",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")
        for name in ("learning_rate", "max_grad_norm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0; got {getattr(self, name)}")
        for name in ("ent_coef", "vf_coef"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0; got {getattr(self, name)}")
        for name in ("gamma", "gae_lambda"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1]; got {getattr(self, name)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}; got {self.optimizer!r}")
        if self.value_loss not in VALUE_LOSSES:
            raise ValueError(f"value_loss must be one of {sorted(VALUE_LOSSES)}; got {self.value_loss!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}; got {self.activation!r}")
        if any(h < 1 for h in self.hidden_sizes):
            raise ValueError(f"hidden_sizes must be positive; got {list(self.hidden_sizes)}")


# Tuned defaults per env, applied over the A2CConfig defaults (user flags go over these).
PRESETS: dict[str, dict[str, Any]] = {
    # The defaults are SB3's A2C (rl-zoo's CartPole-v1 settings). Twice the envs and longer rollouts (128 instead
    # of 40 transitions per update) make each update's gradient less noisy, which lets the learning rate double;
    # on seeds 0-4 this solved in 42k-118k env steps. At 2.5e-3 two seeds in four collapsed.
    "CartPole-v1": dict(num_envs=16, n_steps=8, learning_rate=1.5e-3),
}


def make_config(env_id: str, **overrides: Any) -> A2CConfig:
    """A2CConfig: defaults < the env's preset < overrides (None values are ignored)."""
    return config_with_preset(A2CConfig, PRESETS, env_id, overrides)


def train(
    env_id: str,
    config: A2CConfig | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    progress: bool = True,
    env_kwargs: dict[str, Any] | None = None,
    checkpoint: CheckpointOptions | None = None,
) -> TrainResult:
    cfg = config or make_config(env_id)
    out, ckpt = start_run("a2c", env_id, cfg, seed, out, env_kwargs, checkpoint)
    generator = torch.Generator().manual_seed(seed)

    envs = make_vec_env(env_id, cfg.num_envs, env_kwargs)
    n_actions = require_discrete_actions(env_id, envs.single_action_space, "A2C")
    policy = new_policy(
        "a2c",
        env_id,
        envs.single_observation_space,
        envs.single_action_space,
        NetworkSpec(cfg.hidden_sizes, cfg.activation, {"logits": n_actions, "value": 1}, cfg.shared_trunk),
        hyperparameters=asdict(cfg),
        seed=seed,
        env_kwargs=env_kwargs,
    )
    net = policy.network
    if cfg.optimizer == "rmsprop":
        optimizer: torch.optim.Optimizer = torch.optim.RMSprop(
            net.parameters(), lr=cfg.learning_rate, alpha=0.99, eps=1e-5
        )
    else:
        optimizer = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate)
    value_loss_fn = VALUE_LOSSES[cfg.value_loss]

    T, N = cfg.n_steps, cfg.num_envs
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    obs_buf = torch.zeros(T + 1, N, obs_dim)
    actions_buf = torch.zeros(T, N, dtype=torch.int64)
    values_buf = torch.zeros(T + 1, N)
    rewards = np.zeros((T, N), dtype=np.float32)
    terminated = np.zeros((T, N), dtype=bool)
    dones = np.zeros((T, N), dtype=bool)
    valid = np.zeros((T, N), dtype=bool)

    stats = EpisodeStats(N, cfg.solve_window)
    stop = StopRule(env_spec(env_id).reward_threshold, cfg.confirm_episodes)
    log = TrainLog(
        out, cfg.total_steps, ["policy_loss", "value_loss", "entropy"], progress, desc=f"a2c {env_id} s{seed}"
    )
    counters = ckpt.track(network=net, optimizer=optimizer, generator=generator, stats=stats, stop=stop, log=log)
    env_steps, updates = counters.get("env_steps", 0), counters.get("updates", 0)
    next_obs, _ = envs.reset(seed=ckpt.env_seed)  # the run's seed; on resume one derived from the checkpoint
    obs_buf[0] = torch.from_numpy(np.asarray(next_obs, dtype=np.float32).reshape(N, obs_dim))
    prev_done = np.zeros(N, dtype=bool)
    with ckpt.interruptible():
        try:
            while env_steps < cfg.total_steps:
                # --- rollout: T steps of all N envs with the current policy
                with torch.inference_mode():
                    for t in range(T):
                        heads = net(obs_buf[t])
                        values_buf[t] = heads["value"].squeeze(-1)
                        action = torch.multinomial(torch.softmax(heads["logits"], -1), 1, generator=generator).squeeze(
                            -1
                        )
                        actions_buf[t] = action
                        next_obs, reward, term, trunc, _ = envs.step(action.numpy())
                        obs_buf[t + 1] = torch.from_numpy(np.asarray(next_obs, dtype=np.float32).reshape(N, obs_dim))
                        rewards[t], terminated[t] = reward, term
                        dones[t] = term | trunc
                        valid[t] = ~prev_done  # False: this step only reset an env that ended at the previous step
                        prev_done = dones[t].copy()
                        stats.update(rewards[t], dones[t], valid[t])
                    values_buf[T] = net(obs_buf[T])["value"].squeeze(-1)
                env_steps += int(valid.sum())

                # --- n-step returns and advantages (lambda = 1: R_t - V(s_t))
                advantages = compute_gae(rewards, values_buf.numpy(), terminated, dones, cfg.gamma, cfg.gae_lambda)
                returns = advantages + values_buf.numpy()[:T]

                # --- one gradient step on the valid transitions
                keep = torch.from_numpy(valid.reshape(-1))
                b_adv = torch.from_numpy(advantages.reshape(-1))[keep]
                b_returns = torch.from_numpy(returns.reshape(-1))[keep]
                if cfg.normalize_advantage and b_adv.numel() > 1:
                    b_adv = (b_adv - b_adv.mean()) / (b_adv.std() + 1e-8)
                heads = net(obs_buf[:T].reshape(T * N, obs_dim)[keep])
                log_probs = torch.log_softmax(heads["logits"], dim=-1)
                logp = log_probs.gather(1, actions_buf.reshape(-1)[keep][:, None]).squeeze(-1)
                entropy = -(log_probs.exp() * log_probs).sum(-1).mean()
                policy_loss = -(logp * b_adv).mean()
                value_loss = value_loss_fn(heads["value"].squeeze(-1), b_returns)
                loss = policy_loss + cfg.vf_coef * value_loss - cfg.ent_coef * entropy
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.max_grad_norm)
                optimizer.step()

                log.log(
                    env_steps,
                    stats,
                    policy_loss=policy_loss.item(),
                    value_loss=value_loss.item(),
                    entropy=entropy.item(),
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
