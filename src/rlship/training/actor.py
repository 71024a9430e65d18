"""The policy the policy-gradient methods (reinforce, a2c, ppo) train, for Discrete and Box actions alike.

`new_actor` makes the run's policy from the env's action space: a "logits" head (categorical) for Discrete actions,
a "mean" head with a state-independent log std (diagonal Gaussian, clipped to the bounds: see rlship.distributions)
for Box actions, plus a "value" head for the actor-critics. Observation normalisation (`normalize_obs`) lives in the
policy (the artifact), and `observe` keeps it up to date while collecting; reward scaling (`normalize_reward`) only
shapes the training signal and is recorded in config.json. An algorithm reads the same for both kinds of action:

    actor = new_actor(run, envs, cfg, value=True)
    run.start([...], n, **actor.checkpointed(), optimizer=optimizer)
    obs = actor.observe(raw_obs)                        # normalised (and the statistics updated)
    action, logp = actor.head.sample(actor.forward(obs), gen)     # env_action = actor.head.to_env(action)
    logp, entropy = actor.head.log_prob_entropy(actor.forward(obs), action)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch

from rlship.distributions import ActionHead, CategoricalHead, GaussianHead
from rlship.network_spec import NetworkSpec, network_spec
from rlship.networks import plain_forward
from rlship.normalization import RewardScaler
from rlship.policy import Policy

if TYPE_CHECKING:
    from rlship.training.run import Run


@dataclass
class Actor:
    policy: Policy
    head: ActionHead
    reward_scaler: RewardScaler | None

    @property
    def network(self) -> torch.nn.Module:
        return self.policy.network

    @cached_property
    def forward(self) -> Callable[[torch.Tensor], dict[str, torch.Tensor]]:
        """`network(obs)` as the hot loops call it: the same operations without nn.Module's call machinery
        (networks.plain_forward), on the network's own parameters."""
        return plain_forward(self.policy.network)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one observation as `observe` returns it: flat for vectors, as it is for image stacks."""
        shape = self.policy.spec.obs_shape
        return shape if self.policy.spec.frames is not None else (int(np.prod(shape)),)

    @property
    def input_dtype(self) -> torch.dtype:
        return torch.uint8 if self.policy.spec.frames is not None else torch.float32

    def observe(self, obs: np.ndarray, update: bool = True) -> torch.Tensor:
        """A batch of raw env observations as the network's input: image stacks as they are (uint8; the network
        scales them), vectors flattened to float32 and normalised when the policy normalises (with `update`, the
        running statistics take this batch in first, as SB3's VecNormalize)."""
        if self.policy.spec.frames is not None:
            return torch.from_numpy(np.asarray(obs, dtype=np.uint8))
        flat = np.asarray(obs, dtype=np.float32).reshape(len(obs), -1)
        norm = self.policy.obs_norm
        if norm is None:
            return torch.from_numpy(flat)
        if update:
            norm.update(flat)
        return torch.from_numpy(norm(flat))

    def scale_rewards(self, rewards: np.ndarray, dones: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """The rewards training learns from (scaled by the running return std when `normalize_reward`)."""
        if self.reward_scaler is None:
            return np.asarray(rewards, dtype=np.float32)
        return self.reward_scaler(np.asarray(rewards, dtype=np.float64), dones, valid)

    def checkpointed(self) -> dict[str, Any]:
        """The objects `run.start` must checkpoint: the network and, when used, the normaliser and reward scaler."""
        objects: dict[str, Any] = {"network": self.policy.network}
        if self.policy.obs_norm is not None:
            objects["obs_norm"] = self.policy.obs_norm
        if self.reward_scaler is not None:
            objects["reward_scaler"] = self.reward_scaler
        return objects


def new_actor(run: Run, envs: gym.vector.VectorEnv, cfg: Any, value: bool) -> Actor:
    """The run's policy for `envs`' action space, from `cfg` (hidden_sizes, activation, gamma, and where the
    algorithm has them: shared_trunk, normalize_obs, normalize_reward, log_std_init)."""
    space = envs.single_action_space
    normalize_obs = bool(getattr(cfg, "normalize_obs", False))
    scaler = RewardScaler(envs.num_envs, cfg.gamma) if getattr(cfg, "normalize_reward", False) else None
    artifact: dict[str, Any] = {
        "normalize_obs": normalize_obs,
        "reward_scaling": scaler.settings() if scaler is not None else {"kind": "none"},
    }
    shared = bool(getattr(cfg, "shared_trunk", False))
    if isinstance(space, gym.spaces.Box):
        size = int(np.prod(space.shape))
        heads = {"mean": size, **({"value": 1} if value else {})}
        spec = NetworkSpec(cfg.hidden_sizes, cfg.activation, heads, shared, log_std=size)
        policy = run.new_policy(envs, spec, "gaussian", log_std="state_independent", bound="clip", **artifact)
        net = policy.network
        assert isinstance(net.log_std, torch.nn.Parameter)
        with torch.no_grad():
            net.log_std.fill_(float(getattr(cfg, "log_std_init", 0.0)))
        head: ActionHead = GaussianHead(policy.spec.bounding)
    else:
        heads = {"logits": run.n_actions(envs), **({"value": 1} if value else {})}
        # an MLP on vectors, a CNN on image stacks (networks.network_spec)
        spec = network_spec(envs.single_observation_space.shape, cfg.hidden_sizes, cfg.activation, heads, shared)
        policy = run.new_policy(envs, spec, **artifact)
        head = CategoricalHead()
    return Actor(policy, head, scaler)
