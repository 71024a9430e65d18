"""Serving policies over HTTP with BentoML: POST /act, POST /act_batch, GET /policy, GET /policies, the same per
named policy at /policies/{name}/..., hot swap with PUT /policies/{name} (plus /livez, /readyz, /metrics, /docs).
`rlship serve` runs `rlship.serving.service:PolicyService`; `rlship simulate` is a client.

This package's own import stays light (no BentoML, no torch) so the CLI starts fast.
"""

from __future__ import annotations

import os


def service_env(
    source: str = "default",
    workers: int = 1,
    max_batch: int | None = None,
    timeout: int | None = None,
    access_log: bool = False,
) -> dict[str, str]:
    """The environment that configures the BentoML service (read in `rlship.serving.service`); `source` is one
    `[NAME=]SOURCE` entry, or several as a JSON list (`registry.parse_entries`)."""
    env = {
        "RLSHIP_POLICY": str(source),
        "RLSHIP_WORKERS": str(workers),
        "RLSHIP_ACCESS_LOG": "1" if access_log else "0",
        # one thread per worker for every library that would start a pool of its own
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        # BentoML's usage statistics stay off unless the user turned them on explicitly
        "BENTOML_DO_NOT_TRACK": os.environ.get("BENTOML_DO_NOT_TRACK", "True"),
    }
    if max_batch is not None:
        env["RLSHIP_MAX_BATCH"] = str(max_batch)
    if timeout is not None:
        env["RLSHIP_TIMEOUT"] = str(timeout)
    return env


def require_extra(module: str) -> None:
    """Raise a clear error when the `serve` extra (BentoML, httpx) is not installed."""
    import importlib.util

    from rlship.errors import RlshipError

    if importlib.util.find_spec(module) is None:
        raise RlshipError(f"{module} is not installed; serving needs the serve extra: pip install 'rlship[serve]'")


__all__ = ["require_extra", "service_env"]
