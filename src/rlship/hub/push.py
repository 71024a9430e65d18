"""`rlship push`: package a run and upload it to a Hub model repository in one commit.

One `create_commit` adds every file of the package and deletes the files an earlier push left that the new package
no longer has (only names rlship writes: files a user added by hand stay). The token comes from huggingface_hub
(`HF_TOKEN`, else the saved `hf auth login`); rlship never reads, prints or stores it.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlship.errors import RlshipError, UsageError
from rlship.evaluation import DEFAULT_EPISODES
from rlship.hub.errors import TOKEN_HELP, HubError, hub_error
from rlship.hub.package import PACKAGE_FILES, Package, check_repo_id, package_policy


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

    def summary(self) -> dict[str, Any]:
        return {
            "repo_id": self.repo_id,
            "revision": self.revision or "main",
            "dry_run": self.dry_run,
            "mean_reward": self.package.evaluation.metric,
            "files": self.package.files,
            "deleted": self.deleted,
            "warnings": self.warnings,
            "commit_url": self.commit_url,
            "commit": self.commit_oid,
            "pull_request": self.pr_url,
        }


def push_policy(
    source: str | Path,
    repo_id: str,
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
) -> PushResult:
    """Package `source` for `repo_id` (into `out`, else a temporary folder) and upload it, unless `dry_run`."""
    check_repo_id(repo_id)
    if commit_message is not None and not commit_message.strip():
        raise UsageError("--commit-message is empty; give a message or leave the flag out")
    if not dry_run:
        writable_api(repo_id)  # a missing, invalid or read-only token fails now, not after packaging
    if out is not None:
        package = package_policy(
            source, out, repo_id=repo_id, episodes=episodes, seed=seed, allow_interrupted=allow_interrupted
        )
        return upload_package(package, repo_id, private, revision, commit_message, create_pr, dry_run)
    with tempfile.TemporaryDirectory(prefix="rlship-push-") as tmp:
        package = package_policy(
            source,
            Path(tmp) / "package",
            repo_id=repo_id,
            episodes=episodes,
            seed=seed,
            allow_interrupted=allow_interrupted,
        )
        return upload_package(package, repo_id, private, revision, commit_message, create_pr, dry_run)


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
    """Upload a package made by `package_policy` to `repo_id` in one commit (or, if `dry_run`, only say what)."""
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
    except RlshipError:
        raise
    except Exception as exc:
        raise hub_error(exc, "push to", repo_id, token) from None
    return PushResult(
        repo_id,
        package,
        revision,
        dry_run=False,
        deleted=stale,
        warnings=warnings,
        commit_url=str(info.commit_url),
        commit_oid=info.oid,
        pr_url=info.pr_url,
    )
