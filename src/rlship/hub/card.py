"""The model card (README.md): Hub metadata (library, tags, `model-index` for the RL leaderboards) made with
huggingface_hub's card helpers, and a body that says what the agent is, how it was scored and how to use it."""

from __future__ import annotations

import json
from typing import Any

from rlship.evaluation import EvalResult

CARD_FILE = "README.md"
# Written into a card packaged without a repo id; `rlship push` renders the card again with the real one.
REPO_PLACEHOLDER = "OWNER/NAME"


def card_tags(config: dict[str, Any]) -> list[str]:
    algorithm = str(config["algorithm"])
    return [
        "reinforcement-learning",
        "deep-reinforcement-learning",
        str(config["env_id"]),
        algorithm,
        "custom-implementation",
    ]


def render_card(
    config: dict[str, Any],
    evaluation: EvalResult,
    repo_id: str | None,
    video_file: str | None,
    curve_file: str | None,
    replay_steps: int | None = None,
) -> Any:
    """A `huggingface_hub.ModelCard` for the policy in `config`, scored by `evaluation`."""
    from huggingface_hub import EvalResult as HubEvalResult
    from huggingface_hub import ModelCard, ModelCardData

    repo = repo_id or REPO_PLACEHOLDER
    algorithm = str(config["algorithm"])
    env_id = str(config["env_id"])
    name = f"{algorithm}-{env_id}"
    data = ModelCardData(
        library_name="rlship",
        tags=card_tags(config),
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
    body = _body(config, evaluation, repo, name, video_file, curve_file, replay_steps)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")


def _body(
    config: dict[str, Any],
    evaluation: EvalResult,
    repo: str,
    name: str,
    video_file: str | None,
    curve_file: str | None,
    replay_steps: int | None,
) -> str:
    algorithm = str(config["algorithm"])
    env_id = str(config["env_id"])
    network = config.get("network", {})
    heads = ", ".join(f"{k} ({v})" for k, v in network.get("heads", {}).items())
    hidden = " x ".join(str(h) for h in network.get("hidden_sizes", [])) or "none"
    from rlship.training import ALGORITHMS  # the registry's one-line summary: one description per algorithm

    known = ALGORITHMS.get(algorithm)
    kind = f"`{algorithm}` ({known.summary})" if known else f"`{algorithm}`"
    mode = "deterministic (greedy) actions" if evaluation.deterministic else "actions sampled from the policy"
    seeds = evaluation.episode_seeds
    lines = [
        f"# {name}",
        "",
        f"A {kind} agent for the Gymnasium environment **{env_id}**, trained and packaged with rlship. "
        "The weights are in `model.safetensors` (no pickle); "
        "`config.json` rebuilds the network: "
        f"an MLP with hidden layers {hidden} ({network.get('activation', '?')}) and heads {heads}.",
        "",
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
            f"The first evaluation episode (seed {seeds[0]}, {steps}greedy actions; [{video_file}]({video_file})):",
            "",
            f'<video controls autoplay loop muted src="{_file_url(repo, video_file)}"></video>',
            "",
        ]
    if curve_file:
        lines += ["## Training curve", "", f"![training curve]({curve_file})", ""]
    lines += [
        "## Use it",
        "",
        "With rlship installed:",
        "",
        "```python",
        "import rlship",
        "",
        f'policy = rlship.load_policy("hf://{repo}")   # add @REVISION to pin a branch, tag or commit',
        "result = policy.act(observations)             # a batch (N, *obs_shape) or one observation",
        "result.actions, result.probabilities",
        "print(rlship.evaluate(policy).metric)         # the evaluation above",
        "```",
        "",
        "Serve it over HTTP (`POST /act`: observation in, action and probabilities out):",
        "",
        "```bash",
        f"rlship serve hf://{repo}",
        "```",
        "",
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


def _file_url(repo: str, name: str) -> str:
    """Where the Hub serves a file of the repo: an absolute URL plays wherever the card is shown (the model page,
    the Hub's API, mirrors). A relative path while the repo id is still the placeholder."""
    if repo == REPO_PLACEHOLDER:
        return name
    from huggingface_hub import constants

    return f"{constants.ENDPOINT}/{repo}/resolve/main/{name}"


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
