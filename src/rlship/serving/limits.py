"""The bounds of the HTTP server: body size, time to send headers and body, idle keep-alive, open connections,
non-finite outputs and the length of error messages. README.md ("Limits of the server") lists each with its flag,
its environment variable and what a client sees when it hits it.

What is configured where, and why:
- idle keep-alive: uvicorn's own `timeout_keep_alive`, passed as `bentoml serve --timeout-keep-alive` (a real
  setting of the real server; `rlship serve --keep-alive` / RLSHIP_KEEP_ALIVE, which also reaches `bentoml serve`
  run directly, as in a bento image, through the Config below).
- header size: uvicorn's h11 parser refuses a request head over 16 KB with 400 and closes (its default; kept).
- body size and time to send the body: `BodyLimit`, an ASGI middleware added with BentoML's
  `Service.add_asgi_middleware`, so it wraps every route (BentoML's own and rlship's). Neither BentoML nor uvicorn
  bounds a body: uvicorn hands it to the app as it arrives and Starlette's `request.body()` joins all of it, so
  the only check rlship had was the Content-Length header, which a chunked body does not send.
- time to send a request head, and the cap on open connections: a subclass of uvicorn's HTTP protocol, given to
  uvicorn through its documented `http=` setting (a protocol class). uvicorn has no setting for either: a
  connection that sends nothing, or one byte a second, is held for ever, and its `limit_concurrency` does not
  stop accepting connections (file descriptors still run out) but answers 503 to *every* request once that many
  connections are open, so a few thousand idle sockets would lock out every valid client. BentoML 1.4's worker
  builds `uvicorn.Config` itself with a fixed list of arguments (backlog, TLS, the two timeouts) and exposes no
  other setting, so `install_connection_limits` swaps in a Config that adds the protocol class; the worker
  imports the service (and so this hook) before it builds its Config.

This module's import is light (standard library only): `rlship serve` reads the settings before starting BentoML.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import resource
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from rlship.errors import UsageError
from rlship.whole_numbers import whole_number_variable

if TYPE_CHECKING:
    import numpy as np

    from rlship.policy import Policy

logger = logging.getLogger("rlship.serving")

MAX_BODY_ENV = "RLSHIP_MAX_BODY"
BODY_TIMEOUT_ENV = "RLSHIP_BODY_TIMEOUT"
HEADER_TIMEOUT_ENV = "RLSHIP_HEADER_TIMEOUT"
KEEP_ALIVE_ENV = "RLSHIP_KEEP_ALIVE"
MAX_CONNECTIONS_ENV = "RLSHIP_MAX_CONNECTIONS"
MAX_SESSIONS_ENV = "RLSHIP_MAX_SESSIONS"
SESSION_IDLE_ENV = "RLSHIP_SESSION_IDLE"

DEFAULT_BODY_TIMEOUT = 10.0
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_KEEP_ALIVE = 5  # uvicorn's and BentoML's own default
DEFAULT_MAX_CONNECTIONS = 4096
# pixel policies' frame-stack sessions (rlship.serving.sessions), per worker and policy
DEFAULT_MAX_SESSIONS = 1024
DEFAULT_SESSION_IDLE = 60.0
# File descriptors a worker needs besides its client connections (libraries, logs, BentoML's metrics files, the
# listening socket); the connection cap stays this far below the process's limit.
RESERVED_FDS = 256
MAX_ERROR_CHARS = 1000


def fd_limit() -> int:
    """This process's soft limit on open file descriptors (`ulimit -n`); the workers inherit it."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def default_max_connections() -> int:
    return max(1, min(DEFAULT_MAX_CONNECTIONS, fd_limit() - RESERVED_FDS))


