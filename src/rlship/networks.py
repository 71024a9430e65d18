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
from typing import Any

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
        features = self.trunk(obs)
        out = {name: head(features) for name, head in self.heads.items()}
        if self.log_std is not None:
            out["log_std"] = self.log_std.expand_as(out["mean"])
        return out


# --- image observations: a CNN encoder in front of the heads
#
# An image policy acts on uint8 observations of shape (frame_stack, height, width, channels), oldest frame first
# (rlship.frames). The network scales them to [0, 1] itself (so `Policy.act` and a server pass frames as they are,
# four times smaller than float32), folds the stack into the channel axis (frame_stack * channels input planes,
# oldest first), runs the conv layers (no padding: each layer's output side is (side - kernel) // stride + 1),
# then the MLP of `hidden_sizes` and one linear layer per head on it: all heads share the encoder (CleanRL's
# Atari networks for both DQN and PPO do the same; an encoder per head would double the costly part).
NORMS = ("none", "batch")
MAX_CONV_CHANNELS = 4096
MAX_KERNEL = 64


@dataclass(frozen=True)
class ConvLayer:
    channels: int
    kernel: int
    stride: int = 1


@dataclass(frozen=True)
class CNNSpec:
    conv: tuple[ConvLayer, ...]
    hidden_sizes: tuple[int, ...] = (256,)
    activation: str = "relu"
    heads: dict[str, int] = field(default_factory=dict)
    # "batch": BatchNorm2d after each conv (the PyTorch DQN tutorial's net); in eval mode for acting, its running
    # statistics are buffers saved in model.safetensors. "none": no normalisation.
    norm: str = "none"

    # NetworkSpec's fields that code reading any network looks at: the heads always share the encoder, and a CNN
    # has no Gaussian log-std parameter (its heads are for Discrete actions)
    shared_trunk = True
    log_std = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": "cnn_heads",
            "conv": [asdict(layer) for layer in self.conv],
            "norm": self.norm,
            "hidden_sizes": list(self.hidden_sizes),
            "activation": self.activation,
            "heads": dict(self.heads),
        }

    @classmethod
    def from_dict(cls, desc: object, field: str = "network") -> CNNSpec:
        """A `cnn_heads` network entry of config.json, checked field by field (a `schema.ConfigError` names it):
        1 to MAX_LAYERS conv layers of bounded channels, kernel and stride, a known norm, then as NetworkSpec."""
        desc = schema.mapping(desc, field)
        schema.choice(desc.get("kind"), f"{field}.kind", ("cnn_heads",))
        layers = schema.sequence(schema.required(desc, "conv", field), f"{field}.conv", 1, MAX_LAYERS)
        conv = []
        for i, layer in enumerate(layers):
            where = f"{field}.conv[{i}]"
            layer = schema.mapping(layer, where)
            conv.append(
                ConvLayer(
                    channels=schema.integer(
                        schema.required(layer, "channels", where), f"{where}.channels", 1, MAX_CONV_CHANNELS
                    ),
                    kernel=schema.integer(schema.required(layer, "kernel", where), f"{where}.kernel", 1, MAX_KERNEL),
                    stride=schema.integer(layer.get("stride", 1), f"{where}.stride", 1, MAX_KERNEL),
                )
            )
        mlp_part = NetworkSpec.from_dict(
            {k: desc[k] for k in ("hidden_sizes", "activation", "heads") if k in desc}, field
        )
        if "log_std" in mlp_part.heads or "mean" in mlp_part.heads:
            raise schema.ConfigError(f"{field}.heads", "a cnn_heads network has discrete-action heads only")
        return cls(
            conv=tuple(conv),
            hidden_sizes=mlp_part.hidden_sizes,
            activation=mlp_part.activation,
            heads=dict(mlp_part.heads),
            norm=schema.choice(desc.get("norm", "none"), f"{field}.norm", NORMS),
        )

    def validate(self) -> None:
        NetworkSpec(self.hidden_sizes, self.activation, self.heads).validate()
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; choose one of {list(NORMS)}")

    def feature_map(self, obs_shape: tuple[int, ...]) -> tuple[int, int, int]:
        """(channels, height, width) after the conv layers on observations of `obs_shape` (stack, H, W, C); a
        UsageError when a layer's kernel is larger than what reaches it (the feature map would be empty)."""
        if len(obs_shape) != 4:
            raise UsageError(f"a cnn_heads network acts on (stack, height, width, channels) images; got {obs_shape}")
        stack, height, width, channels = obs_shape
        planes = stack * channels
        for i, layer in enumerate(self.conv):
            if layer.kernel > height or layer.kernel > width:
                raise UsageError(
                    f"conv layer {i} (kernel {layer.kernel}, stride {layer.stride}) gets a {height}x{width} feature "
                    f"map, smaller than its kernel: the output would be empty; use smaller kernels or strides, or "
                    f"fewer conv layers"
                )
            height = (height - layer.kernel) // layer.stride + 1
            width = (width - layer.kernel) // layer.stride + 1
            planes = layer.channels
        return planes, height, width

    def parameter_count(self, obs_shape: tuple[int, ...]) -> int:
        """Parameters and buffers `CNNHeadsNetwork(obs_shape, self)` holds, computed without building it."""
        planes = obs_shape[0] * obs_shape[3] if len(obs_shape) == 4 else 0
        count = 0
        for layer in self.conv:
            count += planes * layer.channels * layer.kernel**2 + layer.channels
            count += 4 * layer.channels if self.norm == "batch" else 0  # weight, bias, running mean and var
            planes = layer.channels
        channels, height, width = self.feature_map(obs_shape)
        mlp_part = NetworkSpec(self.hidden_sizes, self.activation, self.heads, shared_trunk=True)
        return count + mlp_part.parameter_count(channels * height * width)

    def check_size(self, obs_shape: tuple[int, ...]) -> None:
        count = self.parameter_count(obs_shape)
        if count > MAX_PARAMETERS:
            raise UsageError(
                f"the network (conv {[asdict(c) for c in self.conv]}, hidden {list(self.hidden_sizes)}) on "
                f"{list(obs_shape)} images would hold {count:,} parameters, more than rlship builds "
                f"({MAX_PARAMETERS:,}); use fewer channels, larger strides or smaller hidden sizes"
            )


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


