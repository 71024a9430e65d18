"""Load test of `rlship serve` against a bare uvicorn + Starlette endpoint doing the same work, in one run.

    python benchmarks/serve_load.py                 # 1, 16, 64 connections on /act; the batch route; ratios
    python benchmarks/serve_load.py --soak 60       # then 60 s at 64 connections: errors and RSS growth
    python benchmarks/serve_load.py --plain-api     # also BentoML's own @bentoml.api path for the same routes
    python benchmarks/serve_load.py --swaps 0 --swap-rss 0     # without the hot swap part (default: 10 and 50)

Both servers are started here as subprocesses on free loopback ports, worker processes of one torch thread each
(rlship: --workers, default 1; the bare peer: one), and are measured in turns (rlship, bare, rlship, ...;
--rounds) so that the load of a shared machine falls on both alike:
  rlship  `rlship serve` (BentoML: its workers, middlewares, /metrics, traffic timeout; the policy routes are
          @bentoml.api methods answered by rlship's lean handlers from an ASGI middleware)
  plain   (--plain-api) the same service answering through BentoML's own @bentoml.api path (RLSHIP_PLAIN_API=1)
  bare    uvicorn serving the same Starlette routes app (`rlship.serving.routes`): same parsing, same forward
          pass, same JSON; only BentoML is missing, so the ratio is BentoML's cost.
The load generator is wrk (Debian package `wrk`, C, one thread) when installed, else an asyncio raw-socket
client in a separate process. "client ceiling" drives a do-nothing asyncio HTTP responder with the same client:
when it is far above the bare endpoint, the client is not what the table measures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import psutil

from _process import RLSHIP

ACT_BODY = '{"observation": [0.01, -0.02, 0.03, 0.04]}'
JSON = "application/json"
PIXELS_ENV = "RLSHIP_BENCH_PIXELS"  # the pixel policy's folder, for the bare peer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode} before {url} was ready")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return time.perf_counter() - start
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} not ready after {timeout:.0f} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def tree_rss_mb(pid: int) -> float:
    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20


# --- the servers -------------------------------------------------------------------------------------------


def bare_app() -> object:
    """The peer: rlship's own routes app, plus a /readyz, on bare uvicorn (the defaults BentoML's worker uses)."""
    import torch
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from rlship.policy import load_policy
    from rlship.serving.routes import PolicyRoutes

    torch.set_num_threads(1)
    routes = PolicyRoutes(max_batch=int(os.environ["RLSHIP_MAX_BATCH"]))
    routes.load(load_policy("default"))
    if os.environ.get(PIXELS_ENV):  # the same pixel policy rlship serves, under the same name
        routes.load(load_policy(os.environ[PIXELS_ENV]), "pix")
    app = routes.app()

    async def readyz(_request: object) -> PlainTextResponse:
        return PlainTextResponse("\n")

    app.router.routes.append(Route("/readyz", readyz))
    return app


def run_bare(port: int) -> None:
    import uvicorn

    uvicorn.run(bare_app(), host="127.0.0.1", port=port, log_level="warning", access_log=False)


class NullResponder(asyncio.Protocol):
    """Answers every request head with a fixed 200: the fastest server possible, to find the client's ceiling."""

    REPLY = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: application/json\r\n\r\n{}"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            match = re.search(rb"content-length:\s*(\d+)", self.buffer[:head_end], re.IGNORECASE)
            size = head_end + 4 + (int(match.group(1)) if match else 0)
            if len(self.buffer) < size:
                return
            self.buffer = self.buffer[size:]
            self.transport.write(self.REPLY)  # type: ignore[attr-defined]


def run_null(port: int) -> None:
    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(NullResponder, "127.0.0.1", port)
        await server.serve_forever()

    asyncio.run(main())


# --- the load generators -----------------------------------------------------------------------------------


def _body_file(body: str | bytes) -> str:
    with tempfile.NamedTemporaryFile("wb", suffix=".body", delete=False) as file:
        file.write(body.encode() if isinstance(body, str) else body)
    return file.name


