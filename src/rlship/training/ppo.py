"""Proximal Policy Optimization (Schulman et al. 2017) for Discrete and Box actions, on Gymnasium vector envs.

Reads top to bottom: hyperparameters, then `learn`: collect a rollout from all envs, compute GAE advantages,
run a few epochs of clipped-surrogate minibatch updates, log, check the stop rule, repeat (the run's ceremony
lives in training/run.py, the rollout and GAE, shared with a2c, in training/rollout.py).

Implementation details follow the reference implementations (SB3, CleanRL): orthogonal init, separate actor
and critic MLPs, GAE, advantage normalisation per minibatch, clipped surrogate, value loss, entropy bonus,
global gradient-norm clipping, Adam with eps 1e-5, linear annealing of learning rate and clip range. Two
further points they differ on, done the careful way here (in the rollout): truncated episodes (time limits)
bootstrap from the value of the final observation instead of counting as failures, and the reset step that
next-step autoreset inserts after each episode end is masked out of the update.

Box actions: a diagonal Gaussian with a state-independent log std, samples clipped to the bounds for the env and
the unclipped sample's log-probability in the ratio (SB3's way; training/actor.py, rlship/distributions.py), with
optional running observation normalisation (kept in the artifact) and reward scaling (VecNormalize's), and
optionally each env's unit noise held several steps (`noise_repeat`: temporally correlated exploration).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rlship.errors import UsageError
from rlship.lazy_torch import F, torch
from rlship.training.algorithm import Algorithm
from rlship.training.gradient_step import GradientStep
from rlship.training.settings import (
    ACTIVATIONS,
    MAX_BATCH_SIZE,
    MAX_HIDDEN_SIZE,
    MAX_REPEATS,
    MAX_ROLLOUT_STEPS,
    MAX_TOTAL_STEPS,
    RunSettings,
    hp,
)

if TYPE_CHECKING:
    from rlship.training.actor import Actor
    from rlship.training.run import Run


@dataclass
class PPOConfig(RunSettings):
    total_steps: int = hp(
        200_000, "env steps (all envs together) before training stops, solved or not", ge=1, le=MAX_TOTAL_STEPS
    )
    num_envs: int = hp(16, "parallel envs in a rollout", ge=1, le=4096)
    n_steps: int = hp(
        128, "steps per env per rollout; a rollout holds num_envs * n_steps transitions", ge=1, le=MAX_ROLLOUT_STEPS
    )
    epochs: int = hp(4, "passes over each rollout", ge=1, le=MAX_REPEATS)
    minibatch_size: int = hp(
        512,
        "transitions per gradient step (at least 2: advantages are normalised per minibatch)",
        ge=2,
        le=MAX_BATCH_SIZE,
    )
    learning_rate: float = hp(3e-4, "Adam learning rate (at the start, when annealed)", gt=0)
    anneal_lr: bool = hp(True, "anneal learning rate and clip range linearly to 0 at total_steps")
    # Annealing to 0 leaves the last part of the budget barely moving the policy (LunarLanderContinuous-v3, seed 0:
    # 208.6 against 254.7 at a constant rate); a floor keeps it learning while it takes smaller steps.
    anneal_to: float = hp(
        0.0, "with anneal_lr: the fraction of the learning rate and clip range left at total_steps", ge=0, le=1
    )
    gamma: float = hp(0.99, "discount factor", ge=0, le=1)
    gae_lambda: float = hp(0.95, "GAE lambda: 0 is one-step TD, 1 is Monte Carlo", ge=0, le=1)
    clip_range: float = hp(0.2, "PPO clip range of the probability ratio", gt=0)
    ent_coef: float = hp(0.0, "entropy bonus coefficient", ge=0)
    vf_coef: float = hp(0.5, "value loss coefficient", ge=0)
    max_grad_norm: float = hp(0.5, "global gradient-norm clip", gt=0)
    target_kl: float | None = hp(None, "stop an update's epochs early once the approximate KL passes this", gt=0)
    hidden_sizes: tuple[int, ...] = hp(
        (64, 64), "hidden layer sizes of the actor and critic MLPs", ge=1, le=MAX_HIDDEN_SIZE
    )
    activation: str = hp("tanh", "hidden activation: tanh or relu", choices=tuple(ACTIVATIONS))
    shared_trunk: bool = hp(False, "actor and critic heads on one MLP body instead of two MLPs")
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


# Tuned defaults per env, applied over the PPOConfig defaults (user flags go over these).
PRESETS: dict[str, dict[str, Any]] = {
    # Tuned for wall time to solve on a CPU (benchmarks/train_speed.py), on seeds 0-4.
    "CartPole-v1": dict(
        total_steps=100_000,
        # many envs and large minibatches keep the number of (overhead-bound) torch calls low
        num_envs=32,
        n_steps=32,
        minibatch_size=1024,
        # a high learning rate and 15 epochs keep it sample-efficient
        epochs=15,
        learning_rate=3e-3,
        # short horizons: CartPole pays every step, so far-future rewards add variance, not information
        gamma=0.98,
        gae_lambda=0.8,
        # the greedy policy balances well before the sampled one's training returns reach 475, and CartPole's
        # confirmations are cheap (its native vector env, giving up once they must fail): confirm every 4096 env
        # steps from a training mean of 100, with a margin of 4 standard errors, so that a policy confirmed that
        # early still passes the final 100 episodes. Seeds 0-9: env steps to the stop 256k in all (from 360k at
        # confirm_from 300, 2 standard errors, every update), training CPU -28%, 10/10 solved, evaluations
        # 489.5-500 (docs/algorithms.md, "ppo: confirming every 4096 env steps")
        confirm_std_errors=4.0,
        confirm_every=4096,
        # observations normalised by running statistics (kept in the artifact): about half the tuning seeds then
        # balance after 10k env steps, and their greedy policy passes before the training mean says much, so
        # confirmations start at once (every 4096 env steps, the same margin). Seeds 0-9: 182k env steps in all
        # (256k before), process CPU -18% interleaved with the old preset, 10/10 solved, evaluations 495.9-500
        # (docs/algorithms.md, "ppo: normalised observations, confirming from the start")
        normalize_obs=True,
        confirm_from=0.0,
    ),
    "Acrobot-v1": dict(total_steps=300_000, num_envs=16, n_steps=256, gamma=0.99, gae_lambda=0.94, ent_coef=0.0),
    # Tuned on seeds 0-1 (docs/algorithms.md): rl-zoo's gamma and lambda; rollouts of 16 x 256 (not 16 x 1024)
    # with 10 epochs of minibatch 256 update 4x as often; a constant learning rate (annealed, seed 0 ended at 190);
    # half rl-zoo's entropy bonus, so that the sampled policy, which the stop rule watches, is close to the greedy
    # one; a 100-episode window and 50-episode confirmations, so that a run does not stop on a lucky stretch.
    "LunarLander-v3": dict(
        total_steps=1_000_000,
        num_envs=16,
        n_steps=256,
        epochs=10,
        minibatch_size=256,
        anneal_lr=False,
        gamma=0.999,
        gae_lambda=0.98,
        ent_coef=0.005,
        solve_window=100,
        confirm_episodes=50,
    ),
    # Box actions. rl-zoo's PPO settings (hyperparams/ppo.yml: gamma 0.9, lambda 0.95, 10 epochs, 1e5 steps) with
    # its gSDE's temporal correlation done the cheap way: a plain state-independent Gaussian (clipped to the bounds)
    # whose unit noise each env holds 4 steps (`noise_repeat`, as rl-zoo's sde_sample_freq 4). Without it a plain
    # Gaussian needed 2e5 steps; with it 1e5 do (tuning seed 0: -174.5 with rl-zoo's 4 x 1024 rollouts, minibatch
    # 64, lr 1e-3, in 37 CPU s). Cheaper: 16 envs x 256 steps (a quarter of the per-step policy calls) and
    # minibatches of 256 (a quarter of the gradient steps) with lr 3e-3. Tuning seeds 0-9: -179.4, -174.0, -175.3,
    # -180.4, -177.3, -172.1, -184.5, -187.3, -180.3, -176.3 (mean -178.7) at 16-19 CPU s a whole run, where the
    # preset before (200k steps, 4 x 1024, minibatch 64, lr 1e-3, fresh noise every step) took 74 CPU s
    # (docs/algorithms.md, "Pendulum-v1: held noise").
    "Pendulum-v1": dict(
        total_steps=100_000,
        num_envs=16,
        n_steps=256,
        minibatch_size=256,
        epochs=10,
        learning_rate=3e-3,
        gamma=0.9,
        gae_lambda=0.95,
        clip_range=0.2,
        ent_coef=0.0,
        noise_repeat=4,
    ),
    # rl-zoo explores with gSDE (log std -3.29 in its parametrisation), which rlship does not implement. A plain
    # Gaussian explores by chance only: with log std 1 (clipped actions, mostly +/-1), about 4 random episodes of
    # 30 reach the flag (seeds 0-29), with log std 0 none; so the log std starts at 1 and 16 envs play at once.
    # Observation and reward normalisation as in rl-zoo. docs/algorithms.md has what was measured.
    "MountainCarContinuous-v0": dict(
        total_steps=300_000,
        num_envs=16,
        n_steps=128,
        epochs=10,
        minibatch_size=512,
        gamma=0.99,
        gae_lambda=0.95,
        log_std_init=1.0,
        normalize_obs=True,
        normalize_reward=True,
    ),
    # rl-zoo's LunarLanderContinuous settings (its LunarLander ones: 16 envs x 1024 steps, 4 epochs, entropy 0.01,
    # gamma 0.999, lambda 0.98, lr 3e-4 constant) with minibatches of 128, not 64 (half the gradient steps, the same
    # CPU per env step as the 10 epochs of 256 before), trained 1.5e6 steps whole (the greedy lander still improves
    # after 1e6) and keeping the best greedy policy of 100-episode confirmations every 50k steps from a training
    # mean of 100 (the entropy bonus keeps the sampled policy's mean near 140 while the greedy one scores 250+).
    # Tuning seeds 0, 1, 2, 4, 5, 6: 262.4, 264.1, 256.3, 268.0, 266.8, 269.9, where the old preset (LunarLander-v3's
    # rollout, 10 epochs of 256-minibatches, entropy 0.005) with the same confirmations scored 266.8, 263.4, 230.7,
    # 233.2, 229.9, 220.4: its greedy lander crashed about one episode in five on seeds 2, 5 and 6 (docs/algorithms.md,
    # "LunarLanderContinuous-v3: rl-zoo's update"). Held-out seeds 100-104: 263.1-269.4, mean 265.1 (SB3: 263.9)
    "LunarLanderContinuous-v3": dict(
        total_steps=1_500_000,
        stop_on_solve=False,
        keep_best=True,
        confirm_every=50_000,
        confirm_from=100.0,
        confirm_episodes=100,
        num_envs=16,
        n_steps=1024,
        epochs=4,
        minibatch_size=128,
        anneal_lr=False,
        gamma=0.999,
        gae_lambda=0.98,
        ent_coef=0.01,
        solve_window=100,
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
    # CartPole from its screen (issue 11): the CNN of networks.DEFAULT_CONV (shared by the policy and value heads)
    # on two stacked 25x100 grey frames; CleanRL's Atari PPO settings, fewer epochs for a 2-core CPU.
    "rlship/CartPolePixels-v1": dict(
        total_steps=300_000,
        num_envs=8,
        n_steps=128,
        epochs=4,
        minibatch_size=256,
        learning_rate=2.5e-4,
        ent_coef=0.01,
        hidden_sizes=(256,),
        activation="relu",
    ),
}


def learn(run: Run, cfg: PPOConfig) -> None:
    # the helpers below import torch: imported when a run starts, not when `rlship train --help` reads the config
    from rlship.training.rollout import actor_critic

    if cfg.num_envs * cfg.n_steps < 2:  # no minibatch of two would ever form: the run would learn nothing
        raise UsageError("a ppo rollout needs at least 2 transitions: raise --num-envs or --n-steps above 1")
    actor, rollout = actor_critic(run, cfg)
    net = actor.network
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate, eps=1e-5, fused=True)
    step = GradientStep(list(net.parameters()), optimizer, cfg.max_grad_norm)
    run.start(
        ["learning_rate", "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction"],
        cfg.num_envs,
        optimizer=optimizer,
        **actor.checkpointed(),
    )
    rollout.reset(seed=run.env_seed)
    while run.env_steps < cfg.total_steps:
        frac = 1.0 - (1.0 - cfg.anneal_to) * run.env_steps / cfg.total_steps if cfg.anneal_lr else 1.0
        lr, clip = cfg.learning_rate * frac, cfg.clip_range * frac
        for group in optimizer.param_groups:
            group["lr"] = lr

        # --- rollout: T steps of all N envs with the current policy, then GAE over them
        rollout.collect(run.generator, run.stats)
        b = rollout.batch(cfg.gamma, cfg.gae_lambda)

        # --- a few epochs of minibatch updates on the valid transitions
        n = b["obs"].shape[0]
        metrics = []
        for _ in range(cfg.epochs):
            order = torch.from_numpy(run.rng.permutation(n))
            for start in range(0, n, cfg.minibatch_size):
                idx = order[start : start + cfg.minibatch_size]
                if idx.numel() < 2:  # advantage normalisation needs two samples
                    continue
                metrics.append(_update(actor, step, cfg, clip, {k: v[idx] for k, v in b.items()}))
            if cfg.target_kl is not None and metrics and metrics[-1][3] > cfg.target_kl:
                break
        if not metrics:  # a tiny rollout whose valid transitions (resets aside) make no minibatch of two
            continue
        m = torch.stack([torch.stack(x) for x in metrics]).mean(0).tolist()
        stop = run.update(
            learning_rate=lr,
            policy_loss=m[0],
            value_loss=m[1],
            entropy=m[2],
            approx_kl=m[3],
            clip_fraction=m[4],
        )
        if stop:
            break


def _update(
    actor: Actor, step: GradientStep, cfg: PPOConfig, clip: float, mb: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, ...]:
    """One gradient step of the PPO loss; returns (policy loss, value loss, entropy, approx KL, clip fraction)."""
    out = actor.forward(mb["obs"])
    logp, entropies = actor.head.log_prob_entropy(out, mb["actions"])
    entropy = entropies.mean()
    log_ratio = logp - mb["log_probs"]
    ratio = log_ratio.exp()
    adv = (mb["advantages"] - mb["advantages"].mean()) / (mb["advantages"].std() + 1e-8)
    policy_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - clip, 1 + clip)).mean()
    value_loss = 0.5 * F.mse_loss(out["value"].squeeze(-1), mb["returns"])
    loss = policy_loss - cfg.ent_coef * entropy + cfg.vf_coef * value_loss
    step(loss)
    with torch.no_grad():
        approx_kl = ((ratio - 1) - log_ratio).mean()
        clip_fraction = ((ratio - 1).abs() > clip).float().mean()
    return policy_loss.detach(), value_loss.detach(), entropy.detach(), approx_kl, clip_fraction


ALGORITHM = Algorithm("ppo", "Proximal Policy Optimization (clipped surrogate, GAE)", PPOConfig, PRESETS, learn)
train, make_config = ALGORITHM.train, ALGORITHM.make_config
