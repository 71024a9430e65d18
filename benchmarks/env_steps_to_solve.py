"""Env steps (and wall seconds) until each seed's run stops, one `ALGORITHMS[algo].train` per seed, one JSON line
each: the machine-independent side of comparing two versions of rlship (run it once per checkout, e.g. with
PYTHONPATH=/path/to/other/checkout/src, and compare env steps; wall seconds only on an otherwise idle machine).

    python benchmarks/env_steps_to_solve.py a2c 0 1 2 3 4 100 101 102 103 104
"""

from __future__ import annotations

import json
import sys
import tempfile
import time

from rlship.training import ALGORITHMS


def main() -> None:
    algo, seeds = sys.argv[1], [int(s) for s in sys.argv[2:]]
    for seed in seeds:
        with tempfile.TemporaryDirectory() as d:
            start = time.perf_counter()
            result = ALGORITHMS[algo].train("CartPole-v1", seed=seed, out=d + "/run", progress=False)
            row = {
                "algo": algo,
                "seed": seed,
                "steps": result.env_steps,
                "eval": result.evaluation.mean_reward,
                "solved": result.solved,
                "train_s": round(result.train_seconds, 2),
                "wall": round(time.perf_counter() - start, 1),
            }
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