@dataclass(frozen=True)
class ServerLimits:
    """The server's bounds. `None` for max_body means: derived from the policy and --max-batch (the routes' own
    limit, `protocol.max_body_bytes`); `None` for max_connections means `default_max_connections()`."""

    max_body: int | None = None
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    keep_alive: int = DEFAULT_KEEP_ALIVE
    max_connections: int | None = None
    max_sessions: int = DEFAULT_MAX_SESSIONS
    session_idle: float = DEFAULT_SESSION_IDLE

    # (field, flag, environment variable): errors name both, since either may have set the value
    NAMES: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("max_body", "--max-body-bytes", MAX_BODY_ENV),
        ("body_timeout", "--body-timeout", BODY_TIMEOUT_ENV),
        ("header_timeout", "--header-timeout", HEADER_TIMEOUT_ENV),
        ("keep_alive", "--keep-alive", KEEP_ALIVE_ENV),
        ("max_connections", "--max-connections", MAX_CONNECTIONS_ENV),
        ("max_sessions", "--max-sessions", MAX_SESSIONS_ENV),
        ("session_idle", "--session-idle", SESSION_IDLE_ENV),
    )

    def __post_init__(self) -> None:
        for field, flag, env in self.NAMES:
            value = getattr(self, field)
            # inf would turn the protection off (a connection held for ever); NaN compares false to every bound
            if value is not None and not 0 < value < math.inf:
                raise UsageError(f"{flag} ({env}) must be above 0 and finite; got {value}")
        if self.max_connections is not None and self.max_connections > fd_limit() - RESERVED_FDS:
            raise UsageError(
                f"--max-connections ({MAX_CONNECTIONS_ENV}) {self.max_connections} is not below this process's "
                f"file-descriptor limit ({fd_limit()}, `ulimit -n`) minus {RESERVED_FDS} the worker needs for "
                "itself; lower it or raise the limit"
            )

    @property
    def connections(self) -> int:
        return self.max_connections if self.max_connections is not None else default_max_connections()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServerLimits:
        """The limits set in the environment (what `rlship serve` passes to BentoML's workers)."""
        environ = os.environ if environ is None else environ
        counts = {"max_body", "keep_alive", "max_connections", "max_sessions"}  # the others are seconds
        values: dict[str, Any] = {}
        for field, _flag, env in cls.NAMES:
            text = environ.get(env, "").strip()
            if not text:
                continue
            if field in counts:  # read as the flags read whole numbers: 4096 or 4e3
                values[field] = whole_number_variable(env, text)
                continue
            try:
                values[field] = float(text)
            except ValueError:
                raise UsageError(f"{env}={text!r} is not a number of seconds") from None
        return cls(**values)

    def env(self) -> dict[str, str]:
        """The environment that carries these limits to the workers (the inverse of `from_env`)."""
        return {env: str(getattr(self, field)) for field, _flag, env in self.NAMES if getattr(self, field) is not None}


# --- error messages ----------------------------------------------------------------------------------------------


def shorten(message: str, limit: int = MAX_ERROR_CHARS) -> str:
    """A message cut to `limit` characters, saying how much was cut (an error may quote a client's huge input)."""
    if len(message) <= limit:
        return message
    keep = limit - 40
    return f"{message[:keep]} ... [{len(message) - keep} more characters cut]"


