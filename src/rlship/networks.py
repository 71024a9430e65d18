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
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rlship.network_spec import (  # noqa: F401  (re-exported: NetworkSpec's home was this module)
    DEFAULT_CONV,
    HEAD_KINDS,
    MAX_LAYERS,
    MAX_PARAMETERS,
    AnyNetworkSpec,
    CNNSpec,
    ConvLayer,
    NetworkSpec,
    check_network_size,
    network_spec,
    network_spec_from_dict,
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


# A layer of a plain MLP: a Linear's (weight, bias), or an activation function
PlainLayer = tuple[torch.Tensor, torch.Tensor] | Callable[[torch.Tensor], torch.Tensor]


def plain_layers(module: nn.Module) -> list[PlainLayer] | None:
    """The layers of an MLP (an nn.Sequential of Linear, ReLU and Tanh, or nn.Identity: none) as the module's own
    parameter tensors and activation functions, for `run_plain`; None for any other module."""
    if type(module) is nn.Identity:
        return []
    if type(module) is not nn.Sequential:
        return None
    layers: list[PlainLayer] = []
    for layer in module:
        if type(layer) is nn.Linear:
            layers.append((layer.weight, layer.bias))
        elif type(layer) is nn.ReLU:
            layers.append(torch.relu)
        elif type(layer) is nn.Tanh:
            layers.append(torch.tanh)
        else:
            return None
    return layers


def run_plain(layers: list[PlainLayer], x: torch.Tensor) -> torch.Tensor:
    """`layers` applied to `x`: the operations nn.Linear, nn.ReLU and nn.Tanh run, without nn.Module's call."""
    for layer in layers:
        x = F.linear(x, *layer) if isinstance(layer, tuple) else layer(x)
    return x


def plain_forward(net: nn.Module) -> Callable[[torch.Tensor], dict[str, torch.Tensor]]:
    """`net`'s forward as a plain function, where `net` is a HeadsNetwork of Linear/ReLU/Tanh layers: the same
    operations on the module's own parameters (bit-identical outputs and gradients; in-place optimizer steps and
    loads are seen), without nn.Module's call machinery (hooks, ModuleDict, Sequential), which for the small MLPs RL
    uses costs about as much as the maths: 0.38 ms a call of a 64x64 actor-critic, most of a rollout step. Any
    other network (the CNN on pixels) is returned as it is."""
    if not isinstance(net, HeadsNetwork):
        return net
    trunk = plain_layers(net.trunk)
    heads = {name: plain_layers(head) for name, head in net.heads.items()}
    if trunk is None or any(layers is None for layers in heads.values()):
        return net
    plain_heads = {name: layers for name, layers in heads.items() if layers is not None}
    log_std = net.log_std

    def forward(obs: torch.Tensor) -> dict[str, torch.Tensor]:
        features = run_plain(trunk, obs)
        out = {name: run_plain(layers, features) for name, layers in plain_heads.items()}
        if log_std is not None:
            out["log_std"] = log_std.expand_as(out["mean"])
        return out

    return forward


class _BatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d without its int64 batch counter (unused with a fixed momentum), so that every tensor of the
    artifact is float32 as read_weights requires; the running mean and variance stay buffers."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels)
        self.num_batches_tracked = None

    def _load_from_state_dict(self, state_dict: Any, prefix: str, local_metadata: Any, *args: Any) -> None:
        # version 2 tells BatchNorm the counter is not expected (else it adds one and the load fails on it)
        super()._load_from_state_dict(state_dict, prefix, {**local_metadata, "version": 2}, *args)


class CNNHeadsNetwork(nn.Module):
    """Conv encoder + MLP + named linear heads on uint8 image stacks; `forward` returns {head name: output}."""

    def __init__(self, obs_shape: tuple[int, ...], spec: CNNSpec) -> None:
        super().__init__()
        spec.validate()
        self.spec = spec
        channels, height, width = spec.feature_map(obs_shape)
        layers: list[nn.Module] = []
        planes = obs_shape[0] * obs_shape[3]
        for layer in spec.conv:
            conv = nn.Conv2d(planes, layer.channels, layer.kernel, layer.stride)
            nn.init.orthogonal_(conv.weight, math.sqrt(2))
            nn.init.zeros_(conv.bias)
            layers += [conv, *([_BatchNorm2d(layer.channels)] if spec.norm == "batch" else [])]
            layers.append(ACTIVATIONS[spec.activation]())
            planes = layer.channels
        self.encoder = nn.Sequential(*layers, nn.Flatten())
        features = channels * height * width
        self.trunk = mlp(features, spec.hidden_sizes, spec.activation, out_dim=None)
        width_out = spec.hidden_sizes[-1] if spec.hidden_sizes else features
        self.heads = nn.ModuleDict(
            {n: mlp(width_out, (), spec.activation, size, _OUT_GAIN[n]) for n, size in spec.heads.items()}
        )

    def forward(self, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        n, stack, height, width, channels = obs.shape
        # (N, stack, H, W, C) uint8 -> (N, stack * C, H, W) in [0, 1]
        x = obs.permute(0, 1, 4, 2, 3).reshape(n, stack * channels, height, width).float() / 255.0
        features = self.trunk(self.encoder(x))
        return {name: head(features) for name, head in self.heads.items()}


def build_network(spec: AnyNetworkSpec, obs_shape: tuple[int, ...]) -> nn.Module:
    """The module `spec` describes for observations of `obs_shape` (check its size first)."""
    if isinstance(spec, CNNSpec):
        return CNNHeadsNetwork(obs_shape, spec)
    return HeadsNetwork(math.prod(obs_shape), spec)
