"""The HTTP protocol of a pixel policy (config.json has `observation_preprocessing`): what /act and /act_batch
accept, bounded before any work, and how raw frames become the stacked observation the policy acts on.

  /act, JSON body (Content-Type application/json):
    {"observation": [[[[p, ...]]]]}            the whole observation: nested lists (k, H, W, C), integers 0..255
    {"image": "<base64 PNG or .npy>", "session": "ID", "reset": true}
                                               one raw rendered frame (frame_shape); the server preprocesses it and
                                               keeps the session's frame stack (sessions.py); reset: true on the
                                               episode's first frame. Without a session, the frame is an episode's
                                               first frame (the stack holds copies of it): only with reset true or
                                               for a policy that stacks one frame.
    plus "deterministic" and "seed" as for vector policies.
  /act, binary body: image/png (one raw frame) or application/x-npy (a uint8 raw frame, or the whole observation),
    with the options in the query string: POST /act?session=ID&reset=true&deterministic=true&seed=3
  /act_batch, JSON: {"observations": [obs, ...]} or {"images": [...], "sessions": [...], "reset": bool or [bool]}
  /act_batch, binary: application/x-npy of shape (N, k, H, W, C) (observations) or (N, *frame_shape) (raw frames,
    with ?sessions=ID1,ID2,...&reset=true or reset=true,false,...); image/png: a batch of one frame.

Bounds (README "Limits of the server"): a JSON body for a pixel policy is at most `MAX_JSON_BYTES` (nested lists
cost about 16 bytes of Python objects per byte of JSON, so this caps a request's parse at well under 100 MB); a
request carries at most `IMAGE_BATCH_BYTES` of pixels (the largest of the raw frames and the observations), which
sets the policy's batch limit; a PNG at most one uncompressed frame's bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydantic
from pydantic import Field

from rlship.frames import FramePreprocessing
from rlship.policy import Policy
from rlship.serving import images
from rlship.serving.protocol import RequestError, _Request
from rlship.serving.sessions import SessionLimits, SessionStore, check_session_id

MAX_JSON_BYTES = 1024 * 1024
IMAGE_BATCH_BYTES = 64 * 1024 * 1024
JSON = "application/json"
PNG = "image/png"
NPY = "application/x-npy"
CONTENT_TYPES = (JSON, PNG, NPY)


# Nested lists of pixels are checked by NumPy (shape, integer dtype, range) rather than by a typed pydantic field:
# a third of the time for one CartPole-pixel observation (measured: 22 ms against 63 ms on the loaded machine).
class ImageActRequest(_Request):
    observation: list[Any] | None = None
    image: str | None = None
    session: str | None = None
    reset: bool = False
    deterministic: bool = True
    seed: int | None = Field(None, ge=0)


class ImageActBatchRequest(_Request):
    observations: list[Any] | None = None
    images: list[str] | None = None
    sessions: list[str] | None = None
    reset: bool | list[bool] = False
    deterministic: bool = True
    seed: int | None = Field(None, ge=0)


@dataclass(frozen=True)
class ImageLimits:
    max_batch: int  # observations or frames per request
    max_json: int  # bytes of a JSON body
    max_png: int  # bytes of one PNG body
    max_body: int  # bytes of any body


def image_limits(prep: FramePreprocessing, max_batch: int) -> ImageLimits:
    obs_bytes = int(np.prod(prep.observation_shape))
    frame_bytes = int(np.prod(prep.frame_shape))
    batch = max(1, min(max_batch, IMAGE_BATCH_BYTES // max(obs_bytes, frame_bytes)))
    png = images.encoded_frame_bound(prep)
    # one observation as JSON: "[255]," per pixel at most (and its brackets), one frame as base64
    max_json = max(MAX_JSON_BYTES, 4096 + 8 * obs_bytes, 4096 + png * 4 // 3)
    max_body = 4096 + max(max_json, batch * max(obs_bytes, frame_bytes) + images.MAX_NPY_HEADER, png)
    return ImageLimits(batch, max_json, png, max_body)


def media_type(content_type: str | None) -> str:
    return (content_type or JSON).split(";", 1)[0].strip().lower() or JSON


def body_cap(limits: ImageLimits, content_type: str | None) -> int:
    """The largest body of this content type (checked against Content-Length before the body is read)."""
    kind = media_type(content_type)
    return {JSON: limits.max_json, PNG: limits.max_png}.get(kind, limits.max_body)


def expected_body(prep: FramePreprocessing, batch: bool) -> str:
    obs, frame = list(prep.observation_shape), list(prep.frame_shape)
    if batch:
        return (
            f'{{"observations": [...]}} (each nested lists of shape {obs}, integers 0..255), or {{"images": '
            f'["<base64 PNG>", ...], "sessions": ["ID", ...], "reset": [true, ...]}} (raw frames of shape {frame}), '
            f"or an application/x-npy body of uint8 shape [N, {', '.join(map(str, obs))}] or "
            f"[N, {', '.join(map(str, frame))}]; GET /policy says more"
        )
    return (
        f'{{"observation": ...}} (nested lists of shape {obs}, integers 0..255), or {{"image": "<base64 PNG>", '
        f'"session": "ID", "reset": true}} (one raw frame of shape {frame}), or an image/png or '
        "application/x-npy body with ?session=ID&reset=true; GET /policy says more"
    )


def _bool(text: str, name: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise RequestError(422, f"query parameter {name}={text[:40]!r} is not a boolean; write true or false")


QUERY_KEYS = {
    False: ("session", "reset", "deterministic", "seed"),
    True: ("sessions", "reset", "deterministic", "seed"),
}


def _query_options(query: Mapping[str, str], batch: bool) -> dict[str, Any]:
    unknown = sorted(set(query) - set(QUERY_KEYS[batch]))
    if unknown:
        raise RequestError(
            422, f"unknown query parameter {unknown[0][:40]!r}; this route takes {', '.join(QUERY_KEYS[batch])}"
        )
    options: dict[str, Any] = {"deterministic": _bool(query.get("deterministic", "true"), "deterministic")}
    seed = query.get("seed")
    if seed is not None:
        if not seed.isdigit() or len(seed) > 20:
            raise RequestError(422, f"query parameter seed={seed[:40]!r} is not a whole number >= 0")
        options["seed"] = int(seed)
    else:
        options["seed"] = None
    if batch:
        sessions = query.get("sessions")
        options["sessions"] = sessions.split(",") if sessions else None
        resets = [_bool(r, "reset") for r in query.get("reset", "false").split(",")]
        options["reset"] = resets[0] if len(resets) == 1 else resets
    else:
        options["session"] = query.get("session")
        options["reset"] = _bool(query.get("reset", "false"), "reset")
    return options


def _validation_error(exc: pydantic.ValidationError, prep: FramePreprocessing, batch: bool) -> RequestError:
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    if any(e["type"] == "json_invalid" for e in errors):
        return RequestError(400, f"the body is not valid JSON ({errors[0]['msg']}); send {expected_body(prep, batch)}")
    details = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in errors[:3])
    return RequestError(422, f"invalid request ({details}). Expected {expected_body(prep, batch)}.")


class PixelRequests:
    """Turns one request to a pixel policy into its observations, keeping the policy's frame-stack sessions."""

    def __init__(self, policy: Policy, max_batch: int, session_limits: SessionLimits) -> None:
        prep = policy.spec.frames
        assert prep is not None
        self.prep = prep
        self.limits = image_limits(prep, max_batch)
        self.sessions = SessionStore(prep, session_limits)

    def parse(
        self, body: bytes, content_type: str | None, query: Mapping[str, str], batch: bool
    ) -> tuple[np.ndarray, bool, int | None]:
        """(observations (N, k, H, W, C) uint8, deterministic, seed), or RequestError."""
        kind = media_type(content_type)
        if kind not in CONTENT_TYPES:
            raise RequestError(
                415, f"Content-Type {kind[:60]!r} is not accepted; send {', '.join(CONTENT_TYPES)} (GET /policy)"
            )
        cap = body_cap(self.limits, kind)
        if len(body) > cap:
            raise RequestError(
                413,
                f"a {kind} body of {len(body)} bytes is over this policy's limit of {cap} bytes; "
                + ("send large batches as application/x-npy" if kind == JSON else "send one raw frame per request"),
            )
        if kind == JSON:
            if query:
                raise RequestError(422, "with a JSON body, put every option in the JSON, not in the query string")
            return self._json(body, batch)
        options = _query_options(query, batch)
        if kind == PNG:
            frames = [images.decode_png(body, self.prep, "the PNG body")]
            observations = self.from_frames(frames, _sessions(options, batch), options["reset"])
        else:
            observations = self._npy(body, batch, options)
        return observations, options["deterministic"], options["seed"]

    def _json(self, body: bytes, batch: bool) -> tuple[np.ndarray, bool, int | None]:
        prep = self.prep
        try:
            if batch:
                request: Any = ImageActBatchRequest.model_validate_json(body)
            else:
                request = ImageActRequest.model_validate_json(body)
        except pydantic.ValidationError as exc:
            raise _validation_error(exc, prep, batch) from None
        if batch:
            given = [name for name in ("observations", "images") if getattr(request, name) is not None]
            stack, encoded = request.observations, request.images
            sessions, reset = request.sessions, request.reset
        else:
            given = [name for name in ("observation", "image") if getattr(request, name) is not None]
            stack = [request.observation] if request.observation is not None else None
            encoded = [request.image] if request.image is not None else None
            sessions, reset = ([request.session] if request.session is not None else None), request.reset
        if len(given) != 1:
            raise RequestError(
                422,
                f"send exactly one of {' or '.join(given) if given else 'observation(s) or image(s)'}: "
                f"{expected_body(prep, batch)}",
            )
        if stack is not None:
            if sessions is not None:
                raise RequestError(422, "a whole observation needs no session; sessions go with raw frames (image)")
            return self._observations(stack), request.deterministic, request.seed
        assert encoded is not None
        self._check_count(len(encoded), "frames")
        frames = [
            images.decode_frame(images.decode_base64(text, name), prep, name)
            for name, text in _named(encoded, "images" if batch else "image", batch)
        ]
        return self.from_frames(frames, sessions, reset), request.deterministic, request.seed

    def _check_count(self, n: int, what: str) -> None:
        if n == 0:
            raise RequestError(422, f"no {what} in the request; send at least one")
        if n > self.limits.max_batch:
            raise RequestError(
                413,
                f"batch of {n} {what} is over this server's limit of {self.limits.max_batch} for this policy "
                f"({IMAGE_BATCH_BYTES // 2**20} MiB of pixels per request, or --max-batch); split it",
            )

    def _observations(self, nested: list[Any]) -> np.ndarray:
        self._check_count(len(nested), "observations")
        shape = self.prep.observation_shape
        try:
            array: np.ndarray | None = np.asarray(nested)
        except (ValueError, TypeError, OverflowError):  # ragged lists
            array = None
        if array is None or array.shape[1:] != shape:
            got = "ragged lists" if array is None else f"shape {list(array.shape[1:])}"
            raise RequestError(
                422,
                f"an observation of this policy has shape {list(shape)} (frame_stack, height, width, channels); "
                f"got {got}. Send the whole stack, oldest frame first, or raw frames with a session (GET /policy)",
            )
        if array.dtype.kind not in "iu" or array.size == 0 or array.min() < 0 or array.max() > 255:
            raise RequestError(422, "an observation's pixels must be integers from 0 to 255 (uint8), as the env gives")
        return array.astype(np.uint8)

    def _npy(self, body: bytes, batch: bool, options: dict[str, Any]) -> np.ndarray:
        prep = self.prep
        shapes = [prep.observation_shape, prep.frame_shape]
        array = images.read_npy(body, shapes, "the .npy body", batch=batch, max_rows=self.limits.max_batch)
        if not batch:
            array = array[None]
        if array.shape[1:] == prep.observation_shape:
            if _sessions(options, batch) is not None:
                raise RequestError(422, "a whole observation needs no session; sessions go with raw frames")
            return array
        return self.from_frames(list(array), _sessions(options, batch), options["reset"])

    def from_frames(self, frames: list[np.ndarray], sessions: list[str] | None, reset: bool | list[bool]) -> np.ndarray:
        """The observations after one raw frame each: through their sessions' frame stacks, or (no sessions) each
        an episode's first frame. All checks run before any session changes, so a refused batch changes none."""
        prep, n = self.prep, len(frames)
        resets = reset if isinstance(reset, list) else [reset] * n
        if len(resets) != n:
            raise RequestError(422, f"reset has {len(resets)} values for {n} frames; send one boolean or one per frame")
        if sessions is None:
            if prep.frame_stack > 1 and not all(resets):
                raise RequestError(
                    422,
                    f"this policy acts on a stack of {prep.frame_stack} frames: name a session (the server keeps "
                    "its last frames; reset true on an episode's first frame), or send the whole stack as the "
                    "observation, or reset true to act on this frame alone as an episode's first",
                )
            return np.stack([np.stack([prep.preprocess(f)] * prep.frame_stack) for f in frames])
        if len(sessions) != n:
            raise RequestError(422, f"{len(sessions)} sessions for {n} frames; send one session id per frame")
        for session in sessions:
            check_session_id(session)
        if len(set(sessions)) != n:
            raise RequestError(422, "a session appears twice in one batch; send one frame per session per request")
        return self.sessions.step_many(sessions, frames, resets)

    def info(self) -> dict[str, Any]:
        """What /policy says a client must send to this policy."""
        prep, limits = self.prep, self.limits
        obs, frame = list(prep.observation_shape), list(prep.frame_shape)
        return {
            "observation_shape": obs,
            "observation_dtype": "uint8",
            "frame_shape": frame,
            "frame_stack": prep.frame_stack,
            # frames t - (frame_stack - 1) * frame_gap, ..., t - frame_gap, t: what a whole observation stacks
            "frame_gap": prep.frame_gap,
            "forms": {
                "observation": f'JSON {{"observation": nested lists of shape {obs}, integers 0..255, oldest '
                "frame first}: the whole stack, no session needed",
                "image": f'JSON {{"image": "<base64 PNG>", "session": "ID", "reset": true}}: one raw frame as '
                f"rendered ({frame[1]}x{frame[0]}, {images.CHANNEL_NAMES[frame[2]]}, 8-bit), preprocessed here",
                "png": "body image/png of one raw frame; options in the query: ?session=ID&reset=true"
                "&deterministic=true&seed=N",
                "npy": f"body application/x-npy, uint8, of shape {obs} (the stack) or {frame} (one raw frame); "
                "/act_batch: a leading batch axis, frames with ?sessions=ID1,ID2&reset=true",
                "batch_json": 'JSON {"observations": [...]} or {"images": [...], "sessions": [...], "reset": '
                "true or [true, false, ...]}",
            },
            "sessions": {
                "how": "reset true on an episode's first frame starts (or restarts) the session's stack with copies "
                "of it; each later frame is appended; a continuing frame for a session this worker does not hold "
                "answers 409 (resend it with reset true, or send the whole stack)",
                "max_sessions": self.sessions.limits.max_sessions,
                "idle_seconds": self.sessions.limits.idle_seconds,
                "scope": "per worker process and policy: send a session's frames over one keep-alive connection "
                "or route them to one worker (sticky by session id)",
            },
            "max_batch": limits.max_batch,
            "max_json_bytes": limits.max_json,
            "max_png_bytes": limits.max_png,
            "max_body_bytes": limits.max_body,
        }


def _named(items: list[str], field: str, batch: bool) -> list[tuple[str, str]]:
    return [(f"{field}[{i}]" if batch else field, text) for i, text in enumerate(items)]


def _sessions(options: dict[str, Any], batch: bool) -> list[str] | None:
    if batch:
        return options["sessions"]
    return [options["session"]] if options["session"] is not None else None
