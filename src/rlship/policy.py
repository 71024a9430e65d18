"""The policy artifact: `Policy` (network + spec), and saving/loading the folder that holds it.

A policy folder holds `config.json` (everything needed to rebuild the network and know what it acts on) and
`model.safetensors` (the weights; never a pickle). `load_policy` rebuilds the network from config.json alone.
"""

from __future__ import annotations

import copy
import json
import math
import os
import platform
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from safetensors import SafetensorError

from rlship import schema
from rlship.distributions import GAUSSIAN_BOUNDS, GAUSSIAN_LOG_STD, LOG_STD_MAX, LOG_STD_MIN, Bounding
from rlship.envs import takes_observation_preprocessing
from rlship.errors import ArtifactError, ObservationError, UnsupportedEnvError, UsageError
from rlship.frames import FramePreprocessing
from rlship.lazy_torch import torch
from rlship.network_spec import AnyNetworkSpec, CNNSpec, check_network_size, network_spec_from_dict
from rlship.normalization import ObsNormalizer
from rlship.numpy_forward import NumpyNetwork
from rlship.numpy_forward import state_shapes as numpy_state_shapes
from rlship.numpy_forward import supports as numpy_supports
from rlship.run_folder import CONFIG_FILE, WEIGHTS_FILE, Results, read_config, read_results
from rlship.safetensors_header import HeaderError, TensorEntry, check_data_offsets, read_header
from rlship.sources import DEFAULT_POLICY, default_policy_dir, locate_source  # noqa: F401 (re-exported: tests import it here)
from rlship.spaces import describe_space, space_from_dict, space_to_dict

# config.json's format_version: 1, or 2 where an artifact holds what rlship before version 2 would read wrongly
# without saying so: a frame stack of frames more than one step apart (`observation_preprocessing.frame_gap`, which
# those versions ignore, so they would stack the wrong frames). Those versions refuse a 2 by name; this one reads
# both, and the gapped 1s written before the bump.
FORMAT_VERSION = 1
FORMAT_VERSION_GAPPED_FRAMES = 2
FORMAT_VERSIONS = (FORMAT_VERSION, FORMAT_VERSION_GAPPED_FRAMES)
# How a policy turns its network's outputs into the action distribution `act` reports and samples from
# (config.json's "action_distribution"; "softmax" when absent):
#   softmax         probabilities = softmax(logits head); greedy action = the most probable one
#   epsilon_greedy  probabilities = epsilon spread uniformly + (1 - epsilon) on argmax of the q_values head
#   uniform         probabilities = 1 / n_actions; it has no greedy action, so it samples even when deterministic
#   gaussian        (Box actions) a diagonal Gaussian over the "mean" head, its "log_std" state-independent or
#                   state-dependent, bounded by clip or tanh (rlship.distributions); greedy = the bounded mean
ACTION_DISTRIBUTIONS = ("softmax", "epsilon_greedy", "uniform", "gaussian")
# A safetensors header larger than this is not one rlship wrote (a policy's header is a few KB); the file size may
# exceed the weights' bytes by at most this much.
MAX_WEIGHTS_HEADER_BYTES = 1024 * 1024
# The most bytes of uint8 image observations one `act` call takes (about 13,000 rlship/CartPolePixels-v1 stacks):
# the network's activations grow with the batch, so the batch is bounded before it reaches the network.
MAX_IMAGE_BATCH_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class PolicySpec:
    """What a policy acts on and how it was made: the parts of config.json other code relies on."""

    algorithm: str
    env_id: str
    observation_space: gym.spaces.Box
    action_space: gym.spaces.Discrete | gym.spaces.Box
    network: AnyNetworkSpec
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    action_distribution: str = "softmax"
    epsilon: float = 0.0  # the epsilon of an epsilon_greedy distribution
    log_std: str = "state_independent"  # of a gaussian distribution
    bound: str = "clip"  # of a gaussian distribution: how its samples are brought into the action bounds
    # image observations: how a rendered frame becomes the observation (None: the env's observation as it is)
    frames: FramePreprocessing | None = None

    @property
    def obs_shape(self) -> tuple[int, ...]:
        return tuple(self.observation_space.shape)

    @property
    def env_make_kwargs(self) -> dict[str, Any]:
        """The kwargs that make this policy's env give the observations it acts on: its env_kwargs, and an image
        policy's own `observation_preprocessing` where the env takes one (an env class that names it in its
        metadata: `envs.takes_observation_preprocessing`), so that a policy trained before its env's default
        preprocessing changed is still evaluated and recorded on what it was trained on."""
        if (
            self.frames is None
            or "observation_preprocessing" in self.env_kwargs
            or not takes_observation_preprocessing(self.env_id)
        ):
            return dict(self.env_kwargs)
        return {**self.env_kwargs, "observation_preprocessing": self.frames.to_dict()}

    @property
    def continuous(self) -> bool:
        """True for Box actions (a Gaussian policy)."""
        return isinstance(self.action_space, gym.spaces.Box)

    @property
    def n_actions(self) -> int:
        """Actions of a Discrete space; for a Box, the numbers in one action."""
        if isinstance(self.action_space, gym.spaces.Box):
            return int(np.prod(self.action_space.shape))
        return int(self.action_space.n)

    @property
    def action_shape(self) -> tuple[int, ...]:
        return tuple(self.action_space.shape) if self.continuous else ()

    @property
    def bounding(self) -> Bounding:
        """How a Box policy's Gaussian samples become the actions the env receives."""
        space = self.action_space
        assert isinstance(space, gym.spaces.Box), "only Box action spaces have bounds"
        return Bounding(self.bound, np.asarray(space.low, np.float64), np.asarray(space.high, np.float64))


