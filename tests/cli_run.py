"""The `rlship` console script run as a user runs it, a real subprocess, for the tests (not a test module).

`RLSHIP` is the script installed beside the interpreter running the tests (its virtual environment's), so a test
never runs some other installed copy found first on PATH."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

RLSHIP = str(Path(sys.executable).with_name("rlship"))


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`rlship ARGS` to its end (5 minutes at most), output captured; with `check`, fail the test unless it exits 0,
    showing its stderr."""
    proc = subprocess.run([RLSHIP, *args], capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc
