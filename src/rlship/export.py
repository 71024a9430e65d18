"""`rlship export`: a policy as a self-contained graph for runtimes that do not run Python.

- `onnx`: `model.onnx` (ONNX opset >= 17, dynamic batch axis) for onnxruntime, Unity Sentis, Godot RL Agents.
- `torchscript`: `agent.pt`, the file the Open RL Leaderboard evaluates: a TorchScript module that takes a batch of
  observations (a tensor of any float dtype) and returns the batch of actions (int64). rlship writes it and never
  loads one (a TorchScript file is code).

Both are made from one module, `ActingModule`: the single place that says what an exported model computes. It
must do to observations everything `Policy.act` does to them, so that an exported policy acts like the artifact
(the tests compare the two on 1,000 observations, so a step added to `act` and not here makes them fail).

The export folder (`--out`) holds the model file and `config.json`: the policy's config.json plus an `export`
entry naming the format, file, opset, inputs and outputs (names, shapes, dtypes) and `OUTPUTS_DOC`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import logging
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rlship.distributions import LOG_STD_MAX, LOG_STD_MIN
from rlship.errors import ArtifactError, RlshipError, UsageError
from rlship.output import print_result
from rlship.policy import Policy, load_policy
from rlship.run_folder import CONFIG_FILE, OutputRule, check_output_folder, folder_arg, read_config
from rlship.whole_numbers import whole_number

ONNX_FILE = "model.onnx"
TORCHSCRIPT_FILE = "agent.pt"
FORMATS = {"onnx": ONNX_FILE, "torchscript": TORCHSCRIPT_FILE}
EXPORT_FILES = frozenset({CONFIG_FILE, *FORMATS.values()})
# 17 or newer (`--opset`); 18 is what torch.onnx's torch.export-based exporter writes natively (17 goes through
# onnx's version converter, also checked)
ONNX_OPSET = 18
EXTRA_HELP = 'pip install "rlship[export]"'
CHECK_OBSERVATIONS = 1_000  # observations each export is checked on against `Policy.act`
MAX_DIFFERENCE = 1e-5  # largest difference allowed between the exported outputs and `Policy.act`'s

# What an exported model computes, in the order it computes it (written into config.json and the README):
INPUT_NAME = "observations"
OUTPUTS_DOC = {
    "actions": "the greedy action, the argmax of probabilities (the random baseline samples it on every call)",
    "probabilities": "the action distribution Policy.act reports",
    "values": "the state value V(s) (actor-critic policies only)",
    "q_values": "the action values Q(s, a) (value-based policies only)",
}
# A Box-action (Gaussian) policy's outputs instead:
BOX_OUTPUTS_DOC = {
    "actions": "the Gaussian's mean as the env receives it (clipped to the bounds, or tanh-squashed into them)",
    "mean": "the Gaussian's mean before bounding, as Policy.act reports it",
    "std": "the Gaussian's standard deviation",
    "values": "the state value V(s) (actor-critic policies only)",
}


# What `ActingModule.forward` does to observations before the network, in words for config.json: change the two
# together (and `Policy.act` with them).


class ExportError(RlshipError):
    """A policy could not be exported (a missing optional library, an unsupported policy, a failed check)."""


class ActingModule(nn.Module):
    """`Policy.act(observations, deterministic=True)` as one torch module, the graph every export holds.

    1. observations -> float32 (`Policy.check_observations` does the same), then the artifact's observation
       normalisation when it has one: clip((obs - mean) / sqrt(var + epsilon), -clip, clip);
    2. the network's heads;
    3. the action distribution of config.json (`Policy._distribution`): softmax of the logits, epsilon-greedy on
       the Q-values, or uniform (which has no greedy action: it samples, as `act` does); for Box actions the
       Gaussian's mean and std;
    4. the greedy action (for Box actions the mean bounded as the env receives it).
    """

    def __init__(self, policy: Policy) -> None:
        super().__init__()
        spec = policy.spec
        self.network = policy.network
        self.kind = spec.action_distribution
        self.n_actions = spec.n_actions
        self.epsilon = float(spec.epsilon)
        self.has_values = "value" in spec.network.heads
        self.has_q_values = "q_values" in spec.network.heads
        self.normalize = policy.obs_norm is not None
        self.obs_clip = 0.0
        if policy.obs_norm is not None:  # buffers only when used: a discrete policy's graph stays as it was
            mean, inv_std = policy.obs_norm.torch_constants()
            self.register_buffer("obs_mean", mean)
            self.register_buffer("obs_inv_std", inv_std)
            self.obs_clip = float(policy.obs_norm.clip)
        self.continuous = spec.continuous
        self.action_shape = list(spec.action_shape)
        if spec.continuous:
            bounding = spec.bounding
            self.tanh = bounding.kind == "tanh"
            self.register_buffer("action_low", torch.as_tensor(bounding.low, dtype=torch.float32))
            self.register_buffer("action_high", torch.as_tensor(bounding.high, dtype=torch.float32))

    def forward(self, observations: torch.Tensor) -> tuple[torch.Tensor, ...]:
        obs = observations.to(torch.float32)
        if self.normalize:
            obs = torch.clamp((obs - self.obs_mean) * self.obs_inv_std, -self.obs_clip, self.obs_clip)
        out = self.network(obs)
        n = obs.shape[0]
        if self.continuous:
            return self._gaussian(out, n)
        if self.kind == "uniform":
            probabilities = torch.full((n, self.n_actions), 1.0 / self.n_actions, dtype=torch.float32)
            actions = torch.multinomial(probabilities, 1).squeeze(1)
        elif self.kind == "epsilon_greedy":
            q_values = out["q_values"]
            actions = q_values.argmax(dim=1)
            one_hot = (torch.arange(self.n_actions).unsqueeze(0) == actions.unsqueeze(1)).to(torch.float32)
            probabilities = self.epsilon / self.n_actions + (1.0 - self.epsilon) * one_hot
        else:
            probabilities = torch.softmax(out["logits"], dim=1)
            actions = probabilities.argmax(dim=1)
        outputs = [actions.to(torch.int64), probabilities]
        if self.has_values:
            outputs.append(out["value"][:, 0])
        if self.has_q_values:
            outputs.append(out["q_values"])
        return tuple(outputs)

    def _gaussian(self, out: dict[str, torch.Tensor], n: int) -> tuple[torch.Tensor, ...]:
        shape = [n, *self.action_shape]
        mean = out["mean"].reshape(shape)
        std = torch.exp(torch.clamp(out["log_std"], LOG_STD_MIN, LOG_STD_MAX)).reshape(shape)
        if self.tanh:
            actions = self.action_low + (torch.tanh(mean) + 1.0) * 0.5 * (self.action_high - self.action_low)
        else:
            actions = torch.maximum(torch.minimum(mean, self.action_high), self.action_low)
        outputs = [actions, mean, std]
        if self.has_values:
            outputs.append(out["value"][:, 0])
        return tuple(outputs)

    def output_names(self) -> list[str]:
        if self.continuous:
            return ["actions", "mean", "std", *(["values"] if self.has_values else [])]
        return ["actions", "probabilities", *(["values"] if self.has_values else [])] + (
            ["q_values"] if self.has_q_values else []
        )


class AgentModule(nn.Module):
    """The Open RL Leaderboard's `agent.pt`: observations (N, *obs_shape) in, actions (N,) int64 out."""

    def __init__(self, acting: ActingModule) -> None:
        super().__init__()
        self.acting = acting

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.acting(observations)[0]


