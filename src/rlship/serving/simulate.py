"""An external simulator: runs a Gymnasium env here and asks a served policy for every action over HTTP.

Episodes follow the evaluation protocol (`rlship.evaluation.evaluate_fn`: the same seeds, returns and spread
as `rlship evaluate`), only the policy sits behind a URL. One keep-alive connection (httpx) carries all calls.

A pixel policy (its /policy has `observation_preprocessing`) is driven the way a remote simulator with a camera
would drive it: each step sends the raw frame `env.render()` gives (PNG, or .npy with `frames="npy"`) under one
session per episode (reset true on its first frame), and the server's frame stack makes the observation. The env's
own observation is never sent, so equal returns with `rlship evaluate` show the server rebuilds it exactly.
"""

from __future__ import annotations

import time
import uuid
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
    frames: str = "png",
) -> SimulationResult:
    """Run `episodes` episodes of `env_id` (default: the served policy's env) against the server at `url`.

    `batch=False` asks POST /act once per env per step (a simulator of single envs); `batch=True` sends every
    running episode's observation in one POST /act_batch per step (a vectorised simulator). For a pixel policy,
    `frames` ("png" or "npy") says how each raw frame is sent.
    """
    if frames not in FRAME_FORMATS:
        raise RlshipError(f"frames must be one of {', '.join(FRAME_FORMATS)}; got {frames!r}")
    base = url.rstrip("/")
    if not base.startswith(("http://", "https://")) or len(base) > 2048:
        raise RlshipError(
            f"--url must be the server's http:// or https:// address, such as http://127.0.0.1:3000; got {url[:100]!r}"
        )
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

        if info.get("observation_preprocessing") is not None:
            sender = _FrameSender(client, info, route, frames, deterministic, rng, latencies)
            evaluation = _evaluate_frames(sender, env_id, episodes, seed, deterministic, env_kwargs)
        else:
            evaluation = evaluate_fn(act, env_id, episodes, seed, deterministic, env_kwargs)
    return SimulationResult(evaluation=evaluation, policy=info, latencies_ms=latencies, route=route)


FRAME_FORMATS = ("png", "npy")


class _FrameSender:
    """Sends raw frames for a pixel policy: one session per episode, /act once per frame or /act_batch once per
    step (in chunks of the server's batch limit)."""

    def __init__(
        self,
        client: httpx.Client,
        info: dict[str, Any],
        route: str,
        frames: str,
        deterministic: bool,
        rng: np.random.Generator,
        latencies: list[float],
    ) -> None:
        from rlship.frames import FramePreprocessing

        self.client, self.route, self.frames = client, route, frames
        self.deterministic, self.rng, self.latencies = deterministic, rng, latencies
        self.prep = FramePreprocessing.from_dict(info["observation_preprocessing"])
        self.chunk = int((info.get("image_input") or {}).get("max_batch", 1))
        self.prefix = f"sim-{uuid.uuid4().hex[:12]}"

    def session(self, episode: int) -> str:
        return f"{self.prefix}-{episode}"

    def act(self, episodes: list[int], frames: list[np.ndarray], reset: bool) -> list[int]:
        from rlship.serving.images import array_as_npy, frame_as_png

        params: dict[str, str] = {"deterministic": str(self.deterministic).lower(), "reset": str(reset).lower()}
        if self.route == "/act":
            actions = []
            for episode, frame in zip(episodes, frames, strict=True):
                query = {**params, "session": self.session(episode), **self._seed()}
                body = frame_as_png(frame) if self.frames == "png" else array_as_npy(frame)
                answer = self._post(body, "image/png" if self.frames == "png" else "application/x-npy", query)
                actions.append(answer["action"])
            return actions
        actions = []
        for start in range(0, len(frames), self.chunk):
            ids = [self.session(e) for e in episodes[start : start + self.chunk]]
            part = frames[start : start + self.chunk]
            if self.frames == "npy":
                query = {**params, "sessions": ",".join(ids), **self._seed()}
                answer = self._post(array_as_npy(np.stack(part)), "application/x-npy", query)
            else:
                import base64

                body = {
                    "images": [base64.b64encode(frame_as_png(f)).decode() for f in part],
                    "sessions": ids,
                    "reset": reset,
                    "deterministic": self.deterministic,
                    **self._seed(),
                }
                answer = self._post(None, "application/json", {}, body)
            actions += answer["actions"]
        return actions

    def _seed(self) -> dict[str, Any]:
        return {} if self.deterministic else {"seed": int(self.rng.integers(2**31))}

    def _post(self, content: bytes | None, kind: str, query: dict[str, Any], body: Any = None) -> dict[str, Any]:
        start = time.perf_counter()
        answer = _call(self.client, "POST", self.route, body, content=content, content_type=kind, params=query)
        self.latencies.append((time.perf_counter() - start) * 1000.0)
        return answer


def _evaluate_frames(
    sender: _FrameSender,
    env_id: str,
    episodes: int,
    seed: int,
    deterministic: bool,
    env_kwargs: dict[str, Any] | None,
) -> EvalResult:
    """The evaluation protocol (`rlship.evaluation.run_episodes`: the same envs, seeds, side-by-side episodes and
    returns), with each action asked for by sending the raw frame the env renders, not its observation."""
    from rlship.evaluation import episode_seeds, episodes_result

    start = time.perf_counter()
    seeds = episode_seeds(seed, episodes)
    envs = [_rendering_env(env_id, env_kwargs) for _ in range(episodes)]
    try:
        for env, s in zip(envs, seeds, strict=True):
            env.reset(seed=s)
        returns = np.zeros(episodes)
        lengths = np.zeros(episodes, dtype=np.int64)
        running = list(range(episodes))
        first = True
        while running:
            actions = sender.act(running, [_frame(envs[i], env_id) for i in running], reset=first)
            first = False
            still = []
            for i, action in zip(running, actions, strict=True):
                _obs, reward, terminated, truncated, _ = envs[i].step(action)
                returns[i] += float(reward)
                lengths[i] += 1
                if not (terminated or truncated):
                    still.append(i)
            running = still
    finally:
        for env in envs:
            env.close()
    return episodes_result(env_id, returns.tolist(), lengths.tolist(), seed, deterministic, start)


def _rendering_env(env_id: str, env_kwargs: dict[str, Any] | None) -> Any:
    """The env the evaluation runs, rendering rgb_array frames (asked for only if it does not already)."""
    from rlship.envs import make_env

    env = make_env(env_id, env_kwargs)
    if env.render_mode != "rgb_array":
        env.close()
        env = make_env(env_id, env_kwargs, render_mode="rgb_array")
    return env


def _frame(env: Any, env_id: str) -> np.ndarray:
    frame = env.render()
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3:
        raise RlshipError(f"{env_id}: env.render() gave no uint8 (height, width, channels) frame to send")
    return frame


def _call(
    client: httpx.Client,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    content: bytes | None = None,
    content_type: str | None = None,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One request; a network failure or an error answer becomes an RlshipError saying what happened."""
    try:
        if content is not None:
            headers = {"content-type": content_type or "application/octet-stream"}
            response = client.request(method, path, content=content, headers=headers, params=params)
        else:
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
