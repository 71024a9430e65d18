"""`Algorithm`: what an algorithm module declares (its name, summary, config dataclass, presets and `learn`).

It imports neither torch nor the run machinery (training/run.py), so that the registry, `rlship train --help` and
the sweep's planning read every algorithm's hyperparameters without paying for torch; `train` imports them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from rlship.training.settings import Settings, config_with_preset, field_default

if TYPE_CHECKING:
    from rlship.training.checkpoint import CheckpointOptions
    from rlship.training.run import Run, TrainResult

C = TypeVar("C", bound=Settings)


@dataclass(frozen=True)
class Algorithm(Generic[C]):
    """What an algorithm module declares (one line in `rlship.training.ALGORITHMS` registers it): its name, a
    one-line summary (for `--help` and the model card), its config dataclass, its tuned presets per env id, and
    `learn(run, cfg)`, its loop."""

    name: str
    summary: str
    config_cls: type[C]
    presets: dict[str, dict[str, Any]]
    learn: Callable[[Run, C], None]

    def make_config(self, env_id: str, **overrides: Any) -> C:
        """The config: the dataclass defaults < the env's preset < overrides (None values are ignored)."""
        return config_with_preset(self.config_cls, self.presets, env_id, overrides)

    def checkpoint_settings(self, saved: dict[str, Any]) -> dict[str, Any]:
        """The settings to rebuild a checkpointed run's config from (with `make_config`): its saved hyperparameters,
        and for each setting added since it was written, the dataclass default, which keeps the behaviour from
        before the setting existed; not the env's preset, which may use the new setting (Pendulum-v1's
        noise_repeat), so that the resumed run would differ from the checkpoint's."""
        added = {f.name: field_default(f) for f in fields(self.config_cls) if f.name not in saved}  # type: ignore[arg-type]
        return {**added, **saved}

    def hyperparameter_names(self) -> list[str]:
        return [f.name for f in fields(self.config_cls)]  # type: ignore[arg-type]

    def train(
        self,
        env_id: str,
        config: C | None = None,
        seed: int = 0,
        out: str | Path | None = None,
        progress: bool = True,
        env_kwargs: dict[str, Any] | None = None,
        checkpoint: CheckpointOptions | None = None,
        overwrite: bool = False,
    ) -> TrainResult:
        """Train on `env_id` and write the run folder `out` (default runs/ALGO-ENV_ID-sSEED): a new or empty
        folder, an earlier run of this kind with `overwrite`, or one to resume (`checkpoint.resume`)."""
        from rlship.allocator import keep_freed_memory
        from rlship.training.run import Run  # torch and the envs: only once a run starts

        cfg = config if config is not None else self.make_config(env_id)
        # a gradient step's (and a rendered frame's) freed memory is not faulted back in at the next (allocator.py)
        with keep_freed_memory():
            run = Run(self, env_id, cfg, seed, out, progress, env_kwargs, checkpoint, overwrite)
            with run.running():
                self.learn(run, cfg)
            return run.finish()
