"""The evaluation protocol: real envs, disjoint seeds, batched episodes, honest statistics."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from rlship import load_policy
from rlship.envs import make_vec_env
from rlship.evaluation import (
    EVAL_SEED_OFFSET,
    evaluate,
    evaluate_fn,
    max_episode_return,
    run_episodes,
    run_vector_twin_episodes,
)
from tests.conftest import make_untrained


def balance(obs: np.ndarray) -> np.ndarray:
    """A hand-written CartPole controller: push towards where the pole is falling."""
    return (obs[:, 2] + 0.5 * obs[:, 3] > 0).astype(np.int64)


def test_runs_episodes_side_by_side_and_counts_returns() -> None:
    calls: list[int] = []

    def act(obs: np.ndarray) -> np.ndarray:
        calls.append(len(obs))
        return balance(obs)

    returns, lengths = run_episodes(act, "CartPole-v1", episodes=30, seed=0)
    assert len(returns) == len(lengths) == 30
    assert calls[0] == 30  # one batched call for all episodes per time step
    assert len(calls) == max(lengths)  # ... and as many calls as the longest episode has steps
    assert returns == [float(n) for n in lengths]  # CartPole pays 1 per step
    assert max(lengths) <= 500  # gymnasium.make's own TimeLimit


def test_more_episodes_than_play_side_by_side_reuse_the_envs_and_play_the_same_episodes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """250 episodes step at most SIDE_BY_SIDE envs (memory: a pixel env holds its renderer), an env whose episode
    ended starting the next seed's; each episode is the one a fresh `gymnasium.make` env plays from its seed."""
    import rlship.evaluation as evaluation

    made: list[int] = []
    real_make_env = evaluation.make_env

    def counting_make_env(*args: object, **kwargs: object) -> gym.Env:
        made.append(1)
        return real_make_env(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(evaluation, "make_env", counting_make_env)
    widths: list[int] = []

    def act(obs: np.ndarray) -> np.ndarray:
        widths.append(len(obs))
        return balance(obs)

    returns, lengths = run_episodes(act, "CartPole-v1", episodes=250, seed=4)
    assert len(made) == evaluation.SIDE_BY_SIDE == max(widths) == 100
    assert len(returns) == 250 and sum(widths) == sum(lengths)
    for i in (0, 99, 100, 173, 249):  # one by one, as a fresh env from the episode's seed plays it
        env = gym.make("CartPole-v1")
        obs, _ = env.reset(seed=EVAL_SEED_OFFSET + 4 + i)
        steps, done = 0, False
        while not done:
            obs, _, terminated, truncated, _ = env.step(int(balance(obs[None])[0]))
            steps, done = steps + 1, terminated or truncated
        assert lengths[i] == steps and returns[i] == float(steps), i


def test_result_statistics_and_seeds() -> None:
    result = evaluate_fn(balance, "CartPole-v1", episodes=20, seed=7)
    assert result.n_eval_episodes == 20 and result.deterministic
    assert result.mean_reward == pytest.approx(np.mean(result.episode_returns))
    assert result.std_reward == pytest.approx(np.std(result.episode_returns))
    assert result.episode_seeds == list(range(EVAL_SEED_OFFSET + 7, EVAL_SEED_OFFSET + 27))
    assert result.metric == f"{result.mean_reward:.2f} +/- {result.std_reward:.2f}"
    again = evaluate_fn(balance, "CartPole-v1", episodes=20, seed=7)
    assert again.episode_returns == result.episode_returns  # same seeds, same episodes
    other = evaluate_fn(lambda o: np.zeros(len(o), dtype=np.int64), "CartPole-v1", episodes=20, seed=8)
    assert other.episode_returns != result.episode_returns


def test_untrained_policy_fails_and_stochastic_runs_are_reproducible() -> None:
    policy = make_untrained()
    greedy = evaluate(policy, episodes=20)
    assert greedy.mean_reward < 100  # an untrained network does not balance the pole
    a = evaluate(policy, episodes=20, seed=1, deterministic=False)
    b = evaluate(policy, episodes=20, seed=1, deterministic=False)
    assert not a.deterministic and a.episode_returns == b.episode_returns


def test_zero_episodes_is_an_error() -> None:
    with pytest.raises(ValueError, match="episodes must be >= 1"):
        run_episodes(balance, "CartPole-v1", episodes=0)


def test_more_episodes_than_the_bound_are_refused_before_any_env_is_made() -> None:
    # the vector twin plays every episode at once: the count is memory, so a typo (1e8 for 1e3) is an error
    from rlship.evaluation import MAX_EPISODES, run_vector_twin_episodes

    for play in (run_episodes, run_vector_twin_episodes):
        with pytest.raises(ValueError, match=f"episodes must be at most {MAX_EPISODES:,} .*; got {MAX_EPISODES + 1}"):
            play(balance, "CartPole-v1", episodes=MAX_EPISODES + 1)


def test_the_vector_twin_is_cartpole_itself() -> None:
    """The stop rule's confirmations play CartPole-v1's native vector env: from the same state, with the same
    actions, it gives gymnasium.make's observations, rewards, termination and time limit."""
    real = gym.make("CartPole-v1")
    twin = gym.make_vec("CartPole-v1", num_envs=1, vectorization_mode="vector_entry_point")
    obs, _ = real.reset(seed=5)
    twin.reset(seed=0)
    twin.unwrapped.state[:, 0] = real.unwrapped.state  # type: ignore[attr-defined]
    for step in range(1, 501):
        action = balance(obs[None])
        obs, reward, terminated, truncated, _ = real.step(int(action[0]))
        twin_obs, twin_reward, twin_terminated, twin_truncated, _ = twin.step(action)
        np.testing.assert_array_equal(twin_obs[0], obs)
        assert (twin_reward[0], twin_terminated[0], twin_truncated[0]) == (reward, terminated, truncated), step
        if terminated or truncated:
            break
    real.close()
    twin.close()


@pytest.mark.filterwarnings("ignore:.*CartPole-v0 is out of date")  # v0: CartPole without a vector implementation
def test_vector_twin_episodes_count_each_copy_until_its_end() -> None:
    calls: list[int] = []

    def act(obs: np.ndarray) -> np.ndarray:
        calls.append(len(obs))
        return np.zeros(len(obs), dtype=np.int64)  # always left: every episode ends within a few dozen steps

    returns, lengths = run_vector_twin_episodes(act, "CartPole-v1", episodes=30, seed=0)
    assert returns == [float(n) for n in lengths] and len(set(lengths)) > 1
    assert set(calls) == {30} and len(calls) == max(lengths)  # every copy steps until the longest episode ends
    policy = load_policy("default")
    twin = evaluate(policy, episodes=30, seed=1, vector_twin=True)  # other start states than the protocol's
    assert twin.n_eval_episodes == 30 and twin.mean_reward > 475 and max(twin.episode_lengths) == 500
    # an env without a native vector implementation plays gymnasium.make copies, as the protocol does
    assert evaluate(policy, episodes=3, seed=0, env_id="CartPole-v0", vector_twin=True).mean_reward == 200.0


def test_a_vector_twin_evaluation_gives_up_once_its_mean_cannot_reach_the_bar() -> None:
    calls: list[int] = []

    def always_left(obs: np.ndarray) -> np.ndarray:
        calls.append(len(obs))
        return np.zeros(len(obs), dtype=np.int64)

    full_returns, _ = run_vector_twin_episodes(always_left, "CartPole-v1", episodes=30, seed=0)
    full_calls, calls[:] = len(calls), []
    returns, lengths = run_vector_twin_episodes(always_left, "CartPole-v1", episodes=30, seed=0, give_up_below=475.0)
    # CartPole pays at most 1 a step up to 500: once two episodes of ~10 steps ended, 30 cannot average 475
    assert 0 < len(returns) < 30 and len(calls) < full_calls
    assert all(r in full_returns for r in returns) and np.mean(returns) < 475
    assert returns == [float(n) for n in lengths]  # whole episodes, not the parts played of running ones
    # a policy that clears the bar plays every episode, as without giving up
    policy = load_policy("default")
    played = evaluate(policy, episodes=30, seed=1, vector_twin=True)
    assert evaluate(policy, episodes=30, seed=1, vector_twin=True, give_up_below=475.0).episode_returns == (
        played.episode_returns
    )


@pytest.mark.filterwarnings("ignore:.*CartPole-v0 is out of date")
def test_the_best_return_is_known_for_cartpoles_vector_env_only() -> None:
    import rlship  # noqa: F401  (registers rlship/CartPolePixels-v1)

    for env_id, best in (("CartPole-v1", 500.0), ("CartPole-v0", 200.0), ("rlship/CartPolePixels-v1", 500.0)):
        envs = make_vec_env(env_id, 2)
        assert max_episode_return(envs) == best
        envs.close()
    envs = make_vec_env("Acrobot-v1", 2)  # a SyncVectorEnv of gymnasium.make copies: nothing is known
    assert max_episode_return(envs) is None
    envs.close()
