"""What a fresh interpreter, as a user's shell starts one, has loaded after some work (not a test module): for the
tests that keep heavy or optional libraries (torch, the Hub's, pygame) and whole layers out of what a light import
or command loads."""

from __future__ import annotations

import json
import subprocess
import sys

# Appended to the code run: the names in sys.modules, read before json is imported to print them
_REPORT = "\nimport sys as _sys\n_loaded = sorted(_sys.modules)\nimport json as _json\nprint(_json.dumps(_loaded))\n"


def modules_loaded_by(code: str, *argv: str) -> set[str]:
    """The modules a fresh interpreter has loaded once it has run `code` (with `argv` as sys.argv[1:])."""
    done = subprocess.run([sys.executable, "-c", code + _REPORT, *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def modules_after_importing(*modules: str) -> set[str]:
    """The modules a fresh interpreter has loaded once it has imported `modules`."""
    return modules_loaded_by(f"import {', '.join(modules)}")
