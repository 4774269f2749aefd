"""Apache Kafka in KRaft mode, one node that is broker and controller at once.

Started from the Maven Central jars in ``.cache/jvm/kafka-<version>/libs``: the
storage is formatted with a random cluster id, then ``kafka.Kafka`` runs with a
PLAINTEXT listener and, when given certificates, an SSL listener that requires
a client certificate (PEM key store and trust store, no JKS conversion), both on
free ports of 127.0.0.1.
"""

from __future__ import annotations

import base64
import ssl
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from clickstream_devstack.servers import kafka_probe
from clickstream_devstack.servers.child_server import ChildServer
from clickstream_devstack.servers.jvm import artifacts
from clickstream_devstack.servers.jvm.properties import java_properties

#: Small heap, default collector: tests and the bench share two cores with others.
HEAP = ("-Xms256m", "-Xmx768m")
_STARTED = "Kafka Server started"


@dataclass(frozen=True)
class KafkaTls:
    """PEM files for the SSL listener: the broker's certificate and key, and the CA
    whose client certificates it accepts."""

    ca: Path
    cert: Path
    key: Path


def jvm_options(log_level: str = "info", sizing: Sequence[str] = HEAP) -> list[str]:
    """Options for any Kafka JVM (broker, Connect): ``sizing`` (heap, compiler) and
    slf4j-simple's format."""
    return [
        *sizing,
        "-Djava.awt.headless=true",
        f"-Dorg.slf4j.simpleLogger.defaultLogLevel={log_level}",
        "-Dorg.slf4j.simpleLogger.showDateTime=true",
        "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSSZ",
        # The request logger writes a line per request at debug; keep it quiet.
        "-Dorg.slf4j.simpleLogger.log.kafka.request.logger=warn",
    ]


def classpath(install: Path) -> str:
    return str(install / "libs" / "*")


