"""Frame-stack sessions: the last frames of each simulator that sends one raw frame per step.

A pixel policy acts on a stack of the last `frame_stack` preprocessed frames. A simulator that sends one rendered
frame per step names a session (an id of its choosing); the server keeps that session's `FrameStack`, so the
observation it acts on is exactly the one the env wrapper (Gymnasium's FrameStackObservation) would give.

Bounded memory: at most `max_sessions` per policy and worker, least recently used evicted first, and a session idle
for `idle_seconds` is dropped (checked on every request, oldest first, so the check costs only what it drops).
A dropped session is remembered by id (as many as `max_sessions` of them, the newest) so that a client which
sends a continuing frame for it learns why it is gone: expired, evicted, or never started here.

Sessions live in one worker process's memory: see README "Sessions and several workers" for how requests must
reach the worker that holds their session (one keep-alive connection per session, or sticky routing), and what a
client does on 409 (resend the frame with reset, or send the whole stack as the observation).
"""

from __future__ import annotations

import os
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rlship.frames import FramePreprocessing, FrameStack
from rlship.serving.limits import DEFAULT_MAX_SESSIONS, DEFAULT_SESSION_IDLE
from rlship.serving.protocol import RequestError

SESSION_PATTERN = r"[A-Za-z0-9._:-]{1,128}"
SESSION_RULE = "1-128 characters: letters, digits, '.', '_', ':' or '-'"
_SESSION = re.compile(SESSION_PATTERN)


@dataclass(frozen=True)
class SessionLimits:
    max_sessions: int = DEFAULT_MAX_SESSIONS
    idle_seconds: float = DEFAULT_SESSION_IDLE


def check_session_id(session: str, what: str = "session") -> str:
    if not _SESSION.fullmatch(session):
        shown = session if len(session) <= 40 else session[:40] + "..."
        raise RequestError(422, f"{what} {shown!r} is not a valid session id: {SESSION_RULE}")
    return session


class SessionStore:
    """Session id -> FrameStack, least recently used first."""

    def __init__(
        self,
        preprocessing: FramePreprocessing,
        limits: SessionLimits,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.preprocessing = preprocessing
        self.limits = limits
        self.clock = clock
        self._stacks: OrderedDict[str, tuple[FrameStack, float]] = OrderedDict()
        self._gone: OrderedDict[str, str] = OrderedDict()  # id -> why it was dropped (bounded like the sessions)

    def __len__(self) -> int:
        return len(self._stacks)

    def _drop_idle(self, now: float) -> None:
        deadline = now - self.limits.idle_seconds
        while self._stacks:
            session, (_, last) = next(iter(self._stacks.items()))
            if last > deadline:
                break
            del self._stacks[session]
            self._forget(session, f"expired: it was idle for more than {self.limits.idle_seconds:g} s")

    def _forget(self, session: str, why: str) -> None:
        self._gone[session] = why
        self._gone.move_to_end(session)
        while len(self._gone) > self.limits.max_sessions:
            self._gone.popitem(last=False)

    def step_many(self, sessions: list[str], frames: list[np.ndarray], resets: list[bool]) -> np.ndarray:
        """The observations after one frame per session (distinct sessions), all checked first at one instant: a
        batch with one session that is gone changes no session."""
        if len(sessions) > self.limits.max_sessions:
            raise RequestError(
                413,
                f"{len(sessions)} sessions in one batch; this server keeps at most {self.limits.max_sessions} per "
                "policy and worker (--max-sessions / RLSHIP_MAX_SESSIONS): split the batch",
            )
        self._drop_idle(self.clock())
        for session, reset in zip(sessions, resets, strict=True):
            if not reset:
                self.check_continuing(session)
        for session in sessions:  # most recently used now: the batch's new sessions never evict its own
            if session in self._stacks:
                self._stacks.move_to_end(session)
        return np.stack([self.step(s, f, r) for s, f, r in zip(sessions, frames, resets, strict=True)])

    def check_continuing(self, session: str) -> None:
        """Raise 409 if `session` has no frames here."""
        if session in self._stacks:
            return
        why = self._gone.get(session) or "never started on this worker (or the policy was swapped since)"
        raise RequestError(
            409,
            f"session {session!r} is unknown here: {why}. Resend this frame with reset true (the first frame of "
            "an episode: the stack restarts from it), or send the whole stack as the observation. Sessions live "
            f"in one worker process (pid {os.getpid()}): keep one connection per session, or route by session.",
        )

    def step(self, session: str, frame: np.ndarray, reset: bool) -> np.ndarray:
        """The observation after `frame`: a new stack of copies of it if `reset`, else the session's stack with
        it appended (the session must exist: `check_continuing`)."""
        now = self.clock()
        entry = self._stacks.pop(session, None)
        if entry is None and not reset:
            self.check_continuing(session)
        stack = entry[0] if entry is not None else FrameStack(self.preprocessing)
        observation = stack.reset(frame) if reset else stack.push(frame)
        self._stacks[session] = (stack, now)  # most recently used: last
        self._gone.pop(session, None)
        while len(self._stacks) > self.limits.max_sessions:
            evicted, _ = self._stacks.popitem(last=False)
            self._forget(
                evicted,
                f"evicted: this worker holds at most {self.limits.max_sessions} sessions per policy and it was the "
                "least recently used",
            )
        return observation
