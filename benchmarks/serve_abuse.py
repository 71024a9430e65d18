"""`rlship serve` under abuse: what other clients' /act sees while one client uploads huge chunked bodies, or while
thousands of connections sit idle or send their request head a byte a second.

    python benchmarks/serve_abuse.py                 # both scenarios, bounded (the defaults) vs unbounded bodies
    python benchmarks/serve_abuse.py --crowd 10000   # idle connections to hold (the client needs that many fds)

For each scenario, wrk (Debian package `wrk`, one thread) measures POST /act at --connections connections in
turns: unloaded, then under the abuse, --rounds times; the peer is the same server unloaded, so the p99 ratio is
what the abuse costs everyone else. The server's memory (all its processes) is sampled every 20 ms.
  chunked  one client sends 51 MB bodies with `Transfer-Encoding: chunked` to /act_batch, one after the other
           (no Content-Length to refuse them by); for each: bytes sent before the answer, the answer, its time.
           Run twice: with the default body limit, and with --max-body-bytes 60000000 (no effective bound: what
           rlship did before the limit, reading and parsing the whole body).
  crowd    a client process opens --crowd connections that send nothing and --slow that send a request head a
           byte a second, and holds them; the server's cap (--max-connections, default 4096) closes the longest
           idle to stay under it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from serve_load import ACT_BODY, rlship_serving, tree_rss_mb, wrk

UPLOAD_BYTES = 51_000_000


class RssSampler(threading.Thread):
    """The peak of the server's memory (all its processes) while running."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, 0.0, True

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, tree_rss_mb(self.pid))
            time.sleep(0.02)


def upload_chunked(port: int) -> tuple[int, int, float]:
    """One 51 MB chunked upload to /act_batch: (bytes sent before the server answered, status, seconds)."""
    chunk = b"[0.1, 0.2, 0.3, 0.4], " * 3000
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(60)
    start = time.perf_counter()
    sent = 0
    try:
        sock.sendall(
            b"POST /act_batch HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b'transfer-encoding: chunked\r\n\r\n12\r\n{"observations": [\r\n'
        )
        while sent < UPLOAD_BYTES:
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
        end = b"[0, 0, 0, 0]]}"  # a valid JSON batch, far over --max-batch: the route's own 413 if it gets there
        sock.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(end), end))
    except (BrokenPipeError, ConnectionResetError):
        pass  # answered and closed before the whole body went out
    answer = b""
    try:
        while b"\r\n" not in answer and (data := sock.recv(4096)):
            answer += data
    except ConnectionResetError:
        pass
    took = time.perf_counter() - start
    sock.close()
    status = int(answer.split()[1]) if answer.startswith(b"HTTP/1.1") else 0
    return sent, status, took


def unloaded_and_abused(quiet: list[dict[str, float]], loud: list[dict[str, float]]) -> dict[str, float]:
    """wrk's figures on /act, unloaded and under the abuse, over the rounds: p99 medians, mean req/s, and the errors
    under the abuse."""
    return {
        "quiet_p99": float(np.median([m["p99"] for m in quiet])),
        "loud_p99": float(np.median([m["p99"] for m in loud])),
        "quiet_rps": float(np.mean([m["rps"] for m in quiet])),
        "loud_rps": float(np.mean([m["rps"] for m in loud])),
        "errors": sum(m["errors"] for m in loud),
    }


def chunked_scenario(args: argparse.Namespace, extra: list[str]) -> dict[str, object]:
    with rlship_serving(extra) as (port, proc):
        url = f"http://127.0.0.1:{port}/act"
        wrk(url, ACT_BODY, args.connections, 1)  # warm-up
        time.sleep(1)
        idle_rss = tree_rss_mb(proc.pid)
        quiet, loud, uploads = [], [], []
        sampler = RssSampler(proc.pid)
        sampler.start()
        for _ in range(args.rounds):
            quiet.append(wrk(url, ACT_BODY, args.connections, args.seconds))
            stop_uploads = threading.Event()

            def uploader(stop_uploads: threading.Event = stop_uploads) -> None:
                while not stop_uploads.is_set():
                    uploads.append(upload_chunked(port))

            thread = threading.Thread(target=uploader, daemon=True)
            thread.start()
            time.sleep(0.2)  # the first upload is under way
            loud.append(wrk(url, ACT_BODY, args.connections, args.seconds))
            stop_uploads.set()
            thread.join(timeout=120)
        sampler.running = False
        sampler.join()
        after_rss = tree_rss_mb(proc.pid)
        return {
            "idle_rss": idle_rss,
            "peak_rss": sampler.peak,
            "after_rss": after_rss,
            **unloaded_and_abused(quiet, loud),
            "uploads": uploads,
        }


async def hold_crowd(port: int, idle: int, slow: int, seconds: float, ready: str) -> None:
    """Open `idle` silent and `slow` dripping connections, say so on stdout, hold them `seconds`, then report how
    many the server closed."""
    connections = []
    for _ in range(idle + slow):
        try:
            connections.append(await asyncio.open_connection("127.0.0.1", port))
        except OSError:
            break
    head = b"POST /act HTTP/1.1\r\nhost: x\r\n"

    async def drip(writer: asyncio.StreamWriter) -> None:
        for byte in head * 100:
            if writer.is_closing():
                return
            writer.write(bytes([byte]))
            await asyncio.sleep(1.0)

    drips = [asyncio.create_task(drip(w)) for _, w in connections[idle:]]
    print(ready, len(connections), flush=True)
    await asyncio.sleep(seconds)
    closed = sum(r.at_eof() or r.exception() is not None for r, _ in connections)
    print("closed", closed, flush=True)
    for task in drips:
        task.cancel()
    for _, writer in connections:
        writer.close()


