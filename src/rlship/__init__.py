"""rlship: train, publish and serve reinforcement-learning policies.

import rlship
policy = rlship.load_policy("default")          # or a folder written by `rlship train`
result = policy.act(observations)               # result.actions, result.probabilities, result.values
print(rlship.evaluate(policy).metric)           # the evaluation protocol: "500.00 +/- 0.00"
"""

import rlship.registration  # noqa: F401  (registers the rlship/ envs with Gymnasium)
from rlship.errors import ArtifactError, ObservationError, RlshipError, UnsupportedEnvError
from rlship.evaluation import EvalResult, evaluate
from rlship.policy import ActResult, Policy, PolicySpec, load_policy

__version__ = "0.1.0"

__all__ = [
    "ActResult",
    "ArtifactError",
    "EvalResult",
    "ObservationError",
    "Policy",
    "PolicySpec",
    "RlshipError",
    "UnsupportedEnvError",
    "evaluate",
    "load_policy",
]
