"""What one checkpoint of a large replay memory costs, and one resume from it, beside the same arrays raw.

The memory is the pixel preset's (rlship/CartPolePixels-v1, dqn): 100,000 uint8 transitions of (2, 25, 100, 1)
stacks, observation and next observation, about 1 GB. Each step in its own process (so that each peak is its own):
- write, "rlship": `Checkpointer.save` of the filled memory, as a training run takes it (safetensors, SHA-256,
  fsync, atomic rename); "raw": the floor, the same arrays written with `ndarray.tofile`, then fsync (no format,
  no checksum);
- resume, "rlship": a new run's empty memory restored by `Checkpointer(..., resume=True).track(...)`, as
  `--resume` does (SHA-256 checked, then the tensors read); "raw": its peer, the same arrays loaded with
  `np.fromfile` (no format, no checksum).
Figures: wall and CPU seconds, and the peak resident memory each step added over its process's baseline (the filled
memory for a write, the empty one, allocated but untouched, for a resume). Both resumes must give the same memory.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/checkpoint_memory.py             # 100,000 transitions, 1 GB
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/checkpoint_memory.py --transitions 20000
"""

from __future__ import annotations

import argparse
import hashlib
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

OBS_SHAPE = (2, 25, 100, 1)  # the pixel preset's frame stack when BENCHMARKS.md's figures were measured (now 3 frames)
ENV_ID = "rlship/CartPolePixels-v1"


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


def fingerprint(buffer: ReplayBuffer) -> str:
    """A digest of every 97th transition of each array: both resumes must give the memory that was written."""
    digest = hashlib.sha256(f"{buffer.pos} {buffer.size}".encode())
    for name in ReplayBuffer._ARRAYS:
        digest.update(np.ascontiguousarray(getattr(buffer, name)[::97]).tobytes())
    return digest.hexdigest()


def write(way: str, transitions: int, folder: Path) -> dict[str, float | str]:
    buffer = filled_memory(transitions)
    before = peak_rss()
    wall, cpu = time.perf_counter(), time.process_time()
    if way == "rlship":
        checkpointer = Checkpointer(folder, "dqn", ENV_ID, 0, {})
        checkpointer.track(buffer=buffer)
        checkpointer.save(env_steps=transitions)
    else:
        folder.mkdir(parents=True)
        with open(folder / "raw", "wb") as f:
            for name in ReplayBuffer._ARRAYS:
                getattr(buffer, name)[: buffer.size].tofile(f)
            f.flush()
            os.fsync(f.fileno())
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    added = peak_rss() - before
    return {"wall": wall, "cpu": cpu, "added_peak": added, "memory": buffer.nbytes, "file": size}


def resume(way: str, transitions: int, folder: Path) -> dict[str, float | str]:
    buffer = ReplayBuffer(transitions, OBS_SHAPE, np.uint8)  # a resumed run's memory, made before it is read
    before = peak_rss()
    wall, cpu = time.perf_counter(), time.process_time()
    if way == "rlship":
        Checkpointer(folder, "dqn", ENV_ID, 0, {}, resume=True).track(buffer=buffer)
    else:
        with open(folder / "raw", "rb") as f:
            for name in ReplayBuffer._ARRAYS:
                empty = getattr(buffer, name)
                setattr(buffer, name, np.fromfile(f, empty.dtype, empty.size).reshape(empty.shape))
        buffer.pos, buffer.size = 0, transitions
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    added = peak_rss() - before
    return {"wall": wall, "cpu": cpu, "added_peak": added, "memory": buffer.nbytes, "fingerprint": fingerprint(buffer)}


def child(step: str, way: str, transitions: int, folder: Path) -> dict[str, float | str]:
    out = subprocess.run(
        [sys.executable, __file__, "--transitions", str(transitions), "--one", step, way, str(folder)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transitions", type=int, default=100_000)
    parser.add_argument("--one", nargs=3, metavar=("STEP", "WAY", "FOLDER"), help=argparse.SUPPRESS)  # a child's part
    args = parser.parse_args()
    if args.one:
        step, way, folder = args.one
        print(json.dumps((write if step == "write" else resume)(way, args.transitions, Path(folder))))
        return
    gib = 2**30
    print(f"one checkpoint of a replay memory of {args.transitions:,} pixel transitions, and one resume from it")
    print(f"{'step':7} {'way':7} {'memory GiB':>10} {'file GiB':>9} {'wall s':>7} {'CPU s':>6} {'added peak GiB':>15}")
    with tempfile.TemporaryDirectory() as d:
        fingerprints = set()
        for step in ("write", "resume"):
            for way in ("rlship", "raw"):
                r = child(step, way, args.transitions, Path(d) / way)
                file = f"{r['file'] / gib:9.2f}" if "file" in r else f"{'':9}"
                fingerprints.add(r.get("fingerprint"))
                print(
                    f"{step:7} {way:7} {r['memory'] / gib:10.2f} {file} {r['wall']:7.2f} {r['cpu']:6.2f} "
                    f"{r['added_peak'] / gib:15.2f}"
                )
        if len(fingerprints - {None}) != 1:
            sys.exit("the two resumes gave different memories")


if __name__ == "__main__":
    main()
