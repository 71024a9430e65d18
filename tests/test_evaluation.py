"""The evaluation protocol: real envs, disjoint seeds, batched episodes, honest statistics."""

from __future__ import annotations

import numpy as np
import pytest

from rlship.evaluation import EVAL_SEED_OFFSET, evaluate, evaluate_fn, run_episodes
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
