"""The one evaluation protocol rlship uses everywhere (results.json, the CLI, the card, the simulator).

Real `gymnasium.make(env_id)` episodes (the env's own TimeLimit), 100 by default, greedy actions by default,
mean and std of the undiscounted return. Episode i is reset with seed `EVAL_SEED_OFFSET + seed + i`; training
seeds its envs below `EVAL_SEED_OFFSET`, so evaluation never replays a start state that training was seeded
with. Episodes run side by side (up to 100 at once, the protocol's count): one batched policy call per time step
for every episode still running.

Training's stop rule plays its confirming episodes the same way, except that an env with a native vector
implementation (a registered `vector_entry_point`, such as CartPole-v1's, or rlship's own Pendulum-v1 twin;
envs.py's `vector_twin_spec`) is played through it (`vector_twin=True`): the same dynamics and time limit, all
episodes stepped in one NumPy call, with start states drawn from one seeded generator rather than a seed per
episode. The final evaluation, the CLI and the card always play real envs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from rlship.allocator import keep_freed_memory
from rlship.envs import has_vector_twin, make_env, make_vec_env
from rlship.errors import UsageError

if TYPE_CHECKING:  # evaluation needs only `act`; the run folder module (below policy) imports EvalResult from here
    from rlship.policy import Policy

EVAL_SEED_OFFSET = 1_000_000
DEFAULT_EPISODES = 100
# Episodes of one evaluation, at most (100 is the protocol's; the stop rule's confirmations and the Hub's leaderboard
# use 10-100): the vector twin plays them all at once, in arrays this count sizes, before any env steps.
MAX_EPISODES = 10_000
# Real envs stepped at once by one evaluation (the protocol's 100 all at once); more episodes reuse them in turn.
SIDE_BY_SIDE = 100


def check_episodes(episodes: int) -> None:
    """A UsageError unless `episodes` is a count one evaluation may play (1 to MAX_EPISODES)."""
    if episodes < 1:
        raise UsageError(f"episodes must be >= 1; got {episodes}")
    if episodes > MAX_EPISODES:
        raise UsageError(
            f"episodes must be at most {MAX_EPISODES:,} (one env each, played side by side); got {episodes}"
        )


# obs batch (N, *obs_shape) -> actions (N,)
ActFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class EvalResult:
    env_id: str
    mean_reward: float
    std_reward: float
    n_eval_episodes: int
    deterministic: bool
    seed: int
    episode_seeds: list[int]
    episode_returns: list[float]
    episode_lengths: list[int]
    wall_seconds: float
    date: str

    @property
    def metric(self) -> str:
        """The model-card `mean_reward` string."""
        return f"{self.mean_reward:.2f} +/- {self.std_reward:.2f}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalResult:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


def episode_seeds(seed: int, episodes: int) -> list[int]:
    return [EVAL_SEED_OFFSET + seed + i for i in range(episodes)]


def run_episodes(
    act: ActFn,
    env_id: str,
    episodes: int = DEFAULT_EPISODES,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
) -> tuple[list[float], list[int]]:
    """Run `episodes` episodes, at most SIDE_BY_SIDE at a time, each in an env of its own; returns (returns, lengths).

    A hand-stepped list of envs rather than a gymnasium vector env: each env plays exactly the episode of its seed,
    and a vector env would auto-reset an env that is done with a seed of its own. When an episode ends and others
    are still to play, its env is reset with the next episode's seed (`reset(seed=...)` starts the same episode as a
    new env would), so memory is that of SIDE_BY_SIDE envs whatever the count: a pixel env holds its renderer
    (about 2 MB), and 10,000 of them at once would not fit in most machines.
    """
    check_episodes(episodes)
    seeds = episode_seeds(seed, episodes)
    envs = [make_env(env_id, env_kwargs) for _ in range(min(episodes, SIDE_BY_SIDE))]
    try:
        # rendered frames (the pixel envs) free and allocate megabytes a step: kept mapped, not faulted in each time
        with keep_freed_memory():
            playing = list(range(len(envs)))  # the episode each env plays
            obs = np.stack([env.reset(seed=seeds[i])[0] for env, i in zip(envs, playing, strict=True)])
            returns = np.zeros(episodes)
            lengths = np.zeros(episodes, dtype=np.int64)
            started = len(envs)
            running = np.arange(len(envs))  # the envs whose episode goes on
            while running.size:
                actions = act(obs[running])
                still = []
                for k, action in zip(running, actions, strict=True):
                    obs[k], reward, terminated, truncated, _ = envs[k].step(action)
                    i = playing[k]
                    returns[i] += float(reward)
                    lengths[i] += 1
                    if terminated or truncated:
                        if started == episodes:
                            continue
                        playing[k], started = started, started + 1
                        obs[k] = envs[k].reset(seed=seeds[playing[k]])[0]
                    still.append(k)
                running = np.asarray(still, dtype=np.int64)
    finally:
        for env in envs:
            env.close()
    return returns.tolist(), lengths.tolist()


def run_vector_twin_episodes(
    act: ActFn,
    env_id: str,
    episodes: int,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    give_up_below: float | None = None,
) -> tuple[list[float], list[int]]:
    """One episode in each copy of the env's native vector implementation; returns (returns, lengths).

    The copies whose episode has ended go on stepping (autoreset, in the same NumPy call, their rewards ignored)
    until the last episode ends: the vector env takes an action for every copy.

    `give_up_below`: stop as soon as the mean return of all the episodes cannot reach it any more, where the most
    an episode can still earn is known (`max_episode_return`); only the episodes that ended are returned then.
    The stop rule's confirmations use it: a check that must fail is decided without playing the rest.
    """
    check_episodes(episodes)
    envs = make_vec_env(env_id, episodes, env_kwargs)
    try:
        best = max_episode_return(envs) if give_up_below is not None else None
        obs, _ = envs.reset(seed=EVAL_SEED_OFFSET + seed)
        returns = np.zeros(episodes)
        lengths = np.zeros(episodes, dtype=np.int64)
        running = np.ones(episodes, dtype=bool)
        while running.any():
            obs, rewards, terminated, truncated, _ = envs.step(act(obs))
            returns += np.where(running, rewards, 0.0)
            lengths += running
            running &= ~(np.asarray(terminated) | np.asarray(truncated))
            if best is not None and give_up_below is not None:
                # a running episode earns at most 1 per step (CartPole's reward) until the time limit
                reachable = np.where(running, returns + (best - lengths), returns)
                if reachable.mean() < give_up_below and not running.all():
                    ended = ~running
                    return returns[ended].tolist(), lengths[ended].tolist()
    finally:
        envs.close()
    return returns.tolist(), lengths.tolist()


def max_episode_return(envs: gym.vector.VectorEnv) -> float | None:
    """The most one episode of `envs` can return, where rlship knows it, else None: CartPole's vector env (and the
    pixel CartPole's, which derives from it) pays at most 1 per step (0 or -1 with `sutton_barto_reward`) up to
    its time limit, so an episode at step t can still earn at most limit - t."""
    from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

    unwrapped = envs.unwrapped
    if isinstance(unwrapped, CartPoleVectorEnv):
        return float(unwrapped.max_episode_steps)
    return None


def evaluate(
    policy: Policy,
    episodes: int = DEFAULT_EPISODES,
    seed: int = 0,
    deterministic: bool = True,
    env_id: str | None = None,
    vector_twin: bool = False,
    give_up_below: float | None = None,
) -> EvalResult:
    """Evaluate a policy by the protocol above (on its own env unless `env_id` is given).

    `vector_twin=True` (training's checks only) plays the env's native vector implementation when it has one;
    with `give_up_below`, it may stop once the mean cannot reach that (`run_vector_twin_episodes`): the result then
    holds fewer episodes than asked, those that ended."""
    rng = np.random.default_rng(EVAL_SEED_OFFSET + seed)  # stochastic evaluation is reproducible too
    env_id = env_id or policy.spec.env_id
    policy = policy.in_numpy()

    def act(obs: np.ndarray) -> np.ndarray:
        return policy.actions(obs, deterministic=deterministic, rng=rng)

    if vector_twin and has_vector_twin(env_id):
        start = time.perf_counter()
        returns, lengths = run_vector_twin_episodes(
            act, env_id, episodes, seed, policy.spec.env_make_kwargs, give_up_below=give_up_below
        )
        return episodes_result(env_id, returns, lengths, seed, deterministic, start)
    return evaluate_fn(act, env_id, episodes, seed, deterministic, env_kwargs=policy.spec.env_make_kwargs)


def evaluate_fn(
    act: ActFn,
    env_id: str,
    episodes: int = DEFAULT_EPISODES,
    seed: int = 0,
    deterministic: bool = True,
    env_kwargs: dict[str, Any] | None = None,
) -> EvalResult:
    """The protocol for any batched act function (used to evaluate other libraries' agents the same way)."""
    start = time.perf_counter()
    returns, lengths = run_episodes(act, env_id, episodes, seed, env_kwargs)
    return episodes_result(env_id, returns, lengths, seed, deterministic, start)


def episodes_result(
    env_id: str, returns: list[float], lengths: list[int], seed: int, deterministic: bool, start: float
) -> EvalResult:
    """The protocol's result of the episodes played from eval seed `seed` (`start`: their perf_counter start)."""
    return EvalResult(
        env_id=env_id,
        mean_reward=float(np.mean(returns)),
        std_reward=float(np.std(returns)),
        n_eval_episodes=len(returns),
        deterministic=deterministic,
        seed=seed,
        episode_seeds=episode_seeds(seed, len(returns)),
        episode_returns=list(returns),
        episode_lengths=list(lengths),
        wall_seconds=time.perf_counter() - start,
        date=datetime.now(UTC).isoformat(timespec="seconds"),
    )
