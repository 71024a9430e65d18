"""Gymnasium spaces as plain JSON-able dicts, so a policy can be rebuilt without creating its env.

JSON has no infinity, and the Hub (and every JavaScript client) rejects the `Infinity` token that
Python's json module writes, so non-finite bounds are stored as the strings "inf" / "-inf".
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from rlship import schema
from rlship.errors import UnsupportedEnvError

# What a config.json space may describe: checked before a space (or a network sized by it) is built from it.
MAX_DISCRETE_N = 1_000_000  # actions of a Discrete space
MAX_BOX_NDIM = 4  # (H, W, C) plus a frame stack
MAX_BOX_ELEMENTS = 1_000_000  # numbers in one observation (a 4-frame 210x160x3 Atari stack is 403,200)
BOX_DTYPES = ("float16", "float32", "float64", "uint8", "int8", "int16", "int32", "int64")
MAX_SPACE_START = 2**31 - 1


def _encode_bound(value: float) -> float | str:
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return float(value)


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


def space_from_dict(desc: Any, field: str = "space") -> gym.spaces.Box | gym.spaces.Discrete:
    """Inverse of `space_to_dict`, checked field by field (a `schema.ConfigError` names the bad field): type, a
    bounded `n`, a bounded `shape`, a whitelisted `dtype`, finite or "inf" bounds, low <= high."""
    desc = schema.mapping(desc, field)
    kind = schema.choice(schema.required(desc, "type", field), f"{field}.type", ("Box", "Discrete"))
    if kind == "Discrete":
        n = schema.integer(schema.required(desc, "n", field), f"{field}.n", 1, MAX_DISCRETE_N)
        start = schema.integer(desc.get("start", 0), f"{field}.start", -MAX_SPACE_START, MAX_SPACE_START)
        return gym.spaces.Discrete(n, start=start)
    dims = schema.sequence(schema.required(desc, "shape", field), f"{field}.shape", 1, MAX_BOX_NDIM)
    shape = tuple(schema.integer(d, f"{field}.shape[{i}]", 1, MAX_BOX_ELEMENTS) for i, d in enumerate(dims))
    size = math.prod(shape)
    if size > MAX_BOX_ELEMENTS:
        raise schema.ConfigError(
            f"{field}.shape", f"{list(shape)} holds {size:,} numbers, more than rlship reads ({MAX_BOX_ELEMENTS:,})"
        )
    dtype = np.dtype(schema.choice(schema.required(desc, "dtype", field), f"{field}.dtype", BOX_DTYPES))
    bounds = {
        name: schema.bounds(schema.required(desc, name, field), f"{field}.{name}", size).reshape(shape)
        for name in ("low", "high")
    }
    if (bounds["low"] > bounds["high"]).any():
        raise schema.ConfigError(f"{field}.low", "must be <= high everywhere")
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if bounds["low"].min() < info.min or bounds["high"].max() > info.max:
            raise schema.ConfigError(f"{field}.low", f"bounds must be finite and fit {dtype.name}")
    with np.errstate(over="ignore"):  # float64 bounds beyond float16/32's range become inf, as gymnasium does
        low, high = bounds["low"].astype(dtype), bounds["high"].astype(dtype)
    return gym.spaces.Box(low=low, high=high, shape=shape, dtype=dtype)  # type: ignore[arg-type]


def describe_space(space: gym.Space[Any]) -> str:
    """A space in a few words for messages ("Box(shape (210, 160, 3), uint8)", "Discrete(4)"), never its bounds:
    an image space's bounds printed whole would make a message hundreds of kilobytes long."""
    if isinstance(space, gym.spaces.Box):
        return f"Box(shape {tuple(space.shape)}, {np.dtype(space.dtype).name})"
    if isinstance(space, gym.spaces.Discrete):
        start = f", start={int(space.start)}" if int(space.start) != 0 else ""
        return f"Discrete({int(space.n)}{start})"
    return schema.brief(str(space))
