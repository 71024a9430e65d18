"""Push and pull against a real HTTP server speaking the Hub API (tests/hub_server.py), with the real
huggingface_hub client: what reaches the server, what comes back, and what the user reads when it goes wrong."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import rlship
from rlship.errors import ArtifactError
from rlship.hub.errors import HubError
from rlship.hub.package import Package, package_policy
from rlship.hub.push import push_policy, upload_package
from tests.cli_run import RLSHIP
from tests.hub_server import BAD_TOKEN, READ_TOKEN, TOKEN, FakeHub, point_hub_client_at

OBS = np.random.default_rng(0).uniform(-0.2, 0.2, size=(64, 4)).astype(np.float32)


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """A fresh test Hub, with huggingface_hub pointed at it (endpoint, cache, token file) and alice's token set."""
    server = FakeHub({TOKEN: ("alice", "write"), READ_TOKEN: ("alice", "read")}).start()
    point_hub_client_at(server.url, tmp_path / "hf-home", monkeypatch)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Package:
    """The embedded default policy packaged once (3 evaluation episodes) for the upload tests."""
    return package_policy("default", tmp_path_factory.mktemp("pkg") / "hub", repo_id="alice/cartpole", episodes=3)


def _no_token_in(*texts: str) -> None:
    for text in texts:
        for token in (TOKEN, READ_TOKEN, BAD_TOKEN):
            assert token not in text


def test_push_then_pull_gives_the_same_actions(hub: FakeHub, trained, tmp_path: Path) -> None:
    result = push_policy(
        trained.out, "alice/ppo-cartpole", private=True, commit_message="my first agent", episodes=5, out=tmp_path / "p"
    )
    repo = hub.repos["alice/ppo-cartpole"]
    assert repo.private is True
    commit = repo.commits[repo.refs["main"]]
    assert commit.message == "my first agent" and commit.sha == result.commit_oid
    assert set(commit.files) == {".gitattributes", *result.package.files}
    assert commit.files["model.safetensors"] == (trained.out / "model.safetensors").read_bytes()
    card = commit.files["README.md"].decode()
    assert "rlship serve hf://alice/ppo-cartpole" in card
    assert f'src="{hub.url}/alice/ppo-cartpole/resolve/main/replay.mp4"' in card

    policy = rlship.load_policy("hf://alice/ppo-cartpole")
    assert policy.source == "hf://alice/ppo-cartpole" and policy.revision == result.commit_oid
    ours, theirs = trained.policy.act(OBS), policy.act(OBS)
    np.testing.assert_array_equal(ours.actions, theirs.actions)
    np.testing.assert_allclose(ours.probabilities, theirs.probabilities, rtol=0, atol=0)
    assert sorted(hub.downloads()) == sorted(
        [f"alice/ppo-cartpole/resolve/{result.commit_oid}/README.md"] * 2  # push reads the card back (HEAD, GET)
        # a HEAD for config.json within RLSHIP_HUB_TIMEOUT, then HEAD+GET each
        + ["alice/ppo-cartpole/resolve/main/config.json"] * 3
        + [f"alice/ppo-cartpole/resolve/{result.commit_oid}/model.safetensors"] * 2
        + [f"alice/ppo-cartpole/resolve/{result.commit_oid}/results.json"] * 2
    )
    # results.json (plain JSON) comes along for `GET /policy`: the pushed evaluation, beside the weights
    assert policy.folder is not None
    assert json.loads((policy.folder / "results.json").read_text()) == json.loads(commit.files["results.json"])
    # No token in any file of the package or of the download cache.
    for folder in (tmp_path / "p", tmp_path / "hf-home"):
        for path in folder.rglob("*"):
            if path.is_file():
                assert TOKEN.encode() not in path.read_bytes(), path


