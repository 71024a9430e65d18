"""Environment construction shared by training and evaluation."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from gymnasium.vector import AutoresetMode

from rlship.errors import UnsupportedEnvError


def env_spec(env_id: str) -> gym.envs.registration.EnvSpec:
    """The registered spec of `env_id`, with an error that lists close matches when it is unknown."""
    try:
        return gym.spec(env_id)
    except gym.error.Error as exc:
        raise UnsupportedEnvError(f"unknown Gymnasium env {env_id!r}: {exc}") from exc


def make_vec_env(env_id: str, num_envs: int, env_kwargs: dict[str, Any] | None = None) -> gym.vector.VectorEnv:
    """A vector env of `num_envs` copies, with next-step autoreset (the transition after a `done` is a reset).

    Envs that register a native batched implementation (CartPole-v1's `vector_entry_point` steps all copies
    in one NumPy call) use it; every other env runs as a `SyncVectorEnv` of `gymnasium.make` copies.
    """
    spec = env_spec(env_id)
    mode = "vector_entry_point" if spec.vector_entry_point is not None else "sync"
    envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode=mode, **(env_kwargs or {}))
    autoreset = envs.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
    if autoreset != AutoresetMode.NEXT_STEP:  # the rollout code relies on next-step semantics
        raise UnsupportedEnvError(f"{env_id}: vector env autoreset mode {autoreset} is not next-step")
    return envs


def require_discrete_actions(env_id: str, action_space: gym.Space[Any], algorithm: str) -> int:
    """Number of actions of a Discrete space, or a clear error naming the algorithm's limit."""
    if not isinstance(action_space, gym.spaces.Discrete):
        raise UnsupportedEnvError(
            f"{algorithm} in rlship handles Discrete action spaces; {env_id} has {action_space}. "
            "Pick a discrete-action env (CartPole-v1, Acrobot-v1, LunarLander-v3)."
        )
    if int(action_space.start) != 0:
        raise UnsupportedEnvError(f"{env_id}: Discrete spaces must start at 0 (got start={action_space.start})")
    return int(action_space.n)
