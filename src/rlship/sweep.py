"""`rlship sweep ALGO ENV_ID --seeds 100-119 --out DIR`: one training run per seed, evaluated, summarised.

Each seed trains through the public training API (`ALGORITHMS[name].train`) into DIR/seed-N, a run folder like
any other. The sweep's own files are DIR/sweep.json (every finished seed's figures, the overall solve rate and
medians) and DIR/sweep.md (the same as a Markdown table), rewritten after every seed that finishes, so an
interrupted sweep keeps what it finished; running the same command again skips those seeds and resumes an
interrupted one from its checkpoint (algorithms that have checkpoints) or trains it anew.

Where the seeds run:
  in-process pool (default)  `--workers N` processes (default: one per core), one torch thread each
  Ray                        `--ray auto` (the running cluster: RAY_ADDRESS, or the one `ray start` made here),
                             `--ray ADDRESS` (host:port of a cluster's head), `--ray local` (start one here);
                             one task per seed with one CPU each. Needs `pip install 'rlship[ray]'`, rlship on
                             every node of the cluster, and DIR on a filesystem every node sees (each task writes
                             its DIR/seed-N where it runs; the driver writes sweep.json).
A seed is one process's work from start to end; seeds share nothing, so the wall time of a sweep is about
ceil(seeds / CPUs) x the time of a seed (docs/scaling.md measures it).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import ctypes
import json
import multiprocessing
import os
import signal
import statistics
import sys
import threading
import time
import traceback
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlship.envs import env_spec
from rlship.errors import RlshipError, UsageError
from rlship.output import print_result
from rlship.run_folder import CHECKPOINT_DIR, RESULTS_FILE, STATE_FILE, folder_arg
from rlship.whole_numbers import whole_number

if TYPE_CHECKING:
    from rlship.cli import Subparsers

SWEEP_FORMAT = "rlship-sweep/1"
SWEEP_JSON = "sweep.json"
SWEEP_MD = "sweep.md"
MAX_SEEDS = 10_000  # a bound on --seeds before anything is spent on it
_RESULTS_FILE = RESULTS_FILE  # the run folder's evaluation
_STATE_FILE = Path(CHECKPOINT_DIR) / STATE_FILE  # an interrupted run's checkpoint, resumable


class SweepError(RlshipError):
    """A sweep that cannot start: bad seeds or settings, or an --out that is not this sweep's folder."""


# --- arguments


