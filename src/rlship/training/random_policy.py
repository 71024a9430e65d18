"""The random baseline: uniform over the actions, whatever the observation.

It learns nothing (zero env steps), but it is a policy artifact like any other (config.json says
action_distribution "uniform", so `act` samples even when asked for greedy actions), so it evaluates, packages and
serves through the same code as a trained policy: the floor every algorithm's score is read against. Its network
is the smallest the artifact format describes, one linear layer to the logits (after the default convolutions
for image observations, which need a CNN), with zero weights so that its logits tell the same story as its
distribution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rlship.evaluation import MAX_EPISODES
from rlship.lazy_torch import torch
from rlship.network_spec import network_spec
from rlship.training.algorithm import Algorithm
from rlship.training.settings import Settings, hp

if TYPE_CHECKING:
    from rlship.training.run import Run


@dataclass
class RandomConfig(Settings):
    eval_episodes: int = hp(100, "episodes of the evaluation written to results.json", ge=1, le=MAX_EPISODES)


def learn(run: Run, cfg: RandomConfig) -> None:
    """ "Train" for zero updates: the run writes the folder like every other algorithm's."""
    envs = run.vec_env(1)
    # an image env's artifact needs a CNN (network_spec picks it from the observation space); its weights are zero too
    spec = network_spec(envs.single_observation_space.shape, (), "tanh", {"logits": run.n_actions(envs)})
    policy = run.new_policy(envs, spec, "uniform")
    with torch.no_grad():
        for param in policy.network.parameters():
            param.zero_()


ALGORITHM = Algorithm(
    "random",
    "uniform random actions: the baseline every algorithm is read against (trains for zero steps)",
    RandomConfig,
    {},
    learn,
)
train, make_config = ALGORITHM.train, ALGORITHM.make_config
