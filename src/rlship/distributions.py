"""Action distributions over a network's outputs, one place for the maths that acting, training and export share.

Discrete actions: a categorical over the "logits" head. Box actions: a diagonal Gaussian over the "mean" head with a
log std ("log_std": a learned vector, state-independent, or a head, state-dependent), bounded one of two ways,
said in config.json's `action_distribution.bound`:

  clip  the sample u ~ N(mean, std) is clipped to [low, high] for the env; the log-probability is that of the
        unclipped u (SB3's PPO/A2C default). The clip changes what the env receives, not the gradient's maths.
  tanh  the env receives low + (tanh(u) + 1) / 2 * (high - low); a trainer must then add the Jacobian correction
        -sum(log(1 - tanh(u)^2)) to the log-probability (SAC's way).

rlship's trainers (ppo, a2c, reinforce) use `clip`: the entropy of a diagonal Gaussian has a closed form (the
squashed one has none, so PPO's entropy bonus would need a sample estimate), the clipped action equals the mean
inside the bounds, and it is what rl-zoo's PPO settings were tuned with. Artifacts saying `tanh` act correctly.
Deterministic acting is the mean as the env receives it: clip(mean) or the squashed mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rlship.errors import TrainingDiverged
from rlship.lazy_torch import torch

GAUSSIAN_LOG_STD = ("state_independent", "state_dependent")
GAUSSIAN_BOUNDS = ("clip", "tanh")
# log std is clamped to this range wherever it is used (training, acting, export): std from 2e-9 to 7.4
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def gaussian_log_prob(mean: torch.Tensor, log_std: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """log N(actions; mean, exp(log_std)^2 I), summed over the action dimensions: shape (N,)."""
    z = (actions - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - _HALF_LOG_2PI).flatten(1).sum(1)


def gaussian_entropy(log_std: torch.Tensor) -> torch.Tensor:
    """The entropy of a diagonal Gaussian, summed over the action dimensions: shape (N,)."""
    return (0.5 + _HALF_LOG_2PI + log_std).flatten(1).sum(1)


@dataclass(frozen=True)
class Bounding:
    """How a Gaussian's sample becomes the action the env receives (clip or tanh into [low, high])."""

    kind: str
    low: np.ndarray  # action shape, float64
    high: np.ndarray

    def to_env(self, u: np.ndarray) -> np.ndarray:
        if self.kind == "tanh":
            return (self.low + (np.tanh(u) + 1.0) * 0.5 * (self.high - self.low)).astype(np.float32)
        return np.clip(u, self.low, self.high).astype(np.float32)

    def to_env_torch(self, u: torch.Tensor) -> torch.Tensor:
        low = torch.as_tensor(self.low, dtype=torch.float32)
        high = torch.as_tensor(self.high, dtype=torch.float32)
        if self.kind == "tanh":
            return low + (torch.tanh(u) + 1.0) * 0.5 * (high - low)
        return torch.maximum(torch.minimum(u, high), low)


