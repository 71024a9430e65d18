"""`rlship serve` and `rlship simulate`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rlship.cli import Subparsers


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
    serve.add_argument("--port", type=int, default=3000, help="port to listen on (default: 3000)")
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes, one torch thread each; at most one per core (default: $RLSHIP_WORKERS, else 1)",
    )
    serve.add_argument("--max-batch", type=int, default=None, help="largest batch /act_batch accepts (default: 4096)")
    serve.add_argument("--timeout", type=int, default=None, help="seconds before a request answers 504 (default: 30)")
    serve.add_argument("--access-log", action="store_true", help="log every request (costs throughput)")

    sim = sub.add_parser(
        "simulate",
        help="run a Gymnasium env here and ask a served policy for every action; prints returns and latency",
    )
    sim.set_defaults(handler=_run_simulate)
    sim.add_argument("--url", default="http://127.0.0.1:3000", help="the server (default: http://127.0.0.1:3000)")
    sim.add_argument("--env", default=None, metavar="ENV_ID", help="Gymnasium env id (default: the served policy's)")
    sim.add_argument("--episodes", type=int, default=10, help="episodes to run (default: 10)")
    sim.add_argument("--seed", type=int, default=0, help="evaluation seed: episode i is reset with 1_000_000+seed+i")
    sim.add_argument("--stochastic", action="store_true", help="ask for sampled actions instead of greedy ones")
    sim.add_argument("--batch", action="store_true", help="one POST /act_batch per step for all running episodes")
    sim.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each answer (default: 10)")


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
    text = os.environ.get("RLSHIP_WORKERS") or "1"
    if args.workers is None and not text.isdigit():
        raise ValueError(f"RLSHIP_WORKERS={text!r} is not a whole number; set it to the worker count, e.g. 2")
    workers = args.workers if args.workers is not None else int(text)
    for name, value in (("--port", args.port), ("--workers", workers), ("--max-batch", args.max_batch or 1)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1; got {value}")
    env = {**os.environ, **service_env(source, workers, args.max_batch, args.timeout, args.access_log)}
    command = [sys.executable, "-m", "bentoml", "serve", "rlship.serving.service:PolicyService"]
    command += ["--host", args.host, "--port", str(args.port)]
    sys.stdout.flush()
    # exec: signals (Ctrl+C, SIGTERM from a container runtime) and the exit status are BentoML's own
    os.execve(sys.executable, command, env)
    return 0  # not reached


def _run_simulate(args: argparse.Namespace) -> int:
    from rlship.serving import require_extra

    require_extra("httpx")
    from rlship.serving.simulate import simulate

    if args.episodes < 1:
        raise ValueError(f"--episodes must be at least 1; got {args.episodes}")
    result = simulate(
        args.url,
        env_id=args.env,
        episodes=args.episodes,
        seed=args.seed,
        deterministic=not args.stochastic,
        batch=args.batch,
        timeout=args.timeout,
    )
    print(result.report())
    return 0
