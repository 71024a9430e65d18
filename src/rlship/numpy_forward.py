"""A policy network's forward pass in NumPy: the one torch-free way rlship acts.

`rlship evaluate` (and anything else that only acts) loads an MLP policy with `load_policy(..., backend="numpy")`
and never imports torch, whose import alone takes longer than evaluating CartPole for ten episodes. The maths is
HeadsNetwork's (rlship/networks.py) in float32: per head (or once, on a shared trunk) linear layers with the
hidden activation between them, then the heads; a state-independent log std broadcast over the batch. Results
match the torch forward within float32 rounding (tests/test_numpy_forward.py: every algorithm's artifact, greedy
actions identical, probabilities and means within 1e-6). Networks it does not describe (a CNN) load with torch.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping

import numpy as np

from rlship.network_spec import NetworkSpec

ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, np.float32(0)),
}


def supports(spec: object) -> bool:
    """Whether this module runs the network `spec` describes (an MLP of heads, not a CNN)."""
    return type(spec) is NetworkSpec


def _stack(prefix: str, n_linear: int) -> list[str]:
    """The state-dict prefixes of an nn.Sequential of `n_linear` Linear layers with an activation between each."""
    return [f"{prefix}.{2 * i}" for i in range(n_linear)]


def _layers(spec: NetworkSpec) -> tuple[list[str], dict[str, list[str]]]:
    """(trunk layer names, {head: its layer names}), as HeadsNetwork names its parameters."""
    hidden = len(spec.hidden_sizes)
    if spec.shared_trunk:
        return _stack("trunk", hidden), {name: _stack(f"heads.{name}", 1) for name in spec.heads}
    return [], {name: _stack(f"heads.{name}", hidden + 1) for name in spec.heads}


def state_shapes(spec: NetworkSpec, obs_dim: int) -> dict[str, tuple[int, ...]]:
    """The names and shapes of HeadsNetwork(obs_dim, spec)'s state dict, computed without torch."""
    trunk, heads = _layers(spec)
    sizes = (obs_dim, *spec.hidden_sizes)
    stacks = [(trunk, sizes)] if spec.shared_trunk else []  # (layer names, the sizes they map between)
    for name, size in spec.heads.items():
        stacks.append((heads[name], (sizes[-1], size) if spec.shared_trunk else (*sizes, size)))
    shapes: dict[str, tuple[int, ...]] = {}
    for layers, dims in stacks:
        for layer, (a, b) in zip(layers, itertools.pairwise(dims), strict=True):
            shapes[f"{layer}.weight"], shapes[f"{layer}.bias"] = (b, a), (b,)
    if spec.log_std:
        shapes["log_std"] = (spec.log_std,)
    return shapes


class NumpyNetwork:
    """HeadsNetwork's forward on float32 NumPy arrays: `network(obs)` -> {head name: (N, size) array}."""

    def __init__(self, spec: NetworkSpec, weights: Mapping[str, np.ndarray]) -> None:
        if not supports(spec):
            raise ValueError(f"numpy_forward runs MLP networks only; got {type(spec).__name__}")
        self.spec = spec
        self.activation = ACTIVATIONS[spec.activation]

        def linear(layer: str) -> tuple[np.ndarray, np.ndarray]:  # weight transposed once: obs @ w_t + b
            weight = np.asarray(weights[f"{layer}.weight"], dtype=np.float32)
            return np.ascontiguousarray(weight.T), np.asarray(weights[f"{layer}.bias"], dtype=np.float32)

        trunk, heads = _layers(spec)
        self.trunk = [linear(layer) for layer in trunk]
        self.heads = {name: [linear(layer) for layer in layers] for name, layers in heads.items()}
        self.log_std = np.asarray(weights["log_std"], dtype=np.float32) if spec.log_std else None

    def _run(self, x: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray]], last_linear: bool) -> np.ndarray:
        for i, (w_t, b) in enumerate(layers):
            x = x @ w_t + b
            if not (last_linear and i == len(layers) - 1):
                x = self.activation(x)
        return x

    def __call__(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        features = self._run(np.asarray(obs, dtype=np.float32), self.trunk, last_linear=False)
        out = {name: self._run(features, layers, last_linear=True) for name, layers in self.heads.items()}
        if self.log_std is not None:
            out["log_std"] = np.broadcast_to(self.log_std, out["mean"].shape)
        return out
