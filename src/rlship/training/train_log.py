"""train_log.csv (one row per update), the same rows as TensorBoard scalars, and the progress bar."""

from __future__ import annotations

import csv
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from tqdm import tqdm

from rlship.run_folder import LOG_FILE
from rlship.training.stop_rule import EpisodeStats

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

# TensorBoard tags of the columns every TrainLog has; an algorithm's own columns go under "train/".
TENSORBOARD_TAGS = {
    "wall_seconds": "time/wall_seconds",
    "episodes": "rollout/episodes",
    "return_mean": "rollout/return_mean",
    "return_std": "rollout/return_std",
}
_tensorboard_notice_given = False


class TrainLog:
    """train_log.csv (one row per update, flushed as it goes so a run can be watched), the same rows as
    TensorBoard scalars beside it (when the tensorboard package is installed; x axis: env steps), and the
    progress bar."""

    # The columns every log starts with: also how an unfinished run's folder is known as rlship's (training/run.py)
    HEADER_START = "env_steps,wall_seconds,episodes,return_mean"

    def __init__(self, out: Path, total_steps: int, fields: Sequence[str], progress: bool, desc: str) -> None:
        self.out = out
        self.fields = [*self.HEADER_START.split(","), "return_std", *fields]
        self.rows: list[dict[str, float]] = []
        # Opened at the first row (or restore, or close): until then a resume that fails leaves the old log intact.
        self._file: IO[str] | None = None
        self._writer: csv.DictWriter[str] | None = None
        self._bar = tqdm(total=total_steps, desc=desc, unit="step", disable=not progress, dynamic_ncols=True)
        # Imported here, before the clock starts (about 0.3 s, once per process); the writer itself opens at the
        # first row, once a resume (if any) has said which steps to purge.
        self._summary_writer_cls = import_summary_writer()
        self._tensorboard: SummaryWriter | None = None
        self._tensorboard_opened = False
        self._restored_steps: int | None = None
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def _csv(self) -> csv.DictWriter[str]:
        if self._writer is None:
            self._file = (self.out / LOG_FILE).open("w", newline="")
            self._writer = csv.DictWriter(self._file, fieldnames=self.fields)
            self._writer.writeheader()
        return self._writer

    def restore(self, rows: list[dict[str, float]], elapsed: float) -> None:
        """Go on from a checkpoint: its rows are the log so far (rows written after it, by a run that crashed,
        are dropped), and the clock goes on from its elapsed seconds."""
        if self._file is not None:  # rows logged before the restore are replaced, not kept
            self._file.close()
            self._file = self._writer = None
        self._csv().writerows(rows)
        assert self._file is not None
        self._file.flush()
        self.rows = list(rows)
        self.start = time.perf_counter() - elapsed
        self._restored_steps = int(rows[-1]["env_steps"]) if rows else 0
        self._bar.update(self._restored_steps - self._bar.n)

    def log(self, env_steps: int, stats: EpisodeStats, **values: float) -> None:
        row = {
            "env_steps": env_steps,
            "wall_seconds": round(self.elapsed(), 4),
            "episodes": stats.episodes,
            "return_mean": stats.mean(),
            "return_std": stats.std(),
            **values,
        }
        self.rows.append(row)
        self._csv().writerow(row)
        assert self._file is not None
        self._file.flush()
        self._log_tensorboard(row)
        self._bar.update(env_steps - self._bar.n)
        self._bar.set_postfix(
            episodes=stats.episodes,
            ret=f"{stats.mean():.1f}",
            sps=f"{env_steps / max(self.elapsed(), 1e-9):.0f}",
            refresh=False,
        )

    def _log_tensorboard(self, row: dict[str, float]) -> None:
        if not self._tensorboard_opened:
            self._tensorboard_opened = True
            # A resumed run drops the events a crashed run wrote after its checkpoint (TensorBoard's purge_step).
            purge = None if self._restored_steps is None else self._restored_steps + 1
            if self._summary_writer_cls is not None:
                # A deep queue: with the default (10) each add_scalar waits for the writer thread (~0.4 ms a scalar)
                self._tensorboard = self._summary_writer_cls(
                    str(self.out), purge_step=purge, max_queue=10_000, flush_secs=30
                )
        if self._tensorboard is None:
            return
        step = int(row["env_steps"])
        for name, value in row.items():
            if name != "env_steps" and value is not None:
                self._tensorboard.add_scalar(TENSORBOARD_TAGS.get(name, f"train/{name}"), value, step)
        self._tensorboard.add_scalar("time/steps_per_second", step / max(row["wall_seconds"], 1e-9), step)

    # A checkpoint holds the rows and the elapsed time; the CSV is rewritten from them on resume.
    def checkpoint_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return {}, {"fields": self.fields, "rows": self.rows, "elapsed": self.elapsed()}

    def load_checkpoint_state(self, tensors: dict[str, Any], meta: dict[str, Any]) -> None:
        if meta["fields"] != self.fields:
            raise ValueError(f"train log columns differ: checkpoint {meta['fields']}, now {self.fields}")
        self.restore(meta["rows"], float(meta["elapsed"]))

    def close(self) -> None:  # the run closes its log when training ends, failed or not
        self._bar.close()
        if self._file is None or not self._file.closed:
            self._csv()  # a run without rows still leaves its header
            assert self._file is not None
            self._file.close()
        if self._tensorboard is not None:
            self._tensorboard.close()


def import_summary_writer() -> type[SummaryWriter] | None:
    """torch's SummaryWriter, or None (said once per process) when the tensorboard package is not installed."""
    global _tensorboard_notice_given
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        if not _tensorboard_notice_given:
            _tensorboard_notice_given = True
            print(
                "rlship: TensorBoard logging is off (the tensorboard package is not installed); "
                "pip install 'rlship[tensorboard]' to write event files beside train_log.csv",
                file=sys.stderr,
            )
        return None
    return SummaryWriter
