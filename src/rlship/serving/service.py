"""The BentoML service: `bentoml serve rlship.serving.service:PolicyService` (what `rlship serve` runs).

Configuration comes from the environment, read when each worker imports this module (`rlship serve` sets it):
  RLSHIP_POLICY       the policies: "[NAME=]SOURCE ..." (or a JSON list of those); SOURCE is "default" (the
                      embedded CartPole-v1 policy), a folder, or hf://OWNER/NAME@REV; the first is also at /act
  RLSHIP_WORKERS      worker processes (default 1); each runs torch with one thread, so use at most one per core
  RLSHIP_MAX_BATCH    largest batch /act_batch accepts (default 4096)
  RLSHIP_TIMEOUT      seconds before BentoML answers a request with 504 (default 30)
  RLSHIP_ACCESS_LOG   "1" to log every request (off by default: it costs about a tenth of /act's throughput)
  RLSHIP_ADMIN_TOKEN  a secret (16+ characters) that turns on hot swap: PUT /policies/{name} with
                      `Authorization: Bearer <token>`; unset, hot swap is off. Never logged.
  RLSHIP_PLAIN_API    "1": answer /act and /act_batch through BentoML's own @bentoml.api path instead of the lean
                      one (for benchmarks/serve_load.py's comparison): the default policy only, JSON bodies only
                      (every kind of policy: vector, Box, image as nested lists or base64 frames with sessions),
                      the same answers and statuses; errors take BentoML's format
  RLSHIP_MAX_BODY, RLSHIP_BODY_TIMEOUT, RLSHIP_HEADER_TIMEOUT, RLSHIP_MAX_CONNECTIONS, RLSHIP_MAX_SESSIONS,
  RLSHIP_SESSION_IDLE: the server's bounds (`rlship.serving.limits`; sessions: pixel policies' frame stacks);
                      RLSHIP_DRAIN_SECONDS: the drain after SIGTERM (drain.py)

How the routes are served. /act, /act_batch, /policy and /policies are `@bentoml.api` methods with pydantic
schemas (`rlship.serving.protocol`), so BentoML's OpenAPI document (/docs.json, the /docs page) and /schema.json
list them and `bentoml.SyncHTTPClient(url).act(observation=[...])` calls them. Their requests, though, are
answered by the lean handlers of `rlship.serving.routes`, which an ASGI middleware (BentoML's
`add_asgi_middleware`) hands them to: the same JSON in and out, without BentoML's IO descriptor round trip and
per-response schema generation, which cost most of /act's time (BENCHMARKS.md has the figures of both paths).
Everything else BentoML is for stays around them: the worker processes, /livez, /readyz (driven by
`__is_ready__`), /metrics with per-route request counts and latency histograms, the traffic timeout, lifecycle
hooks, `bentoml build`. The policy routes are excluded from tracing (two spans per request, ~15% of /act).
"""

from __future__ import annotations

import asyncio
import atexit
import gc
import logging
import os
import shutil
import sys
import tempfile
from http import HTTPStatus
from pathlib import Path
from typing import Any

import bentoml
import torch
from pydantic_core import to_json
from starlette.responses import JSONResponse

from rlship.errors import UsageError
from rlship.policy import DEFAULT_POLICY, Policy, load_policy
from rlship.serving import drain, limits, protocol
from rlship.serving.registry import max_body_bytes, parse_entries
from rlship.serving.routes import PolicyRoutes
from rlship.serving.sessions import SessionLimits
from rlship.whole_numbers import whole_number_variable

logger = logging.getLogger("rlship.serving")

POLICY_ENV = "RLSHIP_POLICY"
WORKERS_ENV = "RLSHIP_WORKERS"
MAX_BATCH_ENV = "RLSHIP_MAX_BATCH"
TIMEOUT_ENV = "RLSHIP_TIMEOUT"
ACCESS_LOG_ENV = "RLSHIP_ACCESS_LOG"
ADMIN_TOKEN_ENV = "RLSHIP_ADMIN_TOKEN"
STATE_DIR_ENV = "RLSHIP_STATE_DIR"
PLAIN_API_ENV = "RLSHIP_PLAIN_API"
# The paths the lean handlers answer (routes.py); everything else is BentoML's.
POLICY_ROUTES = frozenset({"/act", "/act_batch", "/policy", "/policies"})
NAMED_PREFIX = "/policies/"


