"""Kafka Connect, one standalone worker with its REST API on a free port.

The worker runs from the same jars as :class:`~clickstream_devstack.servers.jvm.kafka.ApacheKafka`
(connect-runtime, connect-transforms, connect-json, connect-file are on its class
path, so the stock transforms and the file sink need no plugin.path); connectors
are created and removed through the REST API, as on Aiven. Offsets are kept in a
file of the work directory.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from clickstream_devstack.servers.child_server import ChildServer
from clickstream_devstack.servers.jvm.kafka import ApacheKafka, classpath, jvm_options
from clickstream_devstack.servers.jvm.properties import java_properties
from clickstream_devstack.servers.jvm.rest import RestError, call

_STARTED = "Kafka Connect started"


class ConnectRestError(RestError):
    """The REST API answered with an error status."""


class KafkaConnect(ChildServer):
    """A standalone Connect worker against ``kafka``; its log is ``<work_dir>/connect.log``."""

    name = "connect"

    def __init__(
        self,
        work_dir: Path,
        kafka: ApacheKafka,
        *,
        settings: Mapping[str, object] | None = None,
        start_timeout: float = 120.0,
    ) -> None:
        super().__init__(work_dir, start_timeout=start_timeout)
        self.kafka = kafka
        self.settings = dict(settings or {})

    @property
    def port_names(self) -> Sequence[str]:
        return ("rest",)

    @property
    def url(self) -> str:
        """The REST API, e.g. ``http://127.0.0.1:8083``."""
        return f"http://{self.host}:{self.bound_port('rest')}"

    def prepare(self, ports: Mapping[str, int]) -> None:
        plugins = self.work_dir / "plugins"
        plugins.mkdir(exist_ok=True)
        values: dict[str, object] = {
            "bootstrap.servers": self.kafka.bootstrap,
            "listeners": f"http://{self.host}:{ports['rest']}",
            "rest.advertised.host.name": self.host,
            "rest.advertised.port": ports["rest"],
            "plugin.path": plugins,
            "key.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "key.converter.schemas.enable": "false",
            "value.converter.schemas.enable": "false",
            "offset.storage.file.filename": self.work_dir / "offsets",
            "offset.flush.interval.ms": 1000,
        }
        values.update(self.settings)
        (self.work_dir / "worker.properties").write_text(java_properties(values))

    def argv(self, ports: Mapping[str, int]) -> list[str]:
        return [
            str(self.kafka.java.executable),
            *jvm_options(),
            # Connect logs every record's config at info; keep the reflections scan quiet.
            "-Dorg.slf4j.simpleLogger.log.org.reflections=error",
            "-cp",
            classpath(self.kafka.install),
            "org.apache.kafka.connect.cli.ConnectStandalone",
            str(self.work_dir / "worker.properties"),
        ]

    def answers(self, ports: Mapping[str, int]) -> bool:
        if not self.logged(_STARTED):
            return False
        try:
            with urllib.request.urlopen(f"http://{self.host}:{ports['rest']}/", timeout=2):
                return True
        except (OSError, urllib.error.URLError):
            return False

    # -- REST ------------------------------------------------------------------

    def request(self, method: str, path: str, body: object | None = None) -> Any:
        """A REST call; the decoded JSON answer (``None`` for an empty one)."""
        return call(self.url + path, method, body, ConnectRestError, "Kafka Connect REST")

    def put_connector(self, name: str, config: Mapping[str, object]) -> Any:
        """Create or update connector ``name`` (``PUT /connectors/<name>/config``)."""
        return self.request("PUT", f"/connectors/{name}/config", dict(config))

    def delete_connector(self, name: str) -> None:
        self.request("DELETE", f"/connectors/{name}")

    def status(self, name: str) -> Any:
        return self.request("GET", f"/connectors/{name}/status")
