"""`rlship serve` hands over to `bentoml serve` (exec) with the environment the service reads: checked by
catching the exec, so no server starts here (tests/test_serving.py starts real ones)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from rlship.cli import main


def _serve_env(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> dict[str, str]:
    caught: dict[str, Any] = {}

    def fake_execve(path: str, command: list[str], env: dict[str, str]) -> None:
        caught.update(command=command, env=env)

    monkeypatch.setattr(os, "execve", fake_execve)
    assert main(["serve", *argv]) == 0
    assert caught["command"][1:4] == ["-m", "bentoml", "serve"]
    return caught["env"]


def test_workers_come_from_the_flag_else_rlship_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLSHIP_WORKERS", "2")  # as the Docker image is told: -e RLSHIP_WORKERS=2
    assert _serve_env(monkeypatch, [])["RLSHIP_WORKERS"] == "2"
    assert _serve_env(monkeypatch, ["--workers", "3"])["RLSHIP_WORKERS"] == "3"
    monkeypatch.delenv("RLSHIP_WORKERS")
    env = _serve_env(monkeypatch, ["runs/x"])
    assert env["RLSHIP_WORKERS"] == "1" and env["RLSHIP_POLICY"] == "runs/x"


def test_a_bad_worker_count_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RLSHIP_WORKERS", "two")
    assert main(["serve"]) == 1
    assert "RLSHIP_WORKERS='two' is not a whole number" in capsys.readouterr().err