def test_branch_pull_request_revision_pinning_and_offline_cache(
    hub: FakeHub, package: Package, monkeypatch: pytest.MonkeyPatch
) -> None:
    main = upload_package(package, "alice/cartpole", commit_message="on main")
    dev = upload_package(package, "alice/cartpole", revision="dev", commit_message="on dev")
    pr = upload_package(package, "alice/cartpole", revision="dev", create_pr=True, commit_message="please review")
    repo = hub.repos["alice/cartpole"]
    assert repo.refs["main"] == main.commit_oid and repo.refs["dev"] == dev.commit_oid
    assert pr.pr_url is not None and pr.pr_url.endswith("/discussions/1")
    assert repo.refs["refs/pr/1"] == pr.commit_oid  # the card's commit, on the pull request's own commit:
    assert repo.commits[repo.commits[pr.commit_oid].parent or ""].message == "please review"
    assert any(r.path == "/api/models/alice/cartpole/branch/dev" for r in hub.requests)

    assert rlship.load_policy("hf://alice/cartpole@dev").revision == dev.commit_oid
    assert rlship.load_policy(f"hf://alice/cartpole@{main.commit_oid}").revision == main.commit_oid
    latest = rlship.load_policy("hf://alice/cartpole")
    assert latest.revision == main.commit_oid

    # Offline (HF_HUB_OFFLINE) with the server gone: the cache serves what was downloaded, and says what is missing.
    hub.stop()
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    cached = rlship.load_policy("hf://alice/cartpole")
    assert cached.revision == main.commit_oid
    np.testing.assert_array_equal(cached.act(OBS).actions, latest.act(OBS).actions)
    with pytest.raises(HubError, match="HF_HUB_OFFLINE is set and the files are not in the local cache"):
        rlship.load_policy("hf://alice/never-downloaded")


def test_a_second_push_replaces_stale_files_in_the_same_commit(hub: FakeHub, package: Package) -> None:
    hub.add_repo(
        "alice/cartpole",
        {"train_log.csv": b"env_steps\n1\n", "training_curve.png": b"old", "notes.txt": b"mine"},
    )
    commits_before = len(hub.repos["alice/cartpole"].commits)
    result = upload_package(package, "alice/cartpole")
    files = hub.files("alice/cartpole")
    assert result.deleted == ["train_log.csv", "training_curve.png"]  # the default policy has neither
    assert "train_log.csv" not in files and "training_curve.png" not in files
    assert files["notes.txt"] == b"mine"  # a file rlship never writes stays
    assert len(hub.repos["alice/cartpole"].commits) == commits_before + 1
    assert result.warnings == []
    again = upload_package(package, "alice/cartpole", private=True)  # exists, public: said, not silently ignored
    assert hub.repos["alice/cartpole"].private is False
    assert "already existed and is public: --private did not change that" in again.warnings[0]


def test_pull_never_fetches_pickles_and_names_missing_files(hub: FakeHub, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):  # unpickling this would create the marker file
            return (open, (str(marker), "w"))

    policy_dir = rlship.load_policy("default")
    folder = policy_dir.save(tmp_path / "policy")
    evil = pickle.dumps(Exploit())
    hub.add_repo(
        "alice/mixed",
        {
            "config.json": (folder / "config.json").read_bytes(),
            "model.safetensors": (folder / "model.safetensors").read_bytes(),
            "model.pkl": evil,
            "pytorch_model.bin": evil,
            "model.pt": evil,
        },
    )
    loaded = rlship.load_policy("hf://alice/mixed")
    assert loaded.spec.env_id == "CartPole-v1"
    fetched = {path.rsplit("/", 1)[1] for path in hub.downloads()}
    # results.json is asked for (the repo has none, and that is fine); nothing else is
    assert fetched == {"config.json", "model.safetensors", "results.json"}
    assert loaded.folder is not None and not (loaded.folder / "results.json").exists()
    assert not marker.exists()

    hub.add_repo("alice/pickle-only", {"model.pkl": evil})
    with pytest.raises(ArtifactError, match=r"hf://alice/pickle-only: the repository has no config\.json"):
        rlship.load_policy("hf://alice/pickle-only")
    hub.add_repo("alice/no-weights", {"config.json": (folder / "config.json").read_bytes(), "model.pt": evil})
    with pytest.raises(ArtifactError, match=r"has no model\.safetensors"):
        rlship.load_policy("hf://alice/no-weights")
    assert not marker.exists()
    assert all(not p.endswith((".pkl", ".bin", ".pt")) for p in hub.downloads())


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("hf://alice/nope", "not found (404)"),
        ("hf://bob/private@main", "it is private and needs a token"),
        ("hf://alice/public@no-such-branch", "that revision does not exist"),
        ("hf://alice", "is not OWNER/NAME"),
        ("hf://alice/public@", "nothing after '@'"),
        ("hf://alice/down", "the Hub had a server error (501)"),
        ("hf://alice/forbidden", "access denied (403)"),
    ],
)
def test_pull_failures_say_what_to_do(hub: FakeHub, monkeypatch: pytest.MonkeyPatch, source: str, message: str) -> None:
    hub.add_repo("bob/private", {"config.json": b"{}"}, private=True)
    hub.add_repo("alice/public", {"config.json": b"{}"})
    # 501: a 5xx that huggingface_hub does not retry (it backs off about 23 s on 500, 502, 503 and 504 downloads)
    hub.fail("HEAD", r"^/alice/down/", 501, "Not Implemented")
    hub.fail("HEAD", r"^/alice/forbidden/", 403, "Access denied")
    if "private" in source:
        monkeypatch.delenv("HF_TOKEN")  # anonymous: a private repo answers 401, as on the Hub
    with pytest.raises((HubError, ValueError)) as info:
        rlship.load_policy(source)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("setup", "repo_id", "message"),
    [
        ("no-token", "alice/x", "no Hugging Face token found"),
        ("bad-token", "alice/x", "rejected the token as invalid or expired (401)"),
        ("read-token", "alice/x", "the token is read-only"),
        ("other-namespace", "bob/x", "permission denied (403)"),
        ("server-error", "alice/x", "the Hub had a server error (500)"),
        ("commit-404", "alice/x", "not found (404)"),
        ("unreachable", "alice/x", "the Hub could not be reached"),
    ],
)
def test_push_failures_say_what_to_do_and_never_show_the_token(
    hub: FakeHub, package: Package, monkeypatch: pytest.MonkeyPatch, setup: str, repo_id: str, message: str
) -> None:
    if setup == "no-token":
        monkeypatch.delenv("HF_TOKEN")
    elif setup == "bad-token":
        monkeypatch.setenv("HF_TOKEN", BAD_TOKEN)
    elif setup == "read-token":
        monkeypatch.setenv("HF_TOKEN", READ_TOKEN)
    elif setup == "server-error":
        hub.fail("POST", r"^/api/repos/create$", 500, "Internal Error - We're working hard to fix this")
    elif setup == "commit-404":
        hub.fail("POST", r"/commit/", 404, "Repository not found")
    elif setup == "unreachable":
        hub.stop()
    with pytest.raises(HubError) as info:
        upload_package(package, repo_id)
    text = str(info.value)
    assert message in text, text
    assert f"could not push to {repo_id}" in text or f"cannot push to {repo_id}" in text
    _no_token_in(text, repr(info.value), str(info.value.__cause__), str(info.value.__context__))


