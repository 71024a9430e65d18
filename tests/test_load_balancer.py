"""Two `rlship serve` replicas behind a real HAProxy (Debian package, started here on loopback, health checks on
/readyz), under load through a rolling update to a new policy revision: replace one replica (SIGTERM, which drains,
then a new one on the new policy), then the other. Counted: 0 failed requests.

`make test` installs haproxy when it is missing; in CI (CI=true) a missing haproxy fails this test, elsewhere it
skips it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from rlship.training import ALGORITHMS
from tests.ports import free_port
from tests.serve_load import Load, start_serve, stop_serve, wait_ready

OBSERVATION = {"observation": [0.01, -0.02, 0.03, 0.04]}
# > HAProxy's time to mark a draining replica down: inter 250 ms x fall 2, plus the checks' own duration
DRAIN_SECONDS = 3.0

HAPROXY_CONFIG = """\
global
    maxconn 512
    stats socket {stats} mode 600 level admin

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    # a slow answer under load on a busy machine is not a dead replica: two failed checks of 5 s each are
    timeout check 5s
    # a connection refused never reached a server: try the other one (nothing else is retried)
    retries 3
    option redispatch 1
    retry-on conn-failure

frontend policies
    bind 127.0.0.1:{port}
    default_backend replicas

backend replicas
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 250ms fall 2 rise 2
    server a 127.0.0.1:{port_a} check
    server b 127.0.0.1:{port_b} check
"""


def _haproxy() -> str:
    path = shutil.which("haproxy") or next((p for p in ("/usr/sbin/haproxy",) if Path(p).is_file()), None)
    if path is None:
        message = "haproxy is not installed (Debian: apt-get install haproxy; `make test` installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def _server_states(stats: Path) -> dict[str, str]:
    """HAProxy's view of each server: UP, DOWN, MAINT... (its runtime API on the stats socket)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(stats))
        s.sendall(b"show stat\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    lines = data.decode().splitlines()
    header = lines[0].lstrip("# ").split(",")
    rows = [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]
    return {r["svname"]: r["status"] for r in rows if r["pxname"] == "replicas" and r["svname"] in ("a", "b")}


def _wait_state(stats: Path, server: str, state: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while (current := _server_states(stats).get(server)) != state:
        assert time.monotonic() < deadline, f"HAProxy: server {server} is {current}, not {state}, after {timeout} s"
        time.sleep(0.05)


def test_rolling_update_behind_haproxy_fails_no_request(tmp_path: Path) -> None:
    haproxy = _haproxy()
    # the new revision: a real artifact of another policy (the random baseline: probabilities 0.5, 0.5)
    random = ALGORITHMS["random"]
    new_policy = tmp_path / "new-revision"
    random.train("CartPole-v1", random.make_config("CartPole-v1", eval_episodes=1), seed=0, out=new_policy)

    port, port_a, port_b = free_port(), free_port(), free_port()
    stats, logs = tmp_path / "haproxy.sock", tmp_path / "logs"
    logs.mkdir()
    config = tmp_path / "haproxy.cfg"
    config.write_text(HAPROXY_CONFIG.format(stats=stats, port=port, port_a=port_a, port_b=port_b))
    servers = {
        "a": start_serve(port_a, logs / "a.log", drain_seconds=DRAIN_SECONDS),
        "b": start_serve(port_b, logs / "b.log", drain_seconds=DRAIN_SECONDS),
    }
    ports = {"a": port_a, "b": port_b}
    lb = subprocess.Popen([haproxy, "-f", str(config), "-db"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    replaced: list[subprocess.Popen[bytes]] = []
    try:
        for name, proc in servers.items():
            wait_ready(proc, f"http://127.0.0.1:{ports[name]}", logs / f"{name}.log")
        for name in servers:
            _wait_state(stats, name, "UP")
        with Load(f"http://127.0.0.1:{port}/act", OBSERVATION, connections=8) as load:
            load.wait_for(200)
            for name in ("a", "b"):  # one replica at a time, as a Deployment with maxUnavailable 0 rolls
                old = servers[name]
                old.send_signal(signal.SIGTERM)
                _wait_state(stats, name, "DOWN")  # its /readyz said 503: out of rotation while it drains
                assert old.wait(120) == 0, (logs / f"{name}.log").read_text()[-3000:]
                log = logs / f"{name}-new.log"
                servers[name] = start_serve(ports[name], log, source=str(new_policy), drain_seconds=DRAIN_SECONDS)
                replaced.append(servers[name])
                wait_ready(servers[name], f"http://127.0.0.1:{ports[name]}", log)
                _wait_state(stats, name, "UP")
                answered = len(load.outcomes)
                load.wait_for(answered + 200)
            load.wait_for(len(load.outcomes) + 200)  # both on the new revision
    finally:
        for proc in [*servers.values(), *replaced]:
            stop_serve(proc)
        lb.terminate()
        lb_output = lb.communicate(timeout=30)[0].decode()

    failures = load.failures()
    assert not failures, f"{len(failures)} of {len(load.outcomes)} failed: {failures[:3]}\n{lb_output[-2000:]}"
    # every answer came from one of the two revisions: the old before the roll, the new after it
    probabilities = [tuple(o.body["probabilities"]) for o in load.outcomes]  # type: ignore[arg-type]
    assert probabilities[-1] == (0.5, 0.5) and probabilities[0] != (0.5, 0.5)
    assert len(set(probabilities)) == 2
    print(f"rolling update behind HAProxy: {len(load.outcomes)} requests, {len(failures)} failed")
