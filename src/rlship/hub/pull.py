"""`hf://OWNER/NAME[@REVISION]` sources: download a policy through huggingface_hub's cache.

Only config.json, model.safetensors and (when the repo has it) results.json are ever requested: whatever else a
repository holds (`.pt`, `.bin`, `.pkl`, code) is never downloaded, so it can never be unpickled or run. The
weights are downloaded at the commit config.json resolved to, so the pair always comes from one commit even while
someone pushes to the branch. The cache gives revision pinning and offline use (`HF_HUB_OFFLINE=1` once the files
are cached) for free.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from rlship.errors import ArtifactError, RlshipError, UsageError
from rlship.hub.errors import HubError, hub_error, is_connection_error
from rlship.run_folder import CONFIG_FILE, RESULTS_FILE, WEIGHTS_FILE
from rlship.schema import brief
from rlship.sources import register_source_resolver

HF_PREFIX = "hf://"
COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")
# A revision is a commit sha, a pull-request ref, or a branch or tag name that is one safe path component: the Hub
# client writes the revision into its cache as a file name (refs/<revision>), so "../x", "/etc/passwd", a
# backslash or a control character must never reach it. (Branch names with "/" are not accepted: pin the commit.)
BRANCH_OR_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]*")
PULL_REQUEST_REF = re.compile(r"refs/pr/[1-9][0-9]{0,8}")
MAX_REVISION_LENGTH = 128
MAX_SOURCE_LENGTH = 300
# How long the first request to the Hub may take before the source is called unreachable (seconds), and the
# variable that changes it. huggingface_hub alone would retry a failed first request for about 24 s.
HUB_TIMEOUT_ENV = "RLSHIP_HUB_TIMEOUT"
DEFAULT_HUB_TIMEOUT = 4.0
MAX_HUB_TIMEOUT = 3600.0


def parse_source(source: str) -> tuple[str, str | None]:
    """("OWNER/NAME", revision or None) from "hf://OWNER/NAME[@REVISION]", checked before anything else happens:
    OWNER/NAME by the Hub's own rules (huggingface_hub's validator), REVISION as a branch, tag, refs/pr/N or
    40-hex commit. Errors show the source escaped and cut, never raw."""
    if len(source) > MAX_SOURCE_LENGTH:
        raise UsageError(f"{brief(source)}: a Hub source is at most {MAX_SOURCE_LENGTH} characters")
    if not source[: len(HF_PREFIX)].lower() == HF_PREFIX:
        raise UsageError(f"{brief(source)} is not a Hub source; write hf://OWNER/NAME or hf://OWNER/NAME@REVISION")
    repo_id, at, revision = source[len(HF_PREFIX) :].partition("@")
    if at and not revision:
        raise UsageError(f"{brief(source)}: nothing after '@'; give a branch, tag or commit, or leave out the '@'")
    check_hub_repo_id(repo_id, source)
    if at:
        check_revision(revision, source)
    return repo_id, revision or None


def check_hub_repo_id(repo_id: str, source: str) -> None:
    """OWNER/NAME as the Hub allows it (huggingface_hub's `validate_repo_id`, plus: the owner is required)."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    owner, slash, _ = repo_id.partition("/")
    try:
        if not slash or not owner:
            raise HFValidationError("no owner")
        validate_repo_id(repo_id)
    except HFValidationError:
        raise UsageError(
            f"{brief(source)}: repo id {brief(repo_id)} is not OWNER/NAME as the Hub spells it (letters, digits, "
            "'-', '_', '.', at most 96 characters each, no '--' or '..', not starting or ending with '-' or '.'; "
            "for example hf://alice/ppo-CartPole-v1)"
        ) from None


def check_revision(revision: str, source: str) -> None:
    """A revision that is a branch or tag name (one path component), refs/pr/N or a commit sha; else UsageError."""
    ok = len(revision) <= MAX_REVISION_LENGTH and (
        COMMIT_SHA.fullmatch(revision)
        or PULL_REQUEST_REF.fullmatch(revision)
        or (BRANCH_OR_TAG.fullmatch(revision) and ".." not in revision and not revision.endswith((".", ".lock")))
    )
    if not ok:
        raise UsageError(
            f"{brief(source)}: revision {brief(revision)} is not a branch or tag name (letters, digits, '.', '_', "
            f"'-', '+'; no '/', '..' or control characters; at most {MAX_REVISION_LENGTH} characters), refs/pr/N "
            "or a 40-character commit sha"
        )


def hub_timeout() -> float:
    """Seconds the first request to the Hub may take: $RLSHIP_HUB_TIMEOUT, else DEFAULT_HUB_TIMEOUT."""
    raw = os.environ.get(HUB_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_HUB_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 < value <= MAX_HUB_TIMEOUT:  # NaN fails this too
        raise UsageError(f"{HUB_TIMEOUT_ENV}={brief(raw)}: give the seconds to wait for the Hub, >0 and <= 3600")
    return value


def download_policy(source: str) -> tuple[Path, str]:
    """(local folder holding config.json and model.safetensors, commit sha they were downloaded at)."""
    repo_id, revision = parse_source(source)
    timeout = hub_timeout()
    from huggingface_hub import get_token, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    name = CONFIG_FILE
    try:
        _check_reachable(repo_id, revision, source, timeout)
        config_path = Path(hf_hub_download(repo_id, CONFIG_FILE, revision=revision, etag_timeout=timeout))
        # The cache stores a commit's files under snapshots/<commit sha>/: the commit this revision resolved to.
        commit = config_path.parent.name
        if not COMMIT_SHA.fullmatch(commit):
            raise ArtifactError(f"{source}: unexpected cache layout {config_path}; cannot tell which commit it is")
        name = WEIGHTS_FILE
        weights_path = Path(hf_hub_download(repo_id, WEIGHTS_FILE, revision=commit, etag_timeout=timeout))
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
    _download_results(repo_id, commit, timeout)
    return config_path.parent, commit


def _check_reachable(repo_id: str, revision: str | None, source: str, timeout: float) -> None:
    """Ask the Hub once, within `timeout` and without retries, whether it answers for config.json, so that an
    unreachable Hub fails in seconds: huggingface_hub, finding no cached file, would retry for about 24 s. When
    the files are cached (or in offline mode) an unreachable Hub is no error: `hf_hub_download` serves the cache.
    Hub errors (404, 401, ...) propagate to `hub_error`."""
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url, try_to_load_from_cache

    if constants.is_offline_mode():
        return
    cached = isinstance(try_to_load_from_cache(repo_id, CONFIG_FILE, revision=revision), str)
    if cached and revision is not None and COMMIT_SHA.fullmatch(revision):
        return  # a commit's files never change: no request needed
    try:
        get_hf_file_metadata(hf_hub_url(repo_id, CONFIG_FILE, revision=revision), timeout=timeout)
    except Exception as exc:
        if not is_connection_error(exc):
            raise
        if cached:
            return
        raise HubError(
            f"could not download {source}: the Hub could not be reached within {timeout:g} s "
            f"({type(exc).__name__}) and the files are not in the local cache; check your network connection (and "
            f"HF_ENDPOINT if you set it), or set {HUB_TIMEOUT_ENV} to wait longer (seconds), then try again"
        ) from None


def _download_results(repo_id: str, commit: str, timeout: float) -> None:
    """results.json of the same commit, into the cache beside the policy (plain JSON, read by `GET /policy`).
    Optional: a repository without it, or a Hub that fails on it, still gives a working policy."""
    from huggingface_hub import hf_hub_download

    try:
        hf_hub_download(repo_id, RESULTS_FILE, revision=commit, etag_timeout=timeout)
    except Exception:  # the policy is already here; its evaluation summary is a nicety
        return


# `load_policy("hf://...")` resolves here; `import rlship` imports this module, so the core never imports the hub.
register_source_resolver("hf", download_policy)
