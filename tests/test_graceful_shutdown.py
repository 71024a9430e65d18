"""SIGTERM to a real `rlship serve` under load: every request it accepted is answered, none fails.

The server is stopped as Kubernetes or `docker stop` stops it: SIGTERM to the process `rlship serve` became
(`bentoml serve`'s arbiter), nothing else. A thread plays the load balancer's health check: it polls /readyz
and, once that stops answering 200, the clients send no new request (a balancer would route them elsewhere).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from rlship.cli import main
from tests.ports import free_port
from tests.serve_load import BATCH, Load, start_serve, stop_serve, wait_ready

DRAIN_SECONDS = 3.0  # longer than the health check below takes to notice, even on a slow shared machine


def test_sigterm_under_load_drains_and_fails_no_request(tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "serve.log"
    base = f"http://127.0.0.1:{port}"
    proc = start_serve(port, log, drain_seconds=DRAIN_SECONDS)
    try:
        wait_ready(proc, f"http://127.0.0.1:{port}", log)
        out_of_rotation = threading.Event()

        def health_check() -> None:  # what HAProxy's `option httpchk GET /readyz` does, every 100 ms
            while not out_of_rotation.is_set():
                try:
                    if httpx.get(f"{base}/readyz", timeout=2).status_code != 200:
                        out_of_rotation.set()
                except httpx.HTTPError:
                    out_of_rotation.set()
                time.sleep(0.1)

        with Load(f"{base}/act_batch", BATCH, connections=8, stop_when=out_of_rotation.is_set) as load:
            load.wait_for(50)
            sigterm_at = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            checker = threading.Thread(target=health_check, daemon=True)
            checker.start()
            checker.join(DRAIN_SECONDS * 10)
            assert out_of_rotation.is_set(), "/readyz kept answering 200 after SIGTERM"
            # Still draining: a request sent now, out of rotation, on a new connection, is answered and says
            # `Connection: close` so that a keep-alive client moves to another replica.
            late = httpx.post(f"{base}/act", json={"observation": [0.0, 0.0, 0.0, 0.0]}, timeout=30)
            assert late.status_code == 200, late.text
            assert late.headers.get("connection") == "close"
            assert httpx.get(f"{base}/livez", timeout=5).status_code == 200  # alive: no restart while draining
            returncode = proc.wait(120)
        stopped_after = time.monotonic() - sigterm_at
    finally:
        stop_serve(proc)

    in_flight = [o for o in load.outcomes if o.sent < sigterm_at < o.answered]
    assert in_flight, "no request was in flight at SIGTERM; the test did not test draining"
    failures = load.failures()
    assert not failures, f"{len(failures)} of {len(load.outcomes)} requests failed: {failures[:3]}"
    assert returncode == 0, log.read_text()[-3000:]
    assert stopped_after >= DRAIN_SECONDS  # it served out the drain period before shutting down
    assert "draining for 3 s" in log.read_text()


def test_drain_flag_sets_the_environment_the_service_reads(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    caught: dict[str, Any] = {}
    monkeypatch.setattr(os, "execve", lambda path, command, env: caught.update(env=env))
    monkeypatch.setenv("RLSHIP_DRAIN_SECONDS", "4")
    assert main(["serve", "--drain", "7.5"]) == 0
    assert caught["env"]["RLSHIP_DRAIN_SECONDS"] == "7.5"
    assert main(["serve"]) == 0  # no flag: the environment's value goes through unchanged
    assert caught["env"]["RLSHIP_DRAIN_SECONDS"] == "4"
    assert main(["serve", "--drain", "-1"]) == 1
    assert "--drain must be between 0 and 600 seconds; got -1" in capsys.readouterr().err
