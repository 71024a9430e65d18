"""The BentoML service: `bentoml serve rlship.serving.service:PolicyService` (what `rlship serve` runs).

Configuration comes from the environment, read when each worker imports this module (`rlship serve` sets it):
  RLSHIP_POLICY      policy source: "default" (the embedded CartPole-v1 policy), a folder, or hf://OWNER/NAME@REV
  RLSHIP_WORKERS     worker processes (default 1); each runs torch with one thread, so use at most one per core
  RLSHIP_MAX_BATCH   largest batch /act_batch accepts (default 4096)
  RLSHIP_TIMEOUT     seconds before BentoML answers a request with 504 (default 30)
  RLSHIP_ACCESS_LOG  "1" to log every request (off by default: it costs about a tenth of /act's throughput)
  RLSHIP_MAX_BODY, RLSHIP_BODY_TIMEOUT, RLSHIP_HEADER_TIMEOUT, RLSHIP_MAX_CONNECTIONS: the server's bounds
                     (`rlship.serving.limits`)

Why the routes are a mounted Starlette app rather than `@bentoml.api` methods: profiled under load, a plain
`@bentoml.api` /act spent most of its time outside the policy (per-response JSON-schema generation for the
output's content type, the IO descriptor round trip, the access log and two OpenTelemetry spans per request)
and reached about a quarter of a bare Starlette endpoint. Mounting the routes with `@bentoml.asgi_app` keeps
everything BentoML is for here (the worker processes, /livez, /readyz driven by `__is_ready__`, /metrics with
per-route request counts and latency histograms, the traffic timeout, lifecycle hooks, `bentoml build`) and
gives the hot routes a lean path: pydantic parses the body straight from JSON (in Rust), the forward pass runs
inline, and they are excluded from tracing (see `tracing.excluded_urls` below). The trade: BentoML's generated
OpenAPI page does not list /act; the schemas live in `rlship.serving.protocol` and the README.
"""

from __future__ import annotations

import gc
import logging
import os
from typing import Any

import bentoml
import torch
from starlette.responses import JSONResponse

from rlship.policy import DEFAULT_POLICY, Policy, load_policy
from rlship.serving import drain, limits, protocol
from rlship.serving.routes import PolicyRoutes

logger = logging.getLogger("rlship.serving")

POLICY_ENV = "RLSHIP_POLICY"
WORKERS_ENV = "RLSHIP_WORKERS"
MAX_BATCH_ENV = "RLSHIP_MAX_BATCH"
TIMEOUT_ENV = "RLSHIP_TIMEOUT"
ACCESS_LOG_ENV = "RLSHIP_ACCESS_LOG"
POLICY_ROUTES = ("/act", "/act_batch", "/policy")


def _cancel_timeout_timers() -> None:
    """BentoML 1.4's TimeoutMiddleware schedules a `call_later(timeout)` per request and never cancels it: under
    load the event loop holds timeout x req/s live timers (45,000 at 30 s and 1,500 req/s), and the tail latency
    of /act grew from about 1 ms to over 100 ms within half a minute (measured with wrk; a 1 s timeout kept it
    flat). This swaps in the same middleware with the timer cancelled once the request is answered. BentoML
    builds its middleware list in each worker after importing this module, so the swap reaches every worker;
    `traffic.timeout` must be positive, so the middleware cannot simply be turned off."""
    import asyncio

    from bentoml._internal.server.http import traffic

    if getattr(traffic.TimeoutMiddleware, "_rlship_cancels_timer", False):
        return
    original = traffic.TimeoutMiddleware

    class CancellingTimeoutMiddleware(original):  # type: ignore[misc, valid-type]
        _rlship_cancels_timer = True

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] not in ("http", "websocket"):
                return await self.app(scope, receive, send)
            loop = asyncio.get_running_loop()
            waiter = loop.create_future()
            timer = loop.call_later(self.timeout, self._set_timer_out, waiter)

            async def _send(message: Any) -> None:
                if not waiter.done():
                    waiter.set_result(None)
                await send(message)

            fut = asyncio.ensure_future(self.app(scope, receive, _send), loop=loop)
            try:
                await waiter
            except TimeoutError:
                if fut.cancel():
                    await JSONResponse(
                        {"error": f"Not able to process the request in {self.timeout} seconds"}, status_code=504
                    )(scope, receive, send)
            else:
                await fut
            finally:
                timer.cancel()

    traffic.TimeoutMiddleware = CancellingTimeoutMiddleware  # type: ignore[misc]


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "")
    try:
        value = int(text) if text else default
    except ValueError:
        raise SystemExit(f"{name}={text!r} is not a whole number") from None
    if value < 1:
        raise SystemExit(f"{name} must be at least 1; got {value}")
    return value


