"""The bounds of `rlship serve` (rlship.serving.limits) over real HTTP: bodies bounded in size and time whatever
their framing, request heads bounded in time, idle connections closed, a cap on open connections that keeps valid
/act calls answered while thousands of idle or slow connections are held open, no NaN in any answer, and
error messages of readable length. Servers are real `rlship serve` subprocesses on loopback ports."""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
import yaml

from rlship.cli import main
from rlship.networks import NetworkSpec
from rlship.policy import Policy
from rlship.serving.limits import ServerLimits, shorten
from rlship.serving.routes import PolicyRoutes
from tests.cli_run import RLSHIP
from tests.conftest import make_untrained, untrained_policy
from tests.serve_load import kill_server, start_server, wait_ready

ROOT = Path(__file__).resolve().parent.parent

OBS = [0.01, -0.02, 0.03, 0.04]
ACT = b'{"observation": [0.01, -0.02, 0.03, 0.04]}'
MAX_BATCH = 64
GUARD = 30.0  # seconds a socket read may wait before the test gives up: a bound on the test, never asserted


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    finally:
        kill_server(proc)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """Short deadlines so the slow-client cases end quickly; a traffic timeout far above them, so a 408 below can
    only come from the new deadlines, not from BentoML's 504."""
    proc, url = start_server(
        "default",
        *("--max-batch", str(MAX_BATCH), "--timeout", "120"),
        *("--header-timeout", "2", "--body-timeout", "2", "--keep-alive", "1"),
    )
    try:
        wait_ready(proc, url)
        yield url
    finally:
        stop(proc)


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def connect(url: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port_of(url)))
    sock.settimeout(GUARD)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass  # the server closed with unread bytes of ours in its buffer: what it sent before that is in `data`
    return data


def status_and_error(response: bytes) -> tuple[int, str]:
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)["error"]


def healthy(url: str) -> None:
    answer = httpx.post(f"{url}/act", content=ACT, headers={"content-type": "application/json"}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["action"] in (0, 1)


# --- bodies ------------------------------------------------------------------------------------------------------


def test_a_chunked_body_over_the_limit_gets_413_before_it_is_sent(server: str) -> None:
    total = 51_000_000
    chunk = b"[0.1, 0.2, 0.3, 0.4], " * 3000  # 66 KB of a batch that would be far over --max-batch
    sock = connect(server)
    sock.sendall(
        b"POST /act_batch HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
        b'12\r\n{"observations": [\r\n'
    )
    sent = 0
    try:
        while sent < total:
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed: the rest of the body is never read
    status, error = status_and_error(read_until_closed(sock))
    sock.close()
    assert status == 413
    assert "over this server's limit" in error and "--max-body-bytes" in error
    # answered while most of the body was still unsent (only what the loopback's socket buffers hold went out)
    assert sent < total / 2
    healthy(server)


def test_a_content_length_over_the_limit_is_refused_unread(server: str) -> None:
    sock = connect(server)
    sock.sendall(
        b"POST /act_batch HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 10000000\r\n\r\n"
    )
    status, error = status_and_error(read_until_closed(sock))  # no byte of the body was sent
    sock.close()
    assert status == 413
    assert "body of 10000000 bytes" in error


def test_a_chunked_body_within_the_limit_is_answered(server: str) -> None:
    body = json.dumps({"observations": [OBS] * MAX_BATCH}).encode()
    pieces = [body[i : i + 100] for i in range(0, len(body), 100)]
    answer = httpx.post(f"{server}/act_batch", content=iter(pieces), headers={"content-type": "application/json"})
    assert answer.request.headers["transfer-encoding"] == "chunked"
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["actions"]) == MAX_BATCH


def test_a_content_length_longer_than_the_body_gets_408_not_a_30_s_hold(server: str) -> None:
    sock = connect(server)
    sock.sendall(b"POST /act HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{")
    status, error = status_and_error(read_until_closed(sock))
    sock.close()
    assert status == 408  # BentoML's own timeout (--timeout 120 here) would answer 504
    assert "did not arrive within 2 s" in error and "--body-timeout" in error
    healthy(server)


# --- request heads and idle connections --------------------------------------------------------------------------


def test_a_head_sent_a_byte_at_a_time_gets_408(server: str) -> None:
    sock = connect(server)
    answer = b""
    for byte in b"POST /act HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n":
        try:
            sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            break
        sock.settimeout(0.5)  # a byte every half second: 64 bytes would take 32 s
        try:
            answer = sock.recv(65536)
            break
        except TimeoutError:
            continue
    sock.settimeout(GUARD)
    answer += read_until_closed(sock)
    sock.close()
    status, error = status_and_error(answer)
    assert status == 408
    assert "request head did not arrive within 2 s" in error and "--header-timeout" in error