def _cancel_timeout_timers() -> None:
    """BentoML 1.4's TimeoutMiddleware schedules a `call_later(timeout)` per request and never cancels it: under
    load the event loop holds timeout x req/s live timers (45,000 at 30 s and 1,500 req/s), and the tail latency
    of /act grew from about 1 ms to over 100 ms within half a minute (measured with wrk; a 1 s timeout kept it
    flat). This swaps in the same middleware with the timer cancelled once the request is answered. BentoML
    builds its middleware list in each worker after importing this module, so the swap reaches every worker;
    `traffic.timeout` must be positive, so the middleware cannot simply be turned off, and the lean policy routes
    cannot step around it: BentoML runs the middlewares added with `add_asgi_middleware` inside it. Still needed with
    BentoML 1.4.40, the newest 1.4 release."""
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
        value = whole_number_variable(name, text) if text else default  # 2 or 2e0, as rlship serve's flags
    except UsageError as exc:
        raise SystemExit(str(exc)) from None
    if value < 1:
        raise SystemExit(f"{name} must be at least 1; got {value}")
    return value


def _load_or_exit(text: str) -> list[tuple[str, Policy]]:
    """The policies, loaded when this module is imported: `bentoml serve` imports it in its main process before
    starting workers, so a policy that cannot be loaded stops the server there with one clear line and exit
    status 1 (a worker failing at start-up instead would be restarted over and over by BentoML's supervisor)."""
    try:
        entries = parse_entries(text)
    except ValueError as exc:
        raise SystemExit(f"rlship serve: {POLICY_ENV}: {exc}") from None
    policies = []
    for name, source in entries:
        try:
            policies.append((name, load_policy(source)))
        except Exception as exc:
            raise SystemExit(f"rlship serve: cannot load policy {source!r} ({POLICY_ENV}): {exc}") from None
    return policies


def _state_dir() -> str:
    """The folder where the server's workers share hot swaps (`registry.PolicySet`). The main process, which
    imports this module first, makes it; the workers BentoML starts next inherit its path in the environment. Only
    a BentoML worker (`python -m _bentoml_impl.worker.service`) takes an inherited path: any other process that
    imports this module, say a script that later starts servers of its own, makes its own folder."""
    inherited = os.environ.get(STATE_DIR_ENV)
    if inherited and Path(sys.argv[0]).parts[-3:] == ("_bentoml_impl", "worker", "service.py"):
        return inherited
    path = tempfile.mkdtemp(prefix="rlship-serve-")
    os.environ[STATE_DIR_ENV] = path
    atexit.register(shutil.rmtree, path, True)  # the folder and the files in it are all this server's own
    return path


def _admin_token() -> str | None:
    token = os.environ.get(ADMIN_TOKEN_ENV) or None
    if token is not None and len(token) < 16:
        raise SystemExit(f"rlship serve: {ADMIN_TOKEN_ENV} must be at least 16 characters long (it guards hot swap)")
    return token


class PolicyRoutesMiddleware:
    """Hands the policy routes to rlship's lean handlers; every other request goes on to BentoML's app. Installed
    with `add_asgi_middleware`, so it sits inside BentoML's metrics and timeout middlewares: /metrics counts the
    policy routes and the traffic timeout covers them."""

    def __init__(self, app: Any) -> None:
        from bentoml._internal.configuration.containers import BentoMLContainer

        self.app = app
        self.lean: Any = APP
        if BentoMLContainer.http.cors.enabled.get():  # BentoML adds its CORS middleware inside this one: add it here
            from starlette.middleware.cors import CORSMiddleware

            self.lean = CORSMiddleware(APP, **BentoMLContainer.access_control_options.get())

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and (scope["path"] in POLICY_ROUTES or scope["path"].startswith(NAMED_PREFIX)):
            return await self.lean(scope, receive, send)
        return await self.app(scope, receive, send)


class PlainApiBounds:
    """With RLSHIP_PLAIN_API, what BentoML's own path cannot take is refused with a message that says what to do:
    an image/png or application/x-npy body (its @bentoml.api methods parse JSON only; BentoML alone would answer
    "Invalid JSON"), and the named policies' routes (it serves the default policy only)."""

    BINARY = (b"image/png", b"application/x-npy")

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] in ("/act", "/act_batch"):
            content_type = dict(scope["headers"]).get(b"content-type", b"").split(b";")[0].strip().lower()
            if content_type in self.BINARY:
                message = (
                    f"this server runs with {PLAIN_API_ENV}=1 (BentoML's own path), which takes JSON bodies only: "
                    'send {"image": "<base64 PNG>", "session": "ID", "reset": true} or {"observation": [...]}, or '
                    f"serve without {PLAIN_API_ENV} for {content_type.decode()} bodies"
                )
                return await JSONResponse({"error": message}, status_code=415)(scope, receive, send)
        elif scope["type"] == "http" and scope["path"].startswith(NAMED_PREFIX):
            message = f"this server runs with {PLAIN_API_ENV}=1, which serves the default policy only, at /act and "
            message += f"/act_batch; serve without {PLAIN_API_ENV} for /policies/{{name}}/..."
            return await JSONResponse({"error": message}, status_code=404)(scope, receive, send)
        return await self.app(scope, receive, send)


