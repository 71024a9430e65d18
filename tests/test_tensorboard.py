"""TensorBoard: the train log's rows as scalars beside train_log.csv, and training without tensorboard installed."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

from rlship.training import ppo, train_log
from rlship.training.stop_rule import EpisodeStats
from rlship.training.train_log import TrainLog
from tests.training_helpers import read_scalars


def test_training_writes_the_log_rows_as_tensorboard_scalars(tmp_path: Path) -> None:
    cfg = ppo.make_config("CartPole-v1", total_steps=3000, eval_episodes=5)
    result = ppo.train("CartPole-v1", cfg, seed=0, out=tmp_path / "run", progress=False)
    assert list(result.out.glob("events.out.tfevents.*"))  # beside train_log.csv
    with (result.out / "train_log.csv").open() as f:
        rows = list(csv.DictReader(f))
    scalars = read_scalars(result.out)
    for column, tag in [
        ("return_mean", "rollout/return_mean"),
        ("episodes", "rollout/episodes"),
        ("policy_loss", "train/policy_loss"),
        ("value_loss", "train/value_loss"),
        ("entropy", "train/entropy"),
        ("approx_kl", "train/approx_kl"),
        ("learning_rate", "train/learning_rate"),
    ]:
        assert [step for step, _ in scalars[tag]] == [int(r["env_steps"]) for r in rows], tag  # x axis: env steps
        assert [value for _, value in scalars[tag]] == pytest.approx([float(r[column]) for r in rows], rel=1e-6)
    assert "time/steps_per_second" in scalars and all(v > 0 for _, v in scalars["time/steps_per_second"])
    assert 0.5 < scalars["train/entropy"][0][1] <= 0.6932  # a real signal: near ln 2 for a fresh 2-action policy


def test_without_tensorboard_training_works_and_says_so_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # what an uninstalled package looks like
    monkeypatch.setattr(train_log, "_tensorboard_notice_given", False)
    stats = EpisodeStats(1, window=2)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        log = TrainLog(tmp_path / name, 10, ["loss"], progress=False, desc=name)
        log.log(5, stats, loss=1.0)
        log.log(10, stats, loss=0.5)
        log.close()
        assert (tmp_path / name / "train_log.csv").read_text().count("\n") == 3  # header + 2 rows, as always
        assert not list((tmp_path / name).glob("events.out.tfevents.*"))
    err = capsys.readouterr().err
    assert err.count("TensorBoard logging is off") == 1 and "pip install 'rlship[tensorboard]'" in err