# The encoder image policies get unless told otherwise: two strided convs then one 3x3 (Nature DQN's shape,
# narrower and with smaller kernels for rlship's small frames, e.g. 25x100 for rlship/CartPolePixels-v1).
DEFAULT_CONV = (ConvLayer(16, 5, 2), ConvLayer(32, 5, 2), ConvLayer(32, 3, 1))

AnyNetworkSpec = NetworkSpec | CNNSpec


def network_spec(
    obs_shape: tuple[int, ...],
    hidden_sizes: tuple[int, ...],
    activation: str,
    heads: dict[str, int],
    shared_trunk: bool = False,
    conv: tuple[ConvLayer, ...] = DEFAULT_CONV,
    norm: str = "none",
) -> AnyNetworkSpec:
    """The network for observations of `obs_shape`: an MLP for flat vectors, a CNN (`conv` then the MLP) for
    image stacks (stack, H, W, C). Algorithms call this, so the observation space picks the network."""
    if len(obs_shape) == 4:
        return CNNSpec(conv, tuple(hidden_sizes), activation, dict(heads), norm)
    return NetworkSpec(tuple(hidden_sizes), activation, dict(heads), shared_trunk)


def network_spec_from_dict(desc: object, field: str = "network") -> AnyNetworkSpec:
    """config.json's `network` entry: an `mlp_heads` (the default kind) or a `cnn_heads` network."""
    kind = schema.mapping(desc, field).get("kind", "mlp_heads")
    if kind == "cnn_heads":
        return CNNSpec.from_dict(desc, field)
    return NetworkSpec.from_dict(desc, field)


def check_network_size(spec: AnyNetworkSpec, obs_shape: tuple[int, ...]) -> None:
    """A UsageError when the network would hold more than MAX_PARAMETERS, or (a CNN) an empty feature map."""
    if isinstance(spec, CNNSpec):
        spec.check_size(obs_shape)
    else:
        spec.check_size(math.prod(obs_shape))


def build_network(spec: AnyNetworkSpec, obs_shape: tuple[int, ...]) -> nn.Module:
    """The module `spec` describes for observations of `obs_shape` (check its size first)."""
    if isinstance(spec, CNNSpec):
        return CNNHeadsNetwork(obs_shape, spec)
    return HeadsNetwork(math.prod(obs_shape), spec)
