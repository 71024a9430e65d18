"""Running observation normalisation (part of the policy artifact) and return-based reward scaling (training only).

`ObsNormalizer` holds the running mean, variance and count of the observations seen in training (Welford/Chan's
parallel update, as SB3's `RunningMeanStd`) and maps an observation to clip((obs - mean) / sqrt(var + epsilon),
-clip, clip). Its tensors are saved in model.safetensors next to the network's as `obs_norm.mean`, `obs_norm.var`,
`obs_norm.count`, and its settings in config.json's `observation_normalization`, so a loaded policy normalises
inside `Policy.act` (and an exported graph does the same) with nothing beside the artifact: the published agent
cannot lose its statistics the way an SB3 agent loses its `vec_normalize.pkl`.

`RewardScaler` divides rewards by the running std of the discounted return (SB3's VecNormalize `norm_reward`). It
only shapes the training signal; acting never sees it, and config.json records that it was used.

Both have `checkpoint_state` / `load_checkpoint_state`, so `run.start(obs_norm=..., reward_scaler=...)` checkpoints
them with the rest of the run.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlship import schema
from rlship.lazy_torch import torch

PREFIX = "obs_norm."
TENSORS = ("mean", "var", "count")
DEFAULT_CLIP = 10.0
DEFAULT_EPSILON = 1e-8
MAX_CLIP = 1e6


class RunningMeanStd:
    """Mean and variance of a stream of batches (Chan et al.'s parallel update), in float64 while training."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.mean = np.zeros(shape, dtype=np.float64)
        self.var = np.ones(shape, dtype=np.float64)
        self.count = 1e-4  # SB3's start: the first batch dominates at once, and no division by zero

    def update(self, batch: np.ndarray) -> None:
        batch = np.asarray(batch, dtype=np.float64)
        b_mean, b_var, b_count = batch.mean(axis=0), batch.var(axis=0), batch.shape[0]
        delta, total = b_mean - self.mean, self.count + b_count
        self.mean = self.mean + delta * b_count / total
        m2 = self.var * self.count + b_var * b_count + delta**2 * self.count * b_count / total
        self.var, self.count = m2 / total, total


class ObsNormalizer(RunningMeanStd):
    """clip((obs - mean) / sqrt(var + epsilon), -clip, clip), with statistics updated during collection only."""

    def __init__(self, shape: tuple[int, ...], clip: float = DEFAULT_CLIP, epsilon: float = DEFAULT_EPSILON) -> None:
        super().__init__(shape)
        self.clip = float(clip)
        self.epsilon = float(epsilon)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        scaled = (np.asarray(obs, dtype=np.float64) - self.mean) / np.sqrt(self.var + self.epsilon)
        return np.clip(scaled, -self.clip, self.clip).astype(np.float32)

    def torch_constants(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, 1 / sqrt(var + epsilon)) as float32 tensors, for a graph that normalises (export)."""
        mean = torch.tensor(self.mean, dtype=torch.float32)
        inv_std = torch.tensor(1.0 / np.sqrt(self.var + self.epsilon), dtype=torch.float32)
        return mean, inv_std

    # --- the artifact: tensors in model.safetensors, settings in config.json

    def settings(self) -> dict[str, Any]:
        return {"clip": self.clip, "epsilon": self.epsilon, "tensors": [PREFIX + name for name in TENSORS]}

    def tensors(self) -> dict[str, torch.Tensor]:
        # float32 like every rlship weight (the loader refuses other dtypes); the count as a 1-element tensor
        return {
            PREFIX + "mean": torch.tensor(self.mean, dtype=torch.float32),
            PREFIX + "var": torch.tensor(self.var, dtype=torch.float32),
            PREFIX + "count": torch.tensor([self.count], dtype=torch.float32),
        }

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        shape = tuple(self.mean.shape)
        return {PREFIX + "mean": shape, PREFIX + "var": shape, PREFIX + "count": (1,)}

    def load_tensors(self, tensors: dict[str, torch.Tensor] | dict[str, np.ndarray], where: str) -> None:
        """Statistics from the artifact's tensors (already checked finite and shaped); a negative variance is a
        ValueError naming `where`."""
        var = np.asarray(tensors[PREFIX + "var"], dtype=np.float64)  # torch tensors or NumPy arrays alike
        if (var < 0).any() or float(tensors[PREFIX + "count"][0]) <= 0:
            raise ValueError(f"{where}: obs_norm.var must be >= 0 and obs_norm.count > 0; the file is damaged")
        self.mean = np.asarray(tensors[PREFIX + "mean"], dtype=np.float64).copy()
        self.var = var.copy()
        self.count = float(tensors[PREFIX + "count"][0])

    @classmethod
    def from_config(cls, desc: Any, shape: tuple[int, ...], field: str = "observation_normalization") -> ObsNormalizer:
        desc = schema.mapping(desc, field)
        clip = schema.number(desc.get("clip", DEFAULT_CLIP), f"{field}.clip", 1e-3, MAX_CLIP)
        epsilon = schema.number(desc.get("epsilon", DEFAULT_EPSILON), f"{field}.epsilon", 0.0, 1.0)
        return cls(shape, clip, epsilon)

    # --- the run's checkpoint

    def checkpoint_state(self) -> tuple[dict[str, torch.Tensor], Any]:
        return {"mean": torch.from_numpy(self.mean.copy()), "var": torch.from_numpy(self.var.copy())}, {
            "count": self.count
        }

    def load_checkpoint_state(self, tensors: dict[str, torch.Tensor], state: Any) -> None:
        self.mean = tensors["mean"].numpy().astype(np.float64)
        self.var = tensors["var"].numpy().astype(np.float64)
        self.count = float(state["count"])


class RewardScaler:
    """Rewards divided by the running std of the discounted return of each env (SB3 VecNormalize's `norm_reward`),
    then clipped; returns reset where an episode ends."""

    def __init__(self, num_envs: int, gamma: float, clip: float = DEFAULT_CLIP, epsilon: float = DEFAULT_EPSILON):
        self.stats = RunningMeanStd(())
        self.returns = np.zeros(num_envs, dtype=np.float64)
        self.gamma, self.clip, self.epsilon = float(gamma), float(clip), float(epsilon)

    def __call__(self, rewards: np.ndarray, dones: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Scaled rewards of one vector step (`valid` False: a reset step, no transition: left out of the stats)."""
        self.returns = np.where(valid, self.returns * self.gamma + rewards, self.returns)
        if valid.any():
            self.stats.update(self.returns[valid])
        self.returns[dones & valid] = 0.0
        scaled = rewards / np.sqrt(self.stats.var + self.epsilon)
        return np.clip(scaled, -self.clip, self.clip).astype(np.float32)

    def settings(self) -> dict[str, Any]:
        return {"kind": "return_std", "gamma": self.gamma, "clip": self.clip, "epsilon": self.epsilon}

    def checkpoint_state(self) -> tuple[dict[str, torch.Tensor], Any]:
        return {"returns": torch.from_numpy(self.returns.copy())}, {
            "mean": float(self.stats.mean),
            "var": float(self.stats.var),
            "count": self.stats.count,
        }

    def load_checkpoint_state(self, tensors: dict[str, torch.Tensor], state: Any) -> None:
        self.returns = tensors["returns"].numpy().astype(np.float64)
        self.stats.mean = np.float64(state["mean"])
        self.stats.var = np.float64(state["var"])
        self.stats.count = float(state["count"])