@dataclass(frozen=True)
class Export:
    folder: Path
    format: str
    file: Path
    description: dict[str, Any]  # the `export` entry of config.json
    check: dict[str, Any]  # how the export compared with `Policy.act` before it was written

    def summary(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "format": self.format,
            "file": self.file.name,
            "bytes": self.file.stat().st_size,
            "inputs": self.description["inputs"],
            "outputs": self.description["outputs"],
            "check": self.check,
        }


def export_policy(source: str | Path | Policy, fmt: str, out: str | Path, opset: int = ONNX_OPSET) -> Export:
    """Write the `fmt` export ("onnx" or "torchscript") of the policy at `source` into the folder `out`."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}; choose one of {sorted(FORMATS)}")
    if fmt == "onnx" and opset < 17:
        raise UsageError(f"--opset {opset} is too old; ONNX exports need opset 17 or newer")
    out = Path(out).expanduser()
    check_out(out)
    if fmt == "onnx":
        require_onnx()
    policy = source if isinstance(source, Policy) else load_policy(source)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        path = staging / FORMATS[fmt]
        check = write_onnx(policy, path, opset) if fmt == "onnx" else write_torchscript(policy, path)
        description = describe(policy, fmt, opset)
        config = {**policy.config, "export": description}
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)  # an earlier export (check_out said so): only files rlship wrote
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Export(out, fmt, out / FORMATS[fmt], description, check)


def _is_export(folder: Path) -> bool:
    names = {p.name for p in folder.iterdir()}
    if not (names <= EXPORT_FILES and CONFIG_FILE in names and all((folder / n).is_file() for n in names)):
        return False
    try:
        return "export" in read_config(folder)
    except ArtifactError:
        return False


# An export folder holds only names rlship writes, so it is replaced whole without a flag.
EXPORT_OUTPUT = OutputRule("export", _is_export)


def check_out(out: Path) -> None:
    """`out` must be new, empty, or an earlier export (which is replaced): never a folder of anything else."""
    check_output_folder(out, EXPORT_OUTPUT)


def require_onnx() -> None:
    """A one-line error naming the extra when a library the ONNX export needs is not installed."""
    missing = []
    for module in ("onnx", "onnxscript", "onnxruntime"):
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ExportError(f"ONNX export needs {', '.join(missing)}, from the export extra: {EXTRA_HELP}")


def describe(policy: Policy, fmt: str, opset: int) -> dict[str, Any]:
    """The `export` entry of config.json: what the file holds and how to call it."""
    spec = policy.spec
    acting = ActingModule(policy)
    shapes = {
        "actions": ["batch"],
        "probabilities": ["batch", spec.n_actions],
        "values": ["batch"],
        "q_values": ["batch", spec.n_actions],
    }
    dtypes = {"actions": "int64"}
    docs = OUTPUTS_DOC
    if spec.continuous:
        action = ["batch", *spec.action_shape]
        shapes.update(actions=action, mean=action, std=action)
        dtypes, docs = {}, BOX_OUTPUTS_DOC
    names = acting.output_names() if fmt == "onnx" else ["actions"]
    description: dict[str, Any] = {
        "format": fmt,
        "file": FORMATS[fmt],
        "inputs": [{"name": INPUT_NAME, "shape": ["batch", *spec.obs_shape], "dtype": "float32"}],
        "outputs": [{"name": n, "shape": shapes[n], "dtype": dtypes.get(n, "float32"), "doc": docs[n]} for n in names],
        "preprocessing": (
            "observations cast to float32, then clip((obs - mean) / sqrt(var + epsilon), -clip, clip) with the "
            "artifact's obs_norm statistics (the same as Policy.act)"
            if policy.obs_norm is not None
            else "observations cast to float32; nothing else (the same as Policy.act)"
        ),
        "action_distribution": spec.action_distribution,
    }
    if fmt == "onnx":
        description["opset"] = opset
    else:
        description["inputs"][0]["dtype"] = "any float (cast to float32 inside)"
        description["note"] = "TorchScript for the Open RL Leaderboard; rlship writes it and never loads it"
    if spec.action_distribution == "uniform":
        description["note_random"] = "a random policy: `actions` are sampled, never greedy"
    return description


def sample_observations(policy: Policy, n: int = CHECK_OBSERVATIONS, seed: int = 0) -> np.ndarray:
    """`n` observations of the policy's space: uniform within finite bounds, standard normal where unbounded."""
    space = policy.spec.observation_space
    rng = np.random.default_rng(seed)
    low = np.broadcast_to(np.asarray(space.low, dtype=np.float64), space.shape)
    high = np.broadcast_to(np.asarray(space.high, dtype=np.float64), space.shape)
    bounded = np.isfinite(low) & np.isfinite(high)
    uniform = rng.uniform(np.where(bounded, low, 0.0), np.where(bounded, high, 1.0), size=(n, *space.shape))
    normal = rng.standard_normal((n, *space.shape))
    if np.issubdtype(space.dtype, np.integer):  # an image's pixels: whole numbers, as the policy accepts them
        uniform = np.floor(uniform)
    return np.where(bounded, uniform, normal).astype(np.float32)


