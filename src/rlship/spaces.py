"""Gymnasium spaces as plain JSON-able dicts, so a policy can be rebuilt without creating its env.

JSON has no infinity, and the Hub (and every JavaScript client) rejects the `Infinity` token that
Python's json module writes, so non-finite bounds are stored as the strings "inf" / "-inf".
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from rlship.errors import UnsupportedEnvError


def _encode_bound(value: float) -> float | str:
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return float(value)


def _decode_bound(value: float | str) -> float:
    return float(value)  # float("inf") / float("-inf") parse the strings written above


def space_to_dict(space: gym.Space[Any]) -> dict[str, Any]:
    """Describe a Box or Discrete space as a dict (the `observation_space` / `action_space` of config.json)."""
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.Box):
        return {
            "type": "Box",
            "shape": list(space.shape),
            "dtype": np.dtype(space.dtype).name,
            "low": [_encode_bound(v) for v in np.asarray(space.low, dtype=np.float64).ravel()],
            "high": [_encode_bound(v) for v in np.asarray(space.high, dtype=np.float64).ravel()],
        }
    raise UnsupportedEnvError(
        f"rlship handles Box and Discrete spaces; got {type(space).__name__}. "
        "Wrap the env (for example with gymnasium.wrappers.FlattenObservation) to get a Box."
    )


def space_from_dict(desc: dict[str, Any]) -> gym.spaces.Box | gym.spaces.Discrete:
    """Inverse of `space_to_dict`."""
    kind = desc["type"]
    if kind == "Discrete":
        return gym.spaces.Discrete(int(desc["n"]), start=int(desc.get("start", 0)))
    if kind == "Box":
        shape = tuple(int(d) for d in desc["shape"])
        dtype = np.dtype(desc["dtype"])
        low = np.array([_decode_bound(v) for v in desc["low"]], dtype=dtype).reshape(shape)
        high = np.array([_decode_bound(v) for v in desc["high"]], dtype=dtype).reshape(shape)
        return gym.spaces.Box(low=low, high=high, shape=shape, dtype=dtype)  # type: ignore[arg-type]
    raise ValueError(f"unknown space type {kind!r}; expected 'Box' or 'Discrete'")
