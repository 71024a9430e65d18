"""The served policies by name, and their hot swap.

Each worker process holds one `PolicySet`: name -> `Slot` (a loaded, warmed-up policy and what is computed once
for it). A handler takes its slot once, at its start, and a swap is one dict assignment on the event loop's
thread, so a swap never changes the policy under a request in flight: requests that started before it answer with
the old policy, the ones after with the new, and the old policy is freed once its last request is done.

A server with several worker processes (`--workers N`) holds one set per worker. A swap is accepted by one worker,
which loads the new policy (the caller learns at once if it cannot: nothing changes then), installs it and records
{name: source, generation} in a state file shared by the server's workers; every worker watches that file (a
`stat` every half second, off the request path) and loads what changed. A worker restarted by BentoML's
supervisor reads it at start, so it serves what the others serve.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from pydantic_core import to_json

from rlship.errors import UsageError
from rlship.policy import Policy, load_policy
from rlship.serving import protocol
from rlship.serving.sessions import SessionLimits

logger = logging.getLogger("rlship.serving")

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
NAME_RULE = "1-64 characters: letters, digits, '.', '_' or '-', starting with a letter or digit"
_NAME = re.compile(NAME_PATTERN)
MAX_POLICIES = 16  # a bound on what swaps that add names can hold in memory
STATE_FILE = "policies.json"
WATCH_SECONDS = 0.5


class SwapError(Exception):
    """A swap that was refused: answered with `status` and {"error": message}; the old policy keeps serving."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        shown = name if len(name) <= 80 else name[:80] + "..."
        raise UsageError(f"policy name {shown!r} is not valid: {NAME_RULE}")
    return name


def name_for(source: str) -> str:
    """The name a source is served under when none is given: the folder's or Hub repo's name, made safe."""
    text = source.removeprefix("hf://").split("@", 1)[0].rstrip("/")
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", text.rsplit("/", 1)[-1]).lstrip("._-")[:64]
    return base or "policy"


def split_entry(entry: str) -> tuple[str, str]:
    """(name, source) of "NAME=SOURCE" or "SOURCE" (named by `name_for`). A path that exists is never split."""
    name, sep, source = entry.partition("=")
    if sep and _NAME.fullmatch(name) and not os.path.exists(entry):
        if not source:
            raise UsageError(f"{entry!r} names no source; write NAME=SOURCE, e.g. cartpole=runs/ppo-CartPole-v1-s0")
        return name, source
    return name_for(entry), entry


def parse_entries(text: str) -> list[tuple[str, str]]:
    """The policies RLSHIP_POLICY names: a JSON list of entries (what `rlship serve` writes; paths may hold
    spaces) or entries separated by whitespace. Names must be unique; the first entry is the default."""
    entries = json.loads(text) if text.lstrip().startswith("[") else text.split()
    if not entries or not all(isinstance(e, str) and e for e in entries):
        raise UsageError(f"no policy named in {text!r}; name a folder, hf://OWNER/NAME[@REV] or 'default'")
    if len(entries) > MAX_POLICIES:
        raise UsageError(f"{len(entries)} policies named; one server serves at most {MAX_POLICIES}")
    pairs = [split_entry(e) for e in entries]
    names = [check_name(name) for name, _ in pairs]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise UsageError(f"two policies are named {duplicate!r}; name them apart with NAME=SOURCE")
    return pairs


def max_body_bytes(policy: Policy, max_batch: int) -> int:
    """The largest body a request to `policy` may have: what `max_batch` observations need, or for a pixel policy
    what its image forms need (`pixels.image_limits`)."""
    if policy.spec.frames is not None:
        from rlship.serving.pixels import image_limits

        return image_limits(policy.spec.frames, max_batch).max_body
    return protocol.max_body_bytes(policy, max_batch)


