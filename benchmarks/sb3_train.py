"""Stable-Baselines3 run the way its users run it, as one process: import SB3, train with rl-zoo's CartPole-v1
settings for rl-zoo's budget, evaluate 100 greedy episodes with SB3's `evaluate_policy`, save the model and the
scores. benchmarks/train_speed.py times this whole process against `rlship train ALGO CartPole-v1`.

    python benchmarks/sb3_train.py ppo --seed 100 --out /tmp/sb3-ppo-100
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from zoo import SB3_ZOO, sb3_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("algo", choices=list(SB3_ZOO))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--env", default="CartPole-v1")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as rlship runs (its default): one thread is the fastest for these small networks
    model = sb3_model(args.algo, args.seed, args.env)
    model.learn(SB3_ZOO[args.algo]["total_steps"])
    # one eval env (rl-zoo's and the SB3 docs' default), seeded apart from the training envs
    eval_env = make_vec_env(args.env, n_envs=1, seed=1_000_000 + args.seed)
    rewards, lengths = evaluate_policy(
        model, eval_env, n_eval_episodes=100, deterministic=True, return_episode_rewards=True
    )
    args.out.mkdir(parents=True, exist_ok=True)
    model.save(args.out / "model.zip")
    mean = sum(rewards) / len(rewards)
    std = (sum((r - mean) ** 2 for r in rewards) / len(rewards)) ** 0.5
    results = {"algorithm": args.algo, "env_id": args.env, "seed": args.seed, "mean_reward": mean}
    results |= {"std_reward": std, "episode_returns": rewards, "episode_lengths": lengths}
    results["env_steps"] = int(model.num_timesteps)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps({k: results[k] for k in ("algorithm", "seed", "mean_reward", "std_reward", "env_steps")}))


if __name__ == "__main__":
    main()
