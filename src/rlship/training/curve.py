"""training_curve.png: mean training return against env steps and against wall time."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never open a window (servers and CI have no display)
import matplotlib.pyplot as plt
import numpy as np


def plot_training_curve(
    rows: Sequence[dict[str, float]],
    path: Path,
    title: str,
    threshold: float | None = None,
    evaluation: float | None = None,
) -> Path:
    """The curve of a run's log rows; a run without updates (the random baseline) shows its evaluation mean."""
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