def crowd_scenario(args: argparse.Namespace) -> dict[str, object]:
    with rlship_serving() as (port, _):
        url = f"http://127.0.0.1:{port}/act"
        wrk(url, ACT_BODY, args.connections, 1)
        quiet, loud, held, closed = [], [], [], []
        for _ in range(args.rounds):
            quiet.append(wrk(url, ACT_BODY, args.connections, args.seconds))
            code = (
                "import asyncio, sys; sys.path.insert(0, sys.argv[1]); import serve_abuse as s; "
                "asyncio.run(s.hold_crowd(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), "
                "'held'))"
            )
            here = str(Path(__file__).parent)
            crowd = subprocess.Popen(
                [sys.executable, "-c", code, here, str(port), str(args.crowd), str(args.slow), str(args.seconds + 1)],
                stdout=subprocess.PIPE,
                text=True,
            )
            line = crowd.stdout.readline().split()  # type: ignore[union-attr]  # "held N" once all are open
            held.append(int(line[1]))
            loud.append(wrk(url, ACT_BODY, args.connections, args.seconds))
            closed.append(int(crowd.stdout.readline().split()[1]))  # type: ignore[union-attr]
            crowd.wait(timeout=60)
            time.sleep(1)
        return {**unloaded_and_abused(quiet, loud), "held": held, "closed": closed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=16, help="wrk's connections on /act (default: 16)")
    parser.add_argument("--seconds", type=float, default=5.0, help="per wrk measurement (default: 5)")
    parser.add_argument("--rounds", type=int, default=3, help="unloaded/abused pairs per scenario (default: 3)")
    parser.add_argument("--crowd", type=int, default=10000, help="idle connections to hold (default: 10000)")
    parser.add_argument("--slow", type=int, default=200, help="connections sending a head a byte a second")
    parser.add_argument("--skip-unbounded", action="store_true", help="skip the unbounded-body comparison")
    parser.add_argument("--scenarios", nargs="+", choices=["chunked", "crowd"], default=["chunked", "crowd"])
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = args.crowd + args.slow + 500
    if soft < wanted:  # the crowd's client process inherits this
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    print(
        f"cpus: {os.cpu_count()}; load average: {os.getloadavg()[0]:.2f}; "
        f"fd limit {resource.getrlimit(resource.RLIMIT_NOFILE)[0]}"
    )

    if "chunked" in args.scenarios:
        chunked_table(args)
    if "crowd" in args.scenarios:
        crowd_table(args)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


def chunked_table(args: argparse.Namespace) -> None:
    print(f"\nchunked: {UPLOAD_BYTES / 1e6:.0f} MB chunked bodies to /act_batch, one after another, during wrk on /act")
    print(f"({args.rounds} rounds of {args.seconds:g} s unloaded, then {args.seconds:g} s abused; p99 the median)\n")
    print(
        "| server | uploads | sent before answer MB (median) | answer | answer after s (median) | idle RSS MB "
        "| peak RSS MB | peak - idle MB | /act p99 unloaded ms | /act p99 abused ms | ratio | /act errors |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    configs = [("bounded (defaults)", [])]
    if not args.skip_unbounded:
        configs.append(("unbounded (--max-body-bytes 60000000)", ["--max-body-bytes", "60000000"]))
    for name, extra in configs:
        r = chunked_scenario(args, extra)
        uploads = r["uploads"]
        statuses = sorted({u[1] for u in uploads})  # type: ignore[union-attr]
        print(
            f"| {name} | {len(uploads)} | {np.median([u[0] for u in uploads]) / 1e6:.2f} "  # type: ignore[arg-type]
            f"| {'/'.join(map(str, statuses))} | {np.median([u[2] for u in uploads]):.3f} "  # type: ignore[union-attr]
            f"| {r['idle_rss']:.0f} | {r['peak_rss']:.0f} | {r['peak_rss'] - r['idle_rss']:+.0f} "  # type: ignore[operator]
            f"| {r['quiet_p99']:.2f} | {r['loud_p99']:.2f} | {r['loud_p99'] / r['quiet_p99']:.2f} | {r['errors']} |"  # type: ignore[operator]
        )


def crowd_table(args: argparse.Namespace) -> None:
    print(
        f"\ncrowd: {args.crowd} idle + {args.slow} slow connections held during wrk on /act "
        f"(rlship serve defaults: --max-connections {4096}, --header-timeout 10)\n"
    )
    print(
        "| connections opened (per round) | closed by the server within the round | /act req/s unloaded "
        "| /act req/s crowded | /act p99 unloaded ms | /act p99 crowded ms | ratio | /act errors |"
    )
    print("|---|---|---|---|---|---|---|---|")
    c = crowd_scenario(args)
    print(
        f"| {', '.join(map(str, c['held']))} | {', '.join(map(str, c['closed']))} | {c['quiet_rps']:.0f} "  # type: ignore[arg-type]
        f"| {c['loud_rps']:.0f} | {c['quiet_p99']:.2f} | {c['loud_p99']:.2f} "
        f"| {c['loud_p99'] / c['quiet_p99']:.2f} | {c['errors']} |"  # type: ignore[operator]
    )


if __name__ == "__main__":
    main()
