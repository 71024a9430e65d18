"""training_curve.png: mean training return against env steps and against wall time.

Importing matplotlib and drawing take about a second, as long as the final evaluation: `CurvePlot` draws in a
child process (this file run as a script, so the child imports matplotlib and NumPy, not rlship) while the parent
evaluates, and on a machine with two cores the curve costs no wall time. This module must keep importing nothing
of rlship's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

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
    """A curve being drawn by a child process; `finish()` waits for it, and draws in this process if the child
    could not (no interpreter to start, or it failed), so that a run's artifact always gets its curve."""

    def __init__(self, rows: Sequence[dict[str, float]], path: Path, title: str, threshold: float | None) -> None:
        self.job = dict(rows=list(rows), path=str(path), title=title, threshold=threshold)
        self.proc: subprocess.Popen[bytes] | None = None
        if not sys.executable:
            return
        try:
            self.proc = subprocess.Popen(
                [sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps(self.job).encode())
            self.proc.stdin.close()
            self.proc.stdin = None  # written and closed: communicate() only reads the child's stderr
        except OSError:  # no child (a sandbox without fork, a broken pipe): finish() draws here
            self.proc = None

    def finish(self) -> Path:
        if self.proc is not None:
            try:
                self.proc.communicate(timeout=300)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.communicate()
            if self.proc.returncode == 0:
                return Path(self.job["path"])
        return plot_training_curve(self.job["rows"], Path(self.job["path"]), self.job["title"], self.job["threshold"])


if __name__ == "__main__":  # the child of CurvePlot: one job as JSON on stdin
    job = json.loads(sys.stdin.read())
    plot_training_curve(job["rows"], Path(job["path"]), job["title"], job["threshold"])
