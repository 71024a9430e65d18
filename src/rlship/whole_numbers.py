"""A whole number as a person writes one on a command line, read the same way everywhere: a count may be written
100000, 100_000 or 1e5 (RL budgets are written so; rl-zoo's `!!float 1e6`), and 1.5 or inf is refused, never
truncated. `rlship train`'s hyperparameter flags and `rlship sweep --set` read counts through it
(training/settings.py), every other whole-number flag through `whole_number`, its argparse `type=`."""

from __future__ import annotations

import argparse

from rlship.errors import UsageError

# What a whole number must look like, as the errors say it
WHOLE = "a whole number (such as 1000 or 1e5)"


def read_number(word: str) -> int | float:
    """The number `word` spells, as Python reads one: exact as an int where it is written as one (a float would
    round past 2**53), else a float (1e5, 1.5, inf). A ValueError for text that spells none."""
    word = word.strip()
    try:
        return int(word)
    except ValueError:
        return float(word)


def as_whole(value: object) -> int | None:
    """`value` as an int when it is one, or a float that is whole (1e5); None otherwise (2.5, inf, NaN, a bool,
    text). A bool is an int to Python, never a count."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():  # never inf or NaN
        return int(value)
    return None


def parse_whole(text: str) -> int | None:
    """The whole number `text` spells (1000, 1_000, 1e3), or None (2.5, inf, text that spells no number)."""
    try:
        return as_whole(read_number(text))
    except ValueError:
        return None


def whole_number(text: str) -> int:
    """argparse `type=` of a whole-number flag: 1000, 1_000 or 1e3. A bad value is argparse's error naming the
    flag; the flag's range is checked where it is used, as before."""
    value = parse_whole(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"must be {WHOLE}; got {text[:40]!r}")
    return value


def whole_number_variable(name: str, text: str) -> int:
    """An environment variable's whole number (RLSHIP_WORKERS=2 or 2e0), read as the flags read theirs; a
    UsageError naming the variable otherwise. Its range is checked where it is used, as a flag's is."""
    value = parse_whole(text)
    if value is None:
        raise UsageError(f"{name}={text[:40]!r} is not {WHOLE}")
    return value


__all__ = ["WHOLE", "as_whole", "parse_whole", "read_number", "whole_number", "whole_number_variable"]
