"""The model card (README.md): Hub metadata (library, tags, `model-index` for the RL leaderboards) made with
huggingface_hub's card helpers, and a body that says what the agent is, how it was scored and how to use it."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from rlship.errors import UsageError
from rlship.evaluation import EvalResult

CARD_FILE = "README.md"
# Written into a card packaged without a repo id; `rlship push` renders the card again with the real one.
REPO_PLACEHOLDER = "OWNER/NAME"
PIPELINE_TAG = "reinforcement-learning"
# Tags the user adds (`--tag deep-rl-course`): the Hub's own characters, and a bound on how many.
TAG_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+/-]{0,63}$")
MAX_EXTRA_TAGS = 20


def card_tags(config: dict[str, Any], extra: Sequence[str] = ()) -> list[str]:
    """The card's tags: the RL leaderboards read `reinforcement-learning` and the env id; then the user's own."""
    tags = [
        "reinforcement-learning",
        "deep-reinforcement-learning",
        str(config["env_id"]),
        str(config["algorithm"]),
        "custom-implementation",
    ]
    return tags + [t for t in dict.fromkeys(extra) if t not in tags]


def check_tags(tags: Sequence[str]) -> list[str]:
    """`tags` if each is a tag the Hub accepts (letters, digits, '-', '_', '.', ':', '+', '/'; 64 characters at
    most) and there are at most `MAX_EXTRA_TAGS`; else a UsageError saying which one is not."""
    if len(tags) > MAX_EXTRA_TAGS:
        raise UsageError(f"{len(tags)} --tag values; a card takes at most {MAX_EXTRA_TAGS} extra tags")
    for tag in tags:
        if not TAG_PATTERN.fullmatch(tag):
            raise UsageError(
                f"--tag {tag!r} is not a Hub tag: use letters, digits and '-', '_', '.', ':', '+', '/' (64 characters "
                "at most), for example --tag deep-rl-course"
            )
    return list(tags)


def is_random_policy(config: dict[str, Any]) -> bool:
    """A uniform policy (the random baseline) has no greedy action: it samples even when deterministic is asked."""
    return (config.get("action_distribution") or {}).get("kind") == "uniform"


@dataclass(frozen=True)
class CardInputs:
    """What a package's card is made from, kept so that `rlship push` can render it again for the revision it
    pushed to (a pull request's revision, refs/pr/N, is known only once the pull request exists)."""

    config: dict[str, Any]
    evaluation: EvalResult
    video_file: str | None
    curve_file: str | None
    replay_steps: int | None = None
    tags: list[str] = field(default_factory=list)
    onnx: dict[str, Any] | None = None  # the export description of model.onnx (inputs, outputs), when packaged

    def render(self, repo_id: str | None, revision: str | None = None) -> Any:
        return render_card(
            self.config,
            self.evaluation,
            repo_id,
            self.video_file,
            self.curve_file,
            self.replay_steps,
            revision=revision,
            tags=self.tags,
            onnx=self.onnx,
        )


def render_card(
    config: dict[str, Any],
    evaluation: EvalResult,
    repo_id: str | None,
    video_file: str | None,
    curve_file: str | None,
    replay_steps: int | None = None,
    revision: str | None = None,
    tags: Sequence[str] = (),
    onnx: dict[str, Any] | None = None,
) -> Any:
    """A `huggingface_hub.ModelCard` for the policy in `config`, scored by `evaluation`; its links point at
    `revision` (a branch, or refs/pr/N) of `repo_id`, `main` when None."""
    from huggingface_hub import EvalResult as HubEvalResult
    from huggingface_hub import ModelCard, ModelCardData

    repo = repo_id or REPO_PLACEHOLDER
    algorithm = str(config["algorithm"])
    env_id = str(config["env_id"])
    name = f"{algorithm}-{env_id}"
    data = ModelCardData(
        library_name="rlship",
        pipeline_tag=PIPELINE_TAG,
        tags=card_tags(config, tags),
        model_name=name,
        eval_results=[
            HubEvalResult(
                task_type="reinforcement-learning",
                task_name="reinforcement-learning",
                dataset_type=env_id,
                dataset_name=env_id,
                metric_type="mean_reward",
                metric_name="mean_reward",
                metric_value=evaluation.metric,
                verified=False,
            )
        ],
    )
    body = _body(config, evaluation, repo, name, video_file, curve_file, replay_steps, revision, onnx)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")


def _body(
    config: dict[str, Any],
    evaluation: EvalResult,
    repo: str,
    name: str,
    video_file: str | None,
    curve_file: str | None,
    replay_steps: int | None,
    revision: str | None,
    onnx: dict[str, Any] | None,
) -> str:
    from rlship import __version__

    algorithm = str(config["algorithm"])
    env_id = str(config["env_id"])
    network = config.get("network", {})
    heads = ", ".join(f"{k} ({v})" for k, v in network.get("heads", {}).items())
    hidden = " x ".join(str(h) for h in network.get("hidden_sizes", [])) or "none"
    # training writes its one-line description of the algorithm into config.json (hub never imports training)
    summary = config.get("algorithm_summary")
    kind = f"`{algorithm}` ({summary})" if summary else f"`{algorithm}`"
    random_policy = is_random_policy(config)
    if random_policy:
        mode = (
            "actions drawn uniformly at random (this is the random baseline: it has no greedy action, so its "
            "actions are random even when deterministic actions are asked for)"
        )
    elif evaluation.deterministic:
        mode = "deterministic (greedy) actions"
    else:
        mode = "actions sampled from the policy"
    seeds = evaluation.episode_seeds
    pinned = f"{repo}@{revision}" if revision and revision != "main" else repo
    lines = [
        f"# {name}",
        "",
        f"A {kind} agent for the Gymnasium environment **{env_id}**, trained and packaged with rlship. "
        "The weights are in `model.safetensors` (no pickle); "
        "`config.json` rebuilds the network: "
        f"{_network_words(network)} with hidden layers {hidden} ({network.get('activation', '?')}) and heads {heads}.",
        "",
        *_pixel_lines(config),
        "## Evaluation",
        "",
        f"**mean_reward: {evaluation.metric}** over {evaluation.n_eval_episodes} episodes of `gymnasium.make"
        f'("{env_id}")` (its own time limit), {mode}, mean and standard deviation of the undiscounted return. '
        f"Episode *i* is reset with seed 1,000,000 + {evaluation.seed} + *i* (seeds {seeds[0]} to {seeds[-1]}), "
        f"seeds that training never uses. Evaluated {evaluation.date} by `rlship.evaluate`; every episode's return, "
        "length and seed are in `results.json`.",
        "",
    ]
    if video_file:
        steps = f"{replay_steps} steps, " if replay_steps is not None else ""
        lines += [
            "## Replay",
            "",
            f"The first evaluation episode (seed {seeds[0]}, {steps}{'random' if random_policy else 'greedy'} "
            f"actions; [{video_file}]({video_file})):",
            "",
            f'<video controls autoplay loop muted src="{_file_url(repo, video_file, revision)}"></video>',
            "",
        ]
    if curve_file:
        lines += ["## Training curve", "", f"![training curve]({curve_file})", ""]
    # what `act` answers besides the action, read from config.json (Box actions: a Gaussian's mean and std)
    box = (config.get("action_space") or {}).get("type") == "Box"
    distribution_fields = "result.mean, result.std" if box else "result.probabilities"
    distribution_words = "the Gaussian's mean and std" if box else "probabilities"
    normalisation = []
    if config.get("observation_normalization"):
        normalisation = [
            "Observations are normalised inside the policy (running mean and variance from training, stored in "
            "`model.safetensors` as `obs_norm.*`): send raw observations.",
            "",
        ]
    lines += [
        "## Use it",
        "",
        f"With rlship installed (this card was made by rlship {__version__}):",
        "",
        "```bash",
        f'pip install "rlship=={__version__}"',
        "```",
        "",
        "```python",
        "import rlship",
        "",
        f'policy = rlship.load_policy("hf://{pinned}")   # @REVISION pins a branch, tag or commit',
        "result = policy.act(observations)             # a batch (N, *obs_shape) or one observation",
        f"result.actions, {distribution_fields}",
        "print(rlship.evaluate(policy).metric)         # the evaluation above",
        "```",
        "",
        *normalisation,
        f"Serve it over HTTP (`POST /act`: observation in, action and {distribution_words} out):",
        "",
        "```bash",
        f"rlship serve hf://{pinned}",
        "```",
        "",
        *_onnx_lines(config, repo, revision, onnx),
        "## Reproduce the training",
        "",
        "```bash",
        reproduce_command(config),
        "```",
        "",
        "## Hyperparameters",
        "",
        "| name | value |",
        "|---|---|",
    ]
    for key, value in (config.get("hyperparameters") or {}).items():
        lines.append(f"| {key} | `{json.dumps(value)}` |")
    versions = config.get("versions") or {}
    if versions:
        lines += ["", "Trained with " + ", ".join(f"{k} {v}" for k, v in versions.items()) + "."]
    return "\n".join(lines) + "\n"


def _network_words(network: dict[str, Any]) -> str:
    """ "an MLP", or for a CNN its conv layers (channels, kernel/stride) and normalisation, from config.json."""
    if network.get("kind") != "cnn_heads":
        return "an MLP"
    layers = ", ".join(
        f"{c.get('channels')} {c.get('kernel')}x{c.get('kernel')}/{c.get('stride', 1)}" for c in network.get("conv", [])
    )
    norm = " with batch norm" if network.get("norm") == "batch" else ""
    return (
        f"a CNN (conv layers{norm}: {layers}, as channels kernel/stride; pixels scaled to [0, 1] inside the network), "
        "then an MLP"
    )


def _pixel_lines(config: dict[str, Any]) -> list[str]:
    """The card's "Observations: pixels" section, read from config.json's `observation_preprocessing`."""
    prep = config.get("observation_preprocessing")
    if not isinstance(prep, dict):
        return []
    k, gap = prep.get("frame_stack", 1), prep.get("frame_gap", 1)
    which = f"last {k} such frames" if gap == 1 else f"{k} such frames {gap} steps apart, the newest last,"
    channels = 1 if prep.get("grayscale") else prep.get("frame_channels")
    grey = ", made grey (ITU-R 601-2 luma)" if prep.get("grayscale") else ""
    return [
        "## Observations: pixels",
        "",
        f"This policy acts on pixels, not on the env's state. Each frame the env renders "
        f"({prep.get('frame_height')}x{prep.get('frame_width')}x{prep.get('frame_channels')} uint8, "
        '`render_mode="rgb_array"`) is cropped to rows '
        f"{_last(prep, 'top', 'bottom')} and columns {_last(prep, 'left', 'right')}{grey}, "
        f"resized to {prep.get('height')}x{prep.get('width')} with a box filter (Pillow's area average), and the "
        f"{which} are stacked, oldest first (at an episode's start, the frames before its first are copies of "
        f"it). The observation is uint8 of shape ({k}, {prep.get('height')}, {prep.get('width')}, "
        f"{channels}); `rlship.frames.FramePreprocessing` (in `config.json` as `observation_preprocessing`) does "
        "exactly this, so a simulator may send raw rendered frames to a server that applies it.",
        "",
    ]


def _last(prep: dict[str, Any], first: str, end: str) -> str:
    """ "162-311": the first and last row (or column) kept; config.json's end is exclusive, as a Python slice."""
    start, stop = prep.get(first), prep.get(end)
    return f"{start}-{stop - 1}" if isinstance(stop, int) else f"{start}-{stop}"


def _onnx_lines(config: dict[str, Any], repo: str, revision: str | None, onnx: dict[str, Any] | None) -> list[str]:
    """The card's "Run it with onnxruntime" section, when the package holds model.onnx."""
    if onnx is None:
        return []
    (inp,) = onnx["inputs"]
    outputs = [o["name"] for o in onnx["outputs"]]
    shape = ", ".join(str(d) for d in inp["shape"][1:])
    at = f', revision="{revision}"' if revision and revision != "main" else ""
    lines = [
        "## Run it with onnxruntime (no rlship, no PyTorch)",
        "",
        f"`model.onnx` (ONNX opset {onnx.get('opset')}) is the same policy as one graph, for onnxruntime, Unity "
        "Sentis or Godot RL Agents, checked against `rlship.load_policy(...).act` before it was packaged. "
        f"Input `{inp['name']}`: {inp['dtype']} (batch, {shape}), observations as the env gives them. Outputs:",
        "",
        *(f"- `{o['name']}`: {o['dtype']} {_shape(o['shape'])}, {o['doc']}" for o in onnx["outputs"]),
        "",
        "```bash",
        "pip install onnxruntime huggingface_hub numpy",
        "```",
        "",
        "```python",
        "import numpy as np",
        "import onnxruntime as ort",
        "from huggingface_hub import hf_hub_download",
        "",
        f'session = ort.InferenceSession(hf_hub_download("{repo}", "model.onnx"{at}))',
        f"observations = np.zeros((1, {shape}), dtype=np.float32)   # a batch of {config['env_id']} observations",
        f'{", ".join(outputs)} = session.run(None, {{"{inp["name"]}": observations}})',
        "```",
        "",
    ]
    if is_random_policy(config):
        lines.insert(-1, "This is the random baseline: `actions` is sampled uniformly, on every call.")
        lines.insert(-1, "")
    return lines


def _shape(dims: list[Any]) -> str:
    """(batch,) or (batch, 2), as Python writes a shape."""
    return "(" + ", ".join(map(str, dims)) + ("," if len(dims) == 1 else "") + ")"


def _file_url(repo: str, name: str, revision: str | None = None) -> str:
    """Where the Hub serves a file of the repo at `revision` (the branch or pull request pushed to; `main` when
    None): an absolute URL plays wherever the card is shown (the model page, the Hub's API, mirrors). A relative
    path while the repo id is still the placeholder."""
    if repo == REPO_PLACEHOLDER:
        return name
    from huggingface_hub import constants

    return f"{constants.ENDPOINT}/{repo}/resolve/{quote(revision or 'main', safe='')}/{name}"


def reproduce_command(config: dict[str, Any]) -> str:
    """The `rlship train` command line that made this run: algorithm, env, seed, env kwargs, every hyperparameter."""
    head = f"rlship train {config['algorithm']} {config['env_id']} --seed {config.get('seed', 0)}"
    flags = []
    if config.get("env_kwargs"):
        flags.append("--env-kwargs '" + json.dumps(config["env_kwargs"]) + "'")
    for key, value in (config.get("hyperparameters") or {}).items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else f"--no-{key.replace('_', '-')}")
        elif value is None:
            continue  # None is the flag's default; argparse has no way to spell it
        elif isinstance(value, list | tuple):
            flags.append(" ".join([flag, *(str(v) for v in value)]))
        else:
            flags.append(f"{flag} {value}")
    return " \\\n  ".join([head, *flags])
