"""`rlship push`: package a run and upload it to a Hub model repository in one commit.

One `create_commit` adds every file of the package and deletes the files an earlier push left that the new package
no longer has (only names rlship writes: files a user added by hand stay). The card's links point at the revision
pushed to: the branch, or for `--create-pr` the pull request's refs/pr/N, which exists only once the pull request
does, so a second commit on the pull request sets the card's links. Then the card is read back from the Hub and its
parsed score reported. Without a repo id the repo is `<user>/<algo>-<env_id>`, the user being the token's (whoami).
The token comes from huggingface_hub (`HF_TOKEN`, else the saved `hf auth login`); rlship never prints or stores it.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlship.errors import RlshipError, UsageError
from rlship.evaluation import DEFAULT_EPISODES
from rlship.hub.card import CARD_FILE, check_tags
from rlship.hub.errors import TOKEN_HELP, HubError, hub_error
from rlship.hub.package import PACKAGE_FILES, Package, check_repo_id, package_policy
from rlship.hub.pull import check_revision
from rlship.run_folder import read_config
from rlship.sources import locate_source


@dataclass(frozen=True)
class PushResult:
    repo_id: str
    package: Package
    revision: str | None
    dry_run: bool
    deleted: list[str]  # stale files the commit removed
    warnings: list[str] = field(default_factory=list)  # things the user asked for that did not happen
    commit_url: str | None = None
    commit_oid: str | None = None
    pr_url: str | None = None
    pr_revision: str | None = None  # refs/pr/N of a --create-pr push
    hub_mean_reward: str | None = None  # the score parsed from the card as the Hub serves it after the push

    def summary(self) -> dict[str, Any]:
        return {
            "repo_id": self.repo_id,
            "revision": self.pr_revision or self.revision or "main",
            "dry_run": self.dry_run,
            "mean_reward": self.package.evaluation.metric,
            "files": self.package.files,
            "deleted": self.deleted,
            "warnings": self.warnings,
            "commit_url": self.commit_url,
            "commit": self.commit_oid,
            "pull_request": self.pr_url,
            "hub_card_mean_reward": self.hub_mean_reward,
        }


def push_policy(
    source: str | Path,
    repo_id: str | None = None,
    *,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
    dry_run: bool = False,
    out: str | Path | None = None,
    episodes: int = DEFAULT_EPISODES,
    seed: int = 0,
    allow_interrupted: bool = False,
    video: bool = True,
    onnx: bool = False,
    tags: Sequence[str] = (),
) -> PushResult:
    """Package `source` for `repo_id` (into `out`, else a temporary folder) and upload it, unless `dry_run`.
    Without `repo_id`: `<user>/<algo>-<env_id>`, the user being the token's."""
    if repo_id is not None:
        check_repo_id(repo_id)
    if revision is not None:
        check_revision(revision, f"--revision {revision}")  # the branch name pulls check, before any request
    check_tags(tags)
    if commit_message is not None and not commit_message.strip():
        raise UsageError("--commit-message is empty; give a message or leave the flag out")
    if repo_id is None:
        repo_id = default_repo_id(source, hub_user("choose a repo id"))
    if not dry_run:
        writable_api(repo_id)  # a missing, invalid or read-only token fails now, not after packaging
    options: dict[str, Any] = {
        "repo_id": repo_id,
        "episodes": episodes,
        "seed": seed,
        "allow_interrupted": allow_interrupted,
        "video": video,
        "onnx": onnx,
        "tags": tags,
    }
    if out is not None:
        package = package_policy(source, out, **options)
        return upload_package(package, repo_id, private, revision, commit_message, create_pr, dry_run)
    with tempfile.TemporaryDirectory(prefix="rlship-push-") as tmp:
        package = package_policy(source, Path(tmp) / "package", **options)
        return upload_package(package, repo_id, private, revision, commit_message, create_pr, dry_run)


def default_repo_id(source: str | Path, user: str) -> str:
    """`<user>/<algo>-<env_id>` for the policy at `source` (an env id's '/' and other characters a repo name
    cannot hold become '-')."""
    folder, _ = locate_source(source)
    config = read_config(folder)
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{config.get('algorithm')}-{config.get('env_id')}").strip("-.")
    return check_repo_id(f"{user}/{name}")


