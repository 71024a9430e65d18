"""allocator.keep_freed_memory: while training, memory freed at the top of glibc's heap stays mapped, so the
next gradient step does not fault it back in page by page (a fifth of a pixel DQN run's CPU was that)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's allocator only"
)

# A step's worth of small blocks (each under glibc's mmap threshold, so from the heap) allocated, touched and freed
# ten times over: with glibc's defaults the freed top of the heap is given back each time and faulted in again
WORKLOAD = """
import resource, sys
import numpy as np
from rlship.allocator import keep_freed_memory

def steps():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        blocks = [np.ones(25_000, dtype=np.float32) for _ in range(800)]  # 800 x 100 KB
        del blocks
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

if sys.argv[1] == "kept":
    with keep_freed_memory() as took:
        assert took
        with keep_freed_memory():  # a nested use (the final evaluation inside a run) leaves the outer one's setting
            pass
        faults = steps()
else:
    faults = steps()
print(faults)
"""

ONE_STEP_PAGES = 800 * 100_000 // 4096  # the pages of one step's blocks


def minor_faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", WORKLOAD, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def test_freed_memory_is_not_faulted_in_again() -> None:
    default, kept = minor_faults("default"), minor_faults("kept")
    # glibc's defaults: the freed memory goes back and every step faults it in again
    assert default > 5 * ONE_STEP_PAGES
    # kept: the heap's pages are faulted in once, for the first step
    assert kept < 2 * ONE_STEP_PAGES


def test_defaults_come_back_and_the_memory_is_given_back() -> None:
    code = """
import resource
import numpy as np
from rlship.allocator import keep_freed_memory

def rss_kb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))

with keep_freed_memory():
    blocks = [np.ones(25_000, dtype=np.float32) for _ in range(2000)]  # 200 MB of heap
    del blocks
    kept = rss_kb()
after = rss_kb()
print(kept - after)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # inside, the 200 MB stayed mapped; on the way out it went back to the system
    assert int(out.stdout.strip()) > 150_000
