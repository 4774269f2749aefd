"""JSON over HTTP to a server of the bench (Kafka Connect's REST API, OpenSearch)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class NdJson(bytes):
    """A body sent as it is, newline-delimited JSON (``_bulk``)."""


class RestError(RuntimeError):
    """The REST API answered with an error status."""

    def __init__(self, server: str, status: int, body: str) -> None:
        super().__init__(f"{server} {status}: {body}")
        self.status = status
        self.body = body


def call(
    url: str,
    method: str,
    body: object | None,
    error: type[RestError],
    server: str,
    *,
    timeout: float = 60.0,
) -> Any:
    """One call; the decoded JSON answer (``None`` for an empty one), or ``error`` raised."""
    content_type = "application/json"
    if isinstance(body, NdJson):
        data: bytes | None = bytes(body)
        content_type = "application/x-ndjson"
    else:
        data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 - our own loopback URL
        url,
        data=data,
        method=method,
        headers={"Content-Type": content_type, "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            text = response.read().decode()
    except urllib.error.HTTPError as failure:
        raise error(server, failure.code, failure.read().decode(errors="replace")) from None
    return json.loads(text) if text else None