def parse_seeds(text: str) -> list[int]:
    """'100-119', '0,3,7' or '0-4,10': the seeds in the order given, each once."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        try:
            first, last = (int(lo), int(hi)) if sep else (int(part), int(part))
        except ValueError:
            raise SweepError(f"--seeds {text!r}: {part!r} is not a seed or a range like 100-119") from None
        if first < 0 or last < first:
            raise SweepError(f"--seeds {text!r}: {part!r} must be a non-negative seed or an ascending range")
        if last - first + 1 + len(seeds) > MAX_SEEDS:
            raise SweepError(f"--seeds {text!r}: more than {MAX_SEEDS} seeds; split the sweep")
        seeds += [s for s in range(first, last + 1) if s not in seeds]
    return seeds


def parse_overrides(algorithm: str, items: Iterable[str]) -> dict[str, Any]:
    """`--set key=value` pairs as hyperparameter overrides of the algorithm's config, each value read as
    `rlship train`'s flags are (settings.parse_setting: a JSON list for a list, hidden_sizes=[64,64]; 1e5 for a
    count). The ranges are checked by building the config once, before any seed runs."""
    from rlship.training import ALGORITHMS
    from rlship.training.settings import parse_setting

    algo = ALGORITHMS[algorithm]
    hints = typing.get_type_hints(algo.config_cls)
    known = {f.name for f in fields(algo.config_cls)}
    overrides: dict[str, Any] = {}
    for item in items:
        shown = item if len(item) <= 60 else item[:57] + "..."  # the error names it; the setting says what is wrong
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep:
            raise SweepError(f"--set {item!r}: write it as key=value, for example total_steps=50000")
        if key not in known:
            raise SweepError(f"--set {item!r}: {algorithm} has no hyperparameter {key!r}; it has {sorted(known)}")
        try:
            overrides[key] = parse_setting(key, text, hints[key])
        except UsageError as exc:
            raise SweepError(f"--set {shown}: {exc}") from None
    return overrides


# --- one seed (runs in a pool process or a Ray worker)


@dataclass(frozen=True)
class SeedTask:
    algorithm: str
    env_id: str
    overrides: dict[str, Any]
    env_kwargs: dict[str, Any]
    seed: int
    out: str


def run_seed(task: SeedTask) -> dict[str, Any] | None:
    """Train and evaluate one seed into task.out (resuming its checkpoint if an interrupted sweep left one);
    returns the seed's row of sweep.json, or None when Ctrl-C came before it started. One torch thread: the seeds,
    not threads, use the cores."""
    import torch

    from rlship.training import ALGORITHMS, CheckpointOptions

    torch.set_num_threads(1)
    algo = ALGORITHMS[task.algorithm]
    config = algo.make_config(task.env_id, **task.overrides)
    # The seed's folder is the sweep's own: an interrupted seed resumes from its checkpoint, anything else left
    # there by an earlier attempt (a run with no checkpoint yet) is replaced.
    resume = (Path(task.out) / _STATE_FILE).is_file()
    if _ctrl_c.is_set():
        return None
    start, cpu_start = time.perf_counter(), time.process_time()
    result = algo.train(
        task.env_id,
        config,
        seed=task.seed,
        out=task.out,
        progress=False,
        env_kwargs=task.env_kwargs,
        checkpoint=CheckpointOptions(resume=resume),
        overwrite=not resume,
    )
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    summary = result.summary()
    return {
        "seed": task.seed,
        "out": Path(task.out).name,
        "env_steps": summary["env_steps"],
        "train_seconds": summary["train_seconds"],
        "wall_seconds": round(wall, 3),  # the whole task: training, the final evaluation, writing the artifact
        # CPU seconds of that task: its work, whatever else the machine ran (wall on a free core is about this)
        "cpu_seconds": round(cpu, 3),
        "solved": summary["solved"],
        "reward_threshold": summary["reward_threshold"],
        "mean_reward": summary["mean_reward"],
        "std_reward": summary["std_reward"],
        "n_eval_episodes": len(result.evaluation.episode_returns),
        "episode_returns": [float(r) for r in result.evaluation.episode_returns],
        "interrupted": summary["interrupted"],
        "host": os.uname().nodename,
        "pid": os.getpid(),  # the process that trained it: a pool worker or a Ray worker
    }


_ctrl_c = threading.Event()  # set in a pool worker by Ctrl-C outside a training run: start no further seed


def _pool_worker_init(sweep_pid: int) -> None:
    # Ctrl-C reaches every process of the terminal's process group. A training run installs its own handler and
    # stops at its next safe point; between runs, a pool worker only notes it, so that it starts no queued seed.
    signal.signal(signal.SIGINT, lambda signum, frame: _ctrl_c.set())
    _die_with(sweep_pid)
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"


def _die_with(parent_pid: int) -> None:
    """End this process when `parent_pid` (the sweep) ends, however it ends. A killed sweep (`kill`, a job
    scheduler's or Kubernetes' SIGTERM, SIGKILL) cannot shut its pool down: its workers would train their seed to
    the end unseen, then wait on the dead sweep's queue forever, holding their memory. Linux only
    (prctl PR_SET_PDEATHSIG); elsewhere the workers outlive a killed sweep as before."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG: SIGTERM when the parent ends
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the sweep ended before the line above took effect
        os._exit(1)


