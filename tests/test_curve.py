"""training_curve.png is drawn by a child process while the run evaluates, and in the process itself when no
child can draw it: either way the run folder gets a curve that decodes."""

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
    plot = curve.CurvePlot(ROWS, tmp_path / "curve.png", "ppo on CartPole-v1", threshold=475.0)
    assert plot.proc is not None  # a child draws it ...
    assert plot.finish() == tmp_path / "curve.png" and plot.proc.returncode == 0
    with Image.open(tmp_path / "curve.png") as image:  # ... a real PNG
        assert image.format == "PNG" and image.size == (1000, 380)


def test_without_a_child_the_run_draws_it_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", "")
    plot = curve.CurvePlot(ROWS, tmp_path / "curve.png", "t", threshold=None)
    assert plot.proc is None
    plot.finish()
    with Image.open(tmp_path / "curve.png") as image:
        assert image.format == "PNG"


def test_a_child_that_fails_leaves_the_error_to_the_run(tmp_path: Path) -> None:
    plot = curve.CurvePlot(ROWS, tmp_path / "no-such-folder" / "curve.png", "t", threshold=None)
    with pytest.raises(FileNotFoundError):  # the child failed, and drawing here fails the same way, loudly
        plot.finish()
    assert plot.proc is not None and plot.proc.returncode != 0
