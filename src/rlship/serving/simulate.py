"""An external simulator: runs a Gymnasium env here and asks a served policy for every action over HTTP.

Episodes follow the evaluation protocol (`rlship.evaluation.evaluate_fn`: the same seeds, returns and spread
as `rlship evaluate`), only the policy sits behind a URL. One keep-alive connection (httpx) carries all calls.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np

from rlship.errors import RlshipError
from rlship.evaluation import EVAL_SEED_OFFSET, EvalResult, evaluate_fn


@dataclass(frozen=True)
class SimulationResult:
    evaluation: EvalResult
    policy: dict[str, Any]  # GET /policy of the server
    latencies_ms: list[float]  # one per HTTP call
    route: str

    def latency_percentiles(self) -> dict[str, float]:
        lat = np.asarray(self.latencies_ms)
        return {f"p{q}": float(np.percentile(lat, q)) for q in (50, 90, 99)} | {"max": float(lat.max())}

    def report(self) -> str:
        ev = self.evaluation
        pct = self.latency_percentiles()
        calls = len(self.latencies_ms)
        returns = ", ".join(f"{r:g}" for r in ev.episode_returns)
        return "\n".join(
            [
                f"policy: {self.policy.get('algorithm')} on {self.policy.get('env_id')} "
                f"from {self.policy.get('source')!r} (revision {self.policy.get('revision')})",
                f"env: {ev.env_id}, {ev.n_eval_episodes} episodes, eval seed {ev.seed}, "
                f"{'deterministic' if ev.deterministic else 'stochastic'} actions",
                f"return: {ev.metric} (mean +/- std)",
                f"episode returns: [{returns}]",
                f"{calls} calls to {self.route} in {ev.wall_seconds:.2f} s ({calls / ev.wall_seconds:.0f} calls/s); "
                f"latency ms: p50 {pct['p50']:.2f}, p90 {pct['p90']:.2f}, p99 {pct['p99']:.2f}, max {pct['max']:.2f}",
            ]
        )


def simulate(
    url: str,
    env_id: str | None = None,
    episodes: int = 10,
    seed: int = 0,
    deterministic: bool = True,
    batch: bool = False,
    timeout: float = 10.0,
) -> SimulationResult:
    """Run `episodes` episodes of `env_id` (default: the served policy's env) against the server at `url`.

    `batch=False` asks POST /act once per env per step (a simulator of single envs); `batch=True` sends every
    running episode's observation in one POST /act_batch per step (a vectorised simulator).
    """
    base = url.rstrip("/")
    route = "/act_batch" if batch else "/act"
    latencies: list[float] = []
    rng = np.random.default_rng(EVAL_SEED_OFFSET + seed)  # seeds the server's sampling: stochastic runs repeat

    with httpx.Client(base_url=base, timeout=timeout) as client:
        info = _call(client, "GET", "/policy")
        env_kwargs = info.get("env_kwargs") if env_id in (None, info["env_id"]) else None
        env_id = env_id or info["env_id"]

        def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            if not deterministic:
                body["seed"] = int(rng.integers(2**31))
            start = time.perf_counter()
            answer = _call(client, "POST", path, body)
            latencies.append((time.perf_counter() - start) * 1000.0)
            return answer

        def act(obs: np.ndarray) -> np.ndarray:
            if batch:
                body = {"observations": obs.tolist(), "deterministic": deterministic}
                return np.asarray(post(route, body)["actions"])
            return np.asarray(
                [post(route, {"observation": o, "deterministic": deterministic})["action"] for o in obs.tolist()]
            )

        evaluation = evaluate_fn(act, env_id, episodes, seed, deterministic, env_kwargs)
    return SimulationResult(evaluation=evaluation, policy=info, latencies_ms=latencies, route=route)


def _call(client: httpx.Client, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """One request; a network failure or an error answer becomes an RlshipError saying what happened."""
    try:
        response = client.request(method, path, json=body)
    except httpx.HTTPError as exc:
        raise RlshipError(
            f"cannot reach the policy server at {client.base_url}{path} ({type(exc).__name__}: {exc}); "
            "start one with `rlship serve` and check --url"
        ) from exc
    if response.status_code != 200:
        try:
            message = response.json().get("error", response.text)
        except ValueError:
            message = response.text
        raise RlshipError(f"{method} {client.base_url}{path} answered {response.status_code}: {message}")
    return response.json()