# --- the sweep folder


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def summarise(runs: list[dict[str, Any]], failed: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Overall figures over the finished (not interrupted) seeds; `failed`: the seeds that ended with an error."""
    done = [r for r in runs if not r["interrupted"]]
    solved = [r for r in done if r["solved"]]
    return {
        "seeds_finished": len(done),
        "seeds_failed": len(failed or []),
        "seeds_solved": len(solved),
        "solve_rate": round(len(solved) / len(done), 4) if done else None,
        "median_env_steps": _median([r["env_steps"] for r in done]),
        "median_wall_seconds": _median([r["wall_seconds"] for r in done]),
        "median_eval_mean": _median([r["mean_reward"] for r in done]),
        "median_env_steps_solved": _median([r["env_steps"] for r in solved]),
        "median_wall_seconds_solved": _median([r["wall_seconds"] for r in solved]),
    }


def markdown(sweep: dict[str, Any]) -> str:
    """sweep.json as the Markdown table the README and docs paste."""
    settings = ", ".join(f"{k}={v}" for k, v in sweep["overrides"].items()) or "the preset / defaults"
    lines = [
        f"# {sweep['algorithm']} on {sweep['env_id']}: seeds "
        f"{_seed_ranges(r['seed'] for r in [*sweep['runs'], *sweep.get('failed', [])])}",
        "",
        f"Hyperparameters: {settings}. Evaluation: the protocol's greedy episodes, eval seed 0. "
        f"Command: `{sweep['command']}`",
        "",
        "| seed | env steps | wall s | solved | eval mean +/- std |",
        "|---:|---:|---:|:---:|---:|",
    ]
    for r in sorted(sweep["runs"], key=lambda r: r["seed"]):
        solved = "interrupted" if r["interrupted"] else ("yes" if r["solved"] else "no")
        lines.append(
            f"| {r['seed']} | {r['env_steps']:,} | {r['wall_seconds']:.1f} | {solved} | "
            f"{r['mean_reward']:.2f} +/- {r['std_reward']:.2f} |"
        )
    s = sweep["summary"]

    def fmt(value: float | None, spec: str) -> str:
        return "n/a" if value is None else format(value, spec)

    lines += [
        "",
        f"Solved {s['seeds_solved']} of {s['seeds_finished']} seeds (solve rate {fmt(s['solve_rate'], '.0%')}); "
        f"medians over the finished seeds: {fmt(s['median_env_steps'], ',.0f')} env steps, "
        f"{fmt(s['median_wall_seconds'], '.1f')} wall s, evaluation mean {fmt(s['median_eval_mean'], '.2f')}.",
        "",
    ]
    for f in sweep.get("failed", []):  # not in the table: a failed seed has no figures
        lines += [f"Seed {f['seed']} failed: {f['error']}", ""]
    return "\n".join(lines)


def _seed_ranges(seeds: Iterable[int]) -> str:
    ordered = sorted(set(seeds))
    parts: list[str] = []
    for s in ordered:
        if parts and s == int(parts[-1].rsplit("-", 1)[-1]) + 1:
            parts[-1] = f"{parts[-1].split('-')[0]}-{s}"
        else:
            parts.append(str(s))
    return ",".join(parts) or "none"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class SweepFolder:
    """DIR: sweep.json and sweep.md (this module is their one owner) and the seed-N run folders."""

    def __init__(
        self, out: Path, algorithm: str, env_id: str, overrides: dict[str, Any], env_kwargs: dict[str, Any]
    ) -> None:
        self.out = out
        self.path = out / SWEEP_JSON
        identity = {
            "algorithm": algorithm,
            "env_id": env_id,
            "overrides": json.loads(json.dumps(overrides)),
            "env_kwargs": json.loads(json.dumps(env_kwargs)),
        }
        if self.path.is_file():
            self.data = self._read_own(identity)
        else:
            if out.exists() and (not out.is_dir() or any(out.iterdir())):
                raise SweepError(
                    f"{out} exists and is not a sweep folder (no {SWEEP_JSON}); rlship writes sweeps only into a "
                    "new or empty folder: pick another --out"
                )
            self.data = {"format": SWEEP_FORMAT, **identity, "seeds": [], "runs": [], "failed": []}
        self.data.setdefault("failed", [])  # a sweep.json from before failed seeds were recorded

    def _read_own(self, identity: dict[str, Any]) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SweepError(f"{self.path}: not valid JSON ({exc}); pick another --out") from exc
        if not isinstance(data, dict) or data.get("format") != SWEEP_FORMAT:
            raise SweepError(f"{self.path} is not an rlship sweep ({SWEEP_FORMAT}); pick another --out")
        for key, value in identity.items():
            if data.get(key) != value:
                raise SweepError(
                    f"{self.path} is a sweep with {key}={data.get(key)!r}, not {value!r}; one sweep folder holds one "
                    "setting (its table compares seeds only): pick another --out"
                )
        return data

    def seed_dir(self, seed: int) -> Path:
        return self.out / f"seed-{seed}"

    def finished(self, seed: int) -> bool:
        """Recorded as finished here and its run folder still holds its evaluation."""
        return any(r["seed"] == seed and not r["interrupted"] for r in self.data["runs"]) and (
            (self.seed_dir(seed) / _RESULTS_FILE).is_file()
        )

    def record(
        self,
        row: dict[str, Any] | None,
        seeds: list[int],
        command: str,
        engine: dict[str, Any],
        failure: dict[str, Any] | None = None,
    ) -> None:
        """Add one seed's row, or its `failure` ({"seed", "error"}), replacing what an earlier attempt recorded for
        that seed, and rewrite sweep.json and sweep.md."""
        runs, failed = self.data["runs"], self.data["failed"]
        for new, into, other in ((row, runs, failed), (failure, failed, runs)):
            if new is not None:
                into[:] = sorted([r for r in into if r["seed"] != new["seed"]] + [new], key=lambda r: r["seed"])
                other[:] = [r for r in other if r["seed"] != new["seed"]]
        self.data.update(
            seeds=sorted(set(self.data["seeds"]) | set(seeds)),
            command=command,
            engine=engine,
            updated=datetime.now(UTC).isoformat(timespec="seconds"),
            summary=summarise(runs, failed),
        )
        self.out.mkdir(parents=True, exist_ok=True)
        _write_atomic(self.path, json.dumps(self.data, indent=2) + "\n")
        _write_atomic(self.out / SWEEP_MD, markdown(self.data))


# --- running


@dataclass
class SweepReport:
    folder: SweepFolder
    skipped: list[int]
    ran: list[int]
    interrupted: bool
    failed: list[int]  # seeds that ended with an error (training diverged, an env's exception...); the others went on

    @property
    def data(self) -> dict[str, Any]:
        return self.folder.data


def sweep(
    algorithm: str,
    env_id: str,
    seeds: list[int],
    out: str | Path,
    overrides: dict[str, Any] | None = None,
    env_kwargs: dict[str, Any] | None = None,
    workers: int | None = None,
    ray: str | None = None,
    command: str = "",
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> SweepReport:
    """Train `algorithm` on `env_id` once per seed into OUT/seed-N and write OUT/sweep.json and OUT/sweep.md.
    Seeds finished by an earlier run of the same sweep are skipped. Ctrl-C stops the running seeds at their next
    safe point, records what finished and returns with `interrupted` set."""
    from rlship.training import ALGORITHMS

    if algorithm not in ALGORITHMS:
        raise SweepError(f"unknown algorithm {algorithm!r}; rlship has {list(ALGORITHMS)}")
    if not seeds:
        raise SweepError("no seeds to run; give --seeds, for example 100-119")
    overrides, env_kwargs = dict(overrides or {}), dict(env_kwargs or {})
    env_spec(env_id)  # an unknown env fails here, once, not in every seed's worker
    try:  # bad hyperparameters fail here, once, not in every worker
        ALGORITHMS[algorithm].make_config(env_id, **overrides)
    except TypeError as exc:
        raise SweepError(str(exc)) from exc
    folder = SweepFolder(Path(out), algorithm, env_id, overrides, env_kwargs)
    skipped = [s for s in seeds if folder.finished(s)]
    todo = [s for s in seeds if s not in skipped]
    if skipped:
        log(f"rlship sweep: {len(skipped)} seeds already finished in {out}, skipped: {_seed_ranges(skipped)}")
    tasks = [SeedTask(algorithm, env_id, overrides, env_kwargs, s, str(folder.seed_dir(s))) for s in todo]
    if workers is not None and workers < 1:
        raise SweepError(f"--workers must be at least 1; got {workers}")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    n_workers = max(1, min(workers or cores, len(tasks) or 1))
    engine = {"kind": "ray", "address": ray} if ray else {"kind": "processes", "workers": n_workers}
    folder.record(None, seeds, command, engine)

    def done(row: dict[str, Any]) -> None:
        folder.record(row, seeds, command, engine)
        state = "interrupted" if row["interrupted"] else ("solved" if row["solved"] else "not solved")
        log(
            f"rlship sweep: seed {row['seed']}: {state}, {row['env_steps']:,} env steps, {row['wall_seconds']:.1f} s, "
            f"eval {row['mean_reward']:.2f} +/- {row['std_reward']:.2f}"
        )

    failed: list[int] = []

    def fail(seed: int, error: Exception) -> None:
        """A seed that ended with an error: said in one line (one of rlship's errors says what to do; anything else,
        an env's own exception or a worker the system killed, also gets its traceback, said first), recorded; the
        other seeds go on."""
        failed.append(seed)
        said = str(error) if isinstance(error, RlshipError) else f"{type(error).__name__}: {error}"[:1000]
        if not isinstance(error, RlshipError):
            remote = error.__cause__  # a pool worker's traceback, as text: where it happened
            where = str(remote) if type(remote).__name__ == "_RemoteTraceback" else ""
            log(where.strip().strip('"').strip() or "".join(traceback.format_exception(error)).rstrip())
            said += " (not one of rlship's errors: its traceback is above)"
        folder.record(None, seeds, command, engine, failure={"seed": seed, "error": said})
        log(f"rlship sweep: seed {seed}: failed: {said}")

    interrupted, start = False, time.perf_counter()
    if tasks:
        runner = _run_on_ray if ray else _run_in_pool
        interrupted = runner(tasks, done, fail, ray if ray else n_workers)
    # this invocation's wall time, start-up of the pool or Ray connection included (docs/scaling.md compares it)
    engine["wall_seconds"] = round(time.perf_counter() - start, 3)
    engine["seeds_run"] = [t.seed for t in tasks]
    folder.record(None, seeds, command, engine)
    return SweepReport(folder, skipped, [t.seed for t in tasks], interrupted, sorted(failed))


Failed = Callable[[int, Exception], None]


def _run_in_pool(tasks: list[SeedTask], done: Callable[[dict[str, Any]], None], fail: Failed, workers: Any) -> bool:
    """Seeds in a pool of fresh processes (spawn: no torch state forked from this one)."""
    context = multiprocessing.get_context("spawn")
    pool = concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=context, initializer=_pool_worker_init, initargs=(os.getpid(),)
    )
    futures = {pool.submit(run_seed, t): t for t in tasks}
    recorded: set[concurrent.futures.Future[dict[str, Any] | None]] = set()

    def collect(future: concurrent.futures.Future[dict[str, Any] | None]) -> dict[str, Any] | None:
        """A finished seed's row, recorded (None: Ctrl-C came before it started, or it failed, recorded so)."""
        recorded.add(future)
        try:
            row = future.result()
        except Exception as exc:  # recorded, the other seeds go on (a KeyboardInterrupt stops the sweep)
            fail(futures[future].seed, exc)
            return None
        if row is not None:
            done(row)
        return row

    interrupted = False
    try:
        for future in concurrent.futures.as_completed(futures):
            row = collect(future)
            interrupted = interrupted or (row is not None and row["interrupted"])
    except KeyboardInterrupt:
        # The workers got the same Ctrl-C: the runs in progress stop at their next safe point and return.
        interrupted = True
        for future in futures:
            future.cancel()
        for future in futures:
            if not future.cancelled() and future not in recorded:
                with contextlib.suppress(KeyboardInterrupt, concurrent.futures.CancelledError, RuntimeError):
                    collect(future)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return interrupted


def _run_on_ray(tasks: list[SeedTask], done: Callable[[dict[str, Any]], None], fail: Failed, address: Any) -> bool:
    """One Ray task per seed, one CPU each; results are recorded as they come."""
    try:
        import ray
    except ImportError:
        raise SweepError("--ray needs Ray: pip install 'rlship[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        init: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address == "local":  # a Ray instance of this machine's cores on loopback, stopped when the sweep ends
            init["_node_ip_address"] = "127.0.0.1"
        else:
            init["address"] = address
        try:
            ray.init(**init)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise SweepError(f"--ray {address}: cannot connect to a Ray cluster ({exc})") from exc
    remote = ray.remote(num_cpus=1, max_retries=0)(run_seed)
    pending = {remote.remote(t): t for t in tasks}
    interrupted = False
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                task = pending.pop(ref)
                try:
                    row = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:  # the task's own exception is its `cause`
                    fail(task.seed, exc.cause if isinstance(exc.cause, RlshipError) else exc)
                    continue
                except ray.exceptions.RayError as exc:  # its worker or node died: this seed fails, the others go on
                    fail(task.seed, exc)
                    continue
                if row is None:
                    continue
                done(row)
                interrupted = interrupted or row["interrupted"]
    except KeyboardInterrupt:
        interrupted = True
        for ref in pending:
            ray.cancel(ref, force=True)
    finally:
        if started_here:
            ray.shutdown()
    return interrupted


# --- CLI


def register(sub: Subparsers) -> None:
    p = sub.add_parser(
        "sweep",
        help="train and evaluate one run per seed (a process pool or Ray); writes sweep.json and sweep.md",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(handler=_run_sweep)
    p.add_argument("algo", metavar="ALGO", help="algorithm name, as in `rlship train`")
    p.add_argument("env_id", metavar="ENV_ID", help="Gymnasium env id, for example CartPole-v1")
    p.add_argument("--seeds", required=True, help="seeds: a range 100-119, a list 0,3,7, or both 0-4,10")
    p.add_argument(
        "--out", type=folder_arg, required=True, help="sweep folder (new or empty, or this sweep's own to continue it)"
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="hyperparameter override, as `rlship train ALGO --help` lists them (repeatable): --set total_steps=50000",
    )
    p.add_argument(
        "--env-kwargs", type=json.loads, default=None, metavar="JSON", help="keyword arguments for gymnasium.make"
    )
    p.add_argument(
        "--workers", type=whole_number, default=None, help="pool processes (default: one per core); not with --ray"
    )
    p.add_argument(
        "--ray",
        default=None,
        metavar="ADDRESS",
        help="run the seeds on Ray: 'auto' (the running cluster), 'local' (start one here) or host:port",
    )


def _run_sweep(args: argparse.Namespace) -> int:
    from rlship.training import ALGORITHMS

    if args.algo not in ALGORITHMS:
        raise SweepError(f"unknown algorithm {args.algo!r}; rlship has {list(ALGORITHMS)}")
    if args.ray and args.workers is not None:
        raise SweepError("--workers sizes the local pool; with --ray, Ray's CPUs decide (one task per seed, 1 CPU)")
    if args.env_kwargs is not None and not isinstance(args.env_kwargs, dict):
        raise SweepError("--env-kwargs must be a JSON object, for example '{\"sutton_barto_reward\": true}'")
    seeds = parse_seeds(args.seeds)
    overrides = parse_overrides(args.algo, args.overrides)
    command = f"rlship sweep {args.algo} {args.env_id} --seeds {args.seeds} --out {args.out}"
    command += "".join(f" --set {o}" for o in args.overrides)
    command += f" --ray {args.ray}" if args.ray else (f" --workers {args.workers}" if args.workers else "")
    report = sweep(
        args.algo,
        args.env_id,
        seeds,
        args.out,
        overrides=overrides,
        env_kwargs=args.env_kwargs,
        workers=args.workers,
        ray=args.ray,
        command=command,
    )
    print_result(markdown(report.data), written=f"the sweep folder {args.out} was written (sweep.json, sweep.md)")
    if report.failed:  # each said in its own line as it ended; the exit status says the sweep is not whole
        print(
            f"rlship sweep: {len(report.failed)} of {len(report.ran)} seeds failed ({_seed_ranges(report.failed)}); "
            "sweep.json and sweep.md record why",
            file=sys.stderr,
        )
    if report.interrupted:
        print(
            f"rlship sweep: interrupted; {report.data['summary']['seeds_finished']} seeds are finished in "
            f"{args.out}. Run the same command again to do the rest (finished seeds are skipped).",
            file=sys.stderr,
        )
        return 130
    return 1 if report.failed else 0


__all__ = ["SeedTask", "SweepError", "SweepReport", "markdown", "parse_seeds", "run_seed", "summarise", "sweep"]