def test_cli_push_dry_run_uploads_nothing_and_errors_keep_the_token_out(hub: FakeHub, tmp_path: Path) -> None:
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf"), "HF_TOKEN": TOKEN}
    base = ["push", "default", "--episodes", "2"]
    dry = subprocess.run(
        [RLSHIP, *base, "--repo-id", "alice/cp", "--dry-run", "--private", "--revision", "dev"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert dry.returncode == 0, dry.stderr
    assert "would upload to alice/cp (branch dev, private)" in dry.stdout and "nothing uploaded" in dry.stdout
    for name in ("README.md", "model.safetensors", "replay.mp4", "results.json", "config.json"):
        assert name in dry.stdout
    assert not [r for r in hub.requests if not r.path.startswith("/api/agent-harnesses")]  # nothing sent

    read_only = {**env, "HF_TOKEN": READ_TOKEN}
    denied = subprocess.run(
        [RLSHIP, *base, "--repo-id", "alice/cp"], capture_output=True, text=True, timeout=300, env=read_only
    )
    assert denied.returncode == 1 and "the token is read-only" in denied.stderr
    assert "Traceback" not in denied.stderr and "alice/cp" not in hub.repos  # failed before packaging
    done = subprocess.run(
        [RLSHIP, *base, "--repo-id", "alice/cp", "--commit-message", "from the CLI"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["commit"] == hub.repos["alice/cp"].refs["main"]
    evaluated = subprocess.run(
        [RLSHIP, "evaluate", "hf://alice/cp", "--episodes", "2"], capture_output=True, text=True, timeout=300, env=env
    )
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["mean_reward"] == 500.0
    _no_token_in(dry.stdout, dry.stderr, denied.stdout, denied.stderr, done.stdout, done.stderr)
    _no_token_in(evaluated.stdout, evaluated.stderr)


def _get(url: str) -> tuple[int, bytes]:
    import httpx

    response = httpx.get(url, headers={"authorization": f"Bearer {TOKEN}"})
    return response.status_code, response.content


def test_card_links_point_at_the_branch_or_pull_request_pushed_and_the_score_is_read_back(
    hub: FakeHub, package: Package
) -> None:
    main = upload_package(package, "alice/cartpole")
    assert main.hub_mean_reward == package.evaluation.metric and main.warnings == []
    assert main.summary()["hub_card_mean_reward"] == package.evaluation.metric

    dev = upload_package(package, "alice/cartpole", revision="dev")
    card = hub.files("alice/cartpole", "dev")["README.md"].decode()
    url = f"{hub.url}/alice/cartpole/resolve/dev/replay.mp4"
    assert f'src="{url}"' in card and 'rlship.load_policy("hf://alice/cartpole@dev")' in card
    assert _get(url) == (200, hub.files("alice/cartpole", "dev")["replay.mp4"])
    assert dev.hub_mean_reward == package.evaluation.metric

    pr = upload_package(package, "alice/cartpole", create_pr=True)
    assert pr.pr_revision == "refs/pr/1" and pr.pr_url is not None and pr.pr_url.endswith("/discussions/1")
    repo = hub.repos["alice/cartpole"]
    head = repo.commits[repo.refs["refs/pr/1"]]
    # two commits on the pull request: the package, then the card pointing at refs/pr/1 (known only then)
    assert head.sha == pr.commit_oid and head.message == "rlship: the card's links point at this pull request"
    assert repo.commits[head.parent].files["replay.mp4"] == head.files["replay.mp4"]
    card = head.files["README.md"].decode()
    url = f"{hub.url}/alice/cartpole/resolve/refs%2Fpr%2F1/replay.mp4"
    assert f'src="{url}"' in card and "hf://alice/cartpole@refs/pr/1" in card
    assert _get(url) == (200, head.files["replay.mp4"])
    assert repo.refs["main"] == main.commit_oid  # a pull request leaves main as it was
    assert pr.hub_mean_reward == package.evaluation.metric
    assert rlship.load_policy("hf://alice/cartpole@refs/pr/1").revision == pr.commit_oid


def test_push_without_repo_id_names_the_repo_after_the_user_and_the_card_runs_onnx(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = push_policy("default", episodes=2, video=False, onnx=True, tags=["deep-rl-course"])
    assert result.repo_id == "alice/ppo-CartPole-v1"  # whoami's name, the algorithm and the env id
    files = hub.files("alice/ppo-CartPole-v1")
    assert "model.onnx" in files and "replay.mp4" not in files
    from huggingface_hub import ModelCard

    card = ModelCard(files["README.md"].decode())
    assert "deep-rl-course" in card.data.tags and card.data.pipeline_tag == "reinforcement-learning"
    # The card's onnxruntime snippet, run as a user would, against this Hub: the policy's greedy action
    snippet = card.text.split("## Run it with onnxruntime")[1].split("```python\n")[1].split("```")[0]
    scope: dict[str, object] = {}
    exec(snippet, scope)
    assert scope["actions"].shape == (1,)  # type: ignore[union-attr]
    zeros = np.zeros((1, 4), dtype=np.float32)
    assert scope["actions"][0] == rlship.load_policy("default").act(zeros).actions[0]  # type: ignore[index]

    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(HubError, match=r"no Hugging Face token found.*pass --repo-id OWNER/NAME"):
        push_policy("default", episodes=2, dry_run=True)


def test_cli_push_prints_the_score_read_back_from_the_hub(hub: FakeHub, tmp_path: Path) -> None:
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf"), "HF_TOKEN": TOKEN}
    proc = subprocess.run(
        [RLSHIP, "push", "default", "--episodes", "2", "--no-video", "--revision", "dev", "--tag", "deep-rl-course"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["repo_id"] == "alice/ppo-CartPole-v1" and summary["hub_card_mean_reward"] == "500.00 +/- 0.00"
    assert "the card on the Hub (alice/ppo-CartPole-v1@dev) reads mean_reward 500.00 +/- 0.00" in proc.stderr
    assert "deep-rl-course" in hub.files("alice/ppo-CartPole-v1", "dev")["README.md"].decode()
    _no_token_in(proc.stdout, proc.stderr)


@pytest.mark.parametrize("revision", ["../escape", "/etc/passwd", "a\nb", "feature/x", ""])
def test_push_refuses_a_hostile_revision_before_any_work(saved_policy: Path, tmp_path: Path, revision: str) -> None:
    from rlship.errors import UsageError

    with pytest.raises(UsageError, match="is not a branch or tag name"):
        push_policy(saved_policy, "alice/x", revision=revision, dry_run=True, out=tmp_path / "pkg")
    assert not (tmp_path / "pkg").exists()  # refused before packaging
