"""Hub failures as `HubError`s that say what went wrong and what to do, with the token never in the text."""

from __future__ import annotations

from rlship.errors import RlshipError
from rlship.schema import brief

TOKEN_HELP = "set HF_TOKEN to a token with write access, or run `hf auth login` (tokens: hf.co/settings/tokens)"


class HubError(RlshipError):
    """A Hugging Face Hub operation failed (network, authentication, permission, missing repo or file)."""


def redact(text: str, token: str | None) -> str:
    """`text` with the token (if any) masked: errors can quote server text or URLs, never the credential."""
    return text.replace(token, "hf_***") if token else text


def hub_error(exc: BaseException, action: str, repo_id: str, token: str | None = None) -> HubError:
    """A HubError for `exc`, raised by huggingface_hub while doing `action` ("push to", "download from") on
    `repo_id`. Known failures get a message saying what to do; the status and the server's words follow."""
    from huggingface_hub import constants
    from huggingface_hub import errors as hf

    if isinstance(exc, hf.LocalEntryNotFoundError) and isinstance(exc.__cause__, hf.HfHubHTTPError):
        # hf_hub_download hides a failed HEAD (403, 5xx) behind "not in the cache": report what the Hub answered
        return hub_error(exc.__cause__, action, repo_id, token)
    status = None
    response = getattr(exc, "response", None)
    if response is not None:
        status = getattr(response, "status_code", None)
    server = _server_message(exc)
    where = f"could not {action} {repo_id}"
    if isinstance(exc, hf.LocalTokenNotFoundError):
        message = f"{where}: no Hugging Face token found; {TOKEN_HELP}"
    elif isinstance(exc, hf.RevisionNotFoundError):
        message = f"{where}: that revision does not exist; check the branch, tag or commit after '@'"
    elif isinstance(exc, hf.GatedRepoError):
        message = f"{where}: the repository is gated; accept its terms on the Hub, then {TOKEN_HELP}"
    elif isinstance(exc, hf.OfflineModeIsEnabled) or (
        isinstance(exc, hf.LocalEntryNotFoundError) and constants.is_offline_mode()
    ):
        message = (
            f"{where}: HF_HUB_OFFLINE is set and the files are not in the local cache; "
            "unset HF_HUB_OFFLINE to download them (or download them once while online)"
        )
    elif isinstance(exc, hf.LocalEntryNotFoundError):
        message = (
            f"{where}: the Hub could not be reached and the files are not in the local cache; "
            "check your network connection (and HF_ENDPOINT if you set it), then try again"
        )
    elif status == 401 and action.startswith("push"):
        message = f"{where}: the Hub rejected the token as invalid or expired (401); {TOKEN_HELP}"
    elif status == 401:
        message = (
            f"{where}: not authorized (401): the repository does not exist, or it is private and needs a token "
            "(or the token is invalid or expired). Check OWNER/NAME; for a private repository set HF_TOKEN to a "
            "token that can read it, or run `hf auth login`"
        )
    elif status == 403 and not action.startswith("push"):
        message = (
            f"{where}: access denied (403): the token cannot read this repository; use a token with read access "
            "to it (HF_TOKEN or `hf auth login`)"
        )
    elif status == 403:
        message = (
            f"{where}: permission denied (403): the token cannot write there. Use a token with write access "
            "(not a read-only one), and a namespace that is yours or an organization you can write to"
        )
    elif status == 404 or isinstance(exc, hf.RepositoryNotFoundError):
        message = f"{where}: not found (404); check the repo id (OWNER/NAME) and, for a private repository, the token"
    elif status is not None and status >= 500:
        message = f"{where}: the Hub had a server error ({status}); try again later (status: status.huggingface.co)"
    elif status is not None:
        message = f"{where}: the Hub answered {status}"
    elif is_connection_error(exc):
        message = (
            f"{where}: the Hub could not be reached ({type(exc).__name__}); check your network connection "
            "(and HF_ENDPOINT if you set it), then try again"
        )
    else:
        message = f"{where}: {type(exc).__name__}: {brief(str(exc), 300)}"  # escaped and cut: it may quote input
    if server:
        message += f" [Hub said: {server}]"
    return HubError(redact(message, token))


def _server_message(exc: BaseException) -> str:
    """The server's own explanation (huggingface_hub puts it in `server_message`), kept short."""
    text = getattr(exc, "server_message", None) or ""
    text = " ".join(str(text).split())
    return text[:300]


def is_connection_error(exc: BaseException) -> bool:
    """Network failures. huggingface_hub lets its HTTP library's transport errors (httpx's family: connect, read,
    timeout, protocol) through unchanged; they are recognised by that family's base class, by name, so this does
    not depend on which httpx package the installed huggingface_hub uses."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionError | TimeoutError):
            return True
        if any(cls.__name__ == "TransportError" and cls.__module__.startswith("httpx") for cls in type(seen).__mro__):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
