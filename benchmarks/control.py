"""LunarLander and continuous control: rlship PPO's presets beside SB3 PPO with rl-zoo's settings, whole processes.

For each env, in the same run and on the same seeds:
- rlship: `rlship train ppo ENV --seed S --out DIR --no-progress` with the env's preset, a process timed from its
  start to its exit (the evaluated artifact on disk; the run ends at rlship's stop rule or its budget);
- SB3: PPO with rl-zoo's settings for the env (hyperparams/ppo.yml; VecNormalize and gSDE where rl-zoo uses them),
  run the way its users run it: a process (this file with --sb3-child) that imports SB3, trains rl-zoo's budget,
  evaluates and saves the model. Its stop-rule watch (the time SB3 would have needed under rlship's stop rule)
  runs evaluations an SB3 user would not run: their seconds are taken out of its process time.
Each process's CPU seconds (user + system, from getrusage of the children) are printed beside its wall seconds: on a
shared machine the wall seconds grow with the other jobs, the CPU seconds much less. Both are scored by rlship's
evaluation protocol: 100 greedy episodes of gymnasium.make(ENV), eval seed 0.

Seeds: held-out training seeds 100-119 (presets were tuned on 0-9 only). SB3 runs of 1e6 steps take many minutes
on a shared 2-core machine, so SB3 runs on fewer seeds (--sb3-seeds) than rlship.

    python benchmarks/control.py --envs LunarLander-v3 --seeds 100 101 102 103 104 --sb3-seeds 100
    python benchmarks/control.py --envs Pendulum-v1 --seeds 100-104 --sb3-seeds 100-104
    python benchmarks/control.py --envs MountainCarContinuous-v0 --seeds 100-104 --sb3-seeds 100 101
    python benchmarks/control.py --envs LunarLanderContinuous-v3 --sb3-seeds   # rlship only
    python benchmarks/control.py --envs LunarLanderContinuous-v3 --sb3-seeds 100 --side-by-side  # SB3 on a 2nd core
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _common import run_sb3
from _process import RLSHIP, timed_process
from zoo import SB3_PPO_ZOO as SB3_ZOO

WINDOW, CONFIRM_EPISODES = 20, 20  # rlship's stop rule (its defaults), as the SB3 watch applies it
# The score that counts as solved where the env's spec has no reward_threshold: issue 13's goal for Pendulum-v1
GOALS = {"Pendulum-v1": -200.0}


def solve_threshold(env_id: str) -> float:
    """The env's reward_threshold, or the goal above for an env that has none."""
    import gymnasium as gym

    threshold = gym.spec(env_id).reward_threshold
    return GOALS[env_id] if threshold is None else float(threshold)


