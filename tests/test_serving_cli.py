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
    monkeypatch.setattr(os, "execve", lambda *a: pytest.fail("the server must not start"))
    for text in ("two", "1.5", "inf"):  # read as --workers is: never truncated
        monkeypatch.setenv("RLSHIP_WORKERS", text)
        assert main(["serve"]) == 1
        err = capsys.readouterr().err
        assert f"RLSHIP_WORKERS={text!r} is not a whole number" in err and len(err.strip().splitlines()) == 1
    monkeypatch.setenv("RLSHIP_WORKERS", "0")  # the flag's range too
    assert main(["serve"]) == 1
    assert "--workers must be at least 1; got 0" in capsys.readouterr().err


def test_rlship_workers_is_read_as_the_workers_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLSHIP_WORKERS", "2e0")
    assert _serve_env(monkeypatch, [])["RLSHIP_WORKERS"] == "2"


@pytest.mark.parametrize("timeout", ["nan", "inf", "0", "-1"])
def test_simulate_refuses_a_timeout_that_is_not_a_positive_finite_number(
    capsys: pytest.CaptureFixture[str], timeout: str
) -> None:
    # refused before any request: nothing listens at this URL, so anything else would be a connection error
    assert main(["simulate", "--url", "http://127.0.0.1:9", "--timeout", timeout]) == 1
    err = capsys.readouterr().err
    assert f"--timeout must be a number of seconds above 0; got {float(timeout)}" in err
    assert len(err.strip().splitlines()) == 1


def test_several_sources_reach_the_service_as_a_json_list(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    env = _serve_env(monkeypatch, ["cartpole=runs/a b", "default"])
    assert json.loads(env["RLSHIP_POLICY"]) == ["cartpole=runs/a b", "default"]  # a path with a space survives
    assert _serve_env(monkeypatch, ["cartpole=runs/a"])["RLSHIP_POLICY"] == "cartpole=runs/a"


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["a=default", "a=runs/x"], "two policies are named 'a'"),
        (["runs/x", "other/x"], "two policies are named 'x'"),
        (["a="], "names no source"),
    ],
)
def test_bad_policy_names_are_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    monkeypatch.setattr(os, "execve", lambda *a: pytest.fail("the server must not start"))
    assert main(["serve", *argv]) == 1
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1


def test_count_flags_may_be_written_1e3(monkeypatch: pytest.MonkeyPatch) -> None:
    # the same reader as every whole-number flag (rlship/whole_numbers.py): 3e3 is the port 3000
    caught: dict[str, Any] = {}
    monkeypatch.setattr(os, "execve", lambda path, command, env: caught.update(command=command, env=env))
    flags = ["--port", "3e3", "--workers", "1e0", "--max-batch", "1e3", "--max-sessions", "1e2", "--keep-alive", "5e0"]
    assert main(["serve", *flags]) == 0
    command, env = caught["command"], caught["env"]
    assert command[command.index("--port") + 1] == "3000"
    assert command[command.index("--timeout-keep-alive") + 1] == "5"
    assert env["RLSHIP_WORKERS"] == "1" and env["RLSHIP_MAX_BATCH"] == "1000" and env["RLSHIP_MAX_SESSIONS"] == "100"
