"""`rlship serve` and `rlship simulate`."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import TYPE_CHECKING

from rlship.errors import UsageError
from rlship.output import print_result
from rlship.whole_numbers import whole_number, whole_number_variable

if TYPE_CHECKING:
    from rlship.cli import Subparsers
    from rlship.serving.limits import ServerLimits


def register(sub: Subparsers) -> None:
    serve = sub.add_parser(
        "serve",
        help="serve policies over HTTP with BentoML (POST /act, POST /act_batch, GET /policy, GET /policies)",
        description="Serve one or more policies with BentoML: the same service as "
        "`RLSHIP_POLICY='[NAME=]SOURCE ...' bentoml serve rlship.serving.service:PolicyService`. Each policy "
        "answers at /policies/NAME/act (act_batch, policy); the first also at /act. Ready (GET /readyz answers "
        "200) once every policy is loaded and warmed up. Set RLSHIP_ADMIN_TOKEN to allow hot swap "
        "(PUT /policies/NAME).",
    )
    serve.set_defaults(handler=_run_serve)
    serve.add_argument(
        "sources",
        nargs="*",
        metavar="[NAME=]SOURCE",
        help="policy folder, hf://OWNER/NAME[@REVISION], or 'default' (the embedded CartPole-v1 policy), "
        "optionally named (NAME: 1-64 letters, digits, '.', '_', '-'; else the folder's or repo's name); "
        "default: $RLSHIP_POLICY, else 'default'",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=whole_number, default=3000, help="port to listen on (default: 3000)")
    serve.add_argument(
        "--workers",
        type=whole_number,
        default=None,
        help="worker processes, one torch thread each; at most one per core (default: $RLSHIP_WORKERS, else 1)",
    )
    serve.add_argument(
        "--max-batch", type=whole_number, default=None, help="largest batch /act_batch accepts (default: 4096)"
    )
    serve.add_argument(
        "--timeout", type=whole_number, default=None, help="seconds before a request answers 504 (default: 30)"
    )
    serve.add_argument("--access-log", action="store_true", help="log every request (costs throughput)")
    serve.add_argument(
        "--drain",
        type=float,
        default=None,
        metavar="SECONDS",
        help="on SIGTERM: /readyz answers 503 and requests are still answered this long, then the server finishes "
        "those in flight and exits; set it above your load balancer's time to notice (default: "
        "$RLSHIP_DRAIN_SECONDS, else 0)",
    )
    _add_limit_flags(serve)

    sim = sub.add_parser(
        "simulate",
        help="run a Gymnasium env here and ask a served policy for every action; prints returns and latency",
    )
    sim.set_defaults(handler=_run_simulate)
    sim.add_argument("--url", default="http://127.0.0.1:3000", help="the server (default: http://127.0.0.1:3000)")
    sim.add_argument("--env", default=None, metavar="ENV_ID", help="Gymnasium env id (default: the served policy's)")
    sim.add_argument("--episodes", type=whole_number, default=10, help="episodes to run (default: 10)")
    sim.add_argument(
        "--seed", type=whole_number, default=0, help="evaluation seed: episode i is reset with 1_000_000+seed+i"
    )
    sim.add_argument("--stochastic", action="store_true", help="ask for sampled actions instead of greedy ones")
    sim.add_argument("--batch", action="store_true", help="one POST /act_batch per step for all running episodes")
    sim.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each answer (default: 10)")
    sim.add_argument(
        "--frames",
        choices=("png", "npy"),
        default="png",
        help="pixel policies: send each raw rendered frame (env.render()) as a PNG or a .npy (default: png)",
    )


def _add_limit_flags(serve: argparse.ArgumentParser) -> None:
    """The server's bounds (rlship.serving.limits); each flag defaults to its environment variable."""
    from rlship.serving import limits

    group = serve.add_argument_group("limits (README: Limits of the server)")
    group.add_argument(
        "--max-body-bytes",
        type=whole_number,
        default=None,
        help=f"largest request body, chunked or not: over it, 413 (default: ${limits.MAX_BODY_ENV}, "
        "else what --max-batch observations need)",
    )
    group.add_argument(
        "--body-timeout",
        type=float,
        default=None,
        help=f"seconds to send a request body after its head, else 408 "
        f"(default: ${limits.BODY_TIMEOUT_ENV}, else {limits.DEFAULT_BODY_TIMEOUT:g})",
    )
    group.add_argument(
        "--header-timeout",
        type=float,
        default=None,
        help=f"seconds to send a request head after connecting or after the previous answer, else 408 or closed "
        f"(default: ${limits.HEADER_TIMEOUT_ENV}, else {limits.DEFAULT_HEADER_TIMEOUT:g})",
    )
    group.add_argument(
        "--keep-alive",
        type=whole_number,
        default=None,
        help=f"seconds an idle keep-alive connection stays open (uvicorn's timeout_keep_alive; "
        f"default: ${limits.KEEP_ALIVE_ENV}, else {limits.DEFAULT_KEEP_ALIVE})",
    )
    group.add_argument(
        "--max-connections",
        type=whole_number,
        default=None,
        help=f"open connections per worker; at the cap the longest idle one is closed (default: "
        f"${limits.MAX_CONNECTIONS_ENV}, else {limits.DEFAULT_MAX_CONNECTIONS} or `ulimit -n` minus "
        f"{limits.RESERVED_FDS}, whichever is lower)",
    )
    group.add_argument(
        "--max-sessions",
        type=whole_number,
        default=None,
        help=f"pixel policies: frame-stack sessions kept per worker and policy, least recently used evicted "
        f"(default: ${limits.MAX_SESSIONS_ENV}, else {limits.DEFAULT_MAX_SESSIONS})",
    )
    group.add_argument(
        "--session-idle",
        type=float,
        default=None,
        help=f"pixel policies: seconds after its last frame that a session is dropped "
        f"(default: ${limits.SESSION_IDLE_ENV}, else {limits.DEFAULT_SESSION_IDLE:g})",
    )