def seeds_arg(values: list[str]) -> list[int]:
    """`100 101` or `100-104` (or a mix)."""
    out: list[int] = []
    for v in values:
        lo, _, hi = v.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def sb3_child(env_id: str, seed: int, out: Path) -> None:
    """One SB3 run as its users make it (rl-zoo's settings), watched by rlship's stop rule; prints a JSON line."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    torch.set_num_threads(1)
    zoo = SB3_ZOO[env_id]
    env = make_vec_env(env_id, n_envs=zoo["n_envs"], seed=seed)
    if zoo.get("normalize"):  # rl-zoo's `normalize: true`: observations and rewards, with the algorithm's gamma
        env = VecNormalize(env, gamma=zoo["kwargs"]["gamma"])
    model = PPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **zoo["kwargs"])

    def act(obs: Any) -> Any:
        if isinstance(env, VecNormalize):
            obs = env.normalize_obs(obs)
        return model.predict(obs, deterministic=True)[0]

    threshold = solve_threshold(env_id)
    run = run_sb3(model, zoo["total_steps"], WINDOW, CONFIRM_EPISODES, False, env_id, threshold, act)
    model.save(out / "model.zip")
    if isinstance(env, VecNormalize):
        env.save(str(out / "vec_normalize.pkl"))
    result = dict(
        env_steps=run.env_steps,
        learn_seconds=run.full_seconds,
        rule_seconds=run.rule_seconds,
        mean=run.evaluation.mean_reward,
        std=run.evaluation.std_reward,
        solved_at=run.solved_at,
        solved_mean=run.solved_evaluation.mean_reward if run.solved_evaluation else None,
    )
    print(json.dumps(result), flush=True)


def run_rlship(env_id: str, seed: int, out: Path) -> dict[str, Any]:
    cmd = [RLSHIP, "train", "ppo", env_id, "--seed", str(seed), "--out", str(out), "--no-progress"]
    wall, cpu, _ = timed_process(cmd)
    results = json.loads((out / "results.json").read_text())
    training = results["training"]
    return dict(
        wall=wall,
        cpu=cpu,
        env_steps=training["env_steps"],
        train_seconds=training["train_seconds"],
        mean=results["mean_reward"],
        std=results["std_reward"],
    )


def run_sb3_process(env_id: str, seed: int, out: Path) -> dict[str, Any]:
    out.mkdir(parents=True)
    wall, cpu, stdout = timed_process([sys.executable, __file__, "--sb3-child", env_id, str(seed), str(out)])
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    # the stop-rule watch is ours, not the SB3 user's (it runs on one core, so its wall seconds are its CPU seconds)
    result["wall"] = wall - result["rule_seconds"]
    result["cpu"] = cpu - result["rule_seconds"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=list(SB3_ZOO), choices=list(SB3_ZOO))
    parser.add_argument("--seeds", nargs="*", default=["100-104"], help="rlship seeds (default: held-out 100-104)")
    parser.add_argument("--sb3-seeds", nargs="*", default=["100"], help="SB3 seeds (default: 100; none: skip SB3)")
    parser.add_argument(
        "--side-by-side",
        action="store_true",
        help="run the SB3 seeds on a second thread while rlship's run (one process per core on a 2-core machine)",
    )
    parser.add_argument("--json", type=Path, help="also append every run's figures to this JSON-lines file")
    parser.add_argument("--sb3-child", nargs=3, metavar=("ENV", "SEED", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sb3_child:
        env_id, seed, out = args.sb3_child
        sb3_child(env_id, int(seed), Path(out))
        return
    seeds, sb3_seeds = seeds_arg(args.seeds), seeds_arg(args.sb3_seeds)
    tmp = Path(tempfile.mkdtemp(prefix="rlship-bench-control-"))
    print("eval: 100 greedy episodes, eval seed 0; one torch thread; wall: whole process, start to evaluated artifact")

    def record(row: dict[str, Any]) -> None:
        extra = f", SB3 met the stop rule at {row['solved_at']}" if row.get("solved_at") else ""
        print(
            f"  {row['trainer']} {row['env']} seed {row['seed']}: {row['wall']:.1f} s wall, {row['cpu']:.1f} s CPU, "
            f"{row['env_steps']:,} env "
            f"steps, eval {row['mean']:.1f} +/- {row['std']:.1f}{extra}",
            flush=True,
        )
        if args.json:
            with args.json.open("a") as f:
                f.write(json.dumps(row) + "\n")

    def play(trainer: str, run_one: Any, env_id: str, seed_list: list[int], out: list[dict[str, Any]]) -> None:
        for seed in seed_list:
            run = run_one(env_id, seed, tmp / f"{trainer.split()[0]}-{env_id}-{seed}")
            row = dict(trainer=trainer, env=env_id, seed=seed, **run)
            out.append(row)
            record(row)

    for env_id in args.envs:
        threshold = solve_threshold(env_id)
        print(f"\n{env_id} (solved: eval mean >= {threshold:g}); rlship seeds {seeds}, SB3 seeds {sb3_seeds}")
        rows: dict[str, list[dict[str, Any]]] = {"rlship ppo": [], "sb3 ppo (rl-zoo)": []}

        # SB3 first in the pool: its run is the long one
        trainers = [("sb3 ppo (rl-zoo)", run_sb3_process, sb3_seeds), ("rlship ppo", run_rlship, seeds)]
        with ThreadPoolExecutor(2 if args.side_by_side else 1) as pool:
            jobs = [
                pool.submit(play, name, run_one, env_id, seed_list, rows[name]) for name, run_one, seed_list in trainers
            ]
            for job in jobs:
                job.result()

        print(
            "\n| trainer | seeds | solved | median process wall s | median process CPU s | median env steps "
            "| eval means (per seed) |"
        )
        print("|---|---|---|---|---|---|---|")
        for name, runs in rows.items():
            if not runs:
                continue
            solved = sum(r["mean"] >= threshold for r in runs)
            means = ", ".join(f"{r['mean']:.1f}" for r in runs)
            print(
                f"| {name} | {', '.join(str(r['seed']) for r in runs)} | {solved}/{len(runs)} | "
                f"{statistics.median(r['wall'] for r in runs):.1f} | {statistics.median(r['cpu'] for r in runs):.1f} | "
                f"{statistics.median(r['env_steps'] for r in runs):,.0f} | {means} |"
            )
        ours, theirs = rows["rlship ppo"], rows["sb3 ppo (rl-zoo)"]
        if ours and theirs:
            ratio = statistics.median(r["wall"] for r in theirs) / statistics.median(r["wall"] for r in ours)
            cpu_ratio = statistics.median(r["cpu"] for r in theirs) / statistics.median(r["cpu"] for r in ours)
            score_ours = statistics.mean(r["mean"] for r in ours)
            score_theirs = statistics.mean(r["mean"] for r in theirs)
            print(
                f"ratio SB3 / rlship median process wall: {ratio:.2f}x, CPU: {cpu_ratio:.2f}x (> 1: rlship faster); "
                "mean eval score "
                f"rlship {score_ours:.1f}, SB3 {score_theirs:.1f}"
            )
            mine = {r["seed"]: r["mean"] for r in ours}
            for r in theirs:  # the same training seed: the fairest score comparison a single SB3 seed allows
                if r["seed"] in mine:
                    print(f"seed {r['seed']}: eval rlship {mine[r['seed']]:.1f}, SB3 {r['mean']:.1f}")


if __name__ == "__main__":
    main()
