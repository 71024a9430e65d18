"""Frame-stack sessions (rlship.serving.sessions) on a clock the test moves: expiry, LRU eviction, and batches
that change no session when one of them is gone. The server's side of the same is in test_serving_pixels.py."""

from __future__ import annotations

import numpy as np
import pytest

from rlship.frames import FramePreprocessing, FrameStack
from rlship.serving.protocol import RequestError
from rlship.serving.sessions import SessionLimits, SessionStore

PREP = FramePreprocessing(
    frame_height=8, frame_width=8, frame_channels=1, top=0, bottom=8, left=0, right=8, height=4, width=4, frame_stack=3
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def frame(value: int) -> np.ndarray:
    return np.full(PREP.frame_shape, value, np.uint8)


def store(max_sessions: int = 3, idle: float = 10.0) -> tuple[SessionStore, Clock]:
    clock = Clock()
    return SessionStore(PREP, SessionLimits(max_sessions, idle), clock), clock


def refused(call: object, *args: object) -> RequestError:
    with pytest.raises(RequestError) as info:
        call(*args)  # type: ignore[operator]
    return info.value


def test_a_session_stacks_like_frame_stack() -> None:
    sessions, _ = store()
    reference = FrameStack(PREP)
    assert np.array_equal(sessions.step("a", frame(1), reset=True), reference.reset(frame(1)))
    for value in (2, 3, 4):
        assert np.array_equal(sessions.step("a", frame(value), reset=False), reference.push(frame(value)))
    # reset starts again from copies of the new frame
    assert np.array_equal(sessions.step("a", frame(9), reset=True), reference.reset(frame(9)))


def test_idle_sessions_expire_and_say_so() -> None:
    sessions, clock = store(idle=10.0)
    sessions.step("a", frame(1), reset=True)
    clock.now = 9.0
    sessions.step("a", frame(2), reset=False)  # used: its idle time starts again
    clock.now = 18.0
    sessions.step("a", frame(3), reset=False)
    clock.now = 28.5
    error = refused(sessions.step_many, ["a"], [frame(4)], [False])
    assert error.status == 409 and "expired" in error.message and "reset" in error.message
    assert len(sessions) == 0


def test_the_least_recently_used_session_is_evicted_at_the_cap() -> None:
    sessions, clock = store(max_sessions=3)
    for name in "abc":
        clock.now += 1
        sessions.step(name, frame(1), reset=True)
    clock.now += 1
    sessions.step("a", frame(2), reset=False)  # a is now the most recently used; b the least
    sessions.step("d", frame(1), reset=True)
    assert len(sessions) == 3
    error = refused(sessions.step_many, ["b"], [frame(2)], [False])
    assert error.status == 409 and "evicted" in error.message
    never = refused(sessions.step_many, ["zzz"], [frame(2)], [False])
    assert "never started" in never.message


def test_a_batch_with_a_gone_session_changes_none() -> None:
    sessions, _ = store(max_sessions=4)
    first = sessions.step("a", frame(1), reset=True)
    refused(sessions.step_many, ["a", "gone"], [frame(7), frame(7)], [False, False])
    # a's stack did not move: its next frame follows the first
    expected = FrameStack(PREP)
    expected.reset(frame(1))
    assert np.array_equal(first, expected.observation())
    assert np.array_equal(sessions.step("a", frame(2), reset=False), expected.push(frame(2)))


def test_a_batch_never_evicts_its_own_sessions() -> None:
    sessions, clock = store(max_sessions=3)
    for name in "abc":
        clock.now += 1
        sessions.step(name, frame(1), reset=True)
    # a and b are the least recently used; the batch continues both and starts x: c goes, not a or b
    out = sessions.step_many(["x", "a", "b"], [frame(5)] * 3, [True, False, False])
    assert out.shape == (3, *PREP.observation_shape)
    assert "evicted" in refused(sessions.step_many, ["c"], [frame(2)], [False]).message
    over = refused(sessions.step_many, list("pqrs"), [frame(1)] * 4, [True] * 4)
    assert over.status == 413 and "--max-sessions" in over.message
