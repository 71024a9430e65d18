"""docs/adding-an-algorithm.md's complete example is real: registered, it trains, checkpoints and writes an
artifact like any algorithm."""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path

import pytest

from rlship import load_policy
from rlship.cli import main
from rlship.training import ALGORITHMS

DOC = Path(__file__).resolve().parent.parent / "docs" / "adding-an-algorithm.md"


def test_the_documented_algorithm_trains_after_one_registry_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code = re.findall(r"```python\n(# src/rlship/training/vpg.py\n.*?)```", DOC.read_text(), re.S)[0]
    module = types.ModuleType("vpg")
    monkeypatch.setitem(sys.modules, "vpg", module)  # dataclasses look their module up there
    exec(compile(code, str(DOC), "exec"), module.__dict__)  # the project's own documentation, not input
    monkeypatch.setitem(ALGORITHMS, "vpg", module.ALGORITHM)  # the registry line
    out = tmp_path / "run"
    args = ["train", "vpg", "CartPole-v1", "--out", str(out), "--no-progress", "--total-steps", "3000"]
    assert main([*args, "--eval-episodes", "3", "--checkpoint-every", "0"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["algorithm"] == "vpg" and summary["env_steps"] >= 3000
    assert (out / "checkpoint" / "state.json").is_file()
    assert load_policy(out).spec.algorithm == "vpg"
    assert main([*args, "--learning-rate", "0"]) == 1
    assert "learning_rate must be > 0; got 0.0" in capsys.readouterr().err
