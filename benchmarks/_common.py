"""What the benchmarks share: running a Stable-Baselines3 agent next to rlship and scoring it by rlship's protocol.

Every SB3 agent is evaluated with `rlship.evaluation.evaluate_fn` (100 greedy episodes of gymnasium.make(env_id),
eval seed 0), and watched by rlship's stop rule (running return of the last `window` training episodes >= the
threshold, then a confirming evaluation on the stop rule's own seeds), so "solved" means one thing for both.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlship.evaluation import EvalResult, evaluate_fn
from rlship.training.settings import RunSettings
from rlship.training.stop_rule import CONFIRM_EVAL_SEED, StopRule

ENV = "CartPole-v1"
THRESHOLD = 475.0


def sb3_act(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    """An SB3 model as a batched greedy act function for `evaluate_fn`."""
    return lambda obs: model.predict(obs, deterministic=True)[0]


@dataclass
class SB3Run:
    full_seconds: float  # wall seconds of `learn` (the stop rule's evaluations excluded)
    env_steps: int  # env steps `learn` ran
    evaluation: EvalResult  # the protocol's evaluation of the model when `learn` returned
    solved_at: tuple[float, int] | None  # (wall seconds, env steps) when the stop rule was met, if it was
    solved_evaluation: EvalResult | None  # the protocol's evaluation of the model at that moment
    rule_seconds: float = 0.0  # wall seconds the stop rule's own evaluations took (kept out of the above)


def run_sb3(
    model: Any,
    total_steps: int,
    window: int,
    confirm_episodes: int,
    stop_when_solved: bool,
    env_id: str = ENV,
    threshold: float = THRESHOLD,
    act: Callable[[np.ndarray], np.ndarray] | None = None,
) -> SB3Run:
    """`model.learn(total_steps)` watched by rlship's stop rule (checked after each rollout); with
    `stop_when_solved` the run ends there, like an rlship run, else it goes on to the full budget. The time the
    rule's evaluations take is kept out of the reported wall time. A confirmation must clear the threshold by
    rlship's margin (`confirm_std_errors` standard errors), as in an rlship run. `act` (default: the model's
    greedy `predict`) is what the evaluations call, e.g. one that normalises observations first when SB3 trained
    behind VecNormalize."""
    act = act or sb3_act(model)
    rule = StopRule(threshold, confirm_episodes, RunSettings().confirm_std_errors)
    from stable_baselines3.common.callbacks import BaseCallback

    class SameStopRule(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.eval_seconds = 0.0
            self.confirms = 0
            self.solved_at: tuple[float, int] | None = None
            self.solved_evaluation: EvalResult | None = None
            self.stop = False

        def _on_step(self) -> bool:
            return not self.stop

        def _on_rollout_end(self) -> None:
            returns = [e["r"] for e in list(self.model.ep_info_buffer)[-window:]]
            if self.solved_at or len(returns) < window or np.mean(returns) < threshold:
                return
            t = time.perf_counter()
            result = evaluate_fn(act, env_id, confirm_episodes, CONFIRM_EVAL_SEED + self.confirms)
            self.confirms += 1
            if rule.passes(result):
                self.solved_at = (t - start - self.eval_seconds, self.num_timesteps)
                self.solved_evaluation = evaluate_fn(act, env_id, 100, seed=0)
                self.stop = stop_when_solved
            self.eval_seconds += time.perf_counter() - t

    callback = SameStopRule()
    start = time.perf_counter()
    model.learn(total_steps, callback=callback)
    full = time.perf_counter() - start - callback.eval_seconds
    evaluation = callback.solved_evaluation if callback.stop else evaluate_fn(act, env_id, 100, seed=0)
    assert evaluation is not None
    steps = int(model.num_timesteps)
    return SB3Run(full, steps, evaluation, callback.solved_at, callback.solved_evaluation, callback.eval_seconds)
