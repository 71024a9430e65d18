"""Whole processes for the benchmarks: `RLSHIP`, the console script a user runs, and timing one process as its user
waits for it: wall seconds from start to exit, and the CPU seconds (user + system) of that process and its children
alone, from `os.wait4`, so the figure stays right when other processes (a peer run side by side) start and end in
the same interval, which `getrusage(RUSAGE_CHILDREN)` would mix in."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

# The `rlship` script installed beside the interpreter running the benchmark (its environment's), never another
# copy found first on PATH.
RLSHIP = str(Path(sys.executable).with_name("rlship"))


def timed_process(
    command: Sequence[str], cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> tuple[float, float, str]:
    """Run `command` to its end: (wall seconds, CPU seconds, its stdout). A non-zero exit raises
    CalledProcessError, with its stdout."""
    with tempfile.TemporaryFile("w+") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=out)
        _, status, usage = os.wait4(proc.pid, 0)  # reaps it: Popen's own wait would find it gone
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        stdout = out.read()
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, list(command), stdout)
    return wall, usage.ru_utime + usage.ru_stime, stdout
