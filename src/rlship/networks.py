"""The networks a policy artifact can describe, built from the `network` entry of config.json alone.

A network is a set of named heads on an MLP. With `shared_trunk` the heads are linear layers on one shared
MLP body (half the work per step: the fast choice on a CPU, where small layers cost their call overhead, not
their arithmetic); without it each head is its own MLP from the observation (Stable-Baselines3's default for
actor-critic, safer when the value loss would disturb the policy's features). Head names say what the output
means:
  "logits": unnormalised action log-probabilities (policy-gradient methods)
  "value":  the state value V(s) (actor-critic methods)
  "q_values": the action values Q(s, a) (value-based methods such as DQN)
  "mean":   the mean of a diagonal Gaussian over Box actions (before bounding)
  "log_std": its log standard deviation, per state (a state-dependent Gaussian)
A Gaussian whose log std does not depend on the state (SB3's and CleanRL's PPO default) holds it as one learned
vector, `log_std` (the network's `log_std` field: its size; 0 for none); `forward` returns it as a "log_std" output
broadcast over the batch either way.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from rlship import schema
from rlship.errors import UsageError

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}
HEAD_KINDS = ("logits", "value", "q_values", "mean", "log_std")
# The most parameters a network may have (100M float32: 400 MB), checked from the description before anything is
# allocated, so a config.json or a --hidden-sizes flag cannot make rlship try to allocate gigabytes.
MAX_PARAMETERS = 100_000_000
MAX_LAYERS = 64  # hidden layers a config.json may describe


@dataclass(frozen=True)
class NetworkSpec:
    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    # head name -> output size
    heads: dict[str, int] = field(default_factory=dict)
    shared_trunk: bool = False
    log_std: int = 0  # size of a state-independent log-std parameter (Gaussian policies); 0: none

    def to_dict(self) -> dict[str, object]:
        desc = {"kind": "mlp_heads", **asdict(self), "hidden_sizes": list(self.hidden_sizes)}
        if not self.log_std:
            del desc["log_std"]  # discrete networks' config.json stays as it was
        return desc

    @classmethod
    def from_dict(cls, desc: object, field: str = "network") -> NetworkSpec:
        """The `network` entry of config.json, checked field by field (a `schema.ConfigError` names the field):
        a known kind, at most MAX_LAYERS positive hidden sizes, a known activation, heads an object of known head
        names to positive sizes, shared_trunk a boolean. The total size is checked by `check_size`."""
        desc = schema.mapping(desc, field)
        schema.choice(desc.get("kind", "mlp_heads"), f"{field}.kind", ("mlp_heads",))
        sizes = schema.sequence(schema.required(desc, "hidden_sizes", field), f"{field}.hidden_sizes", 0, MAX_LAYERS)
        heads = schema.mapping(schema.required(desc, "heads", field), f"{field}.heads")
        if not heads:
            raise schema.ConfigError(f"{field}.heads", f"must name at least one of {list(HEAD_KINDS)}")
        spec = cls(
            hidden_sizes=tuple(
                schema.integer(h, f"{field}.hidden_sizes[{i}]", 1, MAX_PARAMETERS) for i, h in enumerate(sizes)
            ),
            activation=schema.choice(
                schema.required(desc, "activation", field), f"{field}.activation", tuple(ACTIVATIONS)
            ),
            heads={
                schema.choice(name, f"{field}.heads", HEAD_KINDS): schema.integer(
                    size, f"{field}.heads.{name}", 1, MAX_PARAMETERS
                )
                for name, size in heads.items()
            },
            shared_trunk=schema.boolean(desc.get("shared_trunk", False), f"{field}.shared_trunk"),
            log_std=schema.integer(desc.get("log_std", 0), f"{field}.log_std", 0, MAX_PARAMETERS),
        )
        spec.validate()
        return spec

    def validate(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; choose one of {sorted(ACTIVATIONS)}")
        unknown = set(self.heads) - set(HEAD_KINDS)
        if unknown or not self.heads:
            raise ValueError(f"network heads must be a non-empty subset of {HEAD_KINDS}; got {sorted(self.heads)}")
        if any(h <= 0 for h in self.hidden_sizes):
            raise ValueError(f"hidden sizes must be positive; got {list(self.hidden_sizes)}")
        if any(size <= 0 for size in self.heads.values()):
            raise ValueError(f"head sizes must be positive; got {self.heads}")
        if self.log_std and ("log_std" in self.heads or self.heads.get("mean") != self.log_std):
            raise ValueError(
                f"a log_std parameter of size {self.log_std} needs a 'mean' head of that size and no 'log_std' head; "
                f"got heads {self.heads}"
            )

    def parameter_count(self, obs_dim: int) -> int:
        """Parameters `HeadsNetwork(obs_dim, self)` holds, computed without building it."""

        def linear_stack(sizes: tuple[int, ...]) -> int:
            return sum(a * b + b for a, b in itertools.pairwise(sizes))

        if self.shared_trunk:
            width = self.hidden_sizes[-1] if self.hidden_sizes else obs_dim
            trunk = linear_stack((obs_dim, *self.hidden_sizes))
            return self.log_std + trunk + sum(linear_stack((width, size)) for size in self.heads.values())
        return self.log_std + sum(linear_stack((obs_dim, *self.hidden_sizes, size)) for size in self.heads.values())

    def check_size(self, obs_dim: int) -> None:
        """A UsageError (a ValueError) when the network would hold more than MAX_PARAMETERS (before it is built)."""
        count = self.parameter_count(obs_dim)
        if count > MAX_PARAMETERS:
            raise UsageError(
                f"the network {list(self.hidden_sizes)} with heads {self.heads} on {obs_dim} inputs would hold "
                f"{count:,} parameters, more than rlship builds ({MAX_PARAMETERS:,}); use smaller hidden sizes"
            )


def mlp(
    in_dim: int, hidden_sizes: tuple[int, ...], activation: str, out_dim: int | None, out_gain: float = 1.0
) -> nn.Sequential:
    """Linear layers with orthogonal init (gain sqrt(2) inside, `out_gain` on the output layer, if any), as in
    the PPO implementation details SB3 and CleanRL both follow: small output gains start the policy near uniform."""
    layers: list[nn.Module] = []
    sizes = (in_dim, *hidden_sizes)
    for a, b in itertools.pairwise(sizes):
        layers += [_orthogonal(nn.Linear(a, b), math.sqrt(2)), ACTIVATIONS[activation]()]
    if out_dim is not None:
        layers.append(_orthogonal(nn.Linear(sizes[-1], out_dim), out_gain))
    return nn.Sequential(*layers)


def _orthogonal(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


_OUT_GAIN = {"logits": 0.01, "value": 1.0, "q_values": 1.0, "mean": 0.01, "log_std": 0.01}


class HeadsNetwork(nn.Module):
    """Named heads on a shared MLP trunk, or one MLP per head; `forward` returns {head name: output}."""

    def __init__(self, obs_dim: int, spec: NetworkSpec) -> None:
        super().__init__()
        spec.validate()
        self.spec = spec
        if spec.shared_trunk:
            self.trunk: nn.Module = mlp(obs_dim, spec.hidden_sizes, spec.activation, out_dim=None)
            width = spec.hidden_sizes[-1] if spec.hidden_sizes else obs_dim
            heads = {n: mlp(width, (), spec.activation, size, _OUT_GAIN[n]) for n, size in spec.heads.items()}
        else:
            self.trunk = nn.Identity()
            heads = {
                n: mlp(obs_dim, spec.hidden_sizes, spec.activation, size, _OUT_GAIN[n])
                for n, size in spec.heads.items()
            }
        self.heads = nn.ModuleDict(heads)
        # log std 0 (std 1) at the start, as SB3 and CleanRL: wide exploration over actions scaled to [-1, 1]
        self.log_std = nn.Parameter(torch.zeros(spec.log_std)) if spec.log_std else None

    def forward(self, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.trunk(obs.flatten(1))  # an image observation (N, k, H, W, C): the MLP sees its pixels
        out = {name: head(features) for name, head in self.heads.items()}
        if self.log_std is not None:
            out["log_std"] = self.log_std.expand_as(out["mean"])
        return out
