"""training_curve.png is drawn by a child process (started with training, drawing while the run evaluates), and in
the process itself when no child can draw it: either way the run folder gets a curve that decodes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PIL import Image

from rlship.training import curve

ROWS = [
    {"env_steps": 1000.0 * i, "wall_seconds": 0.5 * i, "return_mean": 20.0 * i, "return_std": 5.0} for i in range(1, 6)
]


def test_the_curve_is_drawn_by_a_child_process(tmp_path: Path) -> None:
    plot = curve.CurvePlot()
    plot.draw(ROWS, tmp_path / "curve.png", "ppo on CartPole-v1", threshold=475.0)
    assert plot.proc is not None  # a child draws it ...
    assert plot.finish() == tmp_path / "curve.png" and plot.proc.returncode == 0
    with Image.open(tmp_path / "curve.png") as image:  # ... a real PNG
        assert image.format == "PNG" and image.size == (1000, 380)


def test_without_a_child_the_run_draws_it_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", "")
    plot = curve.CurvePlot()
    plot.draw(ROWS, tmp_path / "curve.png", "t", threshold=None)
    assert plot.proc is None
    plot.finish()
    with Image.open(tmp_path / "curve.png") as image:
        assert image.format == "PNG"


def test_a_child_that_fails_leaves_the_error_to_the_run(tmp_path: Path) -> None:
    plot = curve.CurvePlot()
    plot.draw(ROWS, tmp_path / "no-such-folder" / "curve.png", "t", threshold=None)
    with pytest.raises(FileNotFoundError):  # the child failed, and drawing here fails the same way, loudly
        plot.finish()
    assert plot.proc is not None and plot.proc.returncode != 0


def test_a_child_that_gets_no_job_exits_without_drawing(tmp_path: Path) -> None:
    plot = curve.CurvePlot()  # a run that fails after training started: the child is cancelled
    assert plot.proc is not None
    plot.cancel()
    assert plot.proc.returncode == 0 and not list(tmp_path.iterdir())


def test_a_run_that_fails_leaves_no_curve_child(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rlship.training import ALGORITHMS, ppo

    started: list[curve.CurvePlot] = []
    real = curve.CurvePlot.__init__

    def remember(self: curve.CurvePlot) -> None:
        real(self)
        started.append(self)

    def broken_update(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a failing update")

    monkeypatch.setattr(curve.CurvePlot, "__init__", remember)
    monkeypatch.setattr(ppo, "_update", broken_update)
    config = ALGORITHMS["ppo"].make_config("CartPole-v1", total_steps=4096)
    with pytest.raises(RuntimeError, match="a failing update"):
        ALGORITHMS["ppo"].train("CartPole-v1", config, seed=0, out=tmp_path / "run", progress=False)
    [child] = started  # started with training, and ended with the run
    assert child.proc is not None and child.proc.poll() is not None
