"""Several policies and hot swap: a real `rlship serve` with two worker processes and an admin token, driven under
load through swaps; and the policy set itself (name rules, the state file the workers share, freed policies)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import signal
import socket
import subprocess
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from rlship.policy import load_policy
from rlship.serving.registry import MAX_POLICIES, PolicySet, SwapError, name_for, parse_entries
from tests.cli_run import RLSHIP
from tests.conftest import make_untrained
from tests.pixel_policies import SMALL, pixel_policy
from tests.ports import free_port
from tests.serve_load import kill_server, wait_ready

TOKEN = "test-admin-token-" + "7f3a9c2e5b1d"  # recognisable, so a leak into any output is found
OBS = [0.1, 0.5, -0.05, -0.4]
MAX_BATCH = 8
VECTOR_BODY_CAP = 4096 + MAX_BATCH * 4 * 32  # what a CartPole-v1 policy's batch of 8 may take (protocol.py)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Two different untrained policies (their answers tell which one served), and the random baseline."""
    tmp = tmp_path_factory.mktemp("policies")
    return {name: str(make_untrained(seed=seed).save(tmp / name)) for name, seed in (("one", 1), ("two", 2))}


@pytest.fixture(scope="module")
def server(folders: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    log = tmp_path_factory.mktemp("log") / "server.log"
    port = free_port()
    policies = [f"main={folders['one']}", f"side={folders['two']}"]
    flags = ["--port", str(port), "--access-log"]
    with log.open("w") as out:
        proc = subprocess.Popen(
            [RLSHIP, "serve", *policies, "--workers", "2", "--max-batch", str(MAX_BATCH), *flags],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "RLSHIP_ADMIN_TOKEN": TOKEN},
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, url, log)
        yield url, log
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        kill_server(proc)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def admin(server: tuple[str, Path]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server[0], headers={"authorization": f"Bearer {TOKEN}"}, timeout=120) as c:
        yield c


def probabilities(folder: str) -> list[float]:
    return load_policy(folder).act([OBS]).probabilities[0].tolist()


def test_the_admin_route_wants_the_token(server: tuple[str, Path]) -> None:
    url, _ = server
    for headers in ({}, {"authorization": "Bearer wrong-token-of-some-length"}, {"authorization": TOKEN}):
        answer = httpx.put(f"{url}/policies/main", json={"source": "default"}, headers=headers)
        assert answer.status_code == 401, answer.text
        assert answer.headers["www-authenticate"] == "Bearer"
        assert TOKEN not in answer.text
    assert httpx.get(f"{url}/policies").json()["policies"][0]["generation"] == 0  # nothing changed


@pytest.mark.parametrize(
    ("name", "status"),
    [("-leading-dash", 422), ("x" * 65, 422), ("sp ace", 422), ("semi;colon", 422), ("a/b", 404)],
)
def test_names_are_checked(admin: httpx.Client, name: str, status: int) -> None:
    answer = admin.put(f"/policies/{name}", json={"source": "default"})
    assert answer.status_code == status, answer.text
    if status == 422:
        assert "letters, digits" in answer.json()["error"]