def _as_batch(obs: np.ndarray, shape: tuple[int, ...], message: str) -> np.ndarray:
    """`obs` as a non-empty batch (N, *shape) (one observation becomes a batch of one), else an ObservationError
    with `message`, whose `{got}` is the shape that came."""
    if obs.shape == shape:
        obs = obs[None]
    if obs.ndim != len(shape) + 1 or obs.shape[1:] != shape or obs.shape[0] == 0:
        raise ObservationError(message.replace("{got}", str(obs.shape)))  # not format: env ids may hold braces
    return obs


@dataclass(frozen=True)
class ActResult:
    """What `Policy.act` returns for a batch of N observations."""

    actions: np.ndarray  # (N,) int64; Box actions: (N, *action_shape) float32, as the env receives them
    # (N, n_actions) float32: the distribution `deterministic=False` samples from (Discrete actions; None for Box)
    probabilities: np.ndarray | None
    values: np.ndarray | None = None  # (N,) float32 state values, for actor-critic policies
    q_values: np.ndarray | None = None  # (N, n_actions) float32 action values, for value-based policies
    mean: np.ndarray | None = None  # (N, *action_shape) float32: the Gaussian's mean, before bounding (Box)
    std: np.ndarray | None = None  # (N, *action_shape) float32: the Gaussian's standard deviation (Box)