def _load_or_exit(source: str) -> Policy:
    """The policy, loaded when this module is imported: `bentoml serve` imports it in its main process before
    starting workers, so a policy that cannot be loaded stops the server there with one clear line and exit
    status 1 (a worker failing at start-up instead would be restarted over and over by BentoML's supervisor)."""
    try:
        return load_policy(source)
    except Exception as exc:
        raise SystemExit(f"rlship serve: cannot load policy {source!r} ({POLICY_ENV}): {exc}") from None


_cancel_timeout_timers()
drain.install()  # SIGTERM with RLSHIP_DRAIN_SECONDS: /readyz 503, serve on, then stop (drain.py)
# One torch thread per worker process: workers, not threads, scale the server; threads would oversubscribe the cores.
torch.set_num_threads(1)
POLICY = _load_or_exit(os.environ.get(POLICY_ENV) or DEFAULT_POLICY)
routes = PolicyRoutes(max_batch=_env_int(MAX_BATCH_ENV, protocol.DEFAULT_MAX_BATCH))
# rlship.serving.limits: open connections and the time to send a request head, set in uvicorn's Config
try:
    LIMITS = limits.ServerLimits.from_env()
except ValueError as exc:
    raise SystemExit(f"rlship serve: {exc}") from None
limits.install_connection_limits(LIMITS)


@bentoml.asgi_app(routes.app(), path="/")
@bentoml.service(
    name="rlship_policy",
    workers=_env_int(WORKERS_ENV, 1),
    traffic={"timeout": _env_int(TIMEOUT_ENV, 30)},
    logging={"access": {"enabled": os.environ.get(ACCESS_LOG_ENV, "0") == "1"}},
    # Tracing still covers every other route; the policy routes skip the two spans per request (~15% of /act).
    tracing={"excluded_urls": [f"{route}$" for route in POLICY_ROUTES]},
    http={"port": 3000},
)
class PolicyService:
    """Warms up the policy loaded at import (RLSHIP_POLICY) in each worker, then answers the policy routes."""

    def __init__(self) -> None:
        routes.load(POLICY)
        # Everything allocated so far (BentoML, OpenTelemetry, torch, the policy) lives as long as the worker:
        # freezing it keeps the cyclic GC's full collections from walking that whole heap, which showed as
        # p99 stalls of 100+ ms under load that the bare endpoint (a far smaller heap) did not have.
        gc.collect()
        gc.freeze()
        logger.info(
            "rlship: serving %s %s policy from %r (revision %s), batches up to %d",
            POLICY.spec.algorithm,
            POLICY.spec.env_id,
            POLICY.source,
            POLICY.revision,
            routes.max_batch,
        )

    async def __is_ready__(self) -> bool:
        """/readyz: 200 only once the policy is loaded and warmed up, and not while draining after SIGTERM."""
        return routes.ready and not drain.draining()


PolicyService.add_asgi_middleware(drain.ConnectionCloseWhileDraining)
# rlship.serving.limits: every request body bounded in size and time while it is read, on every route
PolicyService.add_asgi_middleware(
    limits.BodyLimit,
    max_bytes=LIMITS.max_body or protocol.max_body_bytes(POLICY, routes.max_batch),
    timeout=LIMITS.body_timeout,
)