def compare(policy: Policy, outputs: dict[str, np.ndarray], observations: np.ndarray) -> dict[str, Any]:
    """How `outputs` (of an exported model, on `observations`) differ from `Policy.act`'s; raises past the limit.

    Probabilities must agree within `MAX_DIFFERENCE`; values and Q-values (returns of tens or hundreds, where one
    float32 step is already about 4e-6) within `MAX_DIFFERENCE` times max(1, |value|)."""
    expected = policy.act(observations, deterministic=True)
    reference = {"probabilities": expected.probabilities, "values": expected.values, "q_values": expected.q_values}
    if policy.spec.continuous:
        reference.update(actions=expected.actions, mean=expected.mean, std=expected.std)
    differences: dict[str, float] = {}
    worst = 0.0
    for name, array in outputs.items():
        want = reference.get(name)
        if want is None:
            continue
        gap = np.abs(np.asarray(array, dtype=np.float64) - want)
        differences[name] = float(gap.max())
        scale = 1.0 if name in ("probabilities", "std") else np.maximum(1.0, np.abs(want))
        worst = max(worst, float((gap / scale).max()))
    if policy.spec.continuous:  # actions were compared above, within MAX_DIFFERENCE
        if worst > MAX_DIFFERENCE:
            raise ExportError(
                f"the exported model does not act like the policy (largest differences {differences}); nothing was "
                "written. Please report this with the policy's config.json"
            )
        return {"observations": len(observations), "max_abs_difference": differences, "same_greedy_actions": None}
    random_policy = policy.spec.action_distribution == "uniform"
    actions = np.asarray(outputs["actions"])
    same_actions = None if random_policy else bool(np.array_equal(actions, expected.actions))
    n_actions = policy.spec.n_actions
    in_range = actions.shape == (len(observations),) and bool(((actions >= 0) & (actions < n_actions)).all())
    if worst > MAX_DIFFERENCE or same_actions is False or not in_range:
        raise ExportError(
            f"the exported model does not act like the policy (largest differences {differences}, same greedy "
            f"actions: {same_actions}); nothing was written. Please report this with the policy's config.json"
        )
    return {"observations": len(observations), "max_abs_difference": differences, "same_greedy_actions": same_actions}


