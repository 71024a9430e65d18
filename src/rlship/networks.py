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

import torch
from torch import nn

from rlship.network_spec import (  # noqa: F401  (re-exported: NetworkSpec's home was this module)
    HEAD_KINDS,
    MAX_LAYERS,
    MAX_PARAMETERS,
    NetworkSpec,
)

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}  # network_spec.ACTIVATION_NAMES


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
        features = self.trunk(obs)
        out = {name: head(features) for name, head in self.heads.items()}
        if self.log_std is not None:
            out["log_std"] = self.log_std.expand_as(out["mean"])
        return out
