"""rl-zoo's tuned settings for the Stable-Baselines3 peers: CartPole-v1 per algorithm, and PPO per env for LunarLander
and continuous control (rl-baselines3-zoo hyperparams/ppo.yml,
a2c.yml, dqn.yml), shared by every benchmark that runs SB3. It imports nothing of rlship, so the script that runs
SB3 the way its users do (benchmarks/sb3_train.py) pays for SB3's imports only."""

from __future__ import annotations

from typing import Any

# n_envs, the rl-zoo step budget, constructor kwargs, and the `lin_X` schedules (X * progress remaining)
SB3_ZOO: dict[str, dict[str, Any]] = {
    "ppo": dict(
        n_envs=8,
        total_steps=100_000,
        kwargs=dict(n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0),
        linear=dict(learning_rate=1e-3, clip_range=0.2),
    ),
    "dqn": dict(
        n_envs=1,
        total_steps=50_000,
        kwargs=dict(
            learning_rate=2.3e-3,
            batch_size=64,
            buffer_size=100_000,
            learning_starts=1000,
            gamma=0.99,
            target_update_interval=10,
            train_freq=256,
            gradient_steps=128,
            exploration_fraction=0.16,
            exploration_final_eps=0.04,
            policy_kwargs=dict(net_arch=[256, 256]),
        ),
    ),
    "a2c": dict(n_envs=8, total_steps=500_000, kwargs=dict(ent_coef=0.0)),
}


def _linear(start: float) -> Any:
    return lambda progress_remaining: progress_remaining * start


def sb3_model(algo: str, seed: int, env_id: str = "CartPole-v1") -> Any:
    """A fresh SB3 model of `algo` with rl-zoo's settings, its vector env seeded with `seed`."""
    from stable_baselines3 import A2C, DQN, PPO
    from stable_baselines3.common.env_util import make_vec_env

    zoo = SB3_ZOO[algo]
    env = make_vec_env(env_id, n_envs=zoo["n_envs"], seed=seed)
    schedules = {name: _linear(start) for name, start in zoo.get("linear", {}).items()}
    cls = {"ppo": PPO, "dqn": DQN, "a2c": A2C}[algo]
    return cls("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **zoo["kwargs"], **schedules)


# rl-zoo hyperparams/ppo.yml (rl-baselines3-zoo master; its -v2 LunarLander entries, the same for -v3)
_LANDER: dict[str, Any] = dict(
    n_envs=16,
    total_steps=1_000_000,
    kwargs=dict(n_steps=1024, batch_size=64, gae_lambda=0.98, gamma=0.999, n_epochs=4, ent_coef=0.01),
)
# PPO on LunarLander and continuous control, per env (benchmarks/control.py)
SB3_PPO_ZOO: dict[str, dict[str, Any]] = {
    "Pendulum-v1": dict(
        n_envs=4,
        total_steps=100_000,
        kwargs=dict(
            n_steps=1024,
            gae_lambda=0.95,
            gamma=0.9,
            n_epochs=10,
            ent_coef=0.0,
            learning_rate=1e-3,
            clip_range=0.2,
            use_sde=True,
            sde_sample_freq=4,
        ),
    ),
    "LunarLander-v3": _LANDER,
    "LunarLanderContinuous-v3": _LANDER,
    "MountainCarContinuous-v0": dict(
        n_envs=1,
        total_steps=20_000,
        normalize=True,
        kwargs=dict(
            batch_size=256,
            n_steps=8,
            gamma=0.9999,
            learning_rate=7.77e-5,
            ent_coef=0.00429,
            clip_range=0.1,
            n_epochs=10,
            gae_lambda=0.9,
            max_grad_norm=5.0,
            vf_coef=0.19,
            use_sde=True,
            policy_kwargs=dict(log_std_init=-3.29, ortho_init=False),
        ),
    ),
}
