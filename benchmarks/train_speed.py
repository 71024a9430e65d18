"""Training speed: rlship PPO against Stable-Baselines3 PPO with rl-zoo's tuned CartPole-v1 hyperparameters.

Both trainers run here, in this one process, on the same seeds, one torch thread each, and every trained policy
is scored by rlship's evaluation protocol (100 greedy episodes of gymnasium.make("CartPole-v1"), eval seed 0).
Two SB3 times are printed for each seed:
- "sb3 rl-zoo": the full 1e5-step run rl-zoo makes (the baseline the speed goal names);
- "sb3 same stop": SB3 stopped by rlship's stop rule (running return of the last 20 training episodes >= 475,
  then a confirming evaluation), so both trainers are also compared under one definition of "solved".
Then rlship PPO on Acrobot-v1 (and LunarLander-v3 when Box2D is installed) with the env's preset.

    python benchmarks/train_speed.py                   # the README's table
    python benchmarks/train_speed.py --seeds 100 --no-extra
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

from _common import ENV, THRESHOLD, SB3Run, run_sb3
from rlship.evaluation import EvalResult
from rlship.training import ppo

ZOO = dict(n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0)
ZOO_ENVS, ZOO_STEPS = 8, 100_000


def sb3_run(seed: int, window: int, confirm_episodes: int) -> SB3Run:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    lr, clip = 1e-3, 0.2
    env = make_vec_env(ENV, n_envs=ZOO_ENVS, seed=seed)
    model = PPO(
        "MlpPolicy",
        env,
        learning_rate=lambda p: p * lr,
        clip_range=lambda p: p * clip,
        seed=seed,
        device="cpu",
        verbose=0,
        **ZOO,
    )
    return run_sb3(model, ZOO_STEPS, window, confirm_episodes, stop_when_solved=False)


def row(name: str, seed: int, seconds: float | None, steps: int | None, ev: EvalResult | None) -> str:
    secs = f"{seconds:.2f}" if seconds is not None else "not solved"
    steps_s = f"{steps:,}" if steps is not None else "-"
    score = f"{ev.mean_reward:.1f} +/- {ev.std_reward:.1f}" if ev else "-"
    solved = "yes" if ev and ev.mean_reward >= THRESHOLD else ("-" if ev is None else "no")
    return f"| {name} | {seed} | {secs} | {steps_s} | {score} | {solved} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(100, 105)), help="held-out seeds")
    parser.add_argument("--no-sb3", action="store_true", help="skip the peer (for a quick look at rlship alone)")
    parser.add_argument("--no-extra", action="store_true", help="skip Acrobot-v1 and LunarLander-v3")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = ppo.make_config(ENV)
    tmp = Path(tempfile.mkdtemp(prefix="rlship-bench-"))

    print(f"CartPole-v1, seeds {args.seeds}; eval: 100 greedy episodes, eval seed 0; torch threads 1\n")
    print("| trainer | seed | train wall s (to stop) | env steps | eval mean +/- std | solved |")
    print("|---|---|---|---|---|---|")
    ours: list[float] = []
    zoo_full: list[float] = []
    zoo_stop: list[float] = []
    for seed in args.seeds:
        result = ppo.train(ENV, cfg, seed=seed, out=tmp / f"rlship-{seed}", progress=False)
        ours.append(result.train_seconds)
        print(row("rlship ppo", seed, result.train_seconds, result.env_steps, result.evaluation), flush=True)
        if args.no_sb3:
            continue
        sb3 = sb3_run(seed, cfg.solve_window, cfg.confirm_episodes)
        zoo_full.append(sb3.full_seconds)
        print(row("sb3 rl-zoo (1e5 steps)", seed, sb3.full_seconds, ZOO_STEPS, sb3.evaluation), flush=True)
        solved_at = sb3.solved_at
        if solved_at:
            zoo_stop.append(solved_at[0])
        print(
            row(
                "sb3 same stop rule",
                seed,
                solved_at[0] if solved_at else None,
                solved_at[1] if solved_at else None,
                sb3.solved_evaluation,
            ),
            flush=True,
        )

    print(
        f"\nrlship ppo: train wall {statistics.mean(ours):.2f} s mean, {statistics.median(ours):.2f} s median, "
        f"max {max(ours):.2f} s over {len(ours)} seeds"
    )
    if zoo_full:
        print(
            f"sb3 rl-zoo: {statistics.mean(zoo_full):.2f} s mean -> ratio sb3/rlship "
            f"{statistics.mean(zoo_full) / statistics.mean(ours):.1f}x (mean), "
            f"{min(zoo_full) / max(ours):.1f}x (slowest rlship seed vs fastest sb3 seed)"
        )
    if zoo_stop:
        print(
            f"sb3 same stop rule: {statistics.mean(zoo_stop):.2f} s mean over {len(zoo_stop)} solved seeds -> "
            f"ratio {statistics.mean(zoo_stop) / statistics.mean(ours):.1f}x"
        )

    if args.no_extra:
        return
    print("\n| env | seed | train wall s | env steps | eval mean +/- std | threshold | solved |")
    print("|---|---|---|---|---|---|---|")
    for env_id in ("Acrobot-v1", "LunarLander-v3"):
        try:
            result = ppo.train(env_id, seed=0, out=tmp / env_id, progress=False)
        except Exception as exc:  # Box2D missing: say so and go on
            print(f"| {env_id} | 0 | skipped: {type(exc).__name__}: {exc} | | | | |")
            continue
        ev = result.evaluation
        print(
            f"| {env_id} | 0 | {result.train_seconds:.1f} | {result.env_steps:,} | {ev.mean_reward:.1f} +/- "
            f"{ev.std_reward:.1f} | {result.reward_threshold} | {'yes' if result.solved else 'no'} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
