"""What one checkpoint of a large replay memory costs, beside writing the same arrays raw.

The memory is the pixel preset's (rlship/CartPolePixels-v1, dqn): 100,000 uint8 transitions of (2, 25, 100, 1)
stacks, observation and next observation, about 1 GB. Two ways of writing it, each in its own process (so that
each peak is its own):
- "rlship": `Checkpointer.save` of the replay memory, as a training run takes it (safetensors, SHA-256, fsync,
  atomic rename);
- "raw": the floor: the same arrays written with `ndarray.tofile`, then fsync (no format, no checksum).
Figures: wall and CPU seconds of the write, and the peak resident memory it added over the filled memory.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/checkpoint_memory.py             # 100,000 transitions, 1 GB
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/checkpoint_memory.py --transitions 20000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rlship.training.checkpoint import Checkpointer
from rlship.training.dqn import ReplayBuffer

OBS_SHAPE = (2, 25, 100, 1)  # the pixel preset's frame stack


def peak_rss() -> int:
    """This process's peak resident memory in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def filled_memory(transitions: int) -> ReplayBuffer:
    buffer = ReplayBuffer(transitions, OBS_SHAPE, np.uint8)
    rng = np.random.default_rng(0)
    chunk = 1000
    for start in range(0, transitions, chunk):  # every page written, as a run that filled it has
        n = min(chunk, transitions - start)
        obs = rng.integers(0, 256, (n, *OBS_SHAPE), dtype=np.uint8)
        buffer.add(obs, np.zeros(n, dtype=np.int64), np.ones(n, np.float32), obs, np.zeros(n, bool), np.ones(n, bool))
    return buffer


def one(way: str, transitions: int) -> dict[str, float]:
    buffer = filled_memory(transitions)
    with tempfile.TemporaryDirectory() as d:
        before = peak_rss()
        wall, cpu = time.perf_counter(), time.process_time()
        if way == "rlship":
            checkpointer = Checkpointer(d, "dqn", "rlship/CartPolePixels-v1", 0, {})
            checkpointer.track(buffer=buffer)
            checkpointer.save(env_steps=transitions)
        else:
            with open(Path(d) / "raw", "wb") as f:
                for name in ReplayBuffer._ARRAYS:
                    getattr(buffer, name)[: buffer.size].tofile(f)
                f.flush()
                os.fsync(f.fileno())
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        size = sum(p.stat().st_size for p in Path(d).rglob("*") if p.is_file())
    return {"wall": wall, "cpu": cpu, "added_peak": peak_rss() - before, "memory": buffer.nbytes, "file": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transitions", type=int, default=100_000)
    parser.add_argument("--one", choices=("rlship", "raw"), help=argparse.SUPPRESS)  # a child process's part
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.transitions)))
        return
    gib = 2**30
    print(f"one checkpoint of a replay memory of {args.transitions:,} pixel transitions")
    print(f"{'way':8} {'memory GiB':>10} {'file GiB':>9} {'wall s':>7} {'CPU s':>6} {'added peak GiB':>15}")
    for way in ("rlship", "raw"):
        out = subprocess.run(
            [sys.executable, __file__, "--one", way, "--transitions", str(args.transitions)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        r = json.loads(out)
        print(
            f"{way:8} {r['memory'] / gib:10.2f} {r['file'] / gib:9.2f} {r['wall']:7.2f} {r['cpu']:6.2f} "
            f"{r['added_peak'] / gib:15.2f}"
        )


if __name__ == "__main__":
    main()