def sample_categorical(probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One action per row of `probs` (N, n_actions). Probabilities that are not finite come from a network that
    diverged in training: `TrainingDiverged`, not torch's RuntimeError. Checked only when torch refuses them, so
    sampling costs nothing more."""
    try:
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
    except RuntimeError:
        if bool(torch.isfinite(probs).all()):
            raise
        raise TrainingDiverged("a non-finite network output") from None


class HeldNoise:
    """A Gaussian policy's unit noise held for `repeat` env steps per env, for temporally correlated exploration
    (the cheap cousin of gSDE's `sde_sample_freq`, Raffin et al. 2021): env i acts mean(s) + std * eps_i, with eps_i
    drawn anew every `repeat` of its steps and at each of its episode starts. A policy that dithers around a mean
    with fresh noise every step moves little in a system with inertia (a pendulum, a car); noise held a few steps
    pushes it one way long enough to see where that leads. The taken action's log-probability is still the one of
    N(mean(s), std) at that step, as PPO's ratio and the policy gradient use it (as SB3's gSDE does)."""

    def __init__(self, repeat: int, num_envs: int, action_shape: tuple[int, ...]) -> None:
        if repeat < 1:
            raise ValueError(f"noise is held for at least 1 step; got {repeat}")
        self.repeat = repeat
        self.eps = torch.zeros(num_envs, *action_shape)
        self.age = np.full(num_envs, repeat, dtype=np.int64)  # steps each env's noise has been used: all due

    def draw(self, generator: torch.Generator, starts: np.ndarray | None = None) -> torch.Tensor:
        """The noise of this step, (num_envs, *action_shape): fresh for the envs whose noise was used `repeat`
        times or that start an episode (`starts`, a bool per env), held for the others. One batch of normals is
        drawn when any env is due (the due rows taken from it), so a run's random stream depends only on which
        steps are due."""
        due = self.age >= self.repeat
        if starts is not None:
            due |= starts
        if due.any():
            fresh = torch.randn(self.eps.shape, generator=generator)
            rows = torch.from_numpy(due)
            self.eps[rows] = fresh[rows]
            self.age[due] = 0
        self.age += 1
        return self.eps.clone()


class ActionHead:
    """What a trainer needs from the policy's action distribution: sample (with the log-probability the update
    compares against), the log-probability and entropy of stored actions, and the actions as the env takes them."""

    action_shape: tuple[int, ...] = ()

    @property
    def action_dtype(self) -> torch.dtype:  # a property: torch is imported when a trainer asks, not at import
        return torch.int64

    def sample(
        self, out: dict[str, torch.Tensor], generator: torch.Generator, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """An action per row and its log-probability; `noise`: a Gaussian's unit noise to use (HeldNoise) in place
        of a fresh draw (a categorical has none)."""
        raise NotImplementedError

    def log_prob_entropy(
        self, out: dict[str, torch.Tensor], actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def to_env(self, actions: torch.Tensor) -> np.ndarray:
        return actions.numpy()


class CategoricalHead(ActionHead):
    def sample(
        self, out: dict[str, torch.Tensor], generator: torch.Generator, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if noise is not None:
            raise ValueError("a categorical distribution samples no Gaussian noise")
        log_probs = torch.log_softmax(out["logits"], dim=-1)
        action = sample_categorical(log_probs.exp(), generator)
        return action, log_probs.gather(1, action[:, None]).squeeze(-1)

    def log_prob_entropy(
        self, out: dict[str, torch.Tensor], actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        log_probs = torch.log_softmax(out["logits"], dim=-1)
        logp = log_probs.gather(1, actions[:, None]).squeeze(-1)
        return logp, -(log_probs.exp() * log_probs).sum(-1)


class GaussianHead(ActionHead):
    """A diagonal Gaussian, clipped to the bounds for the env; log-probabilities of the unclipped samples."""

    @property
    def action_dtype(self) -> torch.dtype:
        return torch.float32

    def __init__(self, bounding: Bounding) -> None:
        if bounding.kind != "clip":
            raise ValueError("rlship trains Gaussian policies with bound 'clip' (see rlship.distributions)")
        self.bounding = bounding
        self.action_shape = tuple(bounding.low.shape)

    def sample(
        self, out: dict[str, torch.Tensor], generator: torch.Generator, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = out["mean"], out["log_std"].clamp(LOG_STD_MIN, LOG_STD_MAX)
        eps = torch.randn(mean.shape, generator=generator) if noise is None else noise
        u = mean + log_std.exp() * eps
        return u, gaussian_log_prob(mean, log_std, u)

    def log_prob_entropy(
        self, out: dict[str, torch.Tensor], actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = out["mean"], out["log_std"].clamp(LOG_STD_MIN, LOG_STD_MAX)
        return gaussian_log_prob(mean, log_std, actions), gaussian_entropy(log_std)

    def to_env(self, actions: torch.Tensor) -> np.ndarray:
        u = actions.numpy()
        if not np.isfinite(u).all():  # a diverged network's mean: no env is given NaN (microseconds a step)
            raise TrainingDiverged("a non-finite network output")
        return self.bounding.to_env(u)
