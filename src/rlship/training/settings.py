"""Hyperparameters: `hp()` declares a field with its help text and its range, `Settings` checks every declared
range in one place (so the same kind of field is checked the same way in every algorithm), `parse_setting` reads one
from the command line (`rlship train`'s flags and `rlship sweep --set` alike), `RunSettings` holds the settings
every training algorithm shares, and `config_with_preset` layers defaults < env preset < user flags."""

from __future__ import annotations

import json
import math
import types
import typing
from collections.abc import Sequence
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any, TypeVar

from rlship.errors import UsageError
from rlship.evaluation import MAX_EPISODES
from rlship.network_spec import ACTIVATION_NAMES, MAX_LAYERS
from rlship.whole_numbers import WHOLE, as_whole, read_number

C = TypeVar("C")

# The widest layer a hidden_sizes flag may ask for: far beyond any MLP that RL uses, far below what would not fit
# in memory (the whole network is also checked against networks.MAX_PARAMETERS before it is built).
MAX_HIDDEN_SIZE = 65_536
# Upper bounds of the settings that size a run's work or memory, so that a typo (1e100 for 1e6) is a one-line error
# at once rather than a run that never ends or is killed for memory hours later. Each is far beyond what RL uses:
# env steps of one run: 50x Atari's 200M-frame budget (5e7 steps); days of a fast vector env on every core
MAX_TOTAL_STEPS = 10**10
# steps per env of one on-policy rollout (ppo, a2c): rl-zoo's largest n_steps is 8192, CleanRL's 2048
MAX_ROLLOUT_STEPS = 100_000
# transitions of one gradient step (ppo's minibatch, dqn's batch): large-batch PPO (Isaac Gym) uses 32768
MAX_BATCH_SIZE = 65_536
# repeats of work within one update (ppo's epochs, dqn's gradient steps, cem's fit steps and elite batches):
# published settings use at most a few dozen
MAX_REPEATS = 1_000
# the longest list a setting may hold: the only lists are hidden layer sizes, and a network of more layers than a
# config.json may describe (network_spec.MAX_LAYERS) could never be loaded again
MAX_LIST_ITEMS = MAX_LAYERS
# The hidden activations an MLP may use, by name (without importing torch, as networks.ACTIVATIONS would)
ACTIVATIONS = ACTIVATION_NAMES
# Wall seconds between periodic checkpoints of a run (training/checkpoint.py), here for the same reason.
DEFAULT_EVERY_SECONDS = 60.0


