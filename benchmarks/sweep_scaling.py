"""How a sweep's wall time scales with CPUs: the same `rlship sweep` on a local Ray instance of 1, then 2 CPUs.

    python benchmarks/sweep_scaling.py                                  # cem, CartPole-v1, seeds 100-103
    python benchmarks/sweep_scaling.py --seeds 100-105 --set total_steps=30000 --set eval_episodes=20  # docs/

Each measurement starts a fresh local Ray instance on loopback with N CPUs (`ray.init(num_cpus=N)`), runs
`rlship sweep ALGO ENV --seeds S --ray ADDRESS` against it in a fresh folder, and reads sweep.json: the sweep's
wall time (from the first task submitted to the last result, Ray's connection included), the per-seed wall times
and their sum, and the seeds' CPU seconds (their work, whatever else ran: on a free core a seed's wall time is
about its CPU time). "cores obtained" is those CPU seconds over the sweep's wall time. The ideal for N CPUs is
ceil(seeds / N) x the per-seed time; the load average beside each figure says how busy the machine was (on a
shared machine, other work takes cores from the sweep, whatever Ray's CPU count says).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import ray

from _process import RLSHIP


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", default="cem")
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--seeds", default="100-103", help="held-out seeds (default: 100-103)")
    parser.add_argument("--cpus", type=int, nargs="+", default=[1, 2], help="Ray CPUs to compare (default: 1 2)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=None,
        help="hyperparameter override (default: total_steps=5000, eval_episodes=20: a few seconds a seed)",
    )
    args = parser.parse_args()
    overrides = args.overrides or ["total_steps=5000", "eval_episodes=20"]
    tmp = Path(tempfile.mkdtemp(prefix="rlship-sweep-scaling-"))
    print(f"{args.algo} on {args.env}, seeds {args.seeds}, {' '.join(overrides)}; {os.cpu_count()} cores here\n")
    print(
        "| Ray CPUs | sweep wall s | per-seed wall s (median) | sum of seed wall s | sum of seed CPU s | speed-up "
        "| cores obtained | load avg (1 min) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    base: float | None = None
    for cpus in args.cpus:
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
        try:
            address = ray.get_runtime_context().gcs_address
            out = tmp / f"cpus-{cpus}"
            command = [RLSHIP, "sweep", args.algo, args.env, "--seeds", args.seeds, "--out", str(out)]
            command += [*(x for o in overrides for x in ("--set", o)), "--ray", address]
            load_before = os.getloadavg()[0]
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            total = time.perf_counter() - start
        finally:
            ray.shutdown()
        data = json.loads((out / "sweep.json").read_text())
        seeds = [r["wall_seconds"] for r in data["runs"]]
        base = base or data["engine"]["wall_seconds"]
        ideal = math.ceil(len(seeds) / args.cpus[0]) / math.ceil(len(seeds) / cpus)
        print(
            f"| {cpus} | {data['engine']['wall_seconds']:.1f} | {statistics.median(seeds):.1f} | {sum(seeds):.1f} | "
            f"{sum(r['cpu_seconds'] for r in data['runs']):.1f} | "
            f"{base / data['engine']['wall_seconds']:.2f}x (ideal {ideal:.2f}x) | "
            f"{sum(r['cpu_seconds'] for r in data['runs']) / data['engine']['wall_seconds']:.2f} | "
            f"{load_before:.1f} -> {os.getloadavg()[0]:.1f} |"
        )
        print(f"  (the whole command, Python start-up and Ray connection included: {total:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
