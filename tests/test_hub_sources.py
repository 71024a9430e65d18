"""`hf://OWNER/NAME@REV` sources as a hostile or careless user writes them: checked before any request, nothing
read or written outside the Hub cache even when the Hub answers any revision, errors that never echo control
characters or whole long inputs, and an unreachable Hub that fails at once instead of retrying for 24 s."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import rlship
from rlship.errors import UsageError
from rlship.hub.errors import HubError
from rlship.sources import default_policy_dir
from tests.cli_run import RLSHIP
from tests.hub_server import TOKEN, FakeHub, point_hub_client_at
from tests.ports import free_port

POLICY_FILES = ("config.json", "model.safetensors", "results.json")


@pytest.fixture
def lax_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """A test Hub that answers any revision, holding alice/cp (the embedded policy)."""
    server = FakeHub({TOKEN: ("alice", "write")}).start()
    server.any_revision = True
    folder = default_policy_dir()
    server.add_repo("alice/cp", {name: (folder / name).read_bytes() for name in POLICY_FILES})
    point_hub_client_at(server.url, tmp_path / "hf-home", monkeypatch)
    yield server
    server.stop()


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_lax_hub_really_answers_any_revision(lax_hub: FakeHub) -> None:
    """The control for the test below: a revision the repo does not have still downloads from this Hub."""
    policy = rlship.load_policy("hf://alice/cp@no-such-branch")
    assert policy.revision == lax_hub.repos["alice/cp"].refs["main"]
    assert "alice/cp/resolve/no-such-branch/config.json" in lax_hub.downloads()


HOSTILE_REVISIONS = [
    "../../x",
    "../../../../outside/escape/pwned",
    "/etc/passwd",
    "TARGET",  # an absolute path to a file of the test's own (filled in below)
    "..",
    ".",
    "main/../../x",
    "refs/pr/1/../../../x",
    "refs/../../x",
    "dev/feature",
    "a\\..\\..\\x",
    "a\nb",
    "a\x00b",
    "a\rb",
    "\x1b[31mred",
    "x.lock",
    "-dash",
    "%2e%2e%2fx",
    "a" * 129,
    "é",
]


@pytest.mark.parametrize("revision", HOSTILE_REVISIONS, ids=lambda r: repr(r)[:30])
def test_hostile_revisions_are_refused_before_any_request_and_touch_nothing(
    lax_hub: FakeHub, tmp_path: Path, revision: str
) -> None:
    target = tmp_path / "outside" / "precious.txt"
    target.parent.mkdir()
    target.write_text("the user's file\n")
    if revision == "TARGET":
        revision = str(target)
    before = _tree(tmp_path)
    with pytest.raises(UsageError) as info:
        rlship.load_policy(f"hf://alice/cp@{revision}")
    message = str(info.value)
    assert "is not a branch or tag name" in message
    assert not any(ch in message for ch in "\n\r\x00\x1b")  # control characters come out escaped
    assert len(message) < 600
    assert lax_hub.requests == []  # refused before huggingface_hub was asked anything
    assert _tree(tmp_path) == before  # nothing written anywhere, the Hub cache included
    assert target.read_text() == "the user's file\n"


@pytest.mark.parametrize(
    "revision", ["main", "v1.0", "release_2", "v1.0+build.3", "refs/pr/1", "0123456789abcdef0123456789abcdef01234567"]
)
def test_ordinary_revisions_pass_the_check(lax_hub: FakeHub, revision: str) -> None:
    policy = rlship.load_policy(f"hf://alice/cp@{revision}")
    assert policy.revision == lax_hub.repos["alice/cp"].refs["main"]  # the lax Hub serves main for all of them


@pytest.mark.parametrize(
    "source",
    [
        "hf://alice",
        "hf:///cp",
        "hf://alice/",
        "hf://alice/cp/extra",
        "hf://al--ice/cp",
        "hf://alice/c..p",
        "hf://alice/cp.git",
        "hf://-alice/cp",
        "hf://alice/cp-",
        "hf://../cp",
        "hf://alice/" + "c" * 97,
        "hf://café/cp",
        "hf://alice/c\np",
        "hf://alice\x00/cp",
        "hf://alice/" + "c" * 5000,
    ],
    ids=lambda s: repr(s)[:30],
)
def test_repo_ids_follow_the_hubs_rules(lax_hub: FakeHub, source: str) -> None:
    with pytest.raises(UsageError) as info:
        rlship.load_policy(source)
    message = str(info.value)
    assert "is not OWNER/NAME" in message or "at most 300 characters" in message
    assert not any(ch in message for ch in "\n\x00") and len(message) < 600
    assert lax_hub.requests == []


@pytest.mark.parametrize("scheme", ["HF", "Hf", "hF"])
def test_the_scheme_matches_case_insensitively(lax_hub: FakeHub, scheme: str) -> None:
    policy = rlship.load_policy(f"{scheme}://alice/cp")
    assert policy.revision == lax_hub.repos["alice/cp"].refs["main"]
    assert policy.source == f"{scheme}://alice/cp"


class _Listener:
    """A loopback TCP port that accepts connections and counts them; it either closes each at once (`hang_up`) or
    holds it without a word (a Hub that never answers)."""

    def __init__(self, hang_up: bool) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        self.held: list[socket.socket] = []
        self.hang_up = hang_up
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            if self.hang_up:
                conn.close()
            else:
                self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def test_an_unreachable_hub_fails_at_once_with_the_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    point_hub_client_at(f"http://127.0.0.1:{free_port()}", tmp_path / "hf-home", monkeypatch)
    with pytest.raises(HubError) as info:
        rlship.load_policy("hf://alice/cp")
    message = str(info.value)
    assert "the Hub could not be reached within 4 s" in message and "RLSHIP_HUB_TIMEOUT" in message
    assert TOKEN not in message


def test_a_hub_that_drops_connections_is_asked_once_not_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    listener = _Listener(hang_up=True)
    try:
        point_hub_client_at(listener.url, tmp_path / "hf-home", monkeypatch)
        with pytest.raises(HubError, match="the Hub could not be reached"):
            rlship.load_policy("hf://alice/cp")
        assert listener.connections == 1  # huggingface_hub alone retries 6 times with back-off (about 24 s)
    finally:
        listener.close()


def test_a_silent_hub_fails_after_the_timeout_set_by_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    listener = _Listener(hang_up=False)
    try:
        point_hub_client_at(listener.url, tmp_path / "hf-home", monkeypatch)
        monkeypatch.setenv("RLSHIP_HUB_TIMEOUT", "0.5")
        with pytest.raises(HubError, match=r"could not be reached within 0\.5 s \(ReadTimeout\)"):
            rlship.load_policy("hf://alice/cp")
        assert listener.connections == 1
    finally:
        listener.close()


@pytest.mark.parametrize("value", ["abc", "0", "-1", "nan", "inf", "1e9", "4\n"])
def test_a_bad_timeout_setting_is_named(lax_hub: FakeHub, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("RLSHIP_HUB_TIMEOUT", value)
    if value == "4\n":  # surrounding whitespace is fine
        rlship.load_policy("hf://alice/cp")
        return
    with pytest.raises(UsageError, match="RLSHIP_HUB_TIMEOUT="):
        rlship.load_policy("hf://alice/cp")
    assert lax_hub.requests == []


def test_a_cached_policy_still_loads_when_the_hub_is_unreachable(
    lax_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = rlship.load_policy("hf://alice/cp")
    lax_hub.stop()
    point_hub_client_at(f"http://127.0.0.1:{free_port()}", tmp_path / "hf-home", monkeypatch)
    again = rlship.load_policy("hf://alice/cp")
    assert again.revision == first.revision and again.folder == first.folder


def test_cli_errors_for_sources_are_one_line(tmp_path: Path) -> None:
    """A real `rlship evaluate`: a control character in the revision is escaped, and an unreachable Hub gives the
    clear error well before huggingface_hub's 24 s of retries (the subprocess timeout is the generous bound)."""
    env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}", "HF_HOME": str(tmp_path / "hf")}
    env.pop("RLSHIP_HUB_TIMEOUT", None)
    for source, expected in [
        ("hf://alice/cp@a\nb\x1b[2J", "revision 'a\\nb\\x1b[2J' is not a branch or tag name"),
        ("hf://alice/cp", "the Hub could not be reached within 4 s"),
    ]:
        done = subprocess.run(
            [RLSHIP, "evaluate", source, "--episodes", "1"], capture_output=True, text=True, timeout=20, env=env
        )
        assert done.returncode == 1, done.stderr
        assert done.stderr.count("\n") == 1 and "\x1b" not in done.stderr and "Traceback" not in done.stderr
        assert expected in done.stderr
