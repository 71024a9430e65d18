"""The policy routes as a small Starlette app: the lean path every policy request takes.

  POST /act, /act_batch; GET|POST /policy             the default policy (the first one named)
  GET|POST /policies                                  every served policy
  POST /policies/{name}/act, /act_batch; GET|POST /policies/{name}/policy
  GET /policies/{name}/readyz, /policies/{name}/schema.json   so `bentoml.SyncHTTPClient(URL/policies/NAME)` works
  PUT /policies/{name}                                admin: serve a new source under `name` (hot swap)

The BentoML service declares /act, /act_batch, /policy and /policies as `@bentoml.api` methods (for its OpenAPI
document and client) and hands their requests to this app from an ASGI middleware (see `service.py`); the benchmark
serves the same app with bare uvicorn as the peer. Handlers are `async` and run the forward pass inline: a forward
pass of a small MLP takes tens of microseconds, less than a hop to a thread pool would cost.
"""

from __future__ import annotations

import hmac
import logging
from pathlib import Path

import pydantic
from pydantic_core import to_json
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rlship.errors import UsageError
from rlship.policy import Policy
from rlship.serving import limits, protocol
from rlship.serving.registry import NAME_RULE, PolicySet, Slot, SwapError, check_name
from rlship.serving.sessions import SessionLimits

logger = logging.getLogger("rlship.serving")
JSON = "application/json"
LOADING = "the policy is still loading; wait for GET /readyz to answer 200"
MAX_ADMIN_BODY = 4096
MIN_TOKEN_LENGTH = 16


class PolicyRoutes:
    """The served policies (`PolicySet`) and the handlers that answer with them."""

    def __init__(
        self,
        max_batch: int = protocol.DEFAULT_MAX_BATCH,
        admin_token: str | None = None,
        state_dir: str | Path | None = None,
        session_limits: SessionLimits | None = None,
    ) -> None:
        self.policies = PolicySet(max_batch, state_dir, session_limits)
        if admin_token is not None and len(admin_token) < MIN_TOKEN_LENGTH:
            raise UsageError(f"the admin token must be at least {MIN_TOKEN_LENGTH} characters long")
        self._admin_token = admin_token.encode() if admin_token else None
        self.client_schema: bytes | None = None  # BentoML's /schema.json, served under each /policies/{name}

    @property
    def max_batch(self) -> int:
        return self.policies.max_batch

    def load(self, policy: Policy, name: str = "default") -> Slot:
        """Install `policy` under `name` (the first one loaded is the default) and warm it up."""
        return self.policies.load(policy, name)

    @property
    def ready(self) -> bool:
        return self.policies.default is not None

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/act", self.act, methods=["POST"]),
                Route("/act_batch", self.act_batch, methods=["POST"]),
                Route("/policy", self.info, methods=["GET", "POST"]),
                Route("/policies", self.listing, methods=["GET", "POST"]),
                Route("/policies/{name}", self.swap, methods=["PUT"]),
                Route("/policies/{name}/act", self.named_act, methods=["POST"]),
                Route("/policies/{name}/act_batch", self.named_act_batch, methods=["POST"]),
                Route("/policies/{name}/policy", self.named_info, methods=["GET", "POST"]),
                Route("/policies/{name}/readyz", self.named_ready, methods=["GET"]),
                Route("/policies/{name}/schema.json", self.named_schema, methods=["GET"]),
            ]
        )

    # --- the default policy ----------------------------------------------------------------------------------

    async def act(self, request: Request) -> Response:
        return await _answer(self.policies.default, request, self.policies, batch=False)

    async def act_batch(self, request: Request) -> Response:
        return await _answer(self.policies.default, request, self.policies, batch=True)

    async def info(self, request: Request) -> Response:
        return await _info(self.policies.default, request)

    async def listing(self, request: Request) -> Response:
        if (refused := await _empty_body(request)) is not None:
            return refused
        return Response(self.policies.listing(), media_type=JSON)

    # --- a policy by name ------------------------------------------------------------------------------------

    def _named(self, request: Request) -> Slot | Response:
        name = request.path_params["name"]
        slot = self.policies.slots.get(name)
        if slot is not None:
            return slot
        if not self.ready:
            return _error(503, LOADING)
        shown = name if len(name) <= 80 else name[:80] + "..."
        return _error(404, f"no policy is named {shown!r} here; GET /policies lists the served ones")

    async def named_act(self, request: Request) -> Response:
        slot = self._named(request)
        return slot if isinstance(slot, Response) else await _answer(slot, request, self.policies, batch=False)

    async def named_act_batch(self, request: Request) -> Response:
        slot = self._named(request)
        return slot if isinstance(slot, Response) else await _answer(slot, request, self.policies, batch=True)

    async def named_info(self, request: Request) -> Response:
        slot = self._named(request)
        return slot if isinstance(slot, Response) else await _info(slot, request)

    async def named_ready(self, request: Request) -> Response:
        slot = self._named(request)
        return slot if isinstance(slot, Response) else Response("\n", media_type="text/plain")

    async def named_schema(self, request: Request) -> Response:
        slot = self._named(request)
        if isinstance(slot, Response):
            return slot
        if self.client_schema is None:
            return _error(404, "this server has no BentoML schema (it is not the BentoML service)")
        return Response(self.client_schema, media_type=JSON)

    # --- hot swap --------------------------------------------------------------------------------------------

    async def swap(self, request: Request) -> Response:
        """PUT /policies/{name} {"source": ...} with `Authorization: Bearer <RLSHIP_ADMIN_TOKEN>`."""
        if self._admin_token is None:
            return _error(
                403,
                "hot swap is off on this server: start it with RLSHIP_ADMIN_TOKEN set to a secret of at least "
                f"{MIN_TOKEN_LENGTH} characters, then send it as 'Authorization: Bearer <token>'",
            )
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        # compare_digest: the time taken does not tell how much of a guessed token was right
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self._admin_token):
            response = _error(401, "missing or wrong admin token; send 'Authorization: Bearer <RLSHIP_ADMIN_TOKEN>'")
            response.headers["www-authenticate"] = "Bearer"
            return response
        name = request.path_params["name"]
        try:
            check_name(name)
        except ValueError as exc:
            return _error(422, str(exc))
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_ADMIN_BODY:
            return _error(413, f"body of {length} bytes is over the admin route's limit of {MAX_ADMIN_BODY} bytes")
        body = await request.body()
        if len(body) > MAX_ADMIN_BODY:
            return _error(413, f"body of {len(body)} bytes is over the admin route's limit of {MAX_ADMIN_BODY} bytes")
        try:
            source = protocol.SwapRequest.model_validate_json(body).source
        except pydantic.ValidationError as exc:
            first = exc.errors(include_url=False, include_context=False, include_input=False)[0]
            return _error(
                422,
                f'invalid request ({first["msg"]}); send {{"source": "runs/ppo-CartPole-v1-s1"}} (a policy '
                "folder, hf://OWNER/NAME[@REVISION] or 'default')",
            )
        try:
            slot = await self.policies.swap(name, source)
        except SwapError as exc:
            return _error(exc.status, exc.message)
        return Response(slot.info, media_type=JSON)