@dataclass(frozen=True)
class Slot:
    """One served policy: the policy and what its handlers need, computed when it was loaded."""

    name: str
    policy: Policy
    info: bytes  # the body of GET /policy
    max_body: int  # bytes: the largest body a request to it may have
    generation: int
    pixels: Any = None  # a pixel policy's `pixels.PixelRequests` (its request forms and frame-stack sessions)

    @property
    def summary(self) -> dict[str, Any]:
        p = self.policy
        return {
            "name": self.name,
            "env_id": p.spec.env_id,
            "algorithm": p.spec.algorithm,
            "source": p.source,
            "revision": p.revision,
            "generation": self.generation,
        }


class PolicySet:
    """The policies one worker serves, by name; the first one named is also the default (/act)."""

    def __init__(
        self,
        max_batch: int = protocol.DEFAULT_MAX_BATCH,
        state_dir: str | Path | None = None,
        session_limits: SessionLimits | None = None,
    ) -> None:
        if max_batch < 1:
            raise UsageError(f"max_batch must be at least 1; got {max_batch}")
        self.max_batch = max_batch
        self.session_limits = session_limits or SessionLimits()
        self.slots: dict[str, Slot] = {}
        self.default: Slot | None = None
        # the largest body any policy served now may take (0 before the first is loaded): the server-wide body
        # bound (limits.BodyLimit) reads it per request, so it follows every swap, larger or smaller
        self.max_body = 0
        self.rng = np.random.default_rng()
        self.state_file = Path(state_dir) / STATE_FILE if state_dir is not None else None
        self._lock: asyncio.Lock | None = None
        self._seen_state: int | None = None

    # --- loading ---------------------------------------------------------------------------------------------

    def prepare(self, name: str, policy: Policy, generation: int = 0) -> Slot:
        """A slot for `policy`, warmed up (first calls allocate) so its first client sees steady latency."""
        pixels = None
        max_batch, max_body = self.max_batch, protocol.max_body_bytes(policy, self.max_batch)
        if policy.spec.frames is not None:  # a pixel policy: its own request forms, batch limit and sessions
            from rlship.serving.pixels import PixelRequests

            pixels = PixelRequests(policy, self.max_batch, self.session_limits)
            max_batch, max_body = pixels.limits.max_batch, pixels.limits.max_body
        zeros = np.zeros((max_batch, *policy.spec.obs_shape), dtype=np.float32)
        for n in sorted({1, min(64, max_batch), max_batch}):
            policy.act(zeros[:n], deterministic=True)
            policy.act(zeros[:n], deterministic=False, rng=np.random.default_rng(0))
        info = protocol.policy_info(policy, max_batch, name=name, generation=generation)
        if pixels is not None:
            info["image_input"] = pixels.info()
        return Slot(name, policy, to_json(info), max_body, generation, pixels)

    def install(self, slot: Slot) -> None:
        if slot.name not in self.slots and len(self.slots) >= MAX_POLICIES:
            raise SwapError(409, f"this server already serves {MAX_POLICIES} policies, its limit; replace one")
        self.slots[slot.name] = slot
        self.max_body = max(s.max_body for s in self.slots.values())
        if self.default is None or self.default.name == slot.name:
            self.default = slot  # assigned last: the default routes answer only once the first policy is warm

    def load(self, policy: Policy, name: str = "default", generation: int = 0) -> Slot:
        slot = self.prepare(check_name(name), policy, generation)
        self.install(slot)
        return slot

    def listing(self) -> bytes:
        """The body of GET /policies."""
        default = self.default.name if self.default is not None else None
        return to_json({"default": default, "policies": [slot.summary for slot in self.slots.values()]})

    # --- hot swap --------------------------------------------------------------------------------------------

    @property
    def lock(self) -> asyncio.Lock:
        if self._lock is None:  # made on the event loop that uses it
            self._lock = asyncio.Lock()
        return self._lock

    async def swap(self, name: str, source: str) -> Slot:
        """Serve the policy at `source` under `name` from now on (a new name is added). Loading and the warm-up
        run in a thread, so this worker keeps answering meanwhile; if either fails, SwapError says why and the
        old policy keeps serving."""
        async with self.lock:
            if name not in self.slots and len(self.slots) >= MAX_POLICIES:
                raise SwapError(409, f"this server already serves {MAX_POLICIES} policies, its limit; replace one")
            slot = await self._load_slot(name, source)
            # No await from here on: recording and installing happen together, so this worker's watcher never
            # sees its own record before the slot is in place.
            generation = self._record(name, source)
            slot = self._with_generation(slot, generation)
            self.install(slot)
        logger.info(
            "rlship: policy %r now serves %r (revision %s), generation %d",
            name,
            source,
            slot.policy.revision,
            generation,
        )
        return slot

    async def _load_slot(self, name: str, source: str) -> Slot:
        try:
            policy = await asyncio.to_thread(load_policy, source)
            return await asyncio.to_thread(self.prepare, name, policy)
        except Exception as exc:  # whatever the loader raised: the caller gets the reason, the old policy stays
            reason = str(exc).rstrip(".")
            raise SwapError(
                422, f"cannot load policy {source!r}: {reason}; {name!r} still serves its old policy"
            ) from None

    def _with_generation(self, slot: Slot, generation: int) -> Slot:
        max_batch = slot.pixels.limits.max_batch if slot.pixels is not None else self.max_batch
        info = protocol.policy_info(slot.policy, max_batch, name=slot.name, generation=generation)
        if slot.pixels is not None:
            info["image_input"] = slot.pixels.info()
        return replace(slot, info=to_json(info), generation=generation)

    def _record(self, name: str, source: str) -> int:
        """Write {name: source, generation} into the state file the server's workers share; the new generation."""
        current = self.slots.get(name)
        if self.state_file is None:
            return (current.generation if current else 0) + 1
        with _locked(self.state_file):
            state = _read_state(self.state_file)
            previous = state.get(name, {}).get("generation", current.generation if current else 0)
            generation = max(int(previous), current.generation if current else 0) + 1
            state[name] = {"source": source, "generation": generation}
            tmp = self.state_file.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(state))
            tmp.replace(self.state_file)
            self._seen_state = None  # re-read on the next look: it holds this worker's own record, a no-op
        return generation

    def pending(self) -> dict[str, dict[str, Any]]:
        """The state file's records newer than what this worker serves (all of them on the first look)."""
        if self.state_file is None:
            return {}
        try:
            stamp = self.state_file.stat().st_mtime_ns
        except FileNotFoundError:
            return {}
        if stamp == self._seen_state:
            return {}
        self._seen_state = stamp
        state = _read_state(self.state_file)
        return {
            name: record
            for name, record in state.items()
            if name not in self.slots or record["generation"] > self.slots[name].generation
        }

    def catch_up(self) -> None:
        """At start (in a worker restarted by the supervisor, say): serve what the state file says, loading here."""
        for name, record in self.pending().items():
            try:
                slot = self.prepare(name, load_policy(record["source"]), record["generation"])
                self.install(slot)
            except Exception as exc:
                logger.error(
                    "rlship: cannot load %r for policy %r: %s; it keeps its start-up policy",
                    record["source"],
                    name,
                    exc,
                )

    async def watch(self) -> None:
        """Follow swaps accepted by the other workers, for as long as the worker runs."""
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            for name, record in self.pending().items():
                async with self.lock:
                    current = self.slots.get(name)
                    if current is not None and current.generation >= record["generation"]:
                        continue
                    try:
                        slot = await self._load_slot(name, record["source"])
                        self.install(self._with_generation(slot, record["generation"]))
                    except SwapError as exc:
                        logger.error("rlship: %s", exc.message)
                        continue
                logger.info(
                    "rlship: policy %r now serves %r, generation %d", name, record["source"], record["generation"]
                )


class _locked:
    """An exclusive lock on `<state file>.lock`, held by one worker at a time while it rewrites the state."""

    def __init__(self, state_file: Path) -> None:
        self.path = state_file.with_suffix(".lock")

    def __enter__(self) -> None:
        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _read_state(path: Path) -> dict[str, dict[str, Any]]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
