"""Advantage actor-critic (A2C, the synchronous form of Mnih et al. 2016) for Discrete and Box actions, on vector envs
(Box: a diagonal Gaussian, clipped for the env, as in ppo.py).

Reads top to bottom: hyperparameters, then `learn`: step all envs `n_steps` times with the current policy,
compute n-step bootstrapped returns R_t = r_t + gamma r_{t+1} + ... + gamma^k V(s_{t+k}) and advantages
A_t = R_t - V(s_t), take one gradient step on
    policy loss -mean(log_prob(a_t) * A_t) + vf_coef * value loss(V(s_t), R_t) - ent_coef * entropy,
log, check the stop rule, repeat.

The two forms the tutorials show, chosen by `shared_trunk`: separate actor and critic MLPs (the default,
as in Stable-Baselines3), or one MLP trunk with a policy head and a value head. The shared form wants a small
`vf_coef` (0.05 solved CartPole-v1 on seeds 0-4; at 0.5 the value gradient crowds out the policy's in the trunk).

Rollouts and returns are PPO's (training/rollout.py; `compute_gae` with lambda = 1 is exactly the n-step return
minus the value): a termination bootstraps nothing; a truncation (time limit) bootstraps from the value of the
final observation; the reset step next-step autoreset inserts after each episode end is masked out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rlship.lazy_torch import F, torch
from rlship.training.algorithm import Algorithm
from rlship.training.settings import ACTIVATIONS, MAX_HIDDEN_SIZE, MAX_ROLLOUT_STEPS, MAX_TOTAL_STEPS, RunSettings, hp

if TYPE_CHECKING:
    from rlship.training.run import Run

# value loss name -> its torch.nn.functional name (looked up when the run starts, so torch is imported then)
VALUE_LOSSES = {"mse": "mse_loss", "smooth_l1": "smooth_l1_loss"}
OPTIMIZERS = ("adam", "rmsprop")


@dataclass
class A2CConfig(RunSettings):
    total_steps: int = hp(
        500_000, "env steps (all envs together) before training stops, solved or not", ge=1, le=MAX_TOTAL_STEPS
    )
    num_envs: int = hp(8, "parallel envs", ge=1, le=4096)
    n_steps: int = hp(
        5, "steps per env between updates; returns bootstrap after at most this many steps", ge=1, le=MAX_ROLLOUT_STEPS
    )
    optimizer: str = hp(
        "rmsprop", "adam or rmsprop (RMSprop with alpha 0.99, eps 1e-5, as SB3 and the paper)", choices=OPTIMIZERS
    )
    learning_rate: float = hp(7e-4, "optimizer learning rate", gt=0)
    gamma: float = hp(0.99, "discount factor", ge=0, le=1)
    gae_lambda: float = hp(1.0, "1: plain n-step returns (A2C); below 1: GAE over the n steps", ge=0, le=1)
    ent_coef: float = hp(0.0, "entropy bonus coefficient", ge=0)
    vf_coef: float = hp(0.5, "value loss coefficient", ge=0)
    value_loss: str = hp("mse", "value loss: mse or smooth_l1 (Huber)", choices=tuple(VALUE_LOSSES))
    max_grad_norm: float = hp(0.5, "global gradient-norm clip", gt=0)
    normalize_advantage: bool = hp(False, "normalise the advantages of each update (mean 0, std 1)")
    hidden_sizes: tuple[int, ...] = hp(
        (64, 64), "hidden layer sizes of the actor and critic MLPs (or shared trunk)", ge=1, le=MAX_HIDDEN_SIZE
    )
    activation: str = hp("tanh", "hidden activation: tanh or relu", choices=tuple(ACTIVATIONS))
    shared_trunk: bool = hp(False, "one MLP trunk with policy and value heads instead of separate actor and critic")
    normalize_obs: bool = hp(False, "normalise observations by running mean/std (kept inside the artifact)")
    normalize_reward: bool = hp(False, "scale rewards by the running std of the discounted return (training only)")
    log_std_init: float = hp(0.0, "initial log std of a Gaussian policy (Box actions)", ge=-20, le=2)
    noise_repeat: int = hp(
        1,
        "Box actions: hold each env's unit Gaussian noise this many steps (drawn anew at episode starts) for "
        "temporally correlated exploration; 1: fresh noise every step",
        ge=1,
        le=MAX_ROLLOUT_STEPS,
    )


# Tuned defaults per env, applied over the A2CConfig defaults (user flags go over these).
PRESETS: dict[str, dict[str, Any]] = {
    # The defaults are SB3's A2C (rl-zoo's CartPole-v1 settings). Twice the envs and longer rollouts (128 instead
    # of 40 transitions per update) make each update's gradient less noisy, which lets the learning rate double;
    # on seeds 0-4 this solved in 42k-118k env steps. At 2.5e-3 two seeds in four collapsed.
    "CartPole-v1": dict(num_envs=16, n_steps=8, learning_rate=1.5e-3),
}


def learn(run: Run, cfg: A2CConfig) -> None:
    # the helpers below import torch: imported when a run starts, not when `rlship train --help` reads the config
    from rlship.training.rollout import actor_critic

    actor, rollout = actor_critic(run, cfg)
    net = actor.network
    if cfg.optimizer == "rmsprop":
        optimizer: torch.optim.Optimizer = torch.optim.RMSprop(
            net.parameters(), lr=cfg.learning_rate, alpha=0.99, eps=1e-5
        )
    else:
        optimizer = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate)
    value_loss_fn = getattr(F, VALUE_LOSSES[cfg.value_loss])
    run.start(["policy_loss", "value_loss", "entropy"], cfg.num_envs, optimizer=optimizer, **actor.checkpointed())
    rollout.reset(seed=run.env_seed)
    while run.env_steps < cfg.total_steps:
        # --- rollout: T steps of all N envs; n-step returns and advantages (lambda = 1: R_t - V(s_t))
        rollout.collect(run.generator, run.stats)
        b = rollout.batch(cfg.gamma, cfg.gae_lambda)
        if b["obs"].shape[0] == 0:  # every step of a 1-env, 1-step rollout only reset its env: nothing to learn from
            continue
        adv = b["advantages"]
        if cfg.normalize_advantage and adv.numel() > 1:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)

        # --- one gradient step on the valid transitions
        heads = actor.forward(b["obs"])
        logp, entropies = actor.head.log_prob_entropy(heads, b["actions"])
        entropy = entropies.mean()
        policy_loss = -(logp * adv).mean()
        value_loss = value_loss_fn(heads["value"].squeeze(-1), b["returns"])
        loss = policy_loss + cfg.vf_coef * value_loss - cfg.ent_coef * entropy
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.max_grad_norm)
        optimizer.step()

        if run.update(policy_loss=policy_loss.item(), value_loss=value_loss.item(), entropy=entropy.item()):
            break


ALGORITHM = Algorithm("a2c", "advantage actor-critic (n-step returns, synchronous)", A2CConfig, PRESETS, learn)
train, make_config = ALGORITHM.train, ALGORITHM.make_config
