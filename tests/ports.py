"""A free loopback TCP port for a server a test starts, or for a URL nothing listens on (not a test module)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago: the OS picks it, the socket is closed before it is used."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