def test_a_policy_that_cannot_be_loaded_is_refused_and_the_old_one_serves(
    admin: httpx.Client, folders: dict[str, str], tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    for source, says in ((str(broken), "not valid JSON"), (str(tmp_path / "missing"), "no such policy folder")):
        answer = admin.put("/policies/side", json={"source": source})
        assert answer.status_code == 422, answer.text
        message = answer.json()["error"]
        assert says in message and "'side' still serves its old policy" in message
    assert admin.put("/policies/side", json={"src": "default"}).status_code == 422
    np.testing.assert_allclose(
        admin.post("/policies/side/act", json={"observation": OBS}).json()["probabilities"],
        probabilities(folders["two"]),
        rtol=1e-5,
    )
    assert admin.get("/policies/side/policy").json()["generation"] == 0


def test_swaps_under_load_never_fail_and_reach_every_worker(
    server: tuple[str, Path], admin: httpx.Client, folders: dict[str, str]
) -> None:
    url, _ = server
    expected = {name: probabilities(folder) for name, folder in folders.items()}
    swaps = 6
    answers: list[tuple[int, list[float] | None]] = []

    async def load(stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as c:
            while not stop.is_set():
                for path in ("/act", "/policies/main/act"):
                    answer = await c.post(path, json={"observation": OBS})
                    answers.append((answer.status_code, answer.json().get("probabilities")))

    async def main() -> list[int]:
        stop = asyncio.Event()
        loaders = [asyncio.create_task(load(stop)) for _ in range(8)]
        statuses = []
        async with httpx.AsyncClient(base_url=url, headers=admin.headers, timeout=120) as c:
            for i in range(swaps):
                await asyncio.sleep(0.3)
                source = folders["two"] if i % 2 == 0 else folders["one"]
                statuses.append((await c.put("/policies/main", json={"source": source})).status_code)
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*loaders)
        return statuses

    statuses = asyncio.run(main())
    assert statuses == [200] * swaps
    assert len(answers) > 100
    assert [status for status, _ in answers if status != 200] == []
    served = {name for _, probs in answers for name, exp in expected.items() if np.allclose(probs, exp, rtol=1e-5)}
    assert served == {"one", "two"}  # both policies answered, and nothing else ever did
    assert sum(any(np.allclose(p, e, rtol=1e-5) for e in expected.values()) for _, p in answers) == len(answers)

    # Each worker follows the swaps (the state file): fresh connections land on both workers; all agree at the end.
    assert every_worker_serves(url, "main", folders["one"])["generation"] == swaps


def every_worker_serves(url: str, name: str, source: str) -> dict[str, Any]:
    """/policy of `name` once 20 fresh connections in a row (which land on either worker) say it serves `source`."""
    deadline = time.monotonic() + 60
    agreeing = 0
    info: dict[str, Any] = {}
    while agreeing < 20 and time.monotonic() < deadline:
        info = httpx.get(f"{url}/policies/{name}/policy").json()
        agreeing = agreeing + 1 if info.get("source") == source else 0
    assert agreeing == 20, info
    return info


def test_a_swap_can_add_a_policy(admin: httpx.Client) -> None:
    answer = admin.put("/policies/extra.v2", json={"source": "default"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["name"] == "extra.v2" and answer.json()["generation"] == 1
    names = [p["name"] for p in admin.get("/policies").json()["policies"]]
    assert "extra.v2" in names and names[0] == "main"


def test_the_token_never_reaches_the_log(server: tuple[str, Path], admin: httpx.Client) -> None:
    admin.put("/policies/side", json={"source": "default"})
    log = server[1].read_text()
    assert "/policies/side" in log  # the access log is on: requests are logged ...
    assert TOKEN not in log  # ... but never the token


def refused(url: str, path: str, length: int, chunked: bool) -> tuple[int, str]:
    """Status and error of a POST whose body is `length` bytes: announced by its Content-Length and never sent, or
    sent in chunks (no Content-Length: the server counts it as it reads)."""
    host, port = url.removeprefix("http://").split(":")
    framing = "transfer-encoding: chunked" if chunked else f"content-length: {length}"
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{framing}\r\n\r\n".encode())
        sent = 0
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the server answered and closed
            while chunked and sent < length:
                n = min(65536, length - sent)
                sock.sendall(b"%x\r\n%s\r\n" % (n, b" " * n))
                sent += n
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)["error"]


def test_the_body_bound_follows_a_swap_to_a_larger_and_back_to_a_smaller_policy(
    server: tuple[str, Path], admin: httpx.Client, folders: dict[str, str], tmp_path: Path
) -> None:
    """The server-wide body bound is what the policies served *now* need: an image policy swapped in place of a
    vector one is answered (its requests are kilobytes to megabytes, the vector policies' bound 5,120 bytes), a
    body over its bound still gets 413 before it is read, and swapping back lowers the bound again."""
    url, _ = server
    image = str(pixel_policy(tmp_path / "image", SMALL, seed=5))
    assert admin.put("/policies/side", json={"source": image}).status_code == 200
    cap = every_worker_serves(url, "side", image)["image_input"]["max_body_bytes"]
    assert cap > 100 * VECTOR_BODY_CAP

    obs = np.random.default_rng(0).integers(0, 256, (1, *SMALL.observation_shape), dtype=np.uint8)
    body = json.dumps({"observation": obs[0].tolist()}).encode()
    assert len(body) > VECTOR_BODY_CAP  # about 8 kB: refused by the start-up bound before this fix
    expected = load_policy(image).act(obs).q_values
    for _ in range(6):  # fresh connections: both workers
        answer = httpx.post(
            f"{url}/policies/side/act", content=body, headers={"content-type": "application/json"}, timeout=30
        )
        assert answer.status_code == 200, answer.text
        np.testing.assert_allclose(answer.json()["q_values"], expected[0], rtol=1e-5, atol=1e-5)
    for chunked in (False, True, False, True):
        status, error = refused(url, "/policies/side/act", cap + 1, chunked)
        assert status == 413, error
        assert f"over this server's limit of {cap} bytes" in error and "--max-body-bytes" in error

    assert admin.put("/policies/side", json={"source": folders["two"]}).status_code == 200
    every_worker_serves(url, "side", folders["two"])
    for chunked in (False, True, False, True):
        status, error = refused(url, "/act", VECTOR_BODY_CAP + 1, chunked)
        assert status == 413, error
        assert f"over this server's limit of {VECTOR_BODY_CAP} bytes" in error and "--max-body-bytes" in error


# --- the policy set in this process ----------------------------------------------------------------------------


def test_entries_name_and_order_the_policies(tmp_path: Path) -> None:
    assert parse_entries("default") == [("default", "default")]
    assert parse_entries('["a=runs/x y", "hf://org/ppo-CartPole-v1@v2"]') == [
        ("a", "runs/x y"),
        ("ppo-CartPole-v1", "hf://org/ppo-CartPole-v1@v2"),
    ]
    odd = tmp_path / "k=v"  # a folder whose name has "=" is a path, not NAME=SOURCE
    odd.mkdir()
    assert parse_entries(str(odd))[0] == ("k-v", str(odd))
    assert name_for("runs/.hidden/") == "hidden"
    for text, says in (
        ("a=default a=default", "two policies are named 'a'"),
        ("a=", "names no source"),
        (" ".join(["default"] * (MAX_POLICIES + 1)), f"at most {MAX_POLICIES}"),
    ):
        with pytest.raises(ValueError, match=says):
            parse_entries(text)


def test_workers_share_swaps_through_the_state_file(tmp_path: Path, folders: dict[str, str]) -> None:
    first, second = PolicySet(8, tmp_path), PolicySet(8, tmp_path)
    for policies in (first, second):
        policies.load(load_policy(folders["one"]), "main")
    slot = asyncio.run(first.swap("main", folders["two"]))
    assert slot.generation == 1
    second.catch_up()  # what the other worker's watcher does
    assert second.slots["main"].generation == 1
    assert second.slots["main"].policy.source == folders["two"]
    second.catch_up()  # nothing new: nothing reloaded
    assert second.slots["main"].policy.source == folders["two"]
    with pytest.raises(SwapError, match="cannot load policy"):
        asyncio.run(second.swap("main", str(tmp_path / "missing")))
    first.catch_up()
    assert first.slots["main"].generation == 1  # a refused swap is recorded nowhere


def test_a_swapped_out_policy_is_freed() -> None:
    """Memory stays bounded: once the requests that hold it are done, nothing keeps an old policy alive."""
    policies = PolicySet(8)
    old = policies.load(make_untrained(seed=1), "main").policy
    freed = weakref.ref(old)
    del old
    for _ in range(3):
        asyncio.run(policies.swap("main", "default"))
    gc.collect()
    assert freed() is None
    assert policies.slots["main"].generation == 3


def test_a_short_admin_token_is_refused() -> None:
    from rlship.serving.routes import PolicyRoutes

    with pytest.raises(ValueError, match="at least 16 characters"):
        PolicyRoutes(admin_token="short")
