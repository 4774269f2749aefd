"""Free TCP ports for the embedded servers."""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A port nothing listens on right now.

    The port is released before the server binds it, so another process may take
    it in between; ``ChildServer._start_on_ports`` retries a launch that lost it.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port