async def _answer(slot: Slot | None, request: Request, policies: PolicySet, batch: bool) -> Response:
    if slot is None:
        return _error(503, LOADING)
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > slot.max_body:
        return _too_large(length, slot, policies)
    if slot.pixels is not None:
        return await _answer_pixels(slot, request, policies, batch)
    body = await request.body()
    if len(body) > slot.max_body:
        # a chunked body has no Content-Length: the server-wide bound (BodyLimit) is the largest any served policy
        # needs, a pixel policy's 64 MiB say, so this policy's own bound is checked before the JSON is parsed
        return _too_large(str(len(body)), slot, policies)
    try:
        fields = protocol.act(slot.policy, body, policies.max_batch, batch, policies.rng)
    except protocol.RequestError as exc:
        return _error(exc.status, exc.message)
    return Response(to_json(fields), media_type=JSON)


def _too_large(length: str, slot: Slot, policies: PolicySet) -> Response:
    return _error(
        413,
        f"body of {length} bytes is over this server's limit of {slot.max_body} bytes "
        f"(batches of at most {policies.max_batch} observations); split it into smaller batches",
    )


async def _answer_pixels(slot: Slot, request: Request, policies: PolicySet, batch: bool) -> Response:
    """A pixel policy's request (`rlship.serving.pixels`): JSON, image/png or application/x-npy, each bounded by
    its own limit before the body is read."""
    from rlship.serving.pixels import body_cap, media_type

    pixels = slot.pixels
    content_type = request.headers.get("content-type")
    cap = body_cap(pixels.limits, content_type)
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > cap:
        return _error(
            413,
            f"a {media_type(content_type)} body of {length} bytes is over this policy's limit of {cap} bytes; send "
            "one raw frame per request with a session, or large batches as application/x-npy (GET /policy)",
        )
    body = await request.body()
    try:
        observations, deterministic, seed = pixels.parse(body, content_type, request.query_params, batch)
        fields = protocol.answer(slot.policy, observations, deterministic, seed, batch, policies.rng)
    except protocol.RequestError as exc:
        return _error(exc.status, exc.message)
    return Response(to_json(fields), media_type=JSON)


async def _info(slot: Slot | None, request: Request) -> Response:
    if slot is None:
        return _error(503, LOADING)
    if (refused := await _empty_body(request)) is not None:
        return refused
    return Response(slot.info, media_type=JSON)


async def _empty_body(request: Request) -> Response | None:
    """POST /policy and /policies take no arguments: an empty body or {} (what BentoML's client sends)."""
    if request.method != "POST":
        return None
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_ADMIN_BODY:
        return _error(413, f"this route takes no arguments; send an empty body or {{}}, not {length} bytes")
    body = await request.body()
    if body.strip() and body.strip() != b"{}":
        try:
            protocol.InfoRequest.model_validate_json(body)
        except pydantic.ValidationError:
            return _error(422, "this route takes no arguments; send an empty body or {}")
    return None


def _error(status: int, message: str) -> Response:
    # shortened: a message may quote a client's input, which can be megabytes
    return Response(to_json({"error": limits.shorten(message)}), status_code=status, media_type=JSON)


__all__ = ["NAME_RULE", "PolicyRoutes"]