def _json_response(status: int, reason: str, message: str) -> bytes:
    """A whole HTTP/1.1 response that closes the connection, written straight to a socket (no request cycle)."""
    body = json.dumps({"error": message}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode() + body


# --- bodies: size and time (ASGI middleware) ---------------------------------------------------------------------


class BodyLimit:
    """Reads each request's body before the route does, at most `max_bytes` of it and within `timeout` seconds
    of the request head, whatever the framing (Content-Length or chunked). Over the size: 413 as soon as the
    limit is passed (a Content-Length over it: at once, unread); too slow (a client that stops sending, or a
    Content-Length longer than the body): 408. Both close the connection, so the rest of the body is never read.
    The route then receives the body as one message, as it would from uvicorn.

    `max_bytes` is a number, or a function asked at the start of each request, before any of its body is read:
    the server's bound follows the policies it serves now, which a hot swap changes (`PolicySet.max_body`)."""

    def __init__(self, app: Any, max_bytes: int | Callable[[], int], timeout: float) -> None:
        self.app = app
        self.max_bytes: Callable[[], int] = max_bytes if callable(max_bytes) else (lambda: max_bytes)
        self.timeout = timeout

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.max_bytes()
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                return await self._refuse(send, 413, self._too_large(f"body of {int(value)} bytes", limit))
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    message = await receive()
                    if message["type"] != "http.request":  # http.disconnect: the client is gone, nobody to answer
                        return None
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        return await self._refuse(
                            send, 413, self._too_large(f"body of more than {size - 1} bytes", limit)
                        )
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            return await self._refuse(
                send,
                408,
                f"the request body did not arrive within {self.timeout:g} s of the request head ({size} bytes "
                f"came); send the whole body at once, with a Content-Length that matches it "
                f"(the limit is `rlship serve --body-timeout` / {BODY_TIMEOUT_ENV})",
            )
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: wait for the disconnect like uvicorn's own receive
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    @staticmethod
    def _too_large(what: str, limit: int) -> str:
        return (
            f"{what} is over this server's limit of {limit} bytes; split it into smaller batches "
            f"(the limit is `rlship serve --max-body-bytes` / {MAX_BODY_ENV}, by default what the served policies "
            "need at --max-batch)"
        )

    @staticmethod
    async def _refuse(send: Any, status: int, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),  # uvicorn closes after the answer: the rest of the body is never read
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


# --- connections: time to send a request head, and how many are open (uvicorn protocol) -------------------------


REFUSED = _json_response(
    503,
    "Service Unavailable",
    "this server worker has as many connections open as it accepts, all of them busy with a request; retry "
    f"shortly (the limit is `rlship serve --max-connections` / {MAX_CONNECTIONS_ENV})",
)


class ConnectionBounds:
    """Mixed into uvicorn's HTTP protocol class (h11 or httptools; both keep the request in `self.cycle`).

    - A request head must arrive within `header_timeout` seconds of the connection opening or of the previous
      answer; a connection that sent part of one gets 408, one that sent nothing is closed (uvicorn's keep-alive
      timer, which closes an idle connection sooner, is cancelled by the first byte of a head: not this one).
    - At most `cap` connections are open per worker. At the cap, a new connection closes the one idle longest
      (waiting for a request head, or kept alive after an answer), as nginx reuses its idle connections; only if
      every open connection is in the middle of a request is the new one answered 503 and closed.
    """

    rlship_header_timeout: ClassVar[float]
    rlship_cap: ClassVar[int]
    # every open connection of this worker, least recently active first (one uvicorn server per worker process)
    rlship_open: ClassVar[dict[Any, None]]

    cycle: Any
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._rlship_timer: asyncio.TimerHandle | None = None
        self._rlship_got_data = False
        self._rlship_refused = False
        if len(self.rlship_open) >= self.rlship_cap and not self._rlship_close_longest_idle():
            self._rlship_refused = True
            transport.write(REFUSED)
            transport.close()
            return
        super().connection_made(transport)  # type: ignore[misc]
        self.rlship_open[self] = None
        self._rlship_arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._rlship_refused:
            return  # uvicorn never saw this connection
        self.rlship_open.pop(self, None)
        if self._rlship_timer is not None:
            self._rlship_timer.cancel()
            self._rlship_timer = None
        super().connection_lost(exc)  # type: ignore[misc]

    def data_received(self, data: bytes) -> None:
        self._rlship_got_data = True
        super().data_received(data)  # type: ignore[misc]

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if not self.transport.is_closing() and self in self.rlship_open:
            del self.rlship_open[self]  # most recently active now: the last one to be closed at the cap
            self.rlship_open[self] = None
            self._rlship_arm()

    def _rlship_busy(self) -> bool:
        """In the middle of a request (its head has arrived, its answer is not yet sent), or upgraded to a
        websocket (another protocol owns the transport now)."""
        cycle = self.cycle
        return (cycle is not None and not cycle.response_complete) or self.transport.get_protocol() is not self

    def _rlship_arm(self) -> None:
        if self._rlship_timer is not None:
            self._rlship_timer.cancel()
        self._rlship_got_data = False
        self._rlship_timer = self.loop.call_later(self.rlship_header_timeout, self._rlship_deadline, self.cycle)

    def _rlship_deadline(self, armed_cycle: Any) -> None:
        self._rlship_timer = None
        transport = self.transport
        if transport.is_closing():
            return
        if self.cycle is not armed_cycle or self._rlship_busy():
            return  # a request head arrived in time (its body has BodyLimit's deadline)
        if self._rlship_got_data:
            transport.write(
                _json_response(
                    408,
                    "Request Timeout",
                    f"the request head did not arrive within {self.rlship_header_timeout:g} s; send it at once "
                    f"(the limit is `rlship serve --header-timeout` / {HEADER_TIMEOUT_ENV})",
                )
            )
        transport.close()

    def _rlship_close_longest_idle(self) -> bool:
        victim = next((c for c in self.rlship_open if not c._rlship_busy()), None)
        if victim is None:
            return False
        del self.rlship_open[victim]
        if victim._rlship_timer is not None:
            victim._rlship_timer.cancel()
            victim._rlship_timer = None
        victim.transport.close()
        return True


def bounded_protocol(base: type[asyncio.Protocol], header_timeout: float, cap: int) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol class `base` with ConnectionBounds mixed in."""
    attributes = {"rlship_header_timeout": header_timeout, "rlship_cap": cap, "rlship_open": {}}
    return type(f"Bounded{base.__name__}", (ConnectionBounds, base), attributes)


def install_connection_limits(limits: ServerLimits) -> None:
    """Make every `uvicorn.Config` built in this process (BentoML's worker builds one after importing the service)
    serve HTTP with `bounded_protocol`. Called again, it replaces the previous settings."""
    import uvicorn
    from uvicorn.config import HTTP_PROTOCOLS
    from uvicorn.importer import import_from_string

    original = getattr(uvicorn.Config, "_rlship_original", uvicorn.Config)
    header_timeout, cap = limits.header_timeout, limits.connections
    # `rlship serve` passes the keep-alive as `bentoml serve --timeout-keep-alive`; a bento image runs
    # `bentoml serve` itself, with RLSHIP_KEEP_ALIVE from bentofile.yaml: honoured here when it is set
    keep_alive = limits.keep_alive if os.environ.get(KEEP_ALIVE_ENV, "").strip() else None

    class BoundedConfig(original):  # type: ignore[misc, valid-type]
        _rlship_original = original
        rlship_max_connections = cap

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            http = kwargs.get("http", "auto")
            base = import_from_string(HTTP_PROTOCOLS.get(http, http)) if isinstance(http, str) else http
            if not issubclass(base, ConnectionBounds):  # already bounded: the caller chose its own limits
                kwargs["http"] = bounded_protocol(base, header_timeout, cap)
            if keep_alive is not None:
                kwargs["timeout_keep_alive"] = keep_alive
            super().__init__(*args, **kwargs)

    uvicorn.Config = BoundedConfig  # type: ignore[misc]


# --- outputs: never NaN or infinity in JSON ---------------------------------------------------------------------


def non_finite(policy: Policy, outputs: Iterable[np.ndarray | None]) -> tuple[int, str] | None:
    """None when the policy's outputs are all finite numbers; else the (status, message) to answer instead (JSON
    has no NaN or infinity; pydantic would write the non-standard `NaN`, which strict clients cannot parse).

    Whose fault decides the status. If the policy's weights are not all finite, or it gives NaN or infinity even
    for an all-zero observation, the served policy is broken and the request was fine: 500, a server error
    (changing or retrying the request cannot help; the operator must replace the policy), and it is logged.
    Otherwise this observation drove the network out of float32's range (finite but huge numbers): 422, as for
    any other observation the policy cannot act on. The check costs one `isfinite` per answer; the diagnosis
    runs only on the rare answer that fails it."""
    import numpy as np
    import torch

    if all(array is None or np.isfinite(array).all() for array in outputs):
        return None
    if not all(torch.isfinite(p).all() for p in policy.network.parameters()):
        why = "has NaN or infinite weights"
    else:
        zeros = policy.act(np.zeros((1, *policy.spec.obs_shape), dtype=np.float32))
        arrays = (zeros.probabilities, zeros.values, zeros.q_values, zeros.mean, zeros.std)
        if all(array is None or np.isfinite(array).all() for array in arrays):
            return (
                422,
                "this observation drives the policy's outputs to NaN or infinity (float32 overflow); send "
                f"observations of the magnitude {policy.spec.env_id} produces",
            )
        why = "gives NaN or infinity even for an all-zero observation (weights too large for float32)"
    logger.error("rlship: the served policy %r %s; its answers are refused with 500", policy.source, why)
    return (
        500,
        f"the served policy ({policy.source!r}) {why}, so its outputs are not numbers; the request was fine. "
        "The server's operator must serve a policy with finite outputs.",
    )
