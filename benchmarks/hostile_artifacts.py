"""Malformed artifacts: how long `rlship.load_policy` takes to refuse each, and how much memory it spends doing so.

Goal (issue 15): every malformed artifact is an ArtifactError in under a second and under 300 MB. Before the
checks, `hidden_sizes: [8192, 8192]` cost 30 s and 1.6 GB, `[10**9]` tried to allocate 16-256 GB.

Side by side, in the same process: loading the valid policy the malformed ones are made from (the embedded
CartPole-v1 default). Each case is written into a fresh copy of it (the catalogue is the test suite's,
tests/malformed_artifacts.py), then loaded; the figures are the wall milliseconds to the ArtifactError and the
growth of the process's peak RSS (ru_maxrss) over a warmed-up valid load.

    python benchmarks/hostile_artifacts.py              # run from the repository root
"""

from __future__ import annotations

import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests package holds the catalogue

from tests.malformed_artifacts import MALFORMED, write_malformed

from rlship import ArtifactError, load_policy
from rlship.sources import default_policy_dir


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    root = Path(tempfile.mkdtemp())
    try:
        good = root / "good"
        shutil.copytree(default_policy_dir(), good)
        load_policy(good).act([[0.0] * 4])  # warm-up: torch, safetensors, the load path
        valid_ms = []
        for _ in range(20):
            start = time.perf_counter()
            load_policy(good)
            valid_ms.append((time.perf_counter() - start) * 1000)
        baseline = peak_mb()
        print(f"peer: valid default policy, median of 20 loads: {statistics.median(valid_ms):.2f} ms")
        print(f"baseline peak RSS (torch imported, one valid load): {baseline:.0f} MB\n")
        print(f"{'malformed artifact':34} {'ms to ArtifactError':>20} {'peak RSS growth MB':>20}")
        worst_ms = 0.0
        for i, name in enumerate(MALFORMED):
            folder = root / str(i)
            shutil.copytree(good, folder)
            write_malformed(folder, name)
            start = time.perf_counter()
            try:
                load_policy(folder)
                raise SystemExit(f"{name}: loaded without an error")
            except ArtifactError:
                elapsed = (time.perf_counter() - start) * 1000
            worst_ms = max(worst_ms, elapsed)
            print(f"{name:34} {elapsed:20.2f} {peak_mb() - baseline:20.1f}")
        print(
            f"\n{len(MALFORMED)} malformed artifacts: slowest refusal {worst_ms:.1f} ms (goal < 1000 ms); "
            f"peak RSS growth {peak_mb() - baseline:.1f} MB over the baseline (goal: process < 300 MB growth)"
        )
    finally:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
