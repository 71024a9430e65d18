"""The hub verbs of `rlship`: `package` and `push` (`register` is listed in `rlship.cli.COMMANDS`)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rlship.evaluation import DEFAULT_EPISODES
from rlship.output import print_result
from rlship.run_folder import folder_arg
from rlship.whole_numbers import whole_number


def register(sub: Any) -> None:
    source_help = "run folder written by `rlship train` (or 'default', or hf://OWNER/NAME[@REVISION])"
    pkg = sub.add_parser(
        "package",
        help="make a folder ready for the Hugging Face Hub: model card, replay video, fresh evaluation",
        description="Evaluate the policy afresh (the evaluation protocol), render a replay video and write the model "
        "card: HUB_DIR then holds everything `rlship push` uploads.",
    )
    pkg.set_defaults(handler=_run_package)
    pkg.add_argument("run_dir", metavar="RUN_DIR", help=source_help)
    pkg.add_argument(
        "--out",
        type=folder_arg,
        required=True,
        metavar="HUB_DIR",
        help="folder to write (new, empty or an earlier package)",
    )
    pkg.add_argument(
        "--repo-id", default=None, metavar="OWNER/NAME", help="repo the card's load/serve lines name (push sets it)"
    )
    _evaluation_flags(pkg)

    push = sub.add_parser(
        "push",
        help="package a run and upload it to a Hugging Face Hub model repo in one commit",
        description="Package RUN_DIR (as `rlship package`) and upload it in one commit; files an earlier push left "
        "that the new package lacks (only names rlship writes) are deleted in the same commit. The token comes from "
        "HF_TOKEN or `hf auth login`.",
    )
    push.set_defaults(handler=_run_push)
    push.add_argument("run_dir", metavar="RUN_DIR", help=source_help)
    push.add_argument(
        "--repo-id",
        default=None,
        metavar="OWNER/NAME",
        help="model repository to push to (default: YOU/ALGO-ENV_ID, YOU being the token's user)",
    )
    push.add_argument("--private", action="store_true", help="create the repository private (if it does not exist)")
    push.add_argument("--revision", default=None, metavar="BRANCH", help="branch to push to (created if missing)")
    push.add_argument("--commit-message", default=None, metavar="TEXT", help="commit message (default: the score)")
    push.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing directly")
    push.add_argument(
        "--dry-run", action="store_true", help="package and list what would be uploaded, with sizes; upload nothing"
    )
    push.add_argument(
        "--out", type=folder_arg, default=None, metavar="HUB_DIR", help="keep the package here (default: a temp folder)"
    )
    _evaluation_flags(push)


def _evaluation_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tag",
        action="append",
        default=[],
        metavar="TAG",
        dest="tags",
        help="add a tag to the card, for example deep-rl-course (repeat for more)",
    )
    parser.add_argument(
        "--no-video",
        action="store_false",
        dest="video",
        help="leave out replay.mp4 (for an env that cannot render off-screen)",
    )
    parser.add_argument(
        "--onnx",
        action="store_true",
        help="add model.onnx (as `rlship export --format onnx`) and show on the card how to run it with "
        'onnxruntime (needs pip install "rlship[export]")',
    )
    parser.add_argument(
        "--allow-interrupted",
        action="store_true",
        help="package a run that was stopped by Ctrl-C and not resumed (refused by default)",
    )
    parser.add_argument(
        "--episodes",
        type=whole_number,
        default=DEFAULT_EPISODES,
        help=f"evaluation episodes (default: {DEFAULT_EPISODES})",
    )
    parser.add_argument("--seed", type=whole_number, default=0, help="evaluation seed (default: 0)")


def _run_package(args: argparse.Namespace) -> int:
    from rlship.hub.package import package_policy

    package = package_policy(
        args.run_dir,
        args.out,
        repo_id=args.repo_id,
        episodes=args.episodes,
        seed=args.seed,
        allow_interrupted=args.allow_interrupted,
        video=args.video,
        onnx=args.onnx,
        tags=args.tags,
    )
    print_result(json.dumps(package.summary(), indent=2), written=f"the package folder {args.out} was written")
    return 0


def _run_push(args: argparse.Namespace) -> int:
    from rlship.hub.push import push_policy

    result = push_policy(
        args.run_dir,
        args.repo_id,
        private=args.private,
        revision=args.revision,
        commit_message=args.commit_message,
        create_pr=args.create_pr,
        dry_run=args.dry_run,
        out=args.out,
        episodes=args.episodes,
        seed=args.seed,
        allow_interrupted=args.allow_interrupted,
        video=args.video,
        onnx=args.onnx,
        tags=args.tags,
    )
    if result.dry_run:
        branch = result.revision or "main"
        lines = [f"dry run: would upload to {result.repo_id} (branch {branch}{', private' if args.private else ''}):"]
        lines += [f"  {size:>12,d}  {name}" for name, size in result.package.files.items()]
        lines.append(f"  {sum(result.package.files.values()):>12,d}  total; nothing uploaded")
        print_result("\n".join(lines))
    else:
        print_result(json.dumps(result.summary(), indent=2))
        where = f"{result.repo_id}@{result.pr_revision or result.revision or 'main'}"
        print(f"rlship push: the card on the Hub ({where}) reads mean_reward {result.hub_mean_reward}", file=sys.stderr)
        for warning in result.warnings:
            print(f"rlship push: warning: {warning}", file=sys.stderr)
    return 0
