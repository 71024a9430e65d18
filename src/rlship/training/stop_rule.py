"""Episode bookkeeping of a training run (`EpisodeStats`) and the rule that ends it once solved (`StopRule`)."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from rlship.evaluation import EvalResult, evaluate
from rlship.policy import Policy

# The confirming evaluations of the stop rule use their own evaluation seeds, away from the final evaluation's
# (seed 0 and up), so that the reported score is not the one the stop decision was taken on.
CONFIRM_EVAL_SEED = 100_000
# A confirming evaluation first plays this many episodes, and goes on to all of its episodes only when their bare
# mean reaches the threshold: most confirmations fail, and they fail as cheaply as before the margin.
SCREEN_EPISODES = 20


class EpisodeStats:
    """Returns and lengths of the episodes finished in a vector env with next-step autoreset, and the run's env
    steps (every valid transition the algorithm played: the count budgets, logs and results use)."""

    def __init__(self, num_envs: int, window: int) -> None:
        self._returns = np.zeros(num_envs)
        self._lengths = np.zeros(num_envs, dtype=np.int64)
        self.recent: deque[float] = deque(maxlen=window)
        self.recent_lengths: deque[int] = deque(maxlen=window)
        self.episodes = 0
        self.env_steps = 0

    def update(self, rewards: np.ndarray, dones: np.ndarray, valid: np.ndarray) -> None:
        # `valid` is False on the reset step that follows a done: its reward is 0 and it is no env step of an episode
        self._returns += rewards
        self._lengths += valid
        self.env_steps += int(valid.sum())
        if dones.any():
            self.recent.extend(self._returns[dones].tolist())
            self.recent_lengths.extend(self._lengths[dones].tolist())
            self.episodes += int(dones.sum())
            self._returns[dones] = 0.0
            self._lengths[dones] = 0

    @property
    def full(self) -> bool:
        return len(self.recent) == self.recent.maxlen

    def mean(self) -> float:
        return float(np.mean(self.recent)) if self.recent else float("nan")

    def std(self) -> float:
        return float(np.std(self.recent)) if self.recent else float("nan")

    # A checkpoint holds the running-return window and the episode count; returns of episodes in progress are
    # dropped (the envs are reset on resume).
    def checkpoint_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return {}, {
            "recent": list(self.recent),
            "recent_lengths": list(self.recent_lengths),
            "episodes": self.episodes,
            "env_steps": self.env_steps,
        }

    def load_checkpoint_state(self, tensors: dict[str, Any], meta: dict[str, Any]) -> None:
        self.recent.clear()
        self.recent.extend(float(x) for x in meta["recent"])
        self.recent_lengths.clear()
        self.recent_lengths.extend(int(x) for x in meta["recent_lengths"])
        self.episodes = int(meta["episodes"])
        self.env_steps = int(meta["env_steps"])


@dataclass
class StopRule:
    """Solved when the mean of the last `window` training returns reaches `threshold` (or `confirm_from`) and a
    confirming evaluation (the evaluation protocol, `episodes` greedy episodes) clears the threshold by
    `std_errors` standard errors of its mean: mean - std_errors * std / sqrt(episodes) >= threshold.

    Why a margin: a policy whose true mean sits just under the threshold passes a bare-mean confirmation often
    (it is a coin toss at the threshold), and the final evaluation on other episodes then reports it unsolved.
    A policy that never fails (CartPole's 500 +/- 0) clears the margin at once, so it costs only where the
    policy is shaky, which is where training on is what is needed. The first `SCREEN_EPISODES` episodes must
    reach the threshold before the rest are played: the rule never passes where the bare 20-episode one fails."""

    threshold: float | None
    episodes: int = 100
    std_errors: float = 0.0
    # the training window's mean at which confirming starts (None: the threshold); the confirmation decides
    confirm_from: float | None = None
    # keep the weights of the policy the best confirmation played (`best`), for a run to fall back on when it ends
    # unsolved (Run.finish): DQN's greedy policy can get worse with more training (docs/algorithms.md)
    keep_best: bool = False
    # False: a passing confirmation does not end the run (it trains its whole budget); confirmations are then played
    # only to keep the best policy (`keep_best`), else not at all
    stops: bool = True
    # env steps between two confirmations, at least: where each costs seconds (LunarLander's real envs) and they
    # serve `keep_best` rather than stopping, one per update would cost more than the training
    every: int = 0

    def __post_init__(self) -> None:
        self.confirmations: list[EvalResult] = []
        self.best: EvalResult | None = None
        self.best_weights: dict[str, Any] = {}
        self.last_confirmed_at: int | None = None  # env steps at the last confirmation

    def passes(self, result: EvalResult) -> bool:
        """Whether one confirming evaluation clears the threshold with the margin."""
        assert self.threshold is not None
        margin = self.std_errors * result.std_reward / math.sqrt(result.n_eval_episodes)
        return result.mean_reward - margin >= self.threshold

    def solved(self, stats: EpisodeStats, policy: Policy) -> bool:
        if self.threshold is None or not stats.full:
            return False
        if stats.mean() < (self.threshold if self.confirm_from is None else self.confirm_from):
            return False
        if not (self.stops or self.keep_best):
            return False  # nothing would come of a confirmation
        if self.last_confirmed_at is not None and stats.env_steps - self.last_confirmed_at < self.every:
            return False
        self.last_confirmed_at = stats.env_steps
        seed = CONFIRM_EVAL_SEED + len(self.confirmations)
        # The env's native vector implementation where it has one (CartPole's: 50,000 steps in about 0.1 s
        # rather than 1.5 s); the final evaluation plays the real envs (evaluation.py). Both parts give up as soon
        # as the mean cannot reach the threshold any more (where the env's best return is known: CartPole), which
        # decides as playing on would, in fewer steps; not with keep_best, which compares failed confirmations too.
        screen = min(SCREEN_EPISODES, self.episodes)
        give_up = not self.keep_best
        result = evaluate(
            policy, episodes=screen, seed=seed, vector_twin=True, give_up_below=self.threshold if give_up else None
        )
        if result.n_eval_episodes == screen and result.mean_reward >= self.threshold and screen < self.episodes:
            rest_episodes = self.episodes - screen
            # the rest's mean that brings the whole mean to the threshold
            needed = (self.threshold * self.episodes - sum(result.episode_returns)) / rest_episodes
            rest = evaluate(
                policy,
                episodes=rest_episodes,
                seed=seed + SCREEN_EPISODES,
                vector_twin=True,
                give_up_below=needed if give_up else None,
            )
            result = joined(result, rest)
        self.confirmations.append(result)
        self.remember(result, policy)
        return self.stops and result.n_eval_episodes == self.episodes and self.passes(result)

    def remember(self, result: EvalResult, policy: Policy) -> None:
        """With `keep_best`: the policy's weights when `result` (its evaluation) beats the best mean so far.

        Only evaluations of all `episodes` count: a confirmation that stopped at its screen (the first
        SCREEN_EPISODES) is a short, noisy mean, and the best of many of them overstates its policy. On pixel
        CartPole (tuning seed 1) the best of 16 screens, 473.45 on 20 episodes, was kept over the last policy's
        442.50 on 100, and scored 436.25 on the real env."""
        if result.n_eval_episodes < self.episodes:
            return
        if self.keep_best and (self.best is None or result.mean_reward > self.best.mean_reward):
            self.best = result
            self.best_weights = {k: v.clone() for k, v in policy.state_tensors().items()}

    # A checkpoint holds the confirming evaluations, so that their seeds go on after a resume, and the best weights.
    def checkpoint_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        best = self.best.to_dict() if self.best is not None else None
        confirmations = [c.to_dict() for c in self.confirmations]
        meta = {"confirmations": confirmations, "best": best, "last_confirmed_at": self.last_confirmed_at}
        return dict(self.best_weights), meta

    def load_checkpoint_state(self, tensors: dict[str, Any], meta: dict[str, Any]) -> None:
        self.confirmations = [EvalResult.from_dict(c) for c in meta["confirmations"]]
        best = meta.get("best")  # absent in checkpoints from before keep_best
        self.best = EvalResult.from_dict(best) if best is not None else None
        self.best_weights = dict(tensors)
        self.last_confirmed_at = meta.get("last_confirmed_at")  # absent in checkpoints from before confirm_every


def joined(first: EvalResult, rest: EvalResult) -> EvalResult:
    """One evaluation of the episodes of `first` and of `rest`, whose episode seeds follow first's: the same as
    evaluating all of them at once (greedy actions depend on the observation only)."""
    returns = first.episode_returns + rest.episode_returns
    return replace(
        first,
        mean_reward=float(np.mean(returns)),
        std_reward=float(np.std(returns)),
        n_eval_episodes=len(returns),
        episode_seeds=first.episode_seeds + rest.episode_seeds,
        episode_returns=returns,
        episode_lengths=first.episode_lengths + rest.episode_lengths,
        wall_seconds=first.wall_seconds + rest.wall_seconds,
    )
