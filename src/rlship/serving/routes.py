"""The policy routes as a small Starlette app: POST /act, POST /act_batch, GET /policy.

The BentoML service mounts this app (`@bentoml.asgi_app`) and keeps its own /livez, /readyz, /metrics, traffic
timeout and lifecycle around it; the benchmark serves the same app with bare uvicorn as the peer. Handlers are
`async` and run the forward pass inline: a forward pass of a small MLP takes tens of microseconds, less than a
hop to a thread pool would cost.
"""

from __future__ import annotations

import logging

import numpy as np
from pydantic_core import to_json
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rlship.policy import Policy
from rlship.serving import limits, protocol

logger = logging.getLogger("rlship.serving")
JSON = "application/json"


class PolicyRoutes:
    """The loaded policy and the handlers that answer with it. `load` is called once, at start-up."""

    def __init__(self, max_batch: int = protocol.DEFAULT_MAX_BATCH) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1; got {max_batch}")
        self.max_batch = max_batch
        self.policy: Policy | None = None
        self.rng = np.random.default_rng()
        self._info = b""
        self._max_body = 0

    def load(self, policy: Policy) -> None:
        """Install `policy` and warm it up (first calls allocate), so the first client sees steady latency."""
        self._max_body = protocol.max_body_bytes(policy, self.max_batch)
        self._info = to_json(protocol.policy_info(policy, self.max_batch))
        zeros = np.zeros((self.max_batch, *policy.spec.obs_shape), dtype=np.float32)
        for n in (1, min(64, self.max_batch), self.max_batch):
            policy.act(zeros[:n], deterministic=True)
            policy.act(zeros[:n], deterministic=False, rng=self.rng)
        self.policy = policy  # last: `ready` (and so /readyz) turns true only after the warm-up

    @property
    def ready(self) -> bool:
        return self.policy is not None

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/act", self.act, methods=["POST"]),
                Route("/act_batch", self.act_batch, methods=["POST"]),
                Route("/policy", self.info, methods=["GET"]),
            ]
        )

    async def act(self, request: Request) -> Response:
        return await self._answer(request, batch=False)

    async def act_batch(self, request: Request) -> Response:
        return await self._answer(request, batch=True)

    async def info(self, request: Request) -> Response:
        if self.policy is None:
            return _error(503, "the policy is still loading; wait for GET /readyz to answer 200")
        return Response(self._info, media_type=JSON)

    async def _answer(self, request: Request, batch: bool) -> Response:
        policy = self.policy
        if policy is None:
            return _error(503, "the policy is still loading; wait for GET /readyz to answer 200")
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self._max_body:
            return _error(
                413,
                f"body of {length} bytes is over this server's limit of {self._max_body} bytes "
                f"(batches of at most {self.max_batch} observations); split it into smaller batches",
            )
        body = await request.body()
        try:
            fields = protocol.act(policy, body, self.max_batch, batch, self.rng)
        except protocol.RequestError as exc:
            return _error(exc.status, exc.message)
        return Response(to_json(fields), media_type=JSON)


def _error(status: int, message: str) -> Response:
    # shortened: a message may quote a client's input, which can be megabytes
    return Response(to_json({"error": limits.shorten(message)}), status_code=status, media_type=JSON)
