"""How the dev stack reaches its Kafka brokers: aiokafka options and a readiness probe.

The probe, a blocking Metadata request, is a few lines of the wire protocol
rather than an aiokafka client so that it works the same from plain code, from
sync pytest fixtures and inside a running event loop (no ``asyncio.run`` there).
"""

from __future__ import annotations

import socket
import ssl
import struct
from typing import Any

_METADATA = 3
_VERSION = 0
_CORRELATION_ID = 0x0C11C
_CLIENT_ID = b"clickstream-devstack"


def client_options(bootstrap: str, ssl_context: ssl.SSLContext | None = None) -> dict[str, Any]:
    """The keys of ``KafkaSettings.kafka_client_options()`` for aiokafka clients of a broker."""
    return {
        "bootstrap_servers": bootstrap.split(","),
        "client_id": _CLIENT_ID.decode(),
        "security_protocol": "SSL" if ssl_context else "PLAINTEXT",
        "ssl_context": ssl_context,
    }


def _request() -> bytes:
    header = struct.pack(">hhih", _METADATA, _VERSION, _CORRELATION_ID, len(_CLIENT_ID))
    body = struct.pack(">i", 0)  # v0: an empty topic list asks for every topic
    payload = header + _CLIENT_ID + body
    return struct.pack(">i", len(payload)) + payload


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        chunks += chunk
    return bytes(chunks)


def advertised_brokers(host: str, port: int, *, timeout: float = 1.0) -> list[tuple[str, int]]:
    """The (host, port) of every broker the cluster advertises."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(_request())
        (size,) = struct.unpack(">i", _read_exactly(sock, 4))
        response = _read_exactly(sock, size)
    correlation_id, count = struct.unpack_from(">ii", response, 0)
    if correlation_id != _CORRELATION_ID:
        raise ConnectionError(f"unexpected correlation id {correlation_id}")
    brokers: list[tuple[str, int]] = []
    offset = 8
    for _ in range(count):
        _node_id, host_len = struct.unpack_from(">ih", response, offset)
        offset += 6
        broker_host = response[offset : offset + host_len].decode()
        offset += host_len
        (broker_port,) = struct.unpack_from(">i", response, offset)
        offset += 4
        brokers.append((broker_host, broker_port))
    return brokers


def answers_metadata(host: str, port: int) -> bool:
    """True once the broker answers a Metadata request and advertises itself."""
    try:
        return (host, port) in advertised_brokers(host, port)
    except (OSError, struct.error, UnicodeDecodeError):
        return False