class Policy:
    """A trained policy: call `act` on a batch of observations."""

    def __init__(
        self,
        spec: PolicySpec,
        network: torch.nn.Module | NumpyNetwork,
        config: dict[str, Any],
        source: str = "",
        revision: str | None = None,
        folder: Path | None = None,
        obs_norm: ObsNormalizer | None = None,
        results: Results | None = None,
    ) -> None:
        self.spec = spec
        # a torch module (training, export, serving), or a NumpyNetwork (load_policy(..., backend="numpy"))
        self.network = network if isinstance(network, NumpyNetwork) else network.eval()
        self.obs_norm = obs_norm  # observation normalisation (part of the artifact), applied inside `act`
        self.config = config  # the whole config.json, hyperparameters and versions included
        self.source = source  # what it was loaded from, as the user named it ("default", a folder, "hf://...")
        self.revision = revision  # for Hub sources: the commit the files were downloaded at
        self.folder = folder  # the local folder its files were read from (the Hub cache for hf:// sources)
        self.results = results  # the folder's results.json, as load_policy read and checked it (None: none there)

    def __repr__(self) -> str:
        return f"Policy({self.spec.algorithm} on {self.spec.env_id}, source={self.source or 'memory'!r})"

    def check_observations(self, observations: Any) -> np.ndarray:
        """Observations as a float32 batch (N, *obs_shape) (an image policy's: uint8); a single observation becomes
        a batch of one."""
        if self.spec.frames is not None:
            return self._check_images(observations)
        shape = self.spec.obs_shape
        batch_shape = f"(N, {', '.join(map(str, shape))})"
        try:
            with np.errstate(over="ignore"):  # a number beyond float32's range becomes inf: refused below
                obs = np.asarray(observations, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise ObservationError(
                f"observations must be numbers shaped {shape} (or a batch {batch_shape}): {exc}"
            ) from exc
        obs = _as_batch(
            obs,
            shape,
            f"{self.spec.env_id} observations have shape {shape}; got an array of shape {{got}}. "
            f"Send one observation of shape {shape} or a non-empty batch of shape {batch_shape}.",
        )
        if not np.isfinite(obs).all():
            big = np.isfinite(np.asarray(observations, dtype=np.float64)).all()
            if big:
                raise ObservationError(
                    f"observations contain numbers beyond float32's range (about ±{np.finfo(np.float32).max:.3g}); "
                    "send finite float32 values"
                )
            raise ObservationError("observations contain NaN or infinity; send finite numbers")
        return obs

    def _check_images(self, observations: Any) -> np.ndarray:
        """Image observations as a uint8 batch (N, stack, H, W, C): at most MAX_IMAGE_BATCH_BYTES // (the bytes of
        one observation) of them, pixels integers in 0..255. The batch is bounded before it is converted."""
        shape = self.spec.obs_shape
        batch_shape = f"(N, {', '.join(map(str, shape))})"
        limit = max(1, MAX_IMAGE_BATCH_BYTES // math.prod(shape))
        if isinstance(observations, list | tuple) and len(observations) > limit:
            raise ObservationError(f"at most {limit:,} image observations per batch; got {len(observations):,}")
        try:
            obs = np.asarray(observations)
        except (TypeError, ValueError) as exc:
            raise ObservationError(
                f"image observations must be pixels shaped {shape} (or {batch_shape}): {exc}"
            ) from exc
        obs = _as_batch(
            obs,
            shape,
            f"{self.spec.env_id} observations are stacks of frames of shape {shape} (stack, height, width, "
            f"channels), uint8; got an array of shape {{got}}. Send one of shape {shape} or a non-empty batch "
            f"of shape {batch_shape}.",
        )
        if obs.shape[0] > limit:
            raise ObservationError(f"at most {limit:,} image observations per batch; got {obs.shape[0]:,}")
        if obs.dtype != np.uint8:
            if obs.dtype == np.bool_ or not np.issubdtype(obs.dtype, np.number):
                raise ObservationError(f"image observations hold pixels: integers in 0..255; got {obs.dtype} values")
            with np.errstate(invalid="ignore"):
                ok = np.all((obs >= 0) & (obs <= 255) & (obs == np.floor(obs)))
            if not ok:
                raise ObservationError("image observations hold pixels: integers in 0..255 (uint8)")
            obs = obs.astype(np.uint8)
        return obs

    def in_numpy(self) -> Policy:
        """This policy acting in NumPy (rlship.numpy_forward) where its network is an MLP, else itself.

        The same actions (greedy ones identical, probabilities within float32 rounding: tests/test_numpy_forward.py)
        at a fraction of the cost per call: torch's per-module overhead is most of a small MLP's forward pass, and
        evaluation calls it once per time step."""
        if isinstance(self.network, NumpyNetwork) or not numpy_supports(self.spec.network):
            return self
        state = {name: t.detach().cpu().numpy() for name, t in self.network.state_dict().items()}
        acting = copy.copy(self)  # the same spec, config, normaliser and provenance
        acting.network = NumpyNetwork(self.spec.network, state)
        return acting

    def act(self, observations: Any, deterministic: bool = True, rng: np.random.Generator | None = None) -> ActResult:
        """Actions for a batch of observations: greedy if `deterministic`, else sampled (with `rng`)."""
        obs, out = self._forward(observations)
        if self.spec.continuous:
            return self._act_gaussian(out, deterministic, rng)
        probs, greedy = self._distribution(out, len(obs))
        values = out["value"][:, 0] if "value" in out else None
        if deterministic and greedy is not None:
            actions = greedy
        else:
            actions = sample_categorical(probs, rng if rng is not None else np.random.default_rng())
        return ActResult(
            actions=actions.astype(np.int64), probabilities=probs, values=values, q_values=out.get("q_values")
        )

    def actions(
        self, observations: Any, deterministic: bool = True, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """`act(...).actions` alone. Greedy actions of an epsilon-greedy (DQN) policy skip the probabilities,
        which cost as much as its forward pass: evaluation's inner loop, once per time step."""
        if not (deterministic and self.spec.action_distribution == "epsilon_greedy"):
            return self.act(observations, deterministic, rng).actions
        _, out = self._forward(observations)
        return out["q_values"].argmax(axis=1).astype(np.int64)

    def _forward(self, observations: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The checked (and normalised) observation batch and the network's heads on it, as NumPy arrays."""
        obs = self.check_observations(observations)
        if self.obs_norm is not None:
            obs = self.obs_norm(obs)
        if isinstance(self.network, NumpyNetwork):
            return obs, self.network(obs)
        with torch.inference_mode():
            return obs, {name: t.numpy() for name, t in self.network(torch.from_numpy(obs)).items()}

    def _act_gaussian(
        self, out: dict[str, np.ndarray], deterministic: bool, rng: np.random.Generator | None
    ) -> ActResult:
        shape = (-1, *self.spec.action_shape)
        mean = out["mean"].reshape(shape)
        std = np.exp(np.clip(out["log_std"], LOG_STD_MIN, LOG_STD_MAX)).reshape(shape).astype(np.float32)
        if deterministic:
            u = mean
        else:
            u = mean + std * (rng if rng is not None else np.random.default_rng()).standard_normal(mean.shape)
        values = out["value"][:, 0] if "value" in out else None
        return ActResult(actions=self.spec.bounding.to_env(u), probabilities=None, values=values, mean=mean, std=std)

    def _distribution(self, out: dict[str, np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(probabilities (n, n_actions), greedy actions or None) by the spec's action distribution."""
        kind, n_actions = self.spec.action_distribution, self.spec.n_actions
        if kind == "uniform":
            return np.full((n, n_actions), 1.0 / n_actions, dtype=np.float32), None
        if kind == "epsilon_greedy":
            greedy = out["q_values"].argmax(axis=1)
            probs = np.full((n, n_actions), self.spec.epsilon / n_actions, dtype=np.float32)
            probs[np.arange(n), greedy] += np.float32(1.0 - self.spec.epsilon)
            return probs, greedy
        logits = out["logits"]
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs = (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
        return probs, probs.argmax(axis=1)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """What model.safetensors holds: the network's weights and the observation normaliser's statistics
        (`obs_norm.*`), which the weights were trained to act on."""
        state = {k: v.detach() for k, v in self.network.state_dict().items()}
        if self.obs_norm is not None:
            state.update(self.obs_norm.tensors())
        return state

    def load_state_tensors(self, state: dict[str, torch.Tensor], where: str) -> None:
        """Put back what `state_tensors` returned (`where` names it in an error)."""
        state = dict(state)
        if self.obs_norm is not None:
            self.obs_norm.load_tensors({name: state.pop(name) for name in self.obs_norm.tensor_shapes()}, where)
        self.network.load_state_dict(state)

    def save(self, folder: str | Path) -> Path:
        """Write config.json and model.safetensors into `folder` (created if needed). Afterwards this policy acts
        exactly as the saved one loads: observation statistics kept in float64 while training are rounded to the
        float32 the file holds (the final evaluation, and a caller comparing with the loaded artifact, see those)."""
        from safetensors.torch import save_file

        if isinstance(self.network, NumpyNetwork):
            raise TypeError("a policy loaded with backend='numpy' acts only; load it with torch to save it")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.contiguous() for k, v in self.state_tensors().items()}
        save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
        if self.obs_norm is not None:
            self.obs_norm.load_tensors({name: state[name] for name in self.obs_norm.tensor_shapes()}, str(folder))
        (folder / CONFIG_FILE).write_text(json.dumps(self.config, indent=2) + "\n")
        return folder


def sample_categorical(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One sample per row of `probs` by inverting the CDF (cheaper than building a distribution object)."""
    cdf = probs.cumsum(axis=1)
    u = rng.random((probs.shape[0], 1)) * cdf[:, -1:]
    return np.minimum((u > cdf).sum(axis=1), probs.shape[1] - 1)


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist in ("rlship", "torch", "gymnasium", "numpy", "safetensors"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "unknown"
    return versions


def new_policy(
    algorithm: str,
    env_id: str,
    observation_space: gym.Space[Any],
    action_space: gym.Space[Any],
    network_spec: AnyNetworkSpec,
    hyperparameters: dict[str, Any],
    seed: int,
    env_kwargs: dict[str, Any] | None = None,
    action_distribution: str = "softmax",
    epsilon: float = 0.0,
    algorithm_summary: str | None = None,
    log_std: str = "state_independent",
    bound: str = "clip",
    normalize_obs: bool = False,
    obs_clip: float = 10.0,
    reward_scaling: dict[str, Any] | None = None,
    frames: FramePreprocessing | None = None,
) -> Policy:
    """A freshly initialised policy (initialisation draws from torch's global RNG: seed it first).

    `algorithm_summary` is the algorithm's one-line description, kept in config.json for the model card.
    `normalize_obs`: the policy holds an `ObsNormalizer` (its statistics start at mean 0, var 1; training updates
    them). `reward_scaling`: what training did to rewards (recorded only; acting does not use it). `frames`: how an
    image policy's observations are made from rendered frames (config.json's `observation_preprocessing`)."""
    distribution: dict[str, Any] = {"kind": action_distribution}
    if action_distribution == "epsilon_greedy":
        distribution["epsilon"] = epsilon
    if action_distribution == "gaussian":
        distribution.update(log_std=log_std, bound=bound)
    if normalize_obs and frames is not None:
        raise UsageError(
            f"{env_id} has image observations, which the network scales to [0, 1] itself; drop --normalize-obs"
        )
    obs_norm = ObsNormalizer(tuple(observation_space.shape), clip=obs_clip) if normalize_obs else None
    gapped = frames is not None and frames.frame_gap > 1
    config = {
        "format_version": FORMAT_VERSION_GAPPED_FRAMES if gapped else FORMAT_VERSION,
        "algorithm": algorithm,
        **({"algorithm_summary": algorithm_summary} if algorithm_summary else {}),
        "env_id": env_id,
        "env_kwargs": env_kwargs or {},
        "observation_space": space_to_dict(observation_space),
        **({"observation_preprocessing": frames.to_dict()} if frames is not None else {}),
        "action_space": space_to_dict(action_space),
        "network": network_spec.to_dict(),
        "action_distribution": distribution,
        **({"observation_normalization": obs_norm.settings()} if obs_norm is not None else {}),
        **({"reward_scaling": reward_scaling} if reward_scaling is not None else {}),
        "hyperparameters": hyperparameters,
        "seed": seed,
        "versions": library_versions(),
    }
    try:
        spec = spec_from_config(config)
    except schema.ConfigError as exc:  # the env's spaces (an image, Box actions) or the network are not supported
        raise UnsupportedEnvError(f"{algorithm} in rlship cannot make a policy for {env_id}: {exc}") from None
    check_network_size(spec.network, spec.obs_shape)  # before a single parameter is allocated
    from rlship.networks import build_network  # torch, imported only when a network is built

    return Policy(spec, build_network(spec.network, spec.obs_shape), config, obs_norm=obs_norm)


def spec_from_config(config: Any) -> PolicySpec:
    """The spec config.json describes, checked field by field before anything is built from it: a
    `schema.ConfigError` (a ValueError) names the field and what is allowed."""
    config = schema.mapping(config, "config")
    obs_space = space_from_dict(schema.required(config, "observation_space", ""), "observation_space")
    act_space = space_from_dict(schema.required(config, "action_space", ""), "action_space")
    frames = _check_frames(config, obs_space)
    if frames is None and (not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1):
        raise schema.ConfigError(
            "observation_space",
            f"must be a 1-D Box, or an image described by observation_preprocessing; got {describe_space(obs_space)}",
        )
    network = network_spec_from_dict(schema.required(config, "network", ""))
    if isinstance(network, CNNSpec) != (frames is not None):
        raise schema.ConfigError(
            "network.kind",
            "an image policy (one with observation_preprocessing) needs a cnn_heads network, a vector policy an "
            f"mlp_heads one; got {network.to_dict()['kind']}",
        )
    distribution = schema.mapping(config.get("action_distribution") or {"kind": "softmax"}, "action_distribution")
    kind = distribution.get("kind")
    if kind not in ACTION_DISTRIBUTIONS:
        raise schema.ConfigError(
            "action_distribution.kind",
            f"unknown action_distribution kind {schema.brief(kind)}; this rlship knows {list(ACTION_DISTRIBUTIONS)}",
        )
    if (kind == "gaussian") != isinstance(act_space, gym.spaces.Box):
        raise schema.ConfigError(
            "action_space",
            f"a {describe_space(act_space)} action space needs "
            f"{'a gaussian' if kind != 'gaussian' else 'a softmax, epsilon_greedy or uniform'} action_distribution; "
            f"got {kind}",
        )
    log_std, bound = "state_independent", "clip"
    if isinstance(act_space, gym.spaces.Box):
        log_std, bound = _check_gaussian(distribution, act_space, network)
    needed = {"softmax": "logits", "epsilon_greedy": "q_values"}.get(kind)
    if needed is not None and network.heads.get(needed) != act_space.n:
        raise schema.ConfigError(
            "network.heads", f"a {kind} policy needs a {needed!r} head of size {act_space.n}; got {network.heads}"
        )
    epsilon = schema.number(distribution.get("epsilon", 0.0), "action_distribution.epsilon", 0.0, 1.0)
    env_kwargs = schema.mapping(config.get("env_kwargs") or {}, "env_kwargs")
    return PolicySpec(
        algorithm=schema.text(schema.required(config, "algorithm", ""), "algorithm"),
        env_id=schema.text(schema.required(config, "env_id", ""), "env_id"),
        observation_space=obs_space,
        action_space=act_space,
        network=network,
        env_kwargs=dict(env_kwargs),
        action_distribution=kind,
        epsilon=epsilon,
        log_std=log_std,
        bound=bound,
        frames=frames,
    )


def _check_frames(config: Any, obs_space: gym.Space[Any]) -> FramePreprocessing | None:
    """The `observation_preprocessing` of an image policy, checked against its observation space: a uint8 Box of
    the shape the preprocessing makes. None when config.json has none (a vector policy)."""
    if config.get("observation_preprocessing") is None:
        return None
    frames = FramePreprocessing.from_dict(config["observation_preprocessing"])
    if (
        not isinstance(obs_space, gym.spaces.Box)
        or obs_space.dtype != np.uint8
        or tuple(obs_space.shape) != frames.observation_shape
    ):
        raise schema.ConfigError(
            "observation_space",
            f"an image policy's observation space must be Box(shape {frames.observation_shape}, uint8), the stack "
            f"observation_preprocessing makes; got {describe_space(obs_space)}",
        )
    return frames


def _check_gaussian(distribution: Any, act_space: gym.spaces.Box, network: AnyNetworkSpec) -> tuple[str, str]:
    """(log_std, bound) of a gaussian `action_distribution`, checked against the action space and the network."""
    log_std = schema.choice(distribution.get("log_std"), "action_distribution.log_std", GAUSSIAN_LOG_STD)
    bound = schema.choice(distribution.get("bound"), "action_distribution.bound", GAUSSIAN_BOUNDS)
    if not (np.isfinite(act_space.low).all() and np.isfinite(act_space.high).all()):
        raise schema.ConfigError("action_space.low", "a gaussian policy's action bounds must be finite")
    size = int(np.prod(act_space.shape))
    has_head = network.heads.get("log_std") == size
    wanted = network.log_std == size and not has_head if log_std == "state_independent" else has_head
    if network.heads.get("mean") != size or not wanted:
        where = "a log_std parameter" if log_std == "state_independent" else "a 'log_std' head"
        raise schema.ConfigError(
            "network.heads",
            f"a {log_std} gaussian policy over {size} action numbers needs a 'mean' head of size {size} and {where} "
            f"of that size; got heads {network.heads}, log_std {network.log_std}",
        )
    return log_std, bound


def _obs_normalizer(config: Any, spec: PolicySpec) -> ObsNormalizer | None:
    desc = config.get("observation_normalization")
    return None if desc is None else ObsNormalizer.from_config(desc, spec.obs_shape)


def load_policy(source: str | Path = DEFAULT_POLICY, backend: str = "torch") -> Policy:
    """Load a policy: a folder written by `rlship train`, "default" (the embedded CartPole-v1 policy), or
    "hf://OWNER/NAME[@REVISION]" (config.json and model.safetensors only, through huggingface_hub's cache).

    `backend="numpy"`: an MLP policy acts in NumPy (rlship.numpy_forward) and torch is never imported, for code
    that only acts (`rlship evaluate`); other networks load with torch. `policy.network` is then no torch module.

    Everything is checked before anything is allocated from it: config.json field by field, the network's size
    from its description, results.json, then the weights file's size and header (names, dtypes, shapes) against
    the network and its data offsets against the file, and only then the weights themselves (finite). Any failure
    is an ArtifactError naming the file."""
    folder, revision = locate_source(source)
    if not _is_dir(folder):
        shown = str(folder) if str(folder).isprintable() and len(str(folder)) <= 300 else schema.brief(str(folder), 300)
        raise ArtifactError(
            f"{shown}: no such policy folder. Pass a folder written by `rlship train` "
            f"(it holds {CONFIG_FILE} and {WEIGHTS_FILE}), hf://OWNER/NAME for a policy on the Hugging Face Hub, "
            "or 'default' for the embedded CartPole-v1 policy."
        )
    config_path = folder / CONFIG_FILE
    config = read_config(folder)
    version = config.get("format_version")
    if isinstance(version, bool) or version not in FORMAT_VERSIONS:
        raise ArtifactError(
            f"{config_path}: format_version {schema.brief(version)} is not one this rlship reads "
            f"({' or '.join(map(str, FORMAT_VERSIONS))}); upgrade rlship or retrain the policy"
        )
    try:
        schema.check_depth(config)
        spec = spec_from_config(config)
        obs_norm = _obs_normalizer(config, spec)
        check_network_size(spec.network, spec.obs_shape)
    except ValueError as exc:  # schema.ConfigError, or check_size's UsageError
        raise ArtifactError(f"{config_path}: invalid policy config: {exc}") from exc
    results = read_results(folder)  # checked now, so that a bad results.json fails here and not later in a server
    if backend not in ("torch", "numpy"):
        raise ValueError(f"backend must be 'torch' or 'numpy'; got {backend!r}")
    in_numpy = backend == "numpy" and numpy_supports(spec.network)
    if in_numpy:
        expected: torch.nn.Module | dict[str, tuple[int, ...]] = numpy_state_shapes(
            spec.network, int(np.prod(spec.obs_shape))
        )
    else:
        from rlship.networks import build_network  # torch, imported only when a network is built

        with torch.device("meta"):  # the network's structure (names, shapes) without allocating or initialising it
            network = build_network(spec.network, spec.obs_shape)
        expected = network
    extra = obs_norm.tensor_shapes() if obs_norm is not None else {}
    state = read_weights(folder / WEIGHTS_FILE, expected, extra, as_numpy=in_numpy)
    if obs_norm is not None:
        try:
            obs_norm.load_tensors({name: state.pop(name) for name in extra}, str(folder / WEIGHTS_FILE))
        except ValueError as exc:
            raise ArtifactError(str(exc)) from None
    if in_numpy:
        return Policy(
            spec,
            NumpyNetwork(spec.network, state),
            config,
            source=str(source),
            revision=revision,
            folder=folder,
            obs_norm=obs_norm,
            results=results,
        )
    network.load_state_dict(state, assign=True)
    return Policy(
        spec, network, config, source=str(source), revision=revision, folder=folder, obs_norm=obs_norm, results=results
    )


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):  # a name too long for the filesystem, a NUL byte
        return False


def read_weights(
    path: Path,
    network: torch.nn.Module | dict[str, tuple[int, ...]],
    extra: dict[str, tuple[int, ...]] | None = None,
    as_numpy: bool = False,
) -> dict[str, Any]:
    """Weights from safetensors for `network` (its parameters may be on the meta device: only names and shapes
    are used; or the names and shapes themselves). The file's size and header (rlship.safetensors_header: names,
    shapes, dtype F32, each tensor's bytes within the file and as many as its shape needs) are checked before any
    tensor is read, and every tensor is checked finite after: a wrong or hostile file is an
    ArtifactError naming it (and the tensor). torch tensors, or NumPy arrays `as_numpy` (torch is not imported)."""
    if not path.is_file():
        raise ArtifactError(f"{path}: file not found; a policy folder needs {WEIGHTS_FILE} (written by `rlship train`)")
    # the network's tensors, and the artifact's others (the observation normaliser's `obs_norm.*`)
    if isinstance(network, dict):
        expected = dict(network) | (extra or {})
    else:
        expected = {k: tuple(v.shape) for k, v in network.state_dict().items()} | (extra or {})
    limit = 4 * sum(math.prod(shape) for shape in expected.values()) + MAX_WEIGHTS_HEADER_BYTES
    # One open file for the checks and the read: a file put in its place after the checks is never read (and,
    # unbuffered, a file rewritten in place is read as it is now, which the shapes are checked against below).
    try:
        with path.open("rb", buffering=0) as f:
            size = os.fstat(f.fileno()).st_size
            if size > limit:
                raise ArtifactError(
                    f"{path}: {size:,} bytes, more than the float32 weights of the network in {CONFIG_FILE} need "
                    f"({limit:,} at most); the two files come from different runs, or the file is not rlship's"
                )
            # the data offsets are checked after the names and shapes: a header of another network is told as such
            header = read_header(f, MAX_WEIGHTS_HEADER_BYTES, check_offsets=False)
            _check_weights_header(path, header, expected, size)
            f.seek(0)
            data = bytearray()  # at most the checked size, and a byte more if the file grew meanwhile
            while len(data) <= size and (chunk := f.read(size + 1 - len(data))):
                data += chunk
    except HeaderError as exc:
        raise _unreadable(path, exc) from None
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot be read ({exc.strerror or exc}); check the file's permissions") from None
    if as_numpy:
        from safetensors.numpy import load
    else:
        from safetensors.torch import load
    try:
        state = load(bytes(data))
    except (SafetensorError, ValueError) as exc:
        raise ArtifactError(
            f"{path}: not a readable safetensors file ({str(exc)[:200]}); the file is corrupt, re-create it"
        ) from exc
    if {name: tuple(tensor.shape) for name, tensor in state.items()} != expected:
        raise ArtifactError(
            f"{path}: its tensors differ from its header (the file was changed while it was read, or its header "
            "is malformed); load the policy again, or re-create the file"
        )
    for name, tensor in state.items():
        if not (np.isfinite(tensor).all() if as_numpy else torch.isfinite(tensor).all()):
            raise ArtifactError(
                f"{path}: tensor {name!r} holds NaN or infinite values; the run diverged or the file is damaged. "
                "Retrain (or load an earlier checkpoint's weights)"
            )
    return state


def _check_weights_header(
    path: Path, header: dict[str, TensorEntry], expected: dict[str, tuple[int, ...]], size: int
) -> None:
    """The header's names and shapes against the network's, its dtypes (float32), then its data offsets against
    the file: an ArtifactError naming what differs."""
    found = {name: entry.shape for name, entry in header.items()}
    if expected != found:
        missing = sorted(set(expected) - set(found))
        extra = sorted(set(found) - set(expected))
        wrong = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
        raise ArtifactError(
            f"{path}: weights do not match the network in {CONFIG_FILE} "
            f"(missing {_names(missing)}, unexpected {_names(extra)}, wrong shape {_names(wrong)}); "
            "the two files come from different runs"
        )
    for name, entry in header.items():
        if entry.dtype != "F32":
            raise ArtifactError(
                f"{path}: tensor {name!r} has dtype {schema.brief(entry.dtype)}; rlship weights are float32 (F32)"
            )
    check_data_offsets(header, size)  # before the tensors are read: a header pointing outside the file is not followed


def _unreadable(path: Path, exc: HeaderError) -> ArtifactError:
    return ArtifactError(
        f"{path}: not a readable safetensors file ({exc}); the file is corrupt or not safetensors, re-create it"
    )


def _names(names: list[str]) -> str:
    shown = ", ".join(schema.brief(n, 60) for n in names[:6])
    return f"[{shown}{f' and {len(names) - 6} more' if len(names) > 6 else ''}]"