def cluster_id() -> str:
    """A random cluster id as Kafka writes them (base64url, 22 characters).

    Like Kafka's own ``Uuid.randomUuid()``, never one that starts with ``-``: the
    storage tool would read it as an option.
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


class ApacheKafka(ChildServer):
    """One KRaft node in ``work_dir``; its log is ``<work_dir>/kafka.log``.

    Alone by default (node 1, its own quorum); ``settings`` override any property,
    which is how :class:`~clickstream_devstack.servers.jvm.kafka_cluster.KafkaCluster`
    makes it one node of several, all formatted with the same ``cluster_id``.
    """

    name = "kafka"

    def __init__(
        self,
        work_dir: Path,
        *,
        version: str | None = None,
        tls: KafkaTls | None = None,
        settings: Mapping[str, object] | None = None,
        ports: Mapping[str, int] | None = None,
        start_timeout: float = 120.0,
        cluster_id: str | None = None,
        sizing: Sequence[str] = HEAP,
    ) -> None:
        super().__init__(work_dir, ports=ports, start_timeout=start_timeout)
        self.version = version or artifacts.chosen_version("kafka")
        self.tls = tls
        self.settings = dict(settings or {})
        self.cluster_id = cluster_id
        self.sizing = tuple(sizing)
        self._install: Path | None = None
        self._java: artifacts.Java | None = None

    # -- connection details ----------------------------------------------------

    @property
    def port_names(self) -> Sequence[str]:
        return ("plaintext", "controller", "ssl") if self.tls else ("plaintext", "controller")

    @property
    def bootstrap(self) -> str:
        """``host:port`` of the PLAINTEXT listener, for KAFKA_BOOTSTRAP_SERVERS."""
        return f"{self.host}:{self.bound_port('plaintext')}"

    @property
    def ssl_bootstrap(self) -> str:
        """``host:port`` of the SSL listener (client certificate required)."""
        if self.tls is None:
            raise RuntimeError("this broker was started without tls=")
        return f"{self.host}:{self.bound_port('ssl')}"

    def client_options(self) -> dict[str, Any]:
        """The same keys as ``KafkaSettings.kafka_client_options()``, for aiokafka clients."""
        return kafka_probe.client_options(self.bootstrap)

    def ssl_client_options(self, client_cert: Path, client_key: Path) -> dict[str, Any]:
        """aiokafka options for the SSL listener with a client certificate."""
        if self.tls is None:
            raise RuntimeError("this broker was started without tls=")
        context = ssl.create_default_context(cafile=str(self.tls.ca))
        context.load_cert_chain(str(client_cert), str(client_key))
        return kafka_probe.client_options(self.ssl_bootstrap, context)

    # -- ChildServer -------------------------------------------------------------

    @property
    def install(self) -> Path:
        if self._install is None:
            self._install = artifacts.ensure("kafka", self.version)
        return self._install

    @property
    def java(self) -> artifacts.Java:
        if self._java is None:
            self._java = artifacts.find_java()
        return self._java

    def prepare(self, ports: Mapping[str, int]) -> None:
        config = self.work_dir / "server.properties"
        config.write_text(java_properties(self._properties(ports)))
        if not (self.work_dir / "data" / "meta.properties").exists():
            self._format(config)

    def _properties(self, ports: Mapping[str, int]) -> dict[str, object]:
        host = self.host
        listeners = [f"PLAINTEXT://{host}:{ports['plaintext']}"]
        advertised = list(listeners)
        listeners.append(f"CONTROLLER://{host}:{ports['controller']}")
        values: dict[str, object] = {
            "process.roles": "broker,controller",
            "node.id": 1,
            "controller.quorum.voters": f"1@{host}:{ports['controller']}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL",
            "log.dirs": self.work_dir / "data",
            "num.partitions": 1,
            "default.replication.factor": 1,
            "min.insync.replicas": 1,
            "offsets.topic.replication.factor": 1,
            "offsets.topic.num.partitions": 6,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "transaction.state.log.num.partitions": 6,
            "group.initial.rebalance.delay.ms": 0,
            # No time-based retention: the tests and the demo write events dated
            # weeks back (record time = event time), and the retention check, every
            # 5 minutes, would delete them under a test that runs across it.
            "log.retention.ms": -1,
        }
        if self.tls is not None:
            ssl_listener = f"SSL://{host}:{ports['ssl']}"
            listeners.append(ssl_listener)
            advertised.append(ssl_listener)
            values.update(
                {
                    "listener.name.ssl.ssl.client.auth": "required",
                    "ssl.keystore.type": "PEM",
                    "ssl.keystore.location": self._pem_keystore(),
                    "ssl.truststore.type": "PEM",
                    "ssl.truststore.location": self.tls.ca,
                }
            )
        values["listeners"] = ",".join(listeners)
        values["advertised.listeners"] = ",".join(advertised)
        values.update(self.settings)
        return values

    def _pem_keystore(self) -> Path:
        """Key and certificate in one PEM file; Kafka wants the key as PKCS#8."""
        assert self.tls is not None
        key = serialization.load_pem_private_key(self.tls.key.read_bytes(), password=None)
        pkcs8 = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path = self.work_dir / "keystore.pem"
        path.touch(mode=0o600)
        path.write_bytes(pkcs8 + self.tls.cert.read_bytes())
        return path

    def _format(self, config: Path) -> None:
        cluster = self.cluster_id or cluster_id()
        argv = [
            str(self.java.executable),
            *HEAP,
            "-cp",
            classpath(self.install),
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            cluster,
            "--config",
            str(config),
            "--ignore-formatted",
        ]
        result = subprocess.run(  # noqa: S603 - our own argv
            argv, capture_output=True, text=True, check=False, timeout=120
        )
        if result.returncode != 0:
            raise RuntimeError(f"kafka storage format failed:\n{result.stdout}{result.stderr}")

    def argv(self, ports: Mapping[str, int]) -> list[str]:
        return [
            str(self.java.executable),
            *jvm_options(sizing=self.sizing),
            "-cp",
            classpath(self.install),
            "kafka.Kafka",
            str(self.work_dir / "server.properties"),
        ]

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (the JVM runs its shutdown hooks), SIGKILL after ``timeout``."""
        self._stop(timeout=timeout)

    def answers(self, ports: Mapping[str, int]) -> bool:
        # Logged once the node is unfenced and every listener is bound. (Kafka 4
        # dropped the Metadata v0 that kafka_probe speaks, so no wire probe here.)
        return self.logged(_STARTED)
