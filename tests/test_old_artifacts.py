"""Artifacts made before the training core was reshaped still load, act, evaluate, package and resume their
folder rules: tests/data/ppo-made-by-a25058b is a run folder written by `rlship train ppo CartPole-v1 --seed 5
--total-steps 2048 --hidden-sizes 8 8 --eval-episodes 5` at commit a25058b (format_version 1, no
algorithm_summary in config.json)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from rlship import evaluate, load_policy
from rlship.cli import main
from rlship.hub.package import package_policy
from rlship.run_folder import read_results

OLD = Path(__file__).resolve().parent / "data" / "ppo-made-by-a25058b"


def test_an_old_run_folder_loads_and_acts() -> None:
    policy = load_policy(OLD)
    assert policy.spec.algorithm == "ppo" and "algorithm_summary" not in policy.config
    result = policy.act(np.zeros((3, 4), np.float32))
    assert result.actions.shape == (3,) and result.values is not None
    results = read_results(OLD)
    assert results is not None and results.evaluation.n_eval_episodes == 5 and not results.interrupted
    assert evaluate(policy, episodes=3).n_eval_episodes == 3


def test_an_old_run_folder_packages(tmp_path: Path) -> None:
    package = package_policy(OLD, tmp_path / "hub", episodes=2)
    assert (package.folder / "README.md").is_file()
    assert json.loads((package.folder / "results.json").read_text())["interrupted"] is False


def test_an_old_run_is_own_for_overwrite(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(OLD, run)
    args = ["train", "ppo", "CartPole-v1", "--out", str(run), "--no-progress", "--total-steps", "512"]
    assert main([*args, "--eval-episodes", "2"]) == 1  # an rlship run of the same kind: needs --overwrite
    assert main([*args, "--eval-episodes", "2", "--overwrite", "--hidden-sizes", "8"]) == 0
    assert json.loads((run / "config.json").read_text())["hyperparameters"]["hidden_sizes"] == [8]
