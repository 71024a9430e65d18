"""The memory a run's buffers would take, checked before they are allocated: NumPy and torch allocate a huge buffer
lazily, page by page, so a run sized past the machine is killed hours later, when the memory fills, instead of being
refused at once. Used by dqn's replay memory and by the ppo/a2c rollout (training/rollout.py)."""

from __future__ import annotations

import os
from collections.abc import Callable

from rlship.errors import UsageError


def machine_memory() -> int | None:
    """This machine's physical memory in bytes; None where the system does not say (not POSIX)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(what: str, count: int, item_bytes: int, fix: Callable[[int], str]) -> None:
    """A UsageError when `count` items of `item_bytes` each (`what`: "a replay memory of 1,000 transitions") would
    need more than half of this machine's memory (the rest is the OS's, the network's and the envs'). `fix(fits)`
    says which flags to lower, given how many items would fit."""
    machine = machine_memory()
    needed = count * item_bytes
    if machine is None or needed <= machine // 2:
        return
    fits = max(1, machine // 2 // item_bytes)
    raise UsageError(
        f"{what} of {item_bytes:,} bytes needs {needed / 2**30:,.1f} GiB, more than half of this machine's "
        f"{machine / 2**30:.1f} GiB; {fix(fits)}"
    )


__all__ = ["check_memory", "machine_memory"]
