"""The random baseline: uniform over the actions, whatever the observation.

It learns nothing (zero env steps), but it is a policy artifact like any other (config.json says
action_distribution "uniform", so `act` samples even when asked for greedy actions), so it evaluates, packages and
serves through the same code as a trained policy: the floor every algorithm's score is read against. Its network
is the smallest the artifact format describes, one linear layer to the logits, with zero weights so that its
logits tell the same story as its distribution.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

from rlship.envs import env_spec, require_discrete_actions
from rlship.networks import NetworkSpec
from rlship.policy import new_policy
from rlship.training.run import StopRule, TrainLog, TrainResult, config_with_preset, finish_run, hp


@dataclass
class RandomConfig:
    eval_episodes: int = hp(100, "episodes of the evaluation written to results.json")

    def __post_init__(self) -> None:
        if self.eval_episodes < 1:
            raise ValueError(f"eval_episodes must be >= 1; got {self.eval_episodes}")


def make_config(env_id: str, **overrides: Any) -> RandomConfig:
    """RandomConfig: no env has a preset (None values are ignored)."""
    return config_with_preset(RandomConfig, {}, env_id, overrides)


def train(
    env_id: str,
    config: RandomConfig | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    progress: bool = True,
    env_kwargs: dict[str, Any] | None = None,
) -> TrainResult:
    """ "Train" for zero steps, then evaluate and write the run folder like every other algorithm."""
    cfg = config or make_config(env_id)
    out = Path(out or f"runs/random-{env_id}-s{seed}")
    spec = env_spec(env_id)
    env = gym.make(env_id, **(env_kwargs or {}))
    try:
        observation_space, action_space = env.observation_space, env.action_space
    finally:
        env.close()
    n_actions = require_discrete_actions(env_id, action_space, "random")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    policy = new_policy(
        "random",
        env_id,
        observation_space,
        action_space,
        NetworkSpec((), "tanh", {"logits": n_actions}),
        hyperparameters=asdict(cfg),
        seed=seed,
        env_kwargs=env_kwargs,
        action_distribution="uniform",
    )
    with torch.no_grad():
        for param in policy.network.parameters():
            param.zero_()
    log = TrainLog(out, 0, [], progress=False, desc=f"random {env_id} s{seed}")  # nothing to show progress of
    log.close()  # no updates: the log holds its header only
    stop = StopRule(spec.reward_threshold)
    return finish_run(out, policy, log, stop, 0, cfg.eval_episodes)
