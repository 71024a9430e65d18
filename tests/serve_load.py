"""Helpers for the tests that run real `rlship serve` processes, wait for them to be ready, put them under load
and stop them (not a test module).

Two ways to start one: `start_serve` writes its output to a log file and sets its drain time (for the shutdown and
load-balancer tests), `start_server` reads its output through a pipe and `kill_server` ends its whole session;
`served` is the pair as a context manager that stops the server with Ctrl+C and checks it exits 0.

`Load` is a closed-loop client: N threads, each on its own keep-alive connection, posting one request after the
other and recording every outcome. It can follow a balancer's health check (`stop_when`): once that says the
server is out of rotation, no new request is sent, as a load balancer would send none.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from tests.cli_run import RLSHIP
from tests.ports import free_port

BATCH = {"observations": [[0.01, -0.02, 0.03, 0.04]] * 500}  # a few ms of work: requests are in flight often


def start_serve(port: int, log: Path, source: str = "default", drain_seconds: float = 0.0) -> subprocess.Popen[bytes]:
    """`rlship serve` in its own session (so a signal reaches only the process it is sent to, as in a container
    where it is PID 1), with its output in `log`."""
    env = {**os.environ, "RLSHIP_DRAIN_SECONDS": str(drain_seconds), "BENTOML_DO_NOT_TRACK": "True"}
    with log.open("ab") as out:
        return subprocess.Popen(
            [RLSHIP, "serve", source, "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


def wait_ready(proc: subprocess.Popen[Any], url: str, log: Path | None = None, timeout: float = 180.0) -> None:
    """Return once the `rlship serve` process `proc` answers GET `url`/readyz with 200 (every policy loaded and
    warmed up); fail the test if it exits first or is not ready within `timeout` seconds, showing the end of its
    output: `log`, where it writes, or else its stdout pipe (read only once it has exited: a live one would block)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"rlship serve exited with {proc.returncode}:\n{_output(proc, log)}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"rlship serve at {url} not ready after {timeout:.0f} s:\n{_output(proc, log)}")


def _output(proc: subprocess.Popen[Any], log: Path | None) -> str:
    if log is not None:
        return log.read_text(errors="replace")[-3000:]
    if proc.stdout is not None and proc.poll() is not None:
        text = proc.stdout.read()
        return (text.decode(errors="replace") if isinstance(text, bytes) else text)[-3000:]
    return "(its output goes to a pipe the test reads)"


def stop_serve(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server this test started, if still running: the arbiter and its workers, each by its pid (BentoML's
    arbiter starts every worker in a process group of its own, so killing the arbiter's group would orphan them)."""
    if proc.poll() is not None:
        return
    try:
        family = [*psutil.Process(proc.pid).children(recursive=True), psutil.Process(proc.pid)]
    except psutil.NoSuchProcess:
        family = []
    for member in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    psutil.wait_procs(family, timeout=30)
    proc.wait(30)


def start_server(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = subprocess.Popen(
        [RLSHIP, "serve", *args, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
        start_new_session=True,  # its own process group: a failed test never leaves workers behind
    )
    return proc, f"http://127.0.0.1:{port}"


def kill_server(proc: subprocess.Popen[str]) -> None:
    """Kill whatever is left of a server `start_server` started: every process of its session (the arbiter and its
    workers; BentoML puts each worker in a process group of its own, so a signal to the arbiter's group would
    orphan them, and an orphan outlives the test run)."""
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getsid(process.pid) == proc.pid:
                process.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)


@contextlib.contextmanager
def served(*args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """`rlship serve ARGS` on a free loopback port, ready; yields its URL, then stops it with Ctrl+C (BentoML stops
    its workers and exits 0) and leaves no process behind whatever happened."""
    proc, url = start_server(*args, env=env)
    try:
        wait_ready(proc, url)
        yield url
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, proc.stdout.read() if proc.stdout else ""
    finally:
        kill_server(proc)


@dataclass
class Outcome:
    sent: float  # monotonic seconds
    answered: float
    status: int | None  # None: no HTTP answer
    error: str = ""
    closes: bool = False  # the response said `Connection: close`
    body: dict[str, object] = field(default_factory=dict)


class Load:
    """`connections` threads posting `body` to `url` until stopped; every outcome kept in order."""

    def __init__(
        self,
        url: str,
        body: dict[str, object],
        connections: int = 8,
        stop_when: Callable[[], bool] = lambda: False,
    ) -> None:
        self.url, self.body, self.stop_when = url, body, stop_when
        self.outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(connections)]

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)

    def _client(self) -> None:
        with httpx.Client(timeout=60) as client:
            while not self._stop.is_set() and not self.stop_when():
                sent = time.monotonic()
                try:
                    r = client.post(self.url, json=self.body)
                    outcome = Outcome(
                        sent, time.monotonic(), r.status_code, closes=r.headers.get("connection") == "close"
                    )
                    if r.status_code == 200:
                        outcome.body = r.json()
                    else:
                        outcome.error = r.text[:200]
                except httpx.HTTPError as exc:
                    outcome = Outcome(sent, time.monotonic(), None, f"{type(exc).__name__}: {exc}")
                with self._lock:
                    self.outcomes.append(outcome)

    def wait_for(self, n: int, timeout: float = 120.0) -> None:
        """Until at least `n` requests were answered."""
        deadline = time.monotonic() + timeout
        while len(self.outcomes) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {len(self.outcomes)} of {n} requests answered in {timeout:.0f} s")
            time.sleep(0.05)

    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status != 200]
