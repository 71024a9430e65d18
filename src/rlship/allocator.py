"""The C allocator's settings for rlship's own heavy work: training, and evaluation on rendered frames."""

from __future__ import annotations

import contextlib
import ctypes
import platform
import threading
from collections.abc import Iterator

# glibc's mallopt parameters (malloc.h), and the values set while training
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_TRAINING = (
    # blocks from 32 MiB (glibc's maximum) get a mapping of their own: a pixel minibatch's tensors (0.5-2 MB) come
    # from the heap (glibc's own threshold adapts upwards, but setting the trim threshold stops the adapting)
    (_M_MMAP_THRESHOLD, 32 << 20),
    # freed memory at the top of the heap, up to 1 GiB, stays mapped: more than a pixel step's working set
    (_M_TRIM_THRESHOLD, 1 << 30),
    # the heap grows by 64 MiB more than asked, so a run's growth is a few steps, not thousands
    (_M_TOP_PAD, 64 << 20),
)
# glibc's defaults (mallopt(3)), restored after training (its mmap threshold then stays at 128 KiB: a process cannot
# ask glibc to adapt it again, which only makes large blocks cost a mapping each, as before glibc first adapted it)
_DEFAULTS = ((_M_MMAP_THRESHOLD, 128 << 10), (_M_TRIM_THRESHOLD, 128 << 10), (_M_TOP_PAD, 128 << 10))


def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        libc.mallopt.restype = ctypes.c_int
        libc.malloc_trim.argtypes = (ctypes.c_size_t,)
        libc.malloc_trim.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


_lock = threading.Lock()
_depth = 0  # contexts open: the outermost sets the values and restores the defaults
_took = False  # whether the outermost's settings took


@contextlib.contextmanager
def keep_freed_memory() -> Iterator[bool]:
    """While inside, memory that training frees stays mapped for its next use, where the C library is glibc (the
    value: whether it took); on the way out glibc's defaults come back and the freed memory is given back.

    A gradient step of the pixel CNN allocates and frees megabytes of tensors (minibatch, activations, gradients).
    By default glibc returns the freed top of its heap to the system once it passes its trim threshold, and the
    next step faults every page back in: about 30,000 minor page faults a second, a fifth of a pixel DQN run's CPU
    spent in the kernel. Rendering and preprocessing the pixel env's frames (the final evaluation) does the same.
    `rlship train dqn rlship/CartPolePixels-v1 --seed 0 --total-steps 9000`: 10.3 s of system CPU against 0.9 s
    with these settings, 3.8M minor faults against 0.12M, the same peak memory. A run holds its peak memory until
    it ends anyway, so keeping it mapped meanwhile costs nothing.

    Nested and concurrent uses (a sweep's runs in threads) share one setting, which the last to leave undoes."""
    global _depth, _took
    libc = _glibc()
    if libc is None:
        yield False
        return
    with _lock:
        _depth += 1
        if _depth == 1:
            _took = all([libc.mallopt(param, value) == 1 for param, value in _TRAINING])  # each one, whatever fails
        took = _took
    try:
        yield took
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                for param, value in _DEFAULTS:
                    libc.mallopt(param, value)
                libc.malloc_trim(0)


__all__ = ["keep_freed_memory"]
