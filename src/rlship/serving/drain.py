"""Draining on SIGTERM: how a `rlship serve` replica leaves a load balancer's pool without dropping a request.

What BentoML 1.4 and uvicorn do by themselves (read in their code, and measured by tests/test_graceful_shutdown.py):
SIGTERM reaches the arbiter (`bentoml serve`, which `rlship serve` execs: PID 1 in a container), which sends SIGTERM
to each worker and waits for it (circus's graceful timeout, 30 s) before it closes the listening socket; each
worker's uvicorn stops accepting, closes its idle keep-alive connections and finishes the requests in flight. So
requests in flight finish. But a load balancer (or a Kubernetes Service) keeps sending new requests until its
health check notices, and those meet a keep-alive connection closed under them (a reset) or a listening socket
whose backlog nobody serves any more.

With RLSHIP_DRAIN_SECONDS=N (N > 0), a worker's first SIGTERM starts a drain instead: /readyz answers 503 at once
(the health check takes the replica out of rotation; /livez stays 200), every request keeps being answered for N
seconds, each with `Connection: close` so that keep-alive clients reconnect (through the balancer, to a ready
replica), and then uvicorn's own graceful shutdown runs. SIGINT (Ctrl+C) and a second SIGTERM stop at once, as
before. Pick N above the time the balancer takes to mark the replica down (HAProxy: inter x fall; Kubernetes:
the endpoint update, a few seconds), and the container's termination grace period above N plus the slowest request.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

DRAIN_ENV = "RLSHIP_DRAIN_SECONDS"
MAX_DRAIN_SECONDS = 600.0

_draining = threading.Event()


def draining() -> bool:
    """Whether this worker got SIGTERM and is draining (then /readyz answers 503)."""
    return _draining.is_set()


def drain_seconds() -> float:
    text = os.environ.get(DRAIN_ENV, "").strip()
    try:
        value = float(text) if text else 0.0
    except ValueError:
        raise SystemExit(f"{DRAIN_ENV}={text!r} is not a number of seconds") from None
    if not 0 <= value <= MAX_DRAIN_SECONDS:
        raise SystemExit(f"{DRAIN_ENV} must be between 0 and {MAX_DRAIN_SECONDS:g} seconds; got {text}")
    return value


def install() -> None:
    """Make the first SIGTERM of this process's uvicorn server drain for RLSHIP_DRAIN_SECONDS before it shuts
    down. BentoML's worker builds its `uvicorn.Server` after importing the service module, and uvicorn installs
    `Server.handle_exit` as its signal handler, so wrapping that method here reaches every worker."""
    import uvicorn

    seconds = drain_seconds()  # a bad value stops the server at start-up, not at its first SIGTERM
    if getattr(uvicorn.Server, "_rlship_drains", False):
        return
    original = uvicorn.Server.handle_exit

    def handle_exit(self: uvicorn.Server, sig: int, frame: FrameType | None) -> None:
        if sig != signal.SIGTERM or seconds <= 0 or _draining.is_set():
            return original(self, sig, frame)
        _draining.set()

        def drain_then_exit() -> None:  # a thread: a signal handler should neither block nor write to stderr
            print(
                f"rlship: SIGTERM: draining for {seconds:g} s (/readyz answers 503), then shutting down",
                file=sys.stderr,
                flush=True,
            )
            time.sleep(seconds)
            original(self, sig, frame)

        threading.Thread(target=drain_then_exit, name="rlship-drain", daemon=True).start()

    uvicorn.Server.handle_exit = handle_exit  # type: ignore[method-assign]
    uvicorn.Server._rlship_drains = True  # type: ignore[attr-defined]


class ConnectionCloseWhileDraining:
    """ASGI middleware: while draining, every response says `Connection: close` (uvicorn then closes the
    connection after it), so a client on a keep-alive connection to this replica moves to another one."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not _draining.is_set():
            return await self.app(scope, receive, send)

        async def send_closing(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, send_closing)