def wrk(url: str, body: str | bytes, connections: int, seconds: float, content_type: str = JSON) -> dict[str, float]:
    body_path = _body_file(body)  # read by the script: a binary body (a PNG, a .npy) survives as it is
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(f'local f = io.open({json.dumps(body_path)}, "rb")\nwrk.body = f:read("*a")\nf:close()\n')
        script.write(f'wrk.method = "POST"\nwrk.headers["Content-Type"] = {json.dumps(content_type)}\n')
    try:
        # --timeout 10s: wrk's own 2 s counted the slowest 44 MiB .npy batch calls as errors (they were 200s)
        command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s", "--latency"]
        out = subprocess.run(
            [*command, "-s", script.name, url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)
        os.unlink(body_path)

    def latency_ms(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non_2xx.group(1)) if non_2xx else 0) + (
        sum(int(g) for g in socket_errors.groups()) if socket_errors else 0
    )
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50": latency_ms("50%"),
        "p99": latency_ms("99%"),
        "requests": requests,
        "errors": errors,
    }


async def _python_client(
    host: str, port: int, path: str, body: bytes, connections: int, seconds: float, content_type: str = JSON
) -> dict:
    request = (
        f"POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode() + body
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def connection() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            size = int(re.search(rb"content-length:\s*(\d+)", head, re.IGNORECASE).group(1))  # type: ignore[union-attr]
            await reader.readexactly(size)
            latencies.append(time.perf_counter() - start)
            if not head.startswith(b"HTTP/1.1 200"):
                errors += 1
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(connections)))
    elapsed = time.perf_counter() - start
    lat = np.asarray(latencies) * 1000
    return {
        "rps": len(lat) / elapsed,
        "p50": float(np.percentile(lat, 50)),
        "p99": float(np.percentile(lat, 99)),
        "requests": len(lat),
        "errors": errors,
    }


def python_client(
    url: str, body: str | bytes, connections: int, seconds: float, content_type: str = JSON
) -> dict[str, float]:
    """The asyncio client in a process of its own, so it never shares an interpreter with what it measures."""
    match = re.match(r"http://([^:/]+):(\d+)(/.*)", url)
    host, port, path = match.groups()  # type: ignore[union-attr]
    code = (
        "import asyncio, json, sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); import serve_load as s; "
        "print(json.dumps(asyncio.run(s._python_client(sys.argv[2], int(sys.argv[3]), sys.argv[4], "
        "Path(sys.argv[5]).read_bytes(), int(sys.argv[6]), float(sys.argv[7]), sys.argv[8]))))"
    )
    body_path = _body_file(body)
    args = [str(Path(__file__).parent), host, port, path, body_path, str(connections), str(seconds), content_type]
    try:
        out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(body_path)
    return json.loads(out)


# --- the run -----------------------------------------------------------------------------------------------