def hub_user(purpose: str) -> str:
    """The user name of the token (huggingface_hub's whoami), or a HubError saying to log in or name the repo."""
    from huggingface_hub import HfApi, get_token

    token = get_token()
    if token is None:
        raise HubError(
            f"cannot {purpose}: no Hugging Face token found, so the Hub cannot say who you are; pass "
            f"--repo-id OWNER/NAME, or {TOKEN_HELP}"
        )
    try:
        name = HfApi(token=token).whoami().get("name")
    except Exception as exc:
        raise hub_error(exc, "push to", "<you>/<algo>-<env_id> (asking the Hub who you are)", token) from None
    if not name:
        raise HubError(f"cannot {purpose}: the Hub did not say whose the token is; pass --repo-id OWNER/NAME")
    return str(name)


def writable_api(repo_id: str) -> tuple[Any, str]:
    """(HfApi, token) once the Hub has confirmed the token is valid and not read-only."""
    from huggingface_hub import HfApi, get_token

    token = get_token()
    if token is None:
        raise HubError(f"cannot push to {repo_id}: no Hugging Face token found; {TOKEN_HELP}")
    api = HfApi(token=token)
    try:
        role = ((api.whoami().get("auth") or {}).get("accessToken") or {}).get("role")
    except Exception as exc:
        raise hub_error(exc, "push to", repo_id, token) from None
    if role == "read":
        raise HubError(
            f"cannot push to {repo_id}: the token is read-only; create a token with write access "
            "(hf.co/settings/tokens) and set HF_TOKEN to it, or run `hf auth login` with it"
        )
    return api, token


def upload_package(
    package: Package,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
    dry_run: bool = False,
) -> PushResult:
    """Upload a package made by `package_policy` to `repo_id` in one commit (or, if `dry_run`, only say what).
    The card is rendered again for `repo_id` and the branch pushed to, so its links and load lines point there."""
    if package.card is not None:
        _render_card(package, repo_id, revision)
    if dry_run:
        return PushResult(repo_id, package, revision, dry_run=True, deleted=[])
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    api, token = writable_api(repo_id)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        warnings = []
        if private and not api.repo_info(repo_id).private:  # create_repo leaves an existing repo as it is
            warnings.append(
                f"{repo_id} already existed and is public: --private did not change that "
                "(change its visibility in the repository settings on the Hub)"
            )
        if revision is not None and revision != "main":
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        remote = set(api.list_repo_files(repo_id, revision=revision))
        stale = sorted(name for name in remote if name in PACKAGE_FILES and name not in package.files)
        operations: list[Any] = [
            CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(package.folder / name)) for name in package.files
        ]
        operations += [CommitOperationDelete(path_in_repo=name) for name in stale]
        evaluation = package.evaluation
        info = api.create_commit(
            repo_id,
            operations,
            commit_message=commit_message
            or f"rlship: {evaluation.env_id} policy, mean_reward {evaluation.metric} "
            f"({evaluation.n_eval_episodes} episodes)",
            revision=revision,
            create_pr=create_pr,
        )
        pr_revision = info.pr_revision if create_pr else None
        pr_url = info.pr_url if create_pr else None
        if pr_revision and package.card is not None:
            # The pull request's revision exists only now: a second commit on it points the card's links at it.
            _render_card(package, repo_id, pr_revision)
            info = api.create_commit(
                repo_id,
                [CommitOperationAdd(path_in_repo=CARD_FILE, path_or_fileobj=str(package.folder / CARD_FILE))],
                commit_message="rlship: the card's links point at this pull request",
                revision=pr_revision,
            )
        hub_score = read_back_score(repo_id, info.oid, token)
    except RlshipError:
        raise
    except Exception as exc:
        raise hub_error(exc, "push to", repo_id, token) from None
    if hub_score != evaluation.metric:
        warnings.append(
            f"the card on the Hub reads mean_reward {hub_score!r}, not the {evaluation.metric!r} pushed; "
            "check the repository's README.md"
        )
    return PushResult(
        repo_id,
        package,
        revision,
        dry_run=False,
        deleted=stale,
        warnings=warnings,
        commit_url=str(info.commit_url),
        commit_oid=info.oid,
        pr_url=pr_url,
        pr_revision=pr_revision,
        hub_mean_reward=hub_score,
    )


def _render_card(package: Package, repo_id: str, revision: str | None) -> None:
    assert package.card is not None
    package.card.render(repo_id, revision).save(package.folder / CARD_FILE)
    package.files[CARD_FILE] = (package.folder / CARD_FILE).stat().st_size


def read_back_score(repo_id: str, commit: str, token: str) -> str | None:
    """The `mean_reward` of the card the Hub serves at `commit`, parsed by huggingface_hub's card parser."""
    from huggingface_hub import ModelCard, hf_hub_download

    path = hf_hub_download(repo_id, CARD_FILE, revision=commit, token=token)
    results = ModelCard.load(path).data.eval_results or []
    return next((str(r.metric_value) for r in results if r.metric_type == "mean_reward"), None)
