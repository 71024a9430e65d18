"""Start-up as users feel it: whole `rlship` processes that should answer at once, timed from start to exit.

Each command runs `--runs` times, one process at a time; printed: the median wall seconds and the median CPU
seconds (user + system) of the process. On a busy machine the CPU seconds are the steadier figure: they are
what the process would take on an idle core. Then what a short training run imports that it does not use:
`python -X importtime` of `rlship train ppo CartPole-v1 --total-steps 2000` and the cumulative import time of
torch._dynamo, torch and matplotlib in it (torch._dynamo: absent since training/no_dynamo.py).

    python benchmarks/startup.py
    python benchmarks/startup.py --runs 3 --no-train
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _process import RLSHIP

COMMANDS = [
    ["--help"],
    ["train", "--help"],
    ["train", "ppo", "--help"],
    ["evaluate", "default", "--episodes", "10"],
]
CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run_once(command: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, env=CHILD_ENV, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def import_times(command: list[str]) -> dict[str, float]:
    """Cumulative import seconds of some top-level modules in `python -X importtime` of `command`."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *command], env=CHILD_ENV, capture_output=True, text=True, check=True
    )
    found: dict[str, float] = {}
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s?( *)(\S+)$", line)
        if match and match.group(3) in ("torch", "torch._dynamo", "matplotlib", "gymnasium"):
            found[match.group(3)] = max(found.get(match.group(3), 0.0), int(match.group(1)) / 1e6)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-train", action="store_true", help="skip the import times of a short training run")
    args = parser.parse_args()
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {args.runs} runs each\n")
    print("| command | median wall s | median CPU s |")
    print("|---|---:|---:|")
    for command in COMMANDS:
        runs = [run_once([RLSHIP, *command]) for _ in range(args.runs)]
        wall, cpu = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
        print(f"| `rlship {' '.join(command)}` | {wall:.2f} | {cpu:.2f} |", flush=True)
    if not args.no_train:
        with tempfile.TemporaryDirectory() as tmp:
            train = ["-m", "rlship", "train", "ppo", "CartPole-v1", "--total-steps", "2000", "--no-progress"]
            found = import_times([*train, "--out", str(Path(tmp) / "run")])
        shown = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in sorted(found.items()))
        print(f"\nimports of `rlship train ppo CartPole-v1 --total-steps 2000` (cumulative): {shown}")
        print(f"torch._dynamo imported: {'yes' if 'torch._dynamo' in found else 'no'}")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
