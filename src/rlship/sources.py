"""Where a policy comes from: "default" (the CartPole-v1 policy shipped in the package), a local folder, or
SCHEME://... for a registered scheme. The hub package registers "hf" (the Hugging Face Hub) when rlship is
imported, so this core module never imports the hub, and nothing here imports torch (the CLI starts fast)."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

from rlship.errors import ArtifactError

DEFAULT_POLICY = "default"
# scheme -> (source) -> (local folder, revision or None)
SourceResolver = Callable[[str], tuple[Path, "str | None"]]
_RESOLVERS: dict[str, SourceResolver] = {}


def default_policy_dir() -> Path:
    """The CartPole-v1 policy shipped inside the package."""
    return Path(str(resources.files("rlship") / "default_policy"))


def register_source_resolver(scheme: str, resolver: SourceResolver) -> None:
    """Make `load_policy("SCHEME://...")` call `resolver` (schemes match case-insensitively)."""
    _RESOLVERS[scheme.lower()] = resolver


def locate_source(source: str | Path) -> tuple[Path, str | None]:
    """(local folder, Hub commit sha or None) of a policy source: "default", a folder, or SCHEME://... for a
    registered scheme (hf:// downloads from the Hugging Face Hub)."""
    text = str(source)
    if text == DEFAULT_POLICY:
        return default_policy_dir(), None
    scheme, sep, rest = text.partition("://")
    if sep and scheme.isalpha():
        resolver = _RESOLVERS.get(scheme.lower())
        if resolver is None:
            raise ArtifactError(
                f"{text[:200]!r}: unknown source scheme {scheme[:20]!r}://; rlship loads a local folder, 'default', "
                f"or {', '.join(f'{s}://' for s in sorted(_RESOLVERS)) or 'hf://'}OWNER/NAME[@REVISION]"
            )
        return resolver(f"{scheme.lower()}://{rest}")
    return Path(text).expanduser(), None
