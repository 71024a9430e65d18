"""Environment construction shared by training and evaluation."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
from gymnasium.vector import AutoresetMode

from rlship.errors import UnsupportedEnvError
from rlship.spaces import describe_space


def env_spec(env_id: str) -> gym.envs.registration.EnvSpec:
    """The registered spec of `env_id`, with an error that lists close matches when it is unknown."""
    try:
        return gym.spec(env_id)
    except gym.error.Error as exc:
        raise UnsupportedEnvError(f"unknown Gymnasium env {env_id!r}: {exc}") from exc


def make_env(env_id: str, env_kwargs: dict[str, Any] | None = None, **make_kwargs: Any) -> gym.Env[Any, Any]:
    """`gymnasium.make(env_id, **env_kwargs)`, with one-line errors for the usual failures: an unknown id, a
    missing optional dependency (Box2D, MuJoCo), keyword arguments the env does not take."""
    with _env_errors(env_id, env_kwargs):
        return gym.make(env_id, **make_kwargs, **(env_kwargs or {}))


def takes_observation_preprocessing(env_id: str) -> bool:
    """Whether `env_id`'s env makes image observations from its rendered frames by a preprocessing it takes as its
    `observation_preprocessing` kwarg: an env class that names one in its metadata (rlship/CartPolePixels-v1).
    False for an unknown env, or an entry point that is not such a class."""
    try:
        entry = gym.spec(env_id).entry_point
        creator = gym.envs.registration.load_env_creator(entry) if isinstance(entry, str) else entry
    except (gym.error.Error, ImportError, AttributeError, ValueError):
        return False
    metadata = getattr(creator, "metadata", None)
    return isinstance(metadata, dict) and "observation_preprocessing" in metadata


@contextlib.contextmanager
def _env_errors(env_id: str, env_kwargs: dict[str, Any] | None) -> Iterator[None]:
    # How an env renders is rlship's to say (frames only for the replay video): an artifact's env_kwargs reach every
    # env its evaluation makes, and `render_mode="human"` would open a window per episode and pace every step to the
    # screen's frame rate (a 100-episode evaluation taking many minutes instead of a second).
    if env_kwargs and "render_mode" in env_kwargs:
        raise UnsupportedEnvError(
            f"{env_id}: env_kwargs may not set render_mode (got {str(env_kwargs['render_mode'])[:40]!r}): rlship "
            "renders only for the replay video; remove it from --env-kwargs (or from the policy's config.json)"
        )
    try:
        yield
    except gym.error.DependencyNotInstalled as exc:
        extra = " (pip install 'rlship[box2d]')" if "box2d" in str(exc).lower() else ""
        raise UnsupportedEnvError(
            f"{env_id} needs a package that is not installed{extra}: {str(exc).splitlines()[0][:300]}"
        ) from None
    except gym.error.NameNotFound as exc:
        raise UnsupportedEnvError(f"unknown Gymnasium env {env_id!r}: {str(exc)[:300]}") from None
    except TypeError as exc:
        if env_kwargs:
            raise UnsupportedEnvError(
                f"{env_id} does not take --env-kwargs {json.dumps(env_kwargs)[:200]}: {str(exc)[:200]}"
            ) from None
        raise


# rlship's own native batched twins, used like a `vector_entry_point`: for envs that register none (Pendulum-v1:
# the same dynamics, reward, reset and time limit, tests/test_pendulum_vector.py checks it against the real env),
# and CartPole-v1's own one stepped with fewer NumPy calls (bit for bit Gymnasium's: tests/test_cartpole_vector.py)
OWN_VECTOR_TWINS: dict[str, str] = {
    "Pendulum-v1": "rlship.games.pendulum_vector:PendulumVectorEnv",
    "CartPole-v1": "rlship.games.cartpole_vector:LeanCartPoleVectorEnv",
}


def vector_twin_spec(env_id: str) -> gym.envs.registration.EnvSpec | None:
    """The env's spec with a native batched implementation as its `vector_entry_point`: rlship's own
    (`OWN_VECTOR_TWINS`), else the one it registers; None when it has neither."""
    spec = env_spec(env_id)
    own = OWN_VECTOR_TWINS.get(env_id)
    if own is not None:
        return dataclasses.replace(spec, vector_entry_point=own)
    return spec if spec.vector_entry_point is not None else None


def has_vector_twin(env_id: str) -> bool:
    """Whether the env has a native batched implementation (a registered `vector_entry_point`, such as
    CartPole-v1's, or one of rlship's `OWN_VECTOR_TWINS`)."""
    return vector_twin_spec(env_id) is not None


def make_vec_env(env_id: str, num_envs: int, env_kwargs: dict[str, Any] | None = None) -> gym.vector.VectorEnv:
    """A vector env of `num_envs` copies, with next-step autoreset (the transition after a `done` is a reset).

    Envs with a native batched implementation (`vector_twin_spec`: all copies stepped in one NumPy call) use it;
    every other env runs as a `SyncVectorEnv` of `gymnasium.make` copies.
    """
    twin = vector_twin_spec(env_id)
    with _env_errors(env_id, env_kwargs):
        if twin is not None:
            envs = gym.make_vec(twin, num_envs=num_envs, vectorization_mode="vector_entry_point", **(env_kwargs or {}))
        else:
            envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync", **(env_kwargs or {}))
    autoreset = envs.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
    if autoreset != AutoresetMode.NEXT_STEP:  # the rollout code relies on next-step semantics
        raise UnsupportedEnvError(f"{env_id}: vector env autoreset mode {autoreset} is not next-step")
    return envs


def require_discrete_actions(env_id: str, action_space: gym.Space[Any], algorithm: str) -> int:
    """Number of actions of a Discrete space, or a clear error naming the algorithm's limit."""
    if not isinstance(action_space, gym.spaces.Discrete):
        raise UnsupportedEnvError(
            f"{algorithm} in rlship handles Discrete action spaces; {env_id} has {describe_space(action_space)}. "
            "Pick a discrete-action env (CartPole-v1, Acrobot-v1, LunarLander-v3)."
        )
    if int(action_space.start) != 0:
        raise UnsupportedEnvError(f"{env_id}: Discrete spaces must start at 0 (got start={action_space.start})")
    return int(action_space.n)