def test_a_connection_that_sends_nothing_is_closed(server: str) -> None:
    sock = connect(server)
    assert read_until_closed(sock) == b""  # closed by the server (the read guard is 30 s; the deadline 2 s)
    sock.close()


def test_an_idle_keep_alive_connection_is_closed(server: str) -> None:
    sock = connect(server)
    sock.sendall(
        b"POST /act HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
        % (len(ACT), ACT)
    )
    response = read_until_closed(sock)  # the answer, then the close once the connection idles (--keep-alive 1)
    sock.close()
    assert response.startswith(b"HTTP/1.1 200")
    assert b"connection: close" not in response.lower()  # kept alive after the answer, closed only when idle


# --- many connections --------------------------------------------------------------------------------------------


def raise_fd_limit(wanted: int) -> int:
    """This process's soft limit on open files raised towards `wanted` (as far as the hard limit allows)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def test_valid_calls_are_answered_while_thousands_of_idle_and_slow_connections_are_held() -> None:
    limit = raise_fd_limit(8192)  # the server inherits it
    held = min(3000, limit - 1000)  # the test's own sockets, within its file-descriptor limit
    cap = held // 3
    slow = 100
    proc, url = start_server("default", "--max-connections", str(cap), "--header-timeout", "120")
    try:
        wait_ready(proc, url)
        answers, idle_closed, slow_closed = asyncio.run(crowd(port_of(url), held, slow))
        # every valid call made while the crowd was held open was answered
        assert answers == [200] * 20
        # the worker held at most `cap` connections: the longest idle ones were closed to make room
        assert idle_closed + slow_closed >= held + slow - cap
        healthy(url)
    finally:
        stop(proc)


async def crowd(port: int, held: int, slow: int) -> tuple[list[int], int, int]:
    """Open `held` connections that send nothing and `slow` that send a request head a byte at a time, then make
    20 valid /act calls on new connections while all of those are held; the whole is bounded in time."""
    async with asyncio.timeout(240):
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(held)]
        slow_connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(slow)]
        head = b"POST /act HTTP/1.1\r\nhost: x\r\n"

        async def drip(writer: asyncio.StreamWriter) -> None:
            for byte in head:
                if writer.is_closing():
                    return
                writer.write(bytes([byte]))
                await asyncio.sleep(1.0)

        drips = [asyncio.create_task(drip(w)) for _, w in slow_connections]
        answers = []
        for _ in range(20):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            request = b"POST /act HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
            writer.write(request % len(ACT) + ACT)
            status_line = await reader.readline()
            answers.append(int(status_line.split()[1]))
            writer.close()
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # let the closes of evicted connections arrive
        idle_closed = sum(closed(r) for r, _ in idle)
        slow_closed = sum(closed(r) for r, _ in slow_connections)
        for task in drips:
            task.cancel()
        for _, writer in [*idle, *slow_connections]:
            writer.close()
        return answers, idle_closed, slow_closed


def closed(reader: asyncio.StreamReader) -> bool:
    """Whether the server closed this connection (nothing is ever answered on these: only the close arrives)."""
    return reader.at_eof() or reader.exception() is not None


# --- settings ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--max-connections", "100000000"], "--max-connections (RLSHIP_MAX_CONNECTIONS) 100000000 is not below"),
        (["--body-timeout", "0"], "--body-timeout (RLSHIP_BODY_TIMEOUT) must be above 0"),
        (["--max-body-bytes", "-5"], "--max-body-bytes (RLSHIP_MAX_BODY) must be above 0"),
        # inf would turn the protection off: a client could hold a connection for ever
        (["--body-timeout", "inf"], "--body-timeout (RLSHIP_BODY_TIMEOUT) must be above 0 and finite; got inf"),
        (["--header-timeout", "nan"], "--header-timeout (RLSHIP_HEADER_TIMEOUT) must be above 0 and finite; got nan"),
        (["--session-idle", "inf"], "--session-idle (RLSHIP_SESSION_IDLE) must be above 0 and finite; got inf"),
    ],
)
def test_bad_limits_stop_rlship_serve_with_one_line(flags: list[str], says: str) -> None:
    out = subprocess.run([RLSHIP, "serve", *flags], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert says in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_limits_from_the_environment() -> None:
    limits = ServerLimits.from_env({"RLSHIP_HEADER_TIMEOUT": "3.5", "RLSHIP_MAX_BODY": "1000"})
    assert (limits.header_timeout, limits.max_body, limits.body_timeout) == (3.5, 1000, 10.0)
    assert ServerLimits.from_env(limits.env()) == limits
    with pytest.raises(ValueError, match="RLSHIP_KEEP_ALIVE='soon' is not a whole number"):
        ServerLimits.from_env({"RLSHIP_KEEP_ALIVE": "soon"})
    # counts are read as the flags read them (4e3 is 4000), and never truncated
    assert ServerLimits.from_env({"RLSHIP_MAX_SESSIONS": "4e3"}).max_sessions == 4000
    with pytest.raises(ValueError, match=r"RLSHIP_MAX_SESSIONS='2\.5' is not a whole number"):
        ServerLimits.from_env({"RLSHIP_MAX_SESSIONS": "2.5"})
    # an infinite timeout from the environment is refused as the flag's is
    with pytest.raises(ValueError, match=r"--session-idle \(RLSHIP_SESSION_IDLE\) must be above 0 and finite"):
        ServerLimits.from_env({"RLSHIP_SESSION_IDLE": "inf"})


def test_rlship_serve_passes_the_limits_to_bentoml(monkeypatch: pytest.MonkeyPatch) -> None:
    caught: dict[str, Any] = {}
    monkeypatch.setattr(os, "execve", lambda path, command, env: caught.update(command=command, env=env))
    monkeypatch.setenv("RLSHIP_HEADER_TIMEOUT", "7")  # as the Docker image sets it
    monkeypatch.setenv("RLSHIP_KEEP_ALIVE", "9")
    assert main(["serve", "--max-connections", "300", "--body-timeout", "2.5", "--keep-alive", "3"]) == 0
    assert ServerLimits.from_env(caught["env"]) == ServerLimits(
        body_timeout=2.5, header_timeout=7.0, keep_alive=3, max_connections=300
    )
    # the idle keep-alive is uvicorn's own timeout, through bentoml serve's flag for it (the flag beats the env)
    command = caught["command"]
    assert command[1:4] == ["-m", "bentoml", "serve"]
    assert command[command.index("--timeout-keep-alive") + 1] == "3"


def test_the_docker_image_and_the_bento_set_every_limit() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    docker_env = dict(re.findall(r"^\s+(RLSHIP_[A-Z_]+)=(\S+?)\s*\\?$", dockerfile, re.M))
    bento = yaml.safe_load((ROOT / "bentofile.yaml").read_text())
    bento_env = {e["name"]: e["value"] for e in bento["envs"]}
    for env in (docker_env, bento_env):
        limits = ServerLimits.from_env(env)
        assert limits == ServerLimits.from_env(
            {
                k: env[k]
                for k in (
                    "RLSHIP_KEEP_ALIVE",
                    "RLSHIP_HEADER_TIMEOUT",
                    "RLSHIP_BODY_TIMEOUT",
                    "RLSHIP_MAX_CONNECTIONS",
                    "RLSHIP_MAX_SESSIONS",
                    "RLSHIP_SESSION_IDLE",
                )
            }
        )
        assert limits.max_connections is not None  # recorded, not left to the machine's `ulimit -n`


# --- answers: never NaN, messages of readable length -------------------------------------------------------------


def strict_json(text: str) -> object:
    def refuse(constant: str) -> object:
        raise AssertionError(f"{constant} in a JSON answer: {text[:200]}")

    return json.loads(text, parse_constant=refuse)


def overflowing(policy: Policy) -> Policy:
    """Every weight 3e38: finite, but every output overflows float32 to infinity, whatever the observation."""
    with torch.no_grad():
        for parameter in policy.network.parameters():
            parameter.fill_(3e38)
    return policy


@pytest.mark.parametrize("plain_api", ["0", "1"])  # rlship's lean handlers; BentoML's own @bentoml.api methods
def test_a_policy_whose_outputs_overflow_answers_500_not_nan(tmp_path: Path, plain_api: str) -> None:
    folder = overflowing(make_untrained()).save(tmp_path / "overflowing")
    proc, url = start_server(str(folder), env={"RLSHIP_PLAIN_API": plain_api})
    try:
        wait_ready(proc, url)
        for route, body in (("/act", {"observation": OBS}), ("/act_batch", {"observations": [OBS, OBS]})):
            answer = httpx.post(f"{url}{route}", json=body, timeout=10)
            error = strict_json(answer.text)["error"]  # type: ignore[index]
            assert answer.status_code == 500  # the policy is broken, not the request
            if plain_api == "1":  # BentoML shows no 5xx message to clients; the reason goes to the server's log
                assert "check the server log" in error
            else:
                assert "all-zero observation" in error and "the request was fine" in error
    finally:
        stop(proc)


def ask(policy: Policy, route: str, body: dict[str, object]) -> httpx.Response:
    routes = PolicyRoutes(max_batch=8)
    routes.load(policy)

    async def post() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(routes.app()), base_url="http://policy") as c:
            return await c.post(route, json=body)

    return asyncio.run(post())


def test_nan_weights_answer_500_naming_the_weights() -> None:
    policy = make_untrained()
    with torch.no_grad():
        next(iter(policy.network.parameters())).fill_(float("nan"))
    answer = ask(policy, "/act", {"observation": OBS, "deterministic": False})
    assert answer.status_code == 500
    assert "NaN or infinite weights" in strict_json(answer.text)["error"]  # type: ignore[index]


def test_an_observation_that_overflows_a_sound_policy_gets_422() -> None:
    policy = untrained_policy("ppo", NetworkSpec((64, 64), "relu", {"logits": 2, "value": 1}))
    assert ask(policy, "/act", {"observation": OBS}).status_code == 200
    answer = ask(policy, "/act_batch", {"observations": [OBS, [3e38, 3e38, 3e38, 3e38]]})
    assert answer.status_code == 422
    assert "drives the policy's outputs to NaN or infinity" in strict_json(answer.text)["error"]  # type: ignore[index]


def test_long_error_messages_are_cut() -> None:
    message = "x" * 300_000
    cut = shorten(message)
    assert len(cut) <= 1000
    assert cut.endswith(f"[{300_000 - 960} more characters cut]")
    assert shorten("short") == "short"
    # a misspelt field is named in the message: a 4,000-character name (within the body limit) made it as long
    answer = ask(make_untrained(), "/act", {"observation": OBS, "x" * 4000: 1})
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert len(error) <= 1000
    assert error.startswith("invalid request (xxxx") and error.endswith("more characters cut]")


def test_finite_answers_are_untouched() -> None:
    policy = make_untrained()
    answer = ask(policy, "/act", {"observation": OBS})
    assert answer.status_code == 200
    np.testing.assert_allclose(strict_json(answer.text)["probabilities"], policy.act([OBS]).probabilities[0], rtol=1e-6)  # type: ignore[index]


# --- the connection cap's choices, on a real uvicorn server in this process -------------------------------------


def test_at_the_cap_the_longest_idle_connection_makes_room_and_only_an_all_busy_worker_refuses() -> None:
    import uvicorn
    from uvicorn.config import Config  # uvicorn's own (importing the service swaps `uvicorn.Config`)
    from uvicorn.protocols.http.h11_impl import H11Protocol

    from rlship.serving.limits import bounded_protocol

    release = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await receive()
        if scope["path"] == "/hold":
            await release.wait()  # a request in progress until the test releases it
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    def request(path: str) -> bytes:
        return f"GET {path} HTTP/1.1\r\nhost: x\r\n\r\n".encode()

    async def main() -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        protocol = bounded_protocol(H11Protocol, header_timeout=60, cap=3)
        config = Config(app, http=protocol, lifespan="off", log_level="warning")
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            async with asyncio.timeout(60):
                while not server.started:
                    await asyncio.sleep(0.01)

                async def open_() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
                    connection = await asyncio.open_connection("127.0.0.1", port)
                    await asyncio.sleep(0.05)  # accepted before the next one opens
                    return connection

                # three connections: the first and second idle, the third answered (so active most recently)
                first, second, third = await open_(), await open_(), await open_()
                third[1].write(request("/"))
                assert (await third[0].readuntil(b"ok")).startswith(b"HTTP/1.1 200")
                fourth = await open_()  # at the cap: the first, idle longest, is closed for it
                assert await first[0].read() == b""
                fourth[1].write(request("/"))
                assert (await fourth[0].readuntil(b"ok")).startswith(b"HTTP/1.1 200")
                assert not second[0].at_eof() and not third[0].at_eof()
                # every open connection busy with a request: a new one is answered 503 and closed
                for _, writer in (second, third, fourth):
                    writer.write(request("/hold"))
                await asyncio.sleep(0.1)
                refused = await open_()
                answer = await refused[0].read()
                assert answer.startswith(b"HTTP/1.1 503") and b"--max-connections" in answer
                release.set()
                for reader, _ in (second, third, fourth):
                    assert (await reader.readuntil(b"ok")).startswith(b"HTTP/1.1 200")
                for _, writer in (first, second, third, fourth, refused):
                    writer.close()
        finally:
            server.should_exit = True
            await serving

    asyncio.run(main())
