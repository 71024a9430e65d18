"""rlship: train, publish and serve reinforcement-learning policies.

import rlship
policy = rlship.load_policy("default")          # or a folder written by `rlship train`, or hf://OWNER/NAME
result = policy.act(observations)               # result.actions, result.probabilities, result.values
print(rlship.evaluate(policy).metric)           # the evaluation protocol: "500.00 +/- 0.00"

The names below load on first use (PEP 562): `import rlship` and `rlship --help` do not pay for torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import rlship.registration  # noqa: F401  (registers the rlship/ envs with Gymnasium)

# Registers hf:// sources with load_policy (huggingface_hub itself is imported only when one is loaded).
from rlship.hub import pull as _hub_pull  # noqa: F401

__version__ = "0.1.0"

_EXPORTS = {
    "ActResult": "rlship.policy",
    "Policy": "rlship.policy",
    "PolicySpec": "rlship.policy",
    "load_policy": "rlship.policy",
    "EvalResult": "rlship.evaluation",
    "evaluate": "rlship.evaluation",
    "ArtifactError": "rlship.errors",
    "ObservationError": "rlship.errors",
    "RlshipError": "rlship.errors",
    "UnsupportedEnvError": "rlship.errors",
    "UsageError": "rlship.errors",
}

if TYPE_CHECKING:
    from rlship.errors import ArtifactError, ObservationError, RlshipError, UnsupportedEnvError, UsageError
    from rlship.evaluation import EvalResult, evaluate
    from rlship.policy import ActResult, Policy, PolicySpec, load_policy


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rlship' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = [  # noqa: RUF022  (the order of _EXPORTS)
    "ActResult",
    "Policy",
    "PolicySpec",
    "load_policy",
    "EvalResult",
    "evaluate",
    "ArtifactError",
    "ObservationError",
    "RlshipError",
    "UnsupportedEnvError",
    "UsageError",
]
