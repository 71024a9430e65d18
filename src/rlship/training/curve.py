"""training_curve.png: mean training return against env steps and against wall time.

Importing matplotlib takes about a second, longer than CartPole's final evaluation: `CurvePlot` is a child process
(this file run as a script, so the child imports matplotlib and NumPy, not rlship) started when training starts. It
imports matplotlib while the run trains, then draws the rows it is sent while the run evaluates; on a machine with
two cores the curve costs no wall time. This module must keep importing nothing of rlship's.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def plot_training_curve(
    rows: Sequence[dict[str, float]],
    path: Path,
    title: str,
    threshold: float | None = None,
    evaluation: float | None = None,
) -> Path:
    """The curve of a run's log rows; a run without updates (the random baseline) shows its evaluation mean."""
    import matplotlib  # slow to import: only where a curve is drawn

    matplotlib.use("Agg")  # files only; never open a window (servers and CI have no display)
    import matplotlib.pyplot as plt

    steps = np.array([r["env_steps"] for r in rows], dtype=float)
    wall = np.array([r["wall_seconds"] for r in rows], dtype=float)
    mean = np.array([r["return_mean"] for r in rows], dtype=float)
    std = np.array([r["return_std"] for r in rows], dtype=float)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, x, label in ((axes[0], steps, "env steps"), (axes[1], wall, "wall seconds")):
        ax.plot(x, mean, color="tab:blue", label="mean training return")
        ax.fill_between(x, mean - std, mean + std, color="tab:blue", alpha=0.2, linewidth=0)
        if threshold is not None:
            ax.axhline(threshold, color="tab:green", linestyle="--", label=f"reward threshold {threshold:g}")
        if not rows:
            if evaluation is not None:
                ax.axhline(evaluation, color="tab:orange", linestyle=":", label=f"evaluation mean {evaluation:.1f}")
            ax.text(0.5, 0.5, "no training updates (zero env steps)", transform=ax.transAxes, ha="center")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("episode return")
    axes[0].legend(loc="lower right", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


class CurvePlot:
    """The child process that draws a run's curve: started (`CurvePlot()`) when training starts, sent its job by
    `draw` when the run evaluates, waited for by `finish()`, which draws in this process if the child could not (no
    interpreter to start, or it failed), so that a run's artifact always gets its curve. `cancel()` ends a child
    that will get no job (a run that failed)."""

    def __init__(self) -> None:
        self.job: dict[str, Any] | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        if not sys.executable:
            return
        try:
            self.proc = subprocess.Popen(
                [sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
        except OSError:  # no child (a sandbox without fork): finish() draws here
            self.proc = None

    def draw(self, rows: Sequence[dict[str, float]], path: Path, title: str, threshold: float | None) -> None:
        """Send the child its job: the curve of `rows`, to `path`."""
        self.job = dict(rows=list(rows), path=str(path), title=title, threshold=threshold)
        if self.proc is None or self.proc.stdin is None:
            return
        try:
            self.proc.stdin.write(json.dumps(self.job).encode())
            self.proc.stdin.close()
        except OSError:  # the child died (a broken pipe): finish() draws here
            pass
        self.proc.stdin = None  # written and closed: communicate() only reads the child's stderr

    def finish(self) -> Path:
        if self.job is None:
            raise RuntimeError("CurvePlot.finish() before draw()")
        if self.proc is not None:
            try:
                self.proc.communicate(timeout=300)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.communicate()
            if self.proc.returncode == 0:
                return Path(self.job["path"])
        return plot_training_curve(self.job["rows"], Path(self.job["path"]), self.job["title"], self.job["threshold"])

    def cancel(self) -> None:
        """End a child that gets no job: the end of its input tells it to exit without drawing."""
        if self.proc is None or self.job is not None:
            return
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
            self.proc.stdin = None
        try:
            self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()


if __name__ == "__main__":  # the child of CurvePlot: matplotlib first (while the run trains), then one job as JSON
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot

    data = sys.stdin.read()
    if data:  # nothing: the run ended without a curve to draw
        job = json.loads(data)
        plot_training_curve(job["rows"], Path(job["path"]), job["title"], job["threshold"])
