"""Checked reads of config.json values: each checker takes a JSON value and the field's path ("network.heads.value"),
returns it typed, or raises a `ConfigError` that names the field, says what is allowed and shows a short, escaped
excerpt of what it got. spaces.py, networks.py and policy.py read config.json only through these, so every
malformed artifact ends in one kind of error, before anything is allocated from it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# Deepest nesting of lists and objects config.json may hold (rlship writes 3 levels: hyperparameters, lists).
MAX_DEPTH = 32
# Longest text echoed back in an error: a hostile or mistaken value is shown cut, never whole.
MAX_SHOWN = 80
_INFINITIES = {"inf": math.inf, "-inf": -math.inf}


class ConfigError(ValueError):
    """A config.json field has the wrong type or an out-of-range value; `field` is its dotted path."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"field {field!r}: {message}")
        self.field = field


def brief(value: Any, limit: int = MAX_SHOWN) -> str:
    """`value` as a short, printable excerpt: repr (so control characters come out escaped), cut to `limit`."""
    text = repr(value) if isinstance(value, str) else _short_repr(value, limit)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short_repr(value: Any, limit: int) -> str:
    # repr of a huge list or a deeply nested object would cost as much as the value: describe those instead
    if isinstance(value, list | tuple | dict) and len(value) > 8:
        return f"a {type(value).__name__} of {len(value):,} items"
    try:
        return repr(value)[: limit + 1]
    except RecursionError:
        return f"a deeply nested {type(value).__name__}"


def check_depth(value: Any, field: str = "config", limit: int = MAX_DEPTH) -> None:
    """A ConfigError when lists/objects nest deeper than `limit` (checked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= limit:
                raise ConfigError(field, f"nested more than {limit} levels deep; rlship never writes that")
            children = item.values() if isinstance(item, dict) else item
            if set(map(type, children)) & {dict, list}:  # at C speed: a long list of numbers is skipped at once
                stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def mapping(value: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(field, f"must be an object; got {_kind(value)} {brief(value)}")
    return value


def required(obj: Mapping[str, Any], key: str, field: str) -> Any:
    """obj[key], or a ConfigError naming the missing field."""
    if key not in obj:
        raise ConfigError(_join(field, key), "is missing")
    return obj[key]


def integer(value: Any, field: str, low: int, high: int) -> int:
    """A JSON integer (not a bool, not a float) in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(field, f"must be an integer from {low:,} to {high:,}; got {_kind(value)} {brief(value)}")
    if not low <= value <= high:
        raise ConfigError(field, f"must be an integer from {low:,} to {high:,}; got {brief(value)}")
    return value


def boolean(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(field, f"must be true or false; got {_kind(value)} {brief(value)}")
    return value


def text(value: Any, field: str, max_length: int = 200) -> str:
    if not isinstance(value, str):
        raise ConfigError(field, f"must be a string; got {_kind(value)} {brief(value)}")
    if len(value) > max_length:
        raise ConfigError(field, f"must be at most {max_length} characters; got {len(value):,}")
    return value


def choice(value: Any, field: str, allowed: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ConfigError(field, f"must be one of {list(allowed)}; got {brief(value)}")
    return value


def number(value: Any, field: str, low: float = -math.inf, high: float = math.inf) -> float:
    """A finite JSON number in [low, high] (`1e400` parses to inf and is refused here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(field, f"must be a number; got {_kind(value)} {brief(value)}")
    try:
        result = float(value)
    except OverflowError:  # an integer with hundreds of digits
        raise ConfigError(field, f"must be a finite number; got {brief(value)}") from None
    if not math.isfinite(result):
        raise ConfigError(field, f"must be a finite number; got {brief(value)}")
    if not low <= result <= high:
        raise ConfigError(field, f"must be between {low} and {high}; got {brief(value)}")
    return result


def bound(value: Any, field: str) -> float:
    """A space bound: a finite number, or the string "inf" / "-inf" (how spaces.py writes infinite bounds)."""
    if value in ("inf", "-inf"):
        return float(value)
    return number(value, field)


def bounds(value: Any, field: str, size: int) -> np.ndarray:
    """A list of exactly `size` space bounds (see `bound`) as float64, checked in bulk: an image space has hundreds
    of thousands. Only when the bulk check fails is the list walked item by item, to name the bad one."""
    values = sequence(value, field, size, size)
    kinds = set(map(type, values))
    try:
        if kinds <= {int, float}:
            result = np.array(values, dtype=np.float64)
            if np.isfinite(result).all():
                return result
        elif kinds <= {int, float, str}:
            result = np.array([_INFINITIES[v] if type(v) is str else v for v in values], dtype=np.float64)
            numeric = np.array([type(v) is not str for v in values])
            if np.isfinite(result[numeric]).all() and not np.isnan(result).any():
                return result
    except (KeyError, OverflowError, TypeError, ValueError):
        pass
    return np.array([bound(v, f"{field}[{i}]") for i, v in enumerate(values)], dtype=np.float64)


def sequence(value: Any, field: str, min_length: int, max_length: int) -> Sequence[Any]:
    """A JSON list whose length is in [min_length, max_length]."""
    if not isinstance(value, list):
        raise ConfigError(field, f"must be a list; got {_kind(value)} {brief(value)}")
    if not min_length <= len(value) <= max_length:
        raise ConfigError(field, f"must hold {min_length} to {max_length:,} items; got {len(value):,}")
    return value


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer"}
    names.update({float: "a number", type(None): "null"})
    return names.get(type(value), type(value).__name__)


def _join(field: str, key: str) -> str:
    return f"{field}.{key}" if field else key
