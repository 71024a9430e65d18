"""`hf://OWNER/NAME[@REVISION]` sources: download a policy through huggingface_hub's cache.

Only config.json, model.safetensors and (when the repo has it) results.json are ever requested: whatever else a
repository holds (`.pt`, `.bin`, `.pkl`, code) is never downloaded, so it can never be unpickled or run. The
weights are downloaded at the commit config.json resolved to, so the pair always comes from one commit even while
someone pushes to the branch. The cache gives revision pinning and offline use (`HF_HUB_OFFLINE=1` once the files
are cached) for free.
"""

from __future__ import annotations

import re
from pathlib import Path

from rlship.errors import ArtifactError, RlshipError, UsageError
from rlship.hub.errors import hub_error
from rlship.run_folder import CONFIG_FILE, RESULTS_FILE, WEIGHTS_FILE
from rlship.sources import register_source_resolver

HF_PREFIX = "hf://"
COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")


def parse_source(source: str) -> tuple[str, str | None]:
    """("OWNER/NAME", revision or None) from "hf://OWNER/NAME[@REVISION]"."""
    from rlship.hub.package import check_repo_id

    if not source.startswith(HF_PREFIX):
        raise UsageError(f"{source!r} is not a Hub source; write hf://OWNER/NAME or hf://OWNER/NAME@REVISION")
    repo_id, at, revision = source[len(HF_PREFIX) :].partition("@")
    if at and not revision:
        raise UsageError(f"{source!r}: nothing after '@'; give a branch, tag or commit, or leave out the '@'")
    try:
        check_repo_id(repo_id)
    except ValueError as exc:
        raise UsageError(f"{source!r}: {exc}") from exc
    return repo_id, revision or None


def download_policy(source: str) -> tuple[Path, str]:
    """(local folder holding config.json and model.safetensors, commit sha they were downloaded at)."""
    repo_id, revision = parse_source(source)
    from huggingface_hub import get_token, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    name = CONFIG_FILE
    try:
        config_path = Path(hf_hub_download(repo_id, CONFIG_FILE, revision=revision))
        # The cache stores a commit's files under snapshots/<commit sha>/: the commit this revision resolved to.
        commit = config_path.parent.name
        if not COMMIT_SHA.fullmatch(commit):
            raise ArtifactError(f"{source}: unexpected cache layout {config_path}; cannot tell which commit it is")
        name = WEIGHTS_FILE
        weights_path = Path(hf_hub_download(repo_id, WEIGHTS_FILE, revision=commit))
    except RlshipError:
        raise
    except LocalEntryNotFoundError as exc:  # offline or unreachable, and not in the cache
        raise hub_error(exc, "download", source, get_token()) from None
    except EntryNotFoundError:
        raise ArtifactError(
            f"{source}: the repository has no {name}; an rlship policy repository holds {CONFIG_FILE} and "
            f"{WEIGHTS_FILE} (what `rlship push` uploads). rlship loads nothing else, pickles least of all."
        ) from None
    except Exception as exc:
        raise hub_error(exc, "download", source, get_token()) from None
    if weights_path.parent != config_path.parent:
        raise ArtifactError(f"{source}: {CONFIG_FILE} and {WEIGHTS_FILE} came from different commits")
    _download_results(repo_id, commit)
    return config_path.parent, commit


def _download_results(repo_id: str, commit: str) -> None:
    """results.json of the same commit, into the cache beside the policy (plain JSON, read by `GET /policy`).
    Optional: a repository without it, or a Hub that fails on it, still gives a working policy."""
    from huggingface_hub import hf_hub_download

    try:
        hf_hub_download(repo_id, RESULTS_FILE, revision=commit)
    except Exception:  # the policy is already here; its evaluation summary is a nicety
        return


# `load_policy("hf://...")` resolves here; `import rlship` imports this module, so the core never imports the hub.
register_source_resolver("hf", download_policy)
