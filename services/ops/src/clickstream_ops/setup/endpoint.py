"""Where an HTTP service is and how to log in, with the credentials kept out of logs.

A service URI may carry credentials (``https://user:pass@host:port``, as Aiven
hands it out). They are split off here, once, so that everything downstream
logs ``Endpoint.url`` and never sees the password as part of a URL.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx


class EndpointError(ValueError):
    """A service URI that cannot be used; the message names the variable."""


@dataclass(frozen=True)
class Endpoint:
    #: What the operator calls it, for messages: "OpenSearch", "OpenSearch Dashboards".
    name: str
    #: scheme://host:port[/path] without credentials: safe to log.
    url: str
    auth: httpx.BasicAuth | None = field(default=None, repr=False)
    ca_file: Path | None = None

    def verify(self) -> ssl.SSLContext | bool:
        """TLS verification for httpx: the system store unless a CA file is given."""
        if self.ca_file is None:
            return True
        return ssl.create_default_context(cafile=str(self.ca_file))


def parse_endpoint(
    name: str,
    variable: str,
    uri: str,
    *,
    user: str | None = None,
    password: str | None = None,
    ca_file: Path | None = None,
) -> Endpoint:
    """Build an :class:`Endpoint`; explicit ``user``/``password`` win over URI credentials."""
    parts = urlsplit(uri.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # Never echo the value: it may contain a password.
        raise EndpointError(f"{variable} must be an http:// or https:// URL with a host")
    try:
        port = parts.port
    except ValueError:
        raise EndpointError(f"{variable} has an invalid port") from None
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if port is not None:
        netloc = f"{netloc}:{port}"
    url = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    login = user or (unquote(parts.username) if parts.username else None)
    secret = password if user else (unquote(parts.password) if parts.password else None)
    if secret is not None and login is None:
        raise EndpointError(f"{variable}: a password is set without a user")
    auth = httpx.BasicAuth(login, secret or "") if login is not None else None
    return Endpoint(name=name, url=url, auth=auth, ca_file=ca_file)
