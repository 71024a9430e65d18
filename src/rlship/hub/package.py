"""`rlship package`: a run folder made ready for the Hub.

The package holds the run's weights and config exactly as trained, a fresh evaluation by the evaluation protocol
(results.json, and the card's numbers, come from it: never from numbers the run folder claims), the
hyperparameters, the training curve and log when the run has them, replay.mp4 and README.md (the model card).
It is built in a staging folder next to `out` and moved into place only once every file is written, so a failure
(a video that cannot be encoded, say) leaves no card pointing at files that are not there.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rlship.envs import env_spec
from rlship.errors import RlshipError, UsageError
from rlship.evaluation import DEFAULT_EPISODES, EvalResult, evaluate
from rlship.export import ONNX_FILE, ONNX_OPSET, describe, require_onnx, write_onnx
from rlship.hub.card import CARD_FILE, CardInputs, check_tags
from rlship.policy import load_policy
from rlship.run_folder import (
    CONFIG_FILE,
    CURVE_FILE,
    LOG_FILE,
    RESULTS_FILE,
    WEIGHTS_FILE,
    OutputRule,
    Results,
    check_output_folder,
    write_results,
)
from rlship.sources import locate_source

HYPERPARAMETERS_FILE = "hyperparameters.json"
# Copied from the run folder when it has them; a card mentions the curve only when it is there.
OPTIONAL_RUN_FILES = (CURVE_FILE, LOG_FILE)
# Every file name a package can hold: `rlship push` deletes these from the repo when the new package lacks them.
PACKAGE_FILES = frozenset(
    {
        "README.md",
        CONFIG_FILE,
        WEIGHTS_FILE,
        RESULTS_FILE,
        HYPERPARAMETERS_FILE,
        "replay.mp4",
        "model.onnx",  # with --onnx (rlship.export.ONNX_FILE)
        *OPTIONAL_RUN_FILES,
    }
)
REPO_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class Package:
    folder: Path
    repo_id: str | None
    evaluation: EvalResult
    replay_steps: int | None  # None: packaged with --no-video
    files: dict[str, int]  # file name -> size in bytes
    timings: dict[str, float] = field(default_factory=dict)  # seconds: evaluation, video_render, video_encode, ...
    card: CardInputs | None = None  # what README.md was rendered from (push renders it again for a PR's revision)

    def summary(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "repo_id": self.repo_id,
            "env_id": self.evaluation.env_id,
            "mean_reward": self.evaluation.metric,
            "n_eval_episodes": self.evaluation.n_eval_episodes,
            "replay_steps": self.replay_steps,
            "files": self.files,
            "seconds": {k: round(v, 3) for k, v in self.timings.items()},
        }


def check_repo_id(repo_id: str) -> str:
    """`repo_id` if it is OWNER/NAME as the Hub spells repository ids, else a ValueError saying so."""
    if not REPO_ID_PATTERN.fullmatch(repo_id) or ".." in repo_id or repo_id.endswith((".git", "-", ".")):
        raise UsageError(
            f"repo id {repo_id!r} is not OWNER/NAME (letters, digits, '-', '_', '.'; for example "
            "'alice/ppo-CartPole-v1')"
        )
    return repo_id


def package_policy(
    source: str | Path,
    out: str | Path,
    repo_id: str | None = None,
    episodes: int = DEFAULT_EPISODES,
    seed: int = 0,
    allow_interrupted: bool = False,
    video: bool = True,
    onnx: bool = False,
    tags: Sequence[str] = (),
    revision: str | None = None,
) -> Package:
    """Write the Hub package of the policy at `source` (a run folder, "default" or "hf://...") into `out`.

    `video=False` leaves out replay.mp4 (for envs that cannot render), `onnx=True` adds model.onnx (`rlship
    export`), `tags` are added to the card's, whose links point at `revision` of `repo_id` (main when None).

    A run stopped by Ctrl-C is refused unless `allow_interrupted`: its policy is a snapshot mid-training, and
    publishing one by mistake is easy when the folder looks like any other."""
    if repo_id is not None:
        check_repo_id(repo_id)
    tags = check_tags(tags)
    out = Path(out).expanduser()
    _check_out(out)
    if onnx:
        require_onnx()  # a missing extra fails now, before the evaluation
    timings: dict[str, float] = {}
    start = time.perf_counter()
    run, _ = locate_source(source)  # a Hub source is downloaded once, here
    policy = load_policy(run)  # checks config.json, the weights and results.json
    earlier = policy.results
    if not allow_interrupted and earlier is not None and earlier.interrupted:
        raise RlshipError(
            f"{run}: this training run was interrupted (results.json says so) and has not finished; resume it with "
            f"`rlship train ALGO ENV_ID --resume {run}`, or pass --allow-interrupted to package it as it is"
        )
    timings["load"] = time.perf_counter() - start
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    # The evaluation and the replay call a tiny MLP on batches of at most `episodes` rows: extra torch threads only
    # add synchronisation (4x slower evaluation measured with 2 threads on a busy 2-core machine).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        start = time.perf_counter()
        for name in (CONFIG_FILE, WEIGHTS_FILE, *OPTIONAL_RUN_FILES):
            if (run / name).is_file():
                shutil.copyfile(run / name, staging / name)
        hyperparameters = policy.config.get("hyperparameters") or {}
        (staging / HYPERPARAMETERS_FILE).write_text(json.dumps(hyperparameters, indent=2) + "\n")
        timings["copy"] = time.perf_counter() - start

        start = time.perf_counter()
        evaluation = evaluate(policy, episodes=episodes, seed=seed, deterministic=True)
        timings["evaluation"] = time.perf_counter() - start
        _write_results(staging, evaluation, earlier)

        from rlship.hub.video import VIDEO_FILE, record_replay

        replay = record_replay(policy, staging / VIDEO_FILE, seed=seed) if video else None
        if replay is not None:
            timings["video_render"] = replay.render_seconds
            timings["video_encode"] = replay.encode_seconds

        onnx_description = None
        if onnx:
            start = time.perf_counter()
            write_onnx(policy, staging / ONNX_FILE)
            onnx_description = describe(policy, "onnx", ONNX_OPSET)
            timings["onnx"] = time.perf_counter() - start

        start = time.perf_counter()
        card_inputs = CardInputs(
            policy.config,
            evaluation,
            video_file=VIDEO_FILE if replay is not None else None,
            curve_file=CURVE_FILE if (staging / CURVE_FILE).is_file() else None,
            replay_steps=replay.steps if replay is not None else None,
            tags=tags,
            onnx=onnx_description,
        )
        card_inputs.render(repo_id, revision).save(staging / CARD_FILE)
        timings["card"] = time.perf_counter() - start

        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        torch.set_num_threads(threads)
    files = {p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.is_file()}
    return Package(out, repo_id, evaluation, replay.steps if replay else None, files, timings, card_inputs)


def _is_package(folder: Path) -> bool:
    names = {p.name for p in folder.iterdir()}
    return names <= PACKAGE_FILES and "README.md" in names and CONFIG_FILE in names


# A package folder is replaced whole (it holds only names rlship writes), so no flag is needed to replace one.
PACKAGE_OUTPUT = OutputRule("package", _is_package)


def _check_out(out: Path) -> None:
    """`out` must be new, empty, or an earlier package (which is replaced): never someone's other folder."""
    check_output_folder(out, PACKAGE_OUTPUT)


def _write_results(folder: Path, evaluation: EvalResult, earlier: Results | None) -> None:
    """results.json: the fresh evaluation, the env's threshold, and the run's training record when it has one
    (a run packaged with --allow-interrupted stays marked interrupted on the Hub too)."""
    threshold = env_spec(evaluation.env_id).reward_threshold
    results = Results(
        evaluation=evaluation,
        reward_threshold=threshold,
        solved=threshold is not None and evaluation.mean_reward >= threshold,
        interrupted=earlier is not None and earlier.interrupted,
        training=earlier.training if earlier is not None else None,
    )
    write_results(folder, results)