@dataclass(frozen=True)
class Bounds:
    """The range of one hyperparameter (of each element, for a tuple field)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[Any, ...] | None = None

    def describe(self) -> str:
        if self.choices is not None:
            return f"one of {list(self.choices)}"
        if self.ge is not None and self.le is not None:
            return f"in [{_number(self.ge)}, {_number(self.le)}]"
        if self.gt is not None and self.le is not None:
            return f"in ({_number(self.gt)}, {_number(self.le)}]"
        bounds = ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
        return " and ".join(f"{op} {_number(v)}" for op, v in bounds if v is not None)

    def holds(self, value: Any) -> bool:
        if self.choices is not None:
            return value in self.choices
        # `not x >= bound` (rather than `x < bound`) also refuses NaN
        checks = ((self.ge, lambda b: value >= b), (self.gt, lambda b: value > b), (self.le, lambda b: value <= b))
        if any(bound is not None and not test(bound) for bound, test in checks):
            return False
        return self.lt is None or value < self.lt


def _number(value: float) -> str:
    """A bound as people write it: 0.5, 4096, 1500000; 1e10 where a whole number ends in 6 zeros or more (`:g`
    would round 1234567 and write 1e+10)."""
    if not float(value).is_integer():
        return f"{value:g}"
    whole = int(value)
    digits = str(abs(whole))
    zeros = len(digits) - len(digits.rstrip("0"))
    return f"{whole // 10**zeros}e{zeros}" if zeros >= 6 else str(whole)


def hp(
    default: Any,
    help: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: tuple[Any, ...] | None = None,
) -> Any:
    """A hyperparameter field of an algorithm's config dataclass: `help` becomes the CLI flag's help, the bounds
    (for a tuple field: of each element) are checked by `Settings.__post_init__`."""
    metadata = {"help": help, "bounds": Bounds(ge, gt, le, lt, choices)}
    if isinstance(default, (list, tuple, dict)):
        return field(default_factory=lambda: default, metadata=metadata)
    return field(default=default, metadata=metadata)


def field_default(f: Field[Any]) -> Any:
    return f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]


@dataclass
class Settings:
    """Base of every algorithm's config: checks each field's type and declared range after construction, then
    `check()` (a subclass's checks across fields, e.g. a batch that must fit in the buffer)."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            value = _coerce(f.name, getattr(self, f.name), hints[f.name])
            setattr(self, f.name, value)
            bounds: Bounds | None = f.metadata.get("bounds")
            if bounds is None:
                continue
            for item in value if isinstance(value, tuple) else (value,):
                if item is not None and not bounds.holds(item):
                    shown = (
                        list(value) if isinstance(value, tuple) else repr(value) if isinstance(value, str) else value
                    )
                    raise UsageError(f"{f.name} must be {bounds.describe()}; got {shown}")
        self.check()

    def check(self) -> None:
        """Checks across fields; a subclass overrides it (the per-field ranges are declared with `hp`)."""


def parse_setting(name: str, text: str | Sequence[str], hint: Any) -> Any:
    """Setting `name` (of type `hint`) from how a person writes it on a command line: the text of `--set
    name=text` (a JSON list for a list setting), or a flag's value (its words, for a list: `--hidden-sizes 64 64`).
    A number is read as Python reads one, so a whole number may be written 100000, 100_000 or 1e5 (RL budgets are
    written so; rl-zoo's `!!float 1e6`). The value then gets the checks of a value given in Python (`_coerce`):
    1.5e0 for a whole number is an error naming the setting, never truncated. The ranges are checked where the
    config is built, as for any value."""
    return _coerce(name, _read(text, hint), hint)


def _read(text: Any, hint: Any) -> Any:
    """`text` as the Python value it spells for a field of type `hint`; text that spells none is returned as it
    is, for `_coerce` to refuse with the field's name. A value that is not text (a flag's bool) is kept."""
    hint, optional = _unwrap_optional(hint)
    if isinstance(text, (list, tuple)):  # a list flag's words, one element each
        return [_read(word, typing.get_args(hint)[0]) for word in text]
    if not isinstance(text, str):
        return text
    word = text.strip()
    if optional and word.lower() in ("none", "null"):
        return None
    try:
        if typing.get_origin(hint) is tuple:
            return json.loads(word)
        if hint is bool:
            return {"true": True, "false": False, "1": True, "0": False}.get(word.lower(), text)
        if hint is int:
            return read_number(word)  # 1e5, 1.5e6 as floats: `_coerce` takes them if they are whole
        if hint is float:
            return float(word)
    except (ValueError, RecursionError):  # json.JSONDecodeError is a ValueError; RecursionError: [[[[...
        return text
    return text


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    """(T, True) for `T | None`, else (hint, False)."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        return next(a for a in args if a is not type(None)), True
    return hint, False


# What a value of each type must be, as `_coerce`'s errors say it
_KINDS: dict[Any, str] = {
    bool: "true or false",
    int: WHOLE,
    float: "a finite number (such as 0.01)",
    str: "a string",
}


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """`value` as the field's type: lists become tuples, whole floats (1e5) ints and ints floats where the field
    says so; a wrong type (a string for a number, 2.5 for a count) is a UsageError naming the field and value."""
    hint, optional = _unwrap_optional(hint)
    if optional and value is None:
        return None
    if typing.get_origin(hint) is tuple:
        element = typing.get_args(hint)[0]
        items = tuple(_as_type(v, element) for v in value) if isinstance(value, (list, tuple)) else (_WRONG,)
        if _WRONG in items:
            kind = "whole numbers, such as [64, 64]" if element is int else f"values of {_KINDS[element]}"
            raise UsageError(f"{name} must be a list of {kind}; got {_shown(value)}")
        if len(items) > MAX_LIST_ITEMS:
            raise UsageError(f"{name} may hold at most {MAX_LIST_ITEMS} values; got {len(items)}")
        return items
    coerced = _as_type(value, hint)
    if coerced is _WRONG:
        raise UsageError(f"{name} must be {_KINDS[hint]}{', or none' if optional else ''}; got {_shown(value)}")
    return coerced


_WRONG = object()  # what `_as_type` gives for a value that is not of the type


def _as_type(value: Any, hint: Any) -> Any:
    """`value` as type `hint` (int, float, bool, str), or `_WRONG`."""
    if hint is bool:
        return value if isinstance(value, bool) else _WRONG
    if isinstance(value, bool):  # a bool is an int to Python, never a number to a setting
        return _WRONG
    if hint is int:
        whole = as_whole(value)
        return _WRONG if whole is None else whole
    if hint is float:
        # Infinity and NaN never: no setting means "unbounded" by them, and one that passed a check like "> 0"
        # (learning_rate=1e400 reads as inf) only failed later, in a training step, with a traceback.
        if not isinstance(value, (int, float)):
            return _WRONG
        try:
            number = float(value)
        except OverflowError:  # an int past float's range
            return _WRONG
        return number if math.isfinite(number) else _WRONG
    if hint is str:
        return value if isinstance(value, str) else _WRONG
    return value


def _shown(value: Any) -> str:
    """A wrong value in an error: its repr, cut short (it may be a whole file's worth of text)."""
    text = repr(list(value) if isinstance(value, tuple) else value)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass
class RunSettings(Settings):
    """The settings every training algorithm's config shares (its dataclass derives from this one): the stop
    rule, the final evaluation and torch's thread count. `rlship train --help` lists them last."""

    solve_window: int = hp(
        20,
        "training episodes whose mean return must reach the threshold before a confirming eval",
        ge=1,
        le=MAX_EPISODES,
    )
    # Off where the policy that matters is the one trained to the end of its budget (rl-zoo's way), not the first
    # that passes: LunarLanderContinuous-v3's sampled returns still rise at 1e6 steps, and a run stopped at its
    # first confirmed 200 publishes a weaker lander than the budget would give (docs/algorithms.md).
    stop_on_solve: bool = hp(True, "end training at the stop rule's first confirmed solve; off: train the whole budget")
    # A policy can get worse with more training (DQN's greedy policy on pixels; a lander between two rollouts): the
    # stop rule's confirmations then double as checkpoints of the best policy seen, for a run that ends unsolved or
    # trains its whole budget (stop_on_solve off) to fall back on.
    keep_best: bool = hp(
        False,
        "a run that does not stop solved (it ends unsolved, or stop_on_solve is off) keeps the policy of the stop "
        "rule's best confirming evaluation if it beats the last",
    )
    confirm_every: int = hp(
        0,
        "env steps between two confirming evaluations, at least (0: at any update past confirm_from)",
        ge=0,
        le=MAX_TOTAL_STEPS,
    )
    # The greedy policy often solves well before the sampled one's training returns show it (PPO on CartPole:
    # 22-48k env steps against 40-65k, seeds 0-2): where a confirmation is cheap (an env with a native vector
    # implementation, evaluation.py), a preset can start confirming below the threshold.
    confirm_from: float | None = hp(
        None, "training window mean at which the stop rule starts confirming (default: the env's threshold)"
    )
    # 100 episodes and 2 standard errors: with 20 episodes and the bare mean, policies just under the threshold
    # passed and then scored 471-475 on the final evaluation (docs/algorithms.md, "The stop rule")
    confirm_episodes: int = hp(
        100, "episodes of each confirming evaluation of the stop rule (the final one has 100)", ge=1, le=MAX_EPISODES
    )
    confirm_std_errors: float = hp(
        2.0,
        "the confirming evaluation's mean must clear the threshold by this many standard errors (std / sqrt(episodes))",
        ge=0,
        le=10,
    )
    eval_episodes: int = hp(100, "episodes of the final evaluation written to results.json", ge=1, le=MAX_EPISODES)
    torch_threads: int = hp(
        1, "torch threads; small networks run fastest on one (more threads only add sync)", ge=1, le=256
    )


RUN_SETTINGS = tuple(f.name for f in fields(RunSettings))
# What each shared setting is when a run does not say: a checkpoint written before a setting existed ran with it
RUN_SETTING_DEFAULTS: dict[str, Any] = {f.name: field_default(f) for f in fields(RunSettings)}


def config_with_preset(
    config_cls: type[C], presets: dict[str, dict[str, Any]], env_id: str, overrides: dict[str, Any]
) -> C:
    """An algorithm's config: the dataclass defaults, then the env's preset, then `overrides` (None values, the
    CLI's flags left out, are ignored). An unknown name is a TypeError naming the known ones."""
    known = {f.name for f in fields(config_cls)}  # type: ignore[arg-type]
    unknown = set(overrides) - known
    if unknown:
        raise TypeError(f"unknown {config_cls.__name__} hyperparameters {sorted(unknown)}; known: {sorted(known)}")
    values = {**presets.get(env_id, {}), **{k: v for k, v in overrides.items() if v is not None}}
    return config_cls(**values)
