"""BentoML's request timeout, as rlship's service installs it: the timer of an answered request is cancelled
(BentoML 1.4 leaves it in the event loop for the whole timeout, which made /act's tail latency grow under load),
and a request slower than the timeout still gets BentoML's 504."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from rlship.serving import service


def _middleware(app: Any, timeout: float) -> Any:
    from bentoml._internal.server.http import traffic

    assert traffic.TimeoutMiddleware._rlship_cancels_timer  # what BentoML's app builder picks up
    return traffic.TimeoutMiddleware(app, timeout=timeout)


async def _call(middleware: Any) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await middleware({"type": "http", "method": "POST", "path": "/act", "headers": []}, receive, send)
    return sent


async def _answer(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def test_an_answered_request_leaves_no_live_timer_behind() -> None:
    assert service.POLICY is not None

    async def main() -> int:
        middleware = _middleware(_answer, timeout=30)
        for _ in range(200):
            sent = await _call(middleware)
            assert sent[0]["status"] == 200
        loop = asyncio.get_running_loop()
        return sum(not handle.cancelled() for handle in loop._scheduled)  # type: ignore[attr-defined]

    assert asyncio.run(main()) == 0  # BentoML's own middleware leaves 200 timers of 30 s here


def test_a_request_slower_than_the_timeout_still_gets_504() -> None:
    async def slow(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(5)

    sent = asyncio.run(_call(_middleware(slow, timeout=0.05)))
    assert sent[0]["status"] == 504
    assert "0.05 seconds" in json.loads(sent[1]["body"])["error"]
