"""Malformed policy artifacts (not a test module): a catalogue of broken or hostile config.json files, each with
what the ArtifactError must say, and `write_malformed`, which turns a policy folder into one of them. Used by
tests/test_artifact_hardening.py and benchmarks/hostile_artifacts.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation of config.json: set the dotted `path` to `value`."""

    def mutate(config: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = config
        for key in parents:
            node = node[key]
        node[last] = value

    return mutate


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


# name -> (mutation of the config dict, or raw text replacing "MARK", what the error must name). Each one came from
# issue 15's list of 11 tracebacks, or is a field the schema checks.
MALFORMED: dict[str, tuple[Any, str]] = {
    "network is a list": (_set("network", []), "'network': must be an object"),
    "heads is a list": (_set("network.heads", ["logits", "value"]), "'network.heads': must be an object"),
    "negative head size": (_set("network.heads.value", -1), "'network.heads.value': must be an integer from 1"),
    "zero head size": (_set("network.heads.logits", 0), "'network.heads.logits': must be an integer from 1"),
    "unknown head": (_set("network.heads.evil", 3), "'network.heads': must be one of"),
    "no heads": (_set("network.heads", {}), "'network.heads': must name at least one"),
    "hidden sizes 10**9": (_set("network.hidden_sizes", [10**9]), "'network.hidden_sizes[0]': must be an integer"),
    "hidden sizes 8192x8192": (_set("network.hidden_sizes", [8192, 8192]), "parameters, more than rlship builds"),
    "hidden size too big to count": (
        _set("network.hidden_sizes", [10**30]),
        "'network.hidden_sizes[0]': must be an integer from 1",
    ),
    "hidden sizes a string": (_set("network.hidden_sizes", "64"), "'network.hidden_sizes': must be a list"),
    "hidden size a float": (_set("network.hidden_sizes", [64.5]), "'network.hidden_sizes[0]': must be an integer"),
    "hidden size a bool": (_set("network.hidden_sizes", [True]), "'network.hidden_sizes[0]': must be an integer"),
    "65 hidden layers": (_set("network.hidden_sizes", [2] * 65), "'network.hidden_sizes': must hold 0 to 64"),
    "activation a number": (_set("network.activation", 5), "'network.activation': must be one of"),
    "unknown network kind": (_set("network.kind", "cnn"), "'network.kind': must be one of ['mlp_heads']"),
    "shared_trunk a string": (_set("network.shared_trunk", "yes"), "'network.shared_trunk': must be true or false"),
    "action n 10**9": (_set("action_space.n", 10**9), "'action_space.n': must be an integer from 1 to 1,000,000"),
    "action n 1e400": ("RAW:1e400", "'action_space.n': must be an integer"),
    "action n of 5000 digits": ("RAW:" + "9" * 5000, "config.json: not valid JSON"),
    "action n negative": (_set("action_space.n", -2), "'action_space.n': must be an integer from 1"),
    "action n a string": (_set("action_space.n", "2"), "'action_space.n': must be an integer"),
    "action space unknown type": (_set("action_space.type", "MultiBinary"), "'action_space.type': must be one of"),
    # a Box action space is read since issue 13, but only with a gaussian action distribution
    "action space a Box with softmax": (
        _set("action_space", {"type": "Box", "shape": [1], "dtype": "float32", "low": [-1], "high": [1]}),
        "'action_space': a Box(shape (1,), float32) action space needs a gaussian action_distribution; got softmax",
    ),
    "observation space a string": (_set("observation_space", "x"), "'observation_space': must be an object"),
    "observation shape negative": (_set("observation_space.shape", [-4]), "'observation_space.shape[0]'"),
    "observation shape huge": (
        _set("observation_space.shape", [1000, 1000, 10]),
        "'observation_space.shape': [1000, 1000, 10] holds 10,000,000 numbers",
    ),
    "observation shape 5-D": (_set("observation_space.shape", [1, 1, 1, 1, 4]), "'observation_space.shape'"),
    "observation bounds too short": (_set("observation_space.low", [0.0]), "'observation_space.low': must hold 4"),
    "observation bound a word": (_set("observation_space.high", [1, 1, "x", 1]), "'observation_space.high[2]'"),
    "observation bound NaN": (_set("observation_space.high", [1, 1, "nan", 1]), "'observation_space.high[2]'"),
    "observation low above high": (_set("observation_space.low", [2, 2, 2, 2]), "'observation_space.low'"),
    "observation dtype object": (_set("observation_space.dtype", "object"), "'observation_space.dtype'"),
    "observation an image": (
        _set(
            "observation_space",
            {"type": "Box", "shape": [84, 84, 4], "dtype": "uint8", "low": [0] * 28224, "high": [255] * 28224},
        ),
        "'observation_space': must be a 1-D Box, or an image described by observation_preprocessing; got Box(shape (84",
    ),
    "action distribution a list": (_set("action_distribution", ["softmax"]), "'action_distribution': must be an"),
    "epsilon 2": (
        _set("action_distribution", {"kind": "uniform", "epsilon": 2}),
        "'action_distribution.epsilon'",
    ),
    "env_id a number": (_set("env_id", 123), "'env_id': must be a string"),
    "algorithm missing": (_set("algorithm", None), "'algorithm': must be a string"),
    "env_kwargs a list": (_set("env_kwargs", [1]), "'env_kwargs': must be an object"),
    "nested 40 deep": (_set("hyperparameters", _nested(40)), "'config': nested more than 32 levels deep"),
    "nested 100,000 deep": ("RAW:" + "[" * 100_000 + "]" * 100_000, "config.json: not valid JSON"),
    "format_version a list": (_set("format_version", [1] * 1000), "format_version a list of 1,000 items"),
    "config a list": ("WHOLE:[]", "config.json: expected a JSON object"),
}


def write_malformed(folder: Path, name: str) -> str:
    """Turn the policy folder `folder` into the malformed artifact `name`; returns what the error must say."""
    change, expected = MALFORMED[name]
    path = folder / "config.json"
    config = json.loads(path.read_text())
    if isinstance(change, str) and change.startswith("WHOLE:"):
        path.write_text(change.removeprefix("WHOLE:"))
    elif isinstance(change, str):
        config["action_space"]["n"] = "MARK"
        path.write_text(json.dumps(config).replace('"MARK"', change.removeprefix("RAW:")))
    else:
        change(config)
        path.write_text(json.dumps(config))
    return expected