_cancel_timeout_timers()
drain.install()  # SIGTERM with RLSHIP_DRAIN_SECONDS: /readyz 503, serve on, then stop (drain.py)
# One torch thread per worker process: workers, not threads, scale the server; threads would oversubscribe the cores.
torch.set_num_threads(1)
POLICIES = _load_or_exit(os.environ.get(POLICY_ENV) or DEFAULT_POLICY)
POLICY = POLICIES[0][1]  # the default policy
# rlship.serving.limits: open connections and the time to send a request head, set in uvicorn's Config
try:
    LIMITS = limits.ServerLimits.from_env()
except ValueError as exc:
    raise SystemExit(f"rlship serve: {exc}") from None
routes = PolicyRoutes(
    max_batch=_env_int(MAX_BATCH_ENV, protocol.DEFAULT_MAX_BATCH),
    admin_token=_admin_token(),
    state_dir=_state_dir(),
    session_limits=SessionLimits(LIMITS.max_sessions, LIMITS.session_idle),
)
APP = routes.app()
PLAIN_API = os.environ.get(PLAIN_API_ENV, "0") == "1"
limits.install_connection_limits(LIMITS)


@bentoml.service(
    name="rlship_policy",
    workers=_env_int(WORKERS_ENV, 1),
    traffic={"timeout": _env_int(TIMEOUT_ENV, 30)},
    logging={"access": {"enabled": os.environ.get(ACCESS_LOG_ENV, "0") == "1"}},
    # Tracing still covers every other route; the policy routes skip the two spans per request (~15% of /act).
    tracing={"excluded_urls": [f"{route}$" for route in sorted(POLICY_ROUTES)] + [f"{NAMED_PREFIX}.*$"]},
    http={"port": 3000},
)
class PolicyService:
    """Serves reinforcement-learning policies trained with rlship: observations in, actions and their
    probabilities out. /act, /act_batch and /policy answer with the default policy (the first one named);
    /policies/{name}/act, /act_batch and /policy with a policy by name; GET /policies lists them."""

    def __init__(self) -> None:
        for name, policy in POLICIES:
            routes.load(policy, name)
        routes.policies.catch_up()  # a worker restarted after hot swaps serves what the others serve
        routes.client_schema = to_json(PolicyService.schema())
        # Everything allocated so far (BentoML, OpenTelemetry, torch, the policy) lives as long as the worker:
        # freezing it keeps the cyclic GC's full collections from walking that whole heap, which showed as
        # p99 stalls of 100+ ms under load that the bare endpoint (a far smaller heap) did not have.
        gc.collect()
        gc.freeze()
        for slot in routes.policies.slots.values():
            policy = slot.policy
            logger.info(
                "rlship: serving %r: %s %s policy from %r (revision %s), batches up to %d",
                slot.name,
                policy.spec.algorithm,
                policy.spec.env_id,
                policy.source,
                policy.revision,
                routes.max_batch,
            )
        self._watcher: asyncio.Task[None] | None = None

    @bentoml.on_startup
    async def _follow_swaps(self) -> None:
        """Follow hot swaps that the server's other workers accept (`PolicySet.watch`)."""
        self._watcher = asyncio.create_task(routes.policies.watch())

    @bentoml.on_shutdown
    async def _stop_following(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()

    async def __is_ready__(self) -> bool:
        """/readyz: 200 only once the policies are loaded and warmed up, and not while draining after SIGTERM."""
        return routes.ready and not drain.draining()

    # The policy routes as BentoML sees them: their schemas and examples for /docs.json and BentoML's client
    # (`protocol.ActBody`: every JSON form any kind of policy takes, unions shown as oneOf). Over HTTP their
    # requests go to the lean handlers (PolicyRoutesMiddleware); these bodies answer the same way for a caller
    # that reaches them (RLSHIP_PLAIN_API=1, or the service used in-process).

    @bentoml.api(route="/act", input_spec=protocol.ActBody, output_spec=protocol.ActResponse)
    async def act(
        self,
        observation: Any = None,
        image: str | None = None,
        session: str | None = None,
        reset: bool = False,
        deterministic: bool = True,
        seed: int | None = None,
    ) -> Any:
        """The default policy's action for one observation: Discrete actions with the action probabilities, Box
        actions (a list) with the Gaussian's mean and std; plus the state value for actor-critic policies, the
        action values for value-based ones. Vector policies take `observation`, a list of numbers. Image policies
        (GET /policy has image_input) take the whole observation as nested lists (frame_stack, height, width,
        channels) of integers 0..255, or one raw frame in `image` (a base64 PNG) with a `session` whose frame stack
        the server keeps (`reset` true on an episode's first frame), or an image/png or application/x-npy body with
        the options in the query string (?session=ID&reset=true). Bad input answers 422 (400 for a body that is not
        JSON, 413 for one too large, 415 for another content type) with {"error": "..."} naming the body the policy
        expects. /policies/{name}/act answers the same with the policy of that name."""
        body = protocol.ActBody.model_construct(
            observation=observation, image=image, session=session, reset=reset, deterministic=deterministic, seed=seed
        )
        return _plain_answer(body)

    @bentoml.api(route="/act_batch", input_spec=protocol.ActBatchBody, output_spec=protocol.ActBatchResponse)
    async def act_batch(
        self,
        observations: Any = None,
        images: list[str] | None = None,
        sessions: list[str] | None = None,
        reset: bool | list[bool] = False,
        deterministic: bool = True,
        seed: int | None = None,
    ) -> Any:
        """The default policy's actions for a batch of observations, one row each (at most the server's max_batch,
        else 413), in the forms /act takes: `observations`, or for image policies `images` with one session each
        (and `reset`, one value or one per frame), or an application/x-npy body with a leading batch axis.
        Errors as for /act. /policies/{name}/act_batch answers with the policy of that name."""
        body = protocol.ActBatchBody.model_construct(
            observations=observations,
            images=images,
            sessions=sessions,
            reset=reset,
            deterministic=deterministic,
            seed=seed,
        )
        return _plain_answer(body)

    @bentoml.api(route="/policy", input_spec=protocol.InfoRequest, output_spec=protocol.PolicyInfo)
    async def policy(self) -> Any:
        """Which policy /act answers with: env id, algorithm, spaces, evaluation, source and revision
        (GET /policy answers the same)."""
        slot = routes.policies.default
        assert slot is not None
        return protocol.PolicyInfo.model_validate_json(slot.info)

    @bentoml.api(route="/policies", input_spec=protocol.InfoRequest, output_spec=protocol.PoliciesResponse)
    async def policies(self) -> Any:
        """Every policy this server serves, by name (GET /policies answers the same)."""
        return protocol.PoliciesResponse.model_validate_json(routes.policies.listing())


# What the policies named at start need, until this worker has loaded them (PolicyService.__init__)
START_BODY_CAP = max(max_body_bytes(p, routes.max_batch) for _, p in POLICIES)


def _body_cap() -> int:
    """The server-wide body bound: the largest body a policy this worker serves now may take. A hot swap changes
    it (an image policy in place of a vector one needs megabytes, the vector one a few kB); each route still checks
    its own policy's bound."""
    return routes.policies.max_body or START_BODY_CAP


def _plain_answer(body: protocol.ActBody | protocol.ActBatchBody) -> Any:
    """The RLSHIP_PLAIN_API path's answer, from a body BentoML validated with the documented model: the same
    parsing, answers and statuses as the lean routes' JSON forms (BentoML's error format; 5xx messages go to the
    log). A vector policy's request goes through the vector checks, an image policy's through its own
    (`pixels.PixelRequests`: nested lists or base64 frames with sessions), which take the body as JSON again."""
    slot = routes.policies.default
    assert slot is not None  # BentoML sends requests only once __is_ready__ said so
    batch = isinstance(body, protocol.ActBatchBody)
    try:
        if slot.pixels is not None:
            given = {name: getattr(body, name) for name in type(body).model_fields}
            observations, deterministic, seed = slot.pixels.parse(
                to_json({k: v for k, v in given.items() if v is not None}), "application/json", {}, batch
            )
        else:
            request = protocol.vector_request(body, slot.policy)
            observations = protocol.check_request(request, slot.policy, routes.max_batch)
            deterministic, seed = body.deterministic, body.seed
        fields = protocol.answer(slot.policy, observations, deterministic, seed, batch, routes.policies.rng)
    except protocol.RequestError as exc:
        if exc.status >= 500:  # limits.non_finite: the policy's outputs are not numbers, the request was fine
            raise bentoml.exceptions.InternalServerError(limits.shorten(exc.message)) from None
        raise bentoml.exceptions.InvalidArgument(
            limits.shorten(exc.message), error_code=HTTPStatus(exc.status)
        ) from None
    return (protocol.ActBatchResponse if batch else protocol.ActResponse)(**fields)


# Outermost first: the drain after SIGTERM, then the body bounds (every route, the lean ones included), then the
# lean policy routes (or, with RLSHIP_PLAIN_API, what BentoML's own path cannot take, refused).
PolicyService.add_asgi_middleware(drain.ConnectionCloseWhileDraining)
PolicyService.add_asgi_middleware(
    limits.BodyLimit,
    max_bytes=LIMITS.max_body or _body_cap,  # --max-body-bytes fixes the bound; by default it follows the policies
    timeout=LIMITS.body_timeout,
)
PolicyService.add_asgi_middleware(PlainApiBounds if PLAIN_API else PolicyRoutesMiddleware)
