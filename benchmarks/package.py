"""Packaging time: `rlship package` of a solved CartPole-v1 policy (100-episode evaluation + a 501-frame replay).

Goal: under 5 s on this project's 2-core machine. Each repeat packages the policy into a fresh folder with
`rlship.hub.package.package_policy` (what `rlship package` runs) and prints where the time goes. Imports are
excluded (done once, before the first repeat); load, copy, evaluation, video render, video encode and card are
all included. The machine is often shared, so next to the wall time each repeat also prints the CPU seconds it
used (this process, and the ffmpeg child that encodes): the process's CPU time is about what the wall time would be
on an idle machine (it runs on one thread; ffmpeg encodes alongside it on the other core).

Side by side, in the same run: the replay made the common way (every frame collected in a list, then one
`imageio.mimwrite` call), against rlship's streaming writer (each frame piped to ffmpeg as it is rendered).

    python benchmarks/package.py                      # the embedded default policy, 3 repeats
    python benchmarks/package.py --source runs/ppo-CartPole-v1-s0 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import torch

import rlship
from rlship.evaluation import EVAL_SEED_OFFSET
from rlship.hub.package import package_policy

PARTS = ("load", "copy", "evaluation", "video_render", "video_encode", "card")


def collect_then_encode(policy: rlship.Policy, path: Path) -> tuple[float, float, int]:
    """The usual recipe: render every frame into a list, then hand the list to imageio. (render s, encode s, MB)"""
    import imageio.v2 as imageio

    env = gym.make(policy.spec.env_id, render_mode="rgb_array")
    start = time.perf_counter()
    obs, _ = env.reset(seed=EVAL_SEED_OFFSET)
    frames = [env.render()]
    done = False
    while not done:
        obs, _, terminated, truncated, _ = env.step(policy.act(obs[None]).actions[0])
        frames.append(env.render())
        done = terminated or truncated
    render = time.perf_counter() - start
    held_mb = sum(f.nbytes for f in frames) // 2**20
    start = time.perf_counter()
    imageio.mimwrite(path, frames, fps=env.metadata["render_fps"], codec="libx264", macro_block_size=2)
    env.close()
    return render, time.perf_counter() - start, held_mb


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # finished children: ffmpeg, once its writer is closed
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="default", help="a solved policy (default: the embedded CartPole-v1 one)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"machine: {os.cpu_count()} CPUs, load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    policy = rlship.load_policy(args.source)
    totals = []
    with tempfile.TemporaryDirectory() as tmp:
        print(f"\nrlship package {args.source} (100 evaluation episodes, replay of the first one)\n")
        print(
            "| repeat | total s | cpu s (rlship) | cpu s (ffmpeg) | "
            + " | ".join(PARTS)
            + " | mean_reward | replay frames |"
        )
        print("|---" * (len(PARTS) + 6) + "|")
        cpus = []
        for i in range(args.repeats):
            start, cpu, child = time.perf_counter(), time.process_time(), _children_cpu()
            package = package_policy(args.source, Path(tmp) / f"hub{i}", episodes=100, seed=0)
            total = time.perf_counter() - start
            cpu, child = time.process_time() - cpu, _children_cpu() - child
            totals.append(total)
            cpus.append(cpu)
            cells = " | ".join(f"{package.timings[p]:.2f}" for p in PARTS)
            print(
                f"| {i} | {total:.2f} | {cpu:.2f} | {child:.2f} | {cells} | {package.evaluation.metric} | "
                f"{package.replay_steps + 1} |"
            )
        median = statistics.median(totals)
        verdict = "meets" if median < 5 else "MISSES"
        print(f"\nwall: median {median:.2f} s, max {max(totals):.2f} s over {args.repeats} repeats: {verdict} 5 s")
        print(f"cpu (rlship process): median {statistics.median(cpus):.2f} s, max {max(cpus):.2f} s")

        render, encode, held = collect_then_encode(policy, Path(tmp) / "peer.mp4")
        ours = package.timings["video_render"] + package.timings["video_encode"]
        print("\nreplay video, same episode, last repeat vs the collect-then-mimwrite recipe:")
        print("| writer | render s | encode s | total s | frames held in memory |")
        print("|---|---|---|---|---|")
        print(
            f"| rlship (streamed to ffmpeg) | {package.timings['video_render']:.2f} | "
            f"{package.timings['video_encode']:.2f} | {ours:.2f} | 1 |"
        )
        print(f"| list + imageio.mimwrite | {render:.2f} | {encode:.2f} | {render + encode:.2f} | all ({held} MB) |")
        print(f"ratio (mimwrite / rlship): {(render + encode) / ours:.2f}x")
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