def _server_limits(args: argparse.Namespace) -> ServerLimits:
    """The limits from the flags over the environment, checked here (one line, exit 1) rather than in a worker."""
    from dataclasses import replace

    from rlship.serving.limits import ServerLimits

    flags = {
        "max_body": args.max_body_bytes,
        "body_timeout": args.body_timeout,
        "header_timeout": args.header_timeout,
        "keep_alive": args.keep_alive,
        "max_connections": args.max_connections,
        "max_sessions": args.max_sessions,
        "session_idle": args.session_idle,
    }
    return replace(ServerLimits.from_env(), **{k: v for k, v in flags.items() if v is not None})


def _run_serve(args: argparse.Namespace) -> int:
    from rlship.serving import require_extra, service_env

    require_extra("bentoml")
    from rlship.serving.registry import parse_entries

    if args.sources:
        parse_entries(json.dumps(args.sources))  # bad names and duplicates: one line here, not a failed server
        plain = (
            len(args.sources) == 1 and not args.sources[0].startswith("[") and args.sources[0].split() == args.sources
        )
        source = args.sources[0] if plain else json.dumps(args.sources)  # a JSON list: paths may hold spaces
    else:
        source = os.environ.get("RLSHIP_POLICY") or "default"
    workers = args.workers
    if workers is None:  # the flag's reader: RLSHIP_WORKERS=2 or 2e0; its range is the flag's, checked below
        workers = whole_number_variable("RLSHIP_WORKERS", os.environ.get("RLSHIP_WORKERS") or "1")
    for name, value in (("--port", args.port), ("--workers", workers), ("--max-batch", args.max_batch or 1)):
        if value < 1:
            raise UsageError(f"{name} must be at least 1; got {value}")
    env = {**os.environ, **service_env(source, workers, args.max_batch, args.timeout, args.access_log)}
    if args.drain is not None:
        from rlship.serving.drain import DRAIN_ENV, MAX_DRAIN_SECONDS

        if not 0 <= args.drain <= MAX_DRAIN_SECONDS:
            raise UsageError(f"--drain must be between 0 and {MAX_DRAIN_SECONDS:g} seconds; got {args.drain:g}")
        env[DRAIN_ENV] = f"{args.drain:g}"
    limits = _server_limits(args)
    env.update(limits.env())
    command = [sys.executable, "-m", "bentoml", "serve", "rlship.serving.service:PolicyService"]
    command += ["--host", args.host, "--port", str(args.port)]
    # idle keep-alive: uvicorn's own timeout, through BentoML's (hidden) flag for it
    command += ["--timeout-keep-alive", str(limits.keep_alive)]
    sys.stdout.flush()
    # exec: signals (Ctrl+C, SIGTERM from a container runtime) and the exit status are BentoML's own
    os.execve(sys.executable, command, env)
    return 0  # not reached


def _run_simulate(args: argparse.Namespace) -> int:
    from rlship.serving import require_extra

    require_extra("httpx")
    from rlship.serving.simulate import simulate

    if args.episodes < 1:
        raise UsageError(f"--episodes must be at least 1; got {args.episodes}")
    if not 0 < args.timeout < math.inf:  # NaN or inf would wait for ever on a server that never answers
        raise UsageError(f"--timeout must be a number of seconds above 0; got {args.timeout}")
    result = simulate(
        args.url,
        env_id=args.env,
        episodes=args.episodes,
        seed=args.seed,
        deterministic=not args.stochastic,
        batch=args.batch,
        timeout=args.timeout,
        frames=args.frames,
    )
    print_result(result.report())
    return 0
