"""rlship: train, publish and serve reinforcement-learning policies.

import rlship
policy = rlship.load_policy("default")          # or a folder written by `rlship train`
result = policy.act(observations)               # result.actions, result.probabilities, result.values
print(rlship.evaluate(policy).metric)           # the evaluation protocol: "500.00 +/- 0.00"
"""

from rlship.errors import ArtifactError, ObservationError, RlshipError, UnsupportedEnvError
from rlship.evaluation import EvalResult, evaluate
from rlship.policy import ActResult, Policy, PolicySpec, load_policy

# Registers hf:// sources with load_policy (huggingface_hub itself is imported only when one is loaded).
from rlship.hub import pull as _hub_pull  # noqa: F401  isort: skip

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