def start(command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@contextlib.contextmanager
def rlship_serving(
    args: Sequence[str] = (), env: dict[str, str] | None = None
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """`rlship serve ARGS` on a free loopback port: (the port, the server's process), ready (/readyz answers 200)
    when the block starts, stopped when it ends."""
    port = free_port()
    proc = start([RLSHIP, "serve", *args, "--port", str(port)], env)
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
        yield port, proc
    finally:
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement (default: 3)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternate the two servers this many times per cell (default: 3)"
    )
    parser.add_argument("--batch-size", type=int, default=4096, help="observations per /act_batch call (default: 4096)")
    parser.add_argument("--batch-connections", type=int, default=2)
    parser.add_argument("--soak", type=float, default=0.0, help="then soak: this many seconds at 64 connections")
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="rlship's worker processes (default: 1); the bare peer stays one process (uvicorn's own multi-worker "
        "mode answered a sequential client in ~46 ms here, no fair peer), so compare ratios at 1",
    )
    parser.add_argument(
        "--plain-api", action="store_true", help="also measure BentoML's own @bentoml.api path (RLSHIP_PLAIN_API=1)"
    )
    parser.add_argument("--swaps", type=int, default=10, help="hot swaps of the served policy under load (default: 10)")
    parser.add_argument("--swap-rss", type=int, default=50, help="then this many swaps back to back: RSS (default: 50)")
    parser.add_argument(
        "--image-connections",
        type=int,
        nargs="*",
        default=[1, 16],
        help="connections for /act with an image (a PNG frame per request, with a session) on an untrained "
        "rlship/CartPolePixels-v1 CNN; none: skip the pixel part (default: 1 16)",
    )
    parser.add_argument("--image-batch", type=int, default=64, help="raw frames per /act_batch call (default: 64)")
    parser.add_argument("--skip-vectors", action="store_true", help="only the pixel part (and the swaps, if any)")
    parser.add_argument("--serve-bare", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-null", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        return run_bare(args.serve_bare)
    if args.serve_null:
        return run_null(args.serve_null)

    client_name = "wrk" if args.client == "wrk" or (args.client == "auto" and shutil.which("wrk")) else "python"
    load = wrk if client_name == "wrk" else python_client
    rng = np.random.default_rng(0)
    batch_body = json.dumps({"observations": (rng.normal(size=(args.batch_size, 4)) * 0.05).round(6).tolist()})

    ports = {"rlship": free_port(), "bare": free_port(), "null": free_port()}
    max_batch = str(max(4096, args.batch_size))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RLSHIP_MAX_BATCH": max_batch}
    sources = ["default"]
    tmp = tempfile.TemporaryDirectory(prefix="rlship-serve-load-")
    if args.image_connections:
        env[PIXELS_ENV] = str(pixel_policy().save(Path(tmp.name) / "pix"))
        sources.append(f"pix={env[PIXELS_ENV]}")
    procs = {
        "rlship": start(
            [
                RLSHIP,
                "serve",
                *sources,
                "--port",
                str(ports["rlship"]),
                "--max-batch",
                max_batch,
                "--workers",
                str(args.workers),
            ]
        ),
        "bare": start([sys.executable, __file__, "--serve-bare", str(ports["bare"])], env),
        "null": start([sys.executable, __file__, "--serve-null", str(ports["null"])]),
    }
    if args.plain_api:
        ports["plain"] = free_port()
        command = [RLSHIP, "serve", "--port", str(ports["plain"]), "--max-batch", max_batch]
        procs["plain"] = start(command, {**os.environ, "RLSHIP_PLAIN_API": "1"})
    servers = [name for name in procs if name != "null"]
    try:
        for name in servers:
            took = wait_ready(f"http://127.0.0.1:{ports[name]}/readyz", procs[name])
            print(f"{name} ready in {took:.1f} s")
        time.sleep(0.5)
        load1 = os.getloadavg()
        print(f"client: {client_name}; cpus: {os.cpu_count()}; load average before: {load1[0]:.2f} (1 min)")
        for name in servers:  # warm-up: first requests allocate
            load(f"http://127.0.0.1:{ports[name]}/act", ACT_BODY, 16, 1)
        if args.image_connections:
            pixels_benchmark(load, {k: v for k, v in ports.items() if k in ("rlship", "bare")}, args)
        if args.skip_vectors:
            return

        rows = []
        for c in args.connections:
            row = {"connections": c, **interleaved(load, ports, "/act", ACT_BODY, c, args.seconds, args.rounds)}
            row["null"] = load(f"http://127.0.0.1:{ports['null']}/act", ACT_BODY, c, 2)
            rows.append(row)
        batch = interleaved(load, ports, "/act_batch", batch_body, args.batch_connections, args.seconds, args.rounds)
        load2 = os.getloadavg()

        print(
            f"\nPOST /act: {args.rounds} rounds of {args.seconds:g} s per server and cell, taken in turns; "
            f"rlship {args.workers} worker process(es), bare 1; torch threads 1\n"
        )
        print(
            "| connections | rlship req/s | bare req/s | ratio | rlship p50 ms | bare p50 ms | rlship p99 ms "
            "| bare p99 ms | p99 ratio | client ceiling req/s | errors |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for row in rows:
            r, b = row["rlship"], row["bare"]
            print(
                f"| {row['connections']} | {r['rps']:.0f} | {b['rps']:.0f} | {r['rps'] / b['rps']:.2f} "
                f"| {r['p50']:.2f} | {b['p50']:.2f} | {r['p99']:.2f} | {b['p99']:.2f} | {r['p99'] / b['p99']:.2f} "
                f"| {row['null']['rps']:.0f} | {r['errors'] + b['errors']} |"
            )
        print(
            f"\nPOST /act_batch: {args.batch_size} observations per call, {args.batch_connections} connections, "
            f"{args.rounds} rounds of {args.seconds:g} s in turns\n"
        )
        print("| server | calls/s | observations/s | p50 ms | p99 ms | errors |")
        print("|---|---|---|---|---|---|")
        for name, m in batch.items():
            print(
                f"| {name} | {m['rps']:.1f} | {m['rps'] * args.batch_size:,.0f} | {m['p50']:.2f} | {m['p99']:.2f} "
                f"| {m['errors']} |"
            )
        print(f"\nload average during the run: {load1[0]:.2f} -> {load2[0]:.2f} (1 min) on {os.cpu_count()} cpus")

        by_c = {row["connections"]: row for row in rows}
        print("\ngoals:")
        if 16 in by_c:
            r, b = by_c[16]["rlship"], by_c[16]["bare"]
            print(f"  /act req/s at 16 connections >= 60% of bare: {r['rps'] / b['rps']:.0%}")
            if "plain" in by_c[16]:
                print(f"    (BentoML's own @bentoml.api path: {by_c[16]['plain']['rps'] / b['rps']:.0%})")
            print(f"  /act p99 at 16 connections within 2x of bare: {r['p99'] / b['p99']:.2f}x")
        if 1 in by_c:
            r, b = by_c[1]["rlship"], by_c[1]["bare"]
            print(f"  sequential /act p50 within 1.5x of bare: {r['p50'] / b['p50']:.2f}x")
        print(f"  /act_batch >= 200,000 observations/s: {batch['rlship']['rps'] * args.batch_size:,.0f}")

        if "plain" in procs:
            print_plain(rows, batch, args.batch_size)
        if args.soak > 0:
            soak(load, ports["rlship"], procs["rlship"].pid, args.soak)
    finally:
        for proc in procs.values():
            stop(proc)
        tmp.cleanup()
    if args.swaps > 0 or args.swap_rss > 0:
        swap_benchmark(load, args.swaps, args.swap_rss, max_batch)


def pixel_policy() -> object:
    """An untrained rlship/CartPolePixels-v1 CNN of the DQN preset's shape (the default conv layers, 256 hidden):
    the forward pass a served pixel policy does."""
    import gymnasium as gym
    import torch

    from rlship.games.cartpole_pixels import PREPROCESSING
    from rlship.networks import network_spec
    from rlship.policy import new_policy

    torch.manual_seed(0)
    space = gym.spaces.Box(0, 255, PREPROCESSING.observation_shape, np.uint8)
    spec = network_spec(PREPROCESSING.observation_shape, (256,), "relu", {"q_values": 2})
    return new_policy(
        "dqn",
        "rlship/CartPolePixels-v1",
        space,
        gym.spaces.Discrete(2),
        spec,
        {},
        seed=0,
        action_distribution="epsilon_greedy",
        frames=PREPROCESSING,
    )


def rendered_frames(n: int) -> list[np.ndarray]:
    """n raw 400x600 RGB frames of CartPole-v1 as Gymnasium renders them (random play, new episodes as needed)."""
    import gymnasium as gym

    env = gym.make("CartPole-v1", render_mode="rgb_array")
    env.reset(seed=0)
    frames = []
    rng = np.random.default_rng(0)
    while len(frames) < n:
        frames.append(env.render())
        _, _, terminated, truncated, _ = env.step(int(rng.integers(2)))
        if terminated or truncated:
            env.reset()
    env.close()
    return frames


def pixels_benchmark(load: object, ports: dict[str, int], args: argparse.Namespace) -> None:
    """POST /act with one raw PNG frame per request in a session (the server decodes, preprocesses, stacks and runs
    the CNN), rlship beside the bare uvicorn endpoint running the same routes; then frames/s on /act_batch with
    `--image-batch` raw frames per call, as one .npy body and as base64 PNGs in JSON."""
    import base64

    import httpx

    from rlship.serving.images import array_as_npy, frame_as_png

    frames = rendered_frames(args.image_batch)
    png = frame_as_png(frames[-1])
    ids = [f"b{i}" for i in range(args.image_batch)]
    npy_body = array_as_npy(np.stack(frames))
    json_body = json.dumps({"images": [base64.b64encode(frame_as_png(f)).decode() for f in frames], "sessions": ids})
    for port in ports.values():  # start the sessions the measured requests continue
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            query = {"session": "bench", "reset": "true"}
            assert (
                client.post(
                    "/policies/pix/act", content=png, params=query, headers={"content-type": "image/png"}
                ).status_code
                == 200
            )
            query = {"sessions": ",".join(ids), "reset": "true"}
            answer = client.post(
                "/policies/pix/act_batch", content=npy_body, params=query, headers={"content-type": "application/x-npy"}
            )
            assert answer.status_code == 200, answer.text
    load1 = os.getloadavg()
    path = "/policies/pix/act?session=bench"
    for port in ports.values():  # warm-up
        load(f"http://127.0.0.1:{port}{path}", png, 4, 1, "image/png")  # type: ignore[operator]
    rows = [
        (c, interleaved(load, ports, path, png, c, args.seconds, args.rounds, "image/png"))
        for c in args.image_connections
    ]
    batch_path = f"/policies/pix/act_batch?sessions={','.join(ids)}"
    by_npy = interleaved(
        load, ports, batch_path, npy_body, args.batch_connections, args.seconds, args.rounds, "application/x-npy"
    )
    by_json = interleaved(
        load, ports, "/policies/pix/act_batch", json_body, args.batch_connections, args.seconds, args.rounds
    )
    load2 = os.getloadavg()
    print(
        f"\nPOST /act with an image: one raw 600x400 RGB CartPole frame as image/png ({len(png):,} bytes) per request, "
        "continuing a session (decode, crop + grey + resize to 25x100, stack of 2, CNN forward); untrained "
        f"rlship/CartPolePixels-v1 CNN; {args.rounds} rounds of {args.seconds:g} s per server, in turns\n"
    )
    print(
        "| connections | rlship req/s | bare req/s | ratio | rlship p50 ms | bare p50 ms | rlship p99 ms | bare p99 ms "
        "| p99 ratio | errors |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for c, m in rows:
        r, b = m["rlship"], m["bare"]
        print(
            f"| {c} | {r['rps']:.0f} | {b['rps']:.0f} | {r['rps'] / b['rps']:.2f} | {r['p50']:.2f} | {b['p50']:.2f} "
            f"| {r['p99']:.2f} | {b['p99']:.2f} | {r['p99'] / b['p99']:.2f} | {r['errors'] + b['errors']} |"
        )
    print(
        f"\nPOST /act_batch with raw frames: {args.image_batch} frames per call, each continuing its own session, "
        f"{args.batch_connections} connections\n"
    )
    print("| body | server | calls/s | frames/s | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|---|")
    for label, result in (
        (f".npy ({len(npy_body) / 2**20:.1f} MiB)", by_npy),
        (f"JSON, base64 PNGs ({len(json_body) / 2**10:.0f} KiB)", by_json),
    ):
        for name, m in result.items():
            print(
                f"| {label} | {name} | {m['rps']:.1f} | {m['rps'] * args.image_batch:,.0f} | {m['p50']:.1f} "
                f"| {m['p99']:.1f} | {m['errors']} |"
            )
    print(f"\nload average during the pixel part: {load1[0]:.2f} -> {load2[0]:.2f} (1 min) on {os.cpu_count()} cpus")


def print_plain(rows: list[dict], batch: dict[str, dict[str, float]], batch_size: int) -> None:
    print("\nthe same routes through BentoML's own @bentoml.api path (plain) beside rlship's lean path and bare:\n")
    print(
        "| connections | plain req/s | rlship req/s | bare req/s | plain / bare | plain p99 ms | bare p99 ms | errors |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        pl, r, b = row["plain"], row["rlship"], row["bare"]
        print(
            f"| {row['connections']} | {pl['rps']:.0f} | {r['rps']:.0f} | {b['rps']:.0f} | {pl['rps'] / b['rps']:.2f} "
            f"| {pl['p99']:.2f} | {b['p99']:.2f} | {pl['errors']} |"
        )
    print(f"plain /act_batch: {batch['plain']['rps'] * batch_size:,.0f} observations/s")


def wide_policy(seed: int) -> object:
    """An untrained CartPole-v1 policy with two hidden layers of 1024 (about 4 MB of weights)."""
    import gymnasium as gym
    import torch

    from rlship.networks import NetworkSpec
    from rlship.policy import new_policy

    torch.manual_seed(seed)
    env = gym.make("CartPole-v1")
    spec = NetworkSpec((1024, 1024), "tanh", {"logits": 2, "value": 1})
    return new_policy("ppo", "CartPole-v1", env.observation_space, env.action_space, spec, {}, seed)


def swap_benchmark(load: object, swaps: int, rss_swaps: int, max_batch: str) -> None:
    """Hot swaps of the default policy while wrk drives /act at 16 connections: every answer must be a 200; then
    `rss_swaps` swaps back to back, the server's RSS before and after. The two policies swapped are wide
    (1024x1024 MLPs, about 4 MB of weights each) so that a leak of one per swap would show."""
    import threading

    import httpx

    token = "bench-" + os.urandom(16).hex()
    with tempfile.TemporaryDirectory(prefix="rlship-swap-bench-") as tmp:
        folders = [str(wide_policy(seed).save(Path(tmp) / f"wide-{seed}")) for seed in (0, 1)]
        env = {**os.environ, "RLSHIP_ADMIN_TOKEN": token}
        with rlship_serving([f"wide={folders[0]}", "--max-batch", max_batch], env) as (port, proc):
            url = f"http://127.0.0.1:{port}"
            admin = httpx.Client(base_url=url, headers={"authorization": f"Bearer {token}"}, timeout=120)

            def swap(i: int) -> tuple[int, float]:
                start_t = time.perf_counter()
                answer = admin.put("/policies/wide", json={"source": folders[i % 2]})
                return answer.status_code, time.perf_counter() - start_t

            if swaps > 0:
                seconds = 2.0 + 1.5 * swaps
                result: dict[str, float] = {}
                loader = threading.Thread(target=lambda: result.update(load(f"{url}/act", ACT_BODY, 16, seconds)))  # type: ignore[operator]
                loader.start()
                time.sleep(1.0)
                outcomes = []
                for i in range(swaps):
                    outcomes.append(swap(i + 1))
                    if i == swaps // 2:  # one that cannot load, in the middle: refused, the old policy serves on
                        bad = admin.put("/policies/wide", json={"source": str(Path(tmp) / "missing")})
                        outcomes.append((bad.status_code, 0.0))
                    time.sleep(1.0)
                loader.join()
                ok = sum(status == 200 for status, _ in outcomes)
                refused = sum(status == 422 for status, _ in outcomes)
                took = [t for status, t in outcomes if status == 200]
                print(
                    f"\nhot swap under load: {swaps} swaps of a 1024x1024 policy (+1 that cannot load) while wrk drove "
                    f"/act at 16 connections for {seconds:g} s: {ok} swapped, {refused} refused (422), "
                    f"swap took {np.median(took):.2f} s median; /act {result['requests']:,} requests, "
                    f"{result['rps']:.0f} req/s, p99 {result['p99']:.2f} ms, errors {result['errors']}; "
                    f"{'PASS' if result['errors'] == 0 and ok == swaps and refused == 1 else 'FAIL'}"
                )
            if rss_swaps > 0:
                for i in range(5):  # settle: the allocator's pools reach their steady size
                    swap(i)
                before = tree_rss_mb(proc.pid)
                statuses = [swap(i)[0] for i in range(rss_swaps)]
                after = tree_rss_mb(proc.pid)
                growth = after / before - 1
                print(
                    f"memory over {rss_swaps} swaps back to back: server RSS (all processes) {before:.0f} MB -> "
                    f"{after:.0f} MB ({growth:+.1%}); {sum(s == 200 for s in statuses)} swapped; "
                    f"{'PASS' if growth < 0.1 and all(s == 200 for s in statuses) else 'FAIL'} (growth under 10%)"
                )


def interleaved(
    load: object,
    ports: dict[str, int],
    path: str,
    body: str | bytes,
    connections: int,
    seconds: float,
    rounds: int,
    content_type: str = JSON,
) -> dict[str, dict[str, float]]:
    """Both servers measured in turns (rlship, bare, rlship, ...) so a change in the machine's load hits both;
    req/s is the mean over rounds, latencies the median of the rounds' percentiles."""
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in ports if name != "null"}
    for _ in range(rounds):
        for name in runs:
            url = f"http://127.0.0.1:{ports[name]}{path}"
            runs[name].append(load(url, body, connections, seconds, content_type))  # type: ignore[operator]
    return {
        name: {
            "rps": float(np.mean([m["rps"] for m in ms])),
            "p50": float(np.median([m["p50"] for m in ms])),
            "p99": float(np.median([m["p99"] for m in ms])),
            "requests": sum(m["requests"] for m in ms),
            "errors": sum(m["errors"] for m in ms),
        }
        for name, ms in runs.items()
    }


def soak(load: object, port: int, pid: int, seconds: float) -> None:
    url = f"http://127.0.0.1:{port}/act"
    load(url, ACT_BODY, 64, 5)  # type: ignore[operator]  # settle allocations before the first reading
    before = tree_rss_mb(pid)
    result = load(url, ACT_BODY, 64, seconds)  # type: ignore[operator]
    after = tree_rss_mb(pid)
    growth = after / before - 1
    print(
        f"\nsoak: {seconds:g} s at 64 connections on /act: {result['requests']:,} requests, {result['rps']:.0f} req/s, "
        f"p99 {result['p99']:.2f} ms, errors {result['errors']}; server RSS (all processes) {before:.0f} MB -> "
        f"{after:.0f} MB ({growth:+.1%}); {'PASS' if result['errors'] == 0 and growth < 0.2 else 'FAIL'} "
        "(no errors, growth under 20%)"
    )


if __name__ == "__main__":
    main()