def write_onnx(policy: Policy, path: Path, opset: int = ONNX_OPSET) -> dict[str, Any]:
    """Export `ActingModule` with torch.onnx (torch.export based; a dynamic batch axis), check the file with
    onnx's checker and its outputs, run by onnxruntime, against `Policy.act`."""
    import onnx

    acting = ActingModule(policy).eval()
    observations = sample_observations(policy)
    names = acting.output_names()
    try:
        with _quiet_exporter():
            torch.onnx.export(
                acting,
                (torch.from_numpy(observations[:2]),),
                str(path),
                input_names=[INPUT_NAME],
                output_names=names,
                opset_version=opset,
                dynamic_shapes={INPUT_NAME: {0: torch.export.Dim("batch", min=1)}},
                dynamo=True,
                external_data=False,
                verbose=False,
            )
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:
        raise ExportError(f"torch.onnx could not export the policy: {type(exc).__name__}: {exc}") from exc
    outputs = run_onnx(path, observations)
    return compare(policy, dict(zip(names, outputs, strict=True)), observations)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """torch.onnx (and onnxscript, converting to an older opset) log a line per step and warn about optional
    libraries (torchvision) a policy never uses: `rlship export` prints its own summary instead."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript", "onnx_ir")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def run_onnx(path: Path, observations: np.ndarray) -> list[np.ndarray]:
    """The outputs of `path` on `observations`, by onnxruntime (the runtime people deploy with)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return list(session.run(None, {INPUT_NAME: observations}))


def write_torchscript(policy: Policy, path: Path) -> dict[str, Any]:
    """Trace `AgentModule` (observations -> actions) and save it as TorchScript; the traced module, still in memory,
    is checked against `Policy.act` before it is saved (rlship never loads the file back)."""
    agent = AgentModule(ActingModule(policy).eval()).eval()
    observations = sample_observations(policy)
    with torch.no_grad(), warnings.catch_warnings():
        # torch deprecates TorchScript in favour of torch.export, but TorchScript is what the leaderboard loads
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.", category=DeprecationWarning)
        traced = torch.jit.trace(agent, torch.from_numpy(observations[:2]), check_trace=False)
        actions = traced(torch.from_numpy(observations)).numpy()
        check = compare(policy, {"actions": actions}, observations)
        traced.save(str(path))
    return check


def register(sub: Any) -> None:
    """`rlship export` (listed in `rlship.cli.COMMANDS`)."""
    ex = sub.add_parser(
        "export",
        help="export a policy as ONNX (model.onnx) or TorchScript (agent.pt, for the Open RL Leaderboard)",
        description="Write the policy as a graph that runs without rlship: ONNX for onnxruntime, Unity Sentis or "
        "Godot RL Agents; TorchScript agent.pt for the Open RL Leaderboard. Each export is checked against "
        f"Policy.act on {CHECK_OBSERVATIONS:,} observations before it is written. ONNX needs {EXTRA_HELP}.",
    )
    ex.set_defaults(handler=_run_export)
    ex.add_argument(
        "source",
        metavar="SOURCE",
        help="policy folder, hf://OWNER/NAME[@REVISION], or 'default' (the embedded CartPole-v1 policy)",
    )
    ex.add_argument("--format", required=True, choices=sorted(FORMATS), help="onnx (model.onnx) or torchscript")
    ex.add_argument(
        "--out", type=folder_arg, required=True, metavar="DIR", help="folder to write (new, empty or an earlier export)"
    )
    ex.add_argument(
        "--opset", type=whole_number, default=ONNX_OPSET, help=f"ONNX opset, 17 or newer (default: {ONNX_OPSET})"
    )


def _run_export(args: argparse.Namespace) -> int:
    result = export_policy(args.source, args.format, args.out, opset=args.opset)
    print_result(json.dumps(result.summary(), indent=2), written=f"the export folder {args.out} was written")
    return 0
