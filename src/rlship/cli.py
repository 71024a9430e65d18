"""The `rlship` command. Each verb is a `register(subparsers)` function that adds its parser and sets
`handler` (args -> exit code); the hub and serving packages register their verbs the same way."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import signal
import statistics
import sys
import threading
import typing
from collections.abc import Callable, Sequence
from dataclasses import Field, fields
from pathlib import Path
from typing import Any, NoReturn

from rlship import sweep
from rlship.errors import RlshipError, UsageError
from rlship.hub import cli as hub_cli
from rlship.output import OutputError, print_result
from rlship.run_folder import CHECKPOINT_DIR, STATE_FILE, folder_arg
from rlship.serving import cli as serving_cli
from rlship.whole_numbers import whole_number


def _flag_kwargs(f: Field[Any], hint: Any) -> dict[str, Any]:
    """argparse keyword arguments for one hyperparameter field, from its type hint."""
    from rlship.training.settings import field_default

    default = field_default(f)
    bounds = f.metadata.get("bounds")
    shown = f"default: {default}" + (f"; {bounds.describe()}" if bounds is not None and bounds.describe() else "")
    kwargs: dict[str, Any] = {"default": None, "help": f"{f.metadata.get('help', '')} ({shown})"}
    # A bool is --flag / --no-flag; any other value stays text, read by `_run_train` as `rlship sweep --set` reads
    # its values (settings.parse_setting: 1e5 for a count), so that a bad one is a one-line error naming the
    # setting rather than argparse's usage of every flag.
    if hint is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif typing.get_origin(hint) is tuple:
        kwargs.update(nargs="+", metavar="N")
    return kwargs


Subparsers = argparse._SubParsersAction  # type: ignore[type-arg]
TRAIN_HELP = "train a policy and write its folder (config, weights, results, log, curve)"


def register_train(sub: Subparsers) -> None:
    from rlship.training import ALGORITHMS
    from rlship.training.settings import DEFAULT_EVERY_SECONDS, RUN_SETTINGS

    train = sub.add_parser("train", help=TRAIN_HELP)
    train.set_defaults(handler=_run_train)
    algos = train.add_subparsers(dest="algo", required=True, metavar="ALGO")
    for algo in ALGORITHMS.values():
        p = algos.add_parser(
            algo.name,
            help=algo.summary,
            description=f"{algo.summary}. Flags left out take the tuned preset of the env if it has one "
            f"({', '.join(algo.presets) or 'none yet'}), else the defaults shown.",
        )
        p.add_argument("env_id", metavar="ENV_ID", help="Gymnasium env id, for example CartPole-v1")
        # --seed defaults to None (meaning 0) so that --resume can tell a seed given on purpose from none at all
        p.add_argument("--seed", type=_seed, default=None, help="seed of envs, network init and sampling (default: 0)")
        p.add_argument(
            "--out",
            type=folder_arg,
            default=None,
            help="run folder to write: new or empty (default: runs/ALGO-ENV_ID-sSEED); an earlier run of the same "
            "algorithm and env needs --overwrite",
        )
        p.add_argument(
            "--overwrite",
            action="store_true",
            help="replace the earlier run of this algorithm and env in --out (only the files rlship wrote)",
        )
        p.add_argument(
            "--resume",
            default=None,
            metavar="RUN_DIR",
            help="continue the run in RUN_DIR from its checkpoint (same folder, hyperparameters, seed and budget)",
        )
        p.add_argument(
            "--checkpoint-every",
            type=float,
            default=DEFAULT_EVERY_SECONDS,
            metavar="SECONDS",
            help="wall seconds between checkpoints in RUN_DIR/checkpoint/; 0: after every update, inf: only on "
            f"Ctrl-C (default: {DEFAULT_EVERY_SECONDS:g})",
        )
        p.add_argument(
            "--env-kwargs",
            type=json.loads,
            default=None,
            metavar="JSON",
            help="keyword arguments for gymnasium.make, as JSON: '{\"sutton_barto_reward\": true}'",
        )
        p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="show a progress bar")
        group = p.add_argument_group("hyperparameters")
        hints = typing.get_type_hints(algo.config_cls)
        # the algorithm's own hyperparameters first, the settings every algorithm shares (RunSettings) after them
        for f in sorted(fields(algo.config_cls), key=lambda f: f.name in RUN_SETTINGS):
            group.add_argument(f"--{f.name.replace('_', '-')}", dest=f"hp_{f.name}", **_flag_kwargs(f, hints[f.name]))


def _run_train(args: argparse.Namespace) -> int:
    from rlship.training import ALGORITHMS
    from rlship.training.checkpoint import CheckpointOptions
    from rlship.training.settings import parse_setting

    algo = ALGORITHMS[args.algo]
    hints = typing.get_type_hints(algo.config_cls)
    overrides: dict[str, Any] = {}
    for key, text in vars(args).items():
        if key.startswith("hp_"):  # None: a flag left out
            name = key[3:]
            overrides[name] = None if text is None else parse_setting(name, text, hints[name])
    seed, env_kwargs, out = args.seed, args.env_kwargs, args.out
    if env_kwargs is not None and not isinstance(env_kwargs, dict):
        raise UsageError(f"--env-kwargs must be a JSON object like '{{\"key\": 1}}'; got {json.dumps(env_kwargs)[:80]}")
    if args.resume is not None:
        if out is not None and Path(out).resolve() != Path(args.resume).resolve():
            raise UsageError(f"--resume {args.resume} writes into that run's own folder; drop --out {out}")
        overrides, seed, env_kwargs = _resume_settings(args.resume, algo.name, args.env_id, overrides, seed, env_kwargs)
        overrides = algo.checkpoint_settings(overrides)  # a setting added since: its default, not the preset's
        out = args.resume
    try:
        config = algo.make_config(args.env_id, **overrides)
    except TypeError as exc:  # a checkpoint's hyperparameters this version of the algorithm does not know
        raise UsageError(str(exc)) from exc
    checkpoint = CheckpointOptions(every_seconds=args.checkpoint_every, resume=args.resume is not None)
    try:
        result = algo.train(
            args.env_id,
            config,
            seed=0 if seed is None else seed,
            out=out,
            progress=args.progress,
            env_kwargs=env_kwargs,
            checkpoint=checkpoint,
            overwrite=args.overwrite,
        )
    except KeyboardInterrupt:  # a second Ctrl-C: aborted at once, so the last periodic checkpoint is what is left
        if out is not None and (Path(out) / CHECKPOINT_DIR / STATE_FILE).is_file():
            print(
                f"rlship train: aborted; the last periodic checkpoint in {out} can be resumed: "
                f"rlship train {algo.name} {args.env_id} --resume {out}",
                file=sys.stderr,
            )
        raise
    written = f"the run folder {result.out} was written (its results.json holds these figures)"
    print_result(json.dumps(result.summary(), indent=2), written=written)
    if result.interrupted:
        print(
            f"rlship train: interrupted at {result.env_steps} env steps. {result.out} holds a checkpoint and the "
            f"policy so far (short evaluation: {result.evaluation.metric}). Resume with:\n"
            f"  rlship train {algo.name} {args.env_id} --resume {result.out}",
            file=sys.stderr,
        )
        return 128 + (result.stop_signal or signal.SIGINT)  # 130 after Ctrl-C, 143 after SIGTERM, as shells say
    # (a run that learns nothing, the random baseline, is not expected to solve anything)
    if result.reward_threshold is not None and not result.solved and result.updates > 0:
        print(
            f"warning: not solved: evaluation {result.evaluation.metric} is below the reward threshold "
            f"{result.reward_threshold:g} after {result.env_steps} env steps; try more --total-steps",
            file=sys.stderr,
        )
    return 0


def _resume_settings(
    run_dir: str, algorithm: str, env_id: str, overrides: dict[str, Any], seed: int | None, env_kwargs: Any
) -> tuple[dict[str, Any], int, dict[str, Any]]:
    """(hyperparameters, seed, env_kwargs) to resume the run in `run_dir` with, from its checkpoint.

    A resumed run keeps its own settings: flags that differ from the checkpoint's (`overrides` holds the
    hyperparameters a user gave, None for those left out) are an error rather than silently ignored or silently
    changing the run halfway."""
    from rlship.training.checkpoint import STATE_FILE, CheckpointError, checkpoint_dir, read_checkpoint_state

    state = read_checkpoint_state(run_dir)
    path = checkpoint_dir(run_dir) / STATE_FILE
    if (state["algorithm"], state["env_id"]) != (algorithm, env_id):
        raise CheckpointError(
            f"{path}: the checkpoint is of a {state['algorithm']} run on {state['env_id']}, not {algorithm} on "
            f"{env_id}; resume it with `rlship train {state['algorithm']} {state['env_id']} --resume {run_dir}`"
        )

    def as_json(value: Any) -> Any:
        return json.loads(json.dumps(value))

    saved: dict[str, Any] = state["hyperparameters"]
    conflicts = [
        f"--{name.replace('_', '-')} {as_json(value)!r} (the run has {saved.get(name)!r})"
        for name, value in overrides.items()
        if value is not None and as_json(value) != saved.get(name)
    ]
    if seed is not None and seed != state["seed"]:
        conflicts.append(f"--seed {seed} (the run has {state['seed']})")
    if env_kwargs is not None and as_json(env_kwargs) != state.get("env_kwargs", {}):
        conflicts.append(f"--env-kwargs {env_kwargs} (the run has {state.get('env_kwargs', {})})")
    if conflicts:
        raise CheckpointError(
            f"--resume {run_dir} continues that run with its own settings; these flags conflict with it: "
            f"{'; '.join(conflicts)}. Drop them, or start a new run with another --out"
        )
    return dict(saved), int(state["seed"]), dict(state.get("env_kwargs") or {})


def _run_evaluate(args: argparse.Namespace) -> int:
    from rlship.evaluation import evaluate
    from rlship.numpy_forward import NumpyNetwork
    from rlship.policy import load_policy

    # An MLP acts in NumPy: no torch import (seconds), the same actions (tests/test_numpy_forward.py)
    policy = load_policy(args.source, backend="numpy")
    if not isinstance(policy.network, NumpyNetwork):  # a network only torch runs (a CNN)
        import torch

        # Evaluation calls a small network on batches of at most `episodes` rows: extra torch threads only add
        # synchronisation (measured 4x slower with 2 threads on a busy 2-core machine).
        torch.set_num_threads(1)
    result = evaluate(
        policy, episodes=args.episodes, seed=args.seed, deterministic=not args.stochastic, env_id=args.env
    )
    report = {"source": args.source, "algorithm": policy.spec.algorithm, **result.to_dict()}
    if policy.spec.action_distribution == "uniform":
        report["random_actions"] = True  # the random baseline samples even when deterministic actions are asked
    # JSON for scripts and pipes (and --json); a short summary for a person at a terminal
    if args.json or sys.stdout is None or not sys.stdout.isatty():  # None: started with stdout closed
        print_result(json.dumps(report, indent=2))
    else:
        print_result(evaluation_summary(report))
    return 0


def evaluation_summary(report: dict[str, Any]) -> str:
    """A few lines a person reads at a glance: what was evaluated, the score, the spread, the protocol."""
    returns, lengths, seeds = report["episode_returns"], report["episode_lengths"], report["episode_seeds"]
    if report.get("random_actions"):
        mode = "random actions: the random baseline samples even when greedy actions are asked"
    else:
        mode = "greedy actions" if report["deterministic"] else "sampled actions"
    return "\n".join(
        [
            f"{report['algorithm']} on {report['env_id']} from {report['source']}",
            f"mean_reward {report['mean_reward']:.2f} +/- {report['std_reward']:.2f} over "
            f"{report['n_eval_episodes']} episodes ({mode})",
            f"returns: min {min(returns):g}, median {statistics.median(returns):g}, max {max(returns):g}; "
            f"episode length: mean {statistics.fmean(lengths):.1f}",
            f"eval seed {report['seed']} (episode seeds {seeds[0]}-{seeds[-1]}), {report['wall_seconds']:.2f} s; "
            "--json for every episode",
        ]
    )


def register_evaluate(sub: Subparsers) -> None:
    ev = sub.add_parser(
        "evaluate",
        help="evaluate a policy by the evaluation protocol; a summary on a terminal, JSON when piped or --json",
    )
    ev.set_defaults(handler=_run_evaluate)
    ev.add_argument(
        "source",
        metavar="SOURCE",
        help="policy folder, hf://OWNER/NAME[@REVISION], or 'default' (the embedded CartPole-v1 policy)",
    )
    ev.add_argument("--episodes", type=whole_number, default=100, help="episodes to run (default: 100)")
    ev.add_argument(
        "--seed", type=whole_number, default=0, help="evaluation seed: episode i is reset with 1_000_000+seed+i"
    )
    ev.add_argument("--stochastic", action="store_true", help="sample actions instead of taking the greedy one")
    ev.add_argument("--env", default=None, metavar="ENV_ID", help="evaluate on another env id than the policy's own")
    ev.add_argument(
        "--json",
        action="store_true",
        help="print JSON like results.json (the default when stdout is not a terminal)",
    )


def register_export(sub: Subparsers) -> None:
    from rlship import export  # torch (its graphs are torch modules): only when the command is `export`

    export.register(sub)


# Verbs whose parsers import torch: `rlship --help` lists them by name and help only (start-up stays fast); the
# full parser, flags and all, is built when the verb is the command being run.
LAZY_COMMANDS: dict[Callable[[Subparsers], None], tuple[str, str]] = {
    register_train: ("train", TRAIN_HELP),
    register_export: (
        "export",
        "export a policy as ONNX (model.onnx) or TorchScript (agent.pt, for the Open RL Leaderboard)",
    ),
}


# The verbs, in the order `rlship --help` lists them.
COMMANDS: list[Callable[[Subparsers], None]] = [
    register_train,
    register_evaluate,
    hub_cli.register,
    serving_cli.register,
    sweep.register,
    register_export,
]


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The `rlship` parser; a verb that is costly to describe (train: every algorithm's flags) is described in
    full only when it is the `command` being run."""
    parser = argparse.ArgumentParser(prog="rlship", description="Train, publish and serve RL policies.")
    from rlship import __version__

    parser.add_argument("--version", action="version", version=f"rlship {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in COMMANDS:
        name, help_text = LAZY_COMMANDS.get(register, (None, ""))
        if name is not None and command != name:
            sub.add_parser(name, help=help_text, add_help=False)
        else:
            register(sub)
    return parser


def _seed(text: str) -> int:
    """--seed of `train` (1e3 too, as every whole-number flag): argparse then names the flag in the error
    (training's own check cannot)."""
    try:
        seed = whole_number(text)
    except argparse.ArgumentTypeError:
        seed = -1
    if not 0 <= seed < 2**32:
        raise argparse.ArgumentTypeError(f"must be a whole number in [0, 2**32); got {text[:40]!r}")
    return seed


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    try:
        return int(args.handler(args))
    except RlshipError as exc:  # rlship's own errors say what to do in one line; anything else keeps its traceback
        print(f"rlship {args.command}: error: {exc}", file=sys.stderr)
        if isinstance(exc, OutputError):
            _drop_stdout()
        return 1
    except KeyboardInterrupt:
        print(f"rlship {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `rlship evaluate ... | head`: the reader left; end quietly, as Unix tools do
        _drop_stdout()
        return 141
    except OSError as exc:
        # The system refused a file operation (a path that cannot exist, a full disk, no permission): the message
        # is about the machine, not rlship, so one line naming the file; an OSError without an errno keeps its
        # traceback, as anything unexpected does.
        if exc.errno is None:
            raise
        where = f"{exc.filename}: " if exc.filename is not None else ""
        print(f"rlship {args.command}: error: {where}{exc.strerror or exc} (errno {exc.errno})", file=sys.stderr)
        return 1


def _drop_stdout() -> None:
    """Point stdout at /dev/null, once writing to it has failed: what is left in its buffer would fail again at
    the interpreter's final flush, with a second report of the same error."""
    with contextlib.suppress(OSError, ValueError):  # no real file behind sys.stdout (a test's capture)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def run() -> NoReturn:
    """The console script `rlship` (and `python -m rlship`): `main`, then the process ends without the
    interpreter's teardown when that is safe.

    With torch loaded, tearing the interpreter down (clearing thousands of modules' namespaces, finalising their
    objects) takes about half a second on a 2-core machine, after the command's work is on disk and its output
    printed: a tenth of a `rlship train ppo CartPole-v1` process (BENCHMARKS.md, "the interpreter's teardown").
    So once `main` has returned, the exit handlers run (`atexit`: logging, multiprocessing, tqdm) and the output
    is flushed, as at a normal exit, and the process ends there. rlship closes every file it writes before its
    command returns. A non-daemon thread still running (a library's writer) is waited for, as a normal exit
    does, by exiting normally instead. A command that raises (argparse's usage errors and help, an unexpected
    exception) also exits normally, so its traceback and exit status are Python's own."""
    code = main()
    if any(not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    atexit._run_exitfuncs()  # what the interpreter runs first at a normal exit
    for stream in (sys.stdout, sys.stderr):
        if stream is None:  # started with that descriptor closed: Python has no stream for it
            continue
        try:
            stream.flush()
        except BrokenPipeError:  # the reader of the output left (`| head`): end quietly, as `main` does
            code = code or 141
        except OSError as exc:  # a full disk: what a library printed (rlship's results are flushed as printed)
            with contextlib.suppress(OSError, ValueError):  # stderr may be the stream that failed
                print(f"rlship: {OutputError(exc)}", file=sys.stderr)
            code = code or 120  # the status a normal exit gives when its final flush fails
        except ValueError:  # a stream a library closed: what a normal exit would drop too
            code = code or 120
    os._exit(code)


if __name__ == "__main__":
    run()
