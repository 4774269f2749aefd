"""A replicated Apache Kafka cluster: three KRaft nodes, each broker and controller.

What production on a managed service looks like to a client: several brokers,
topics with replication 3 and ``min.insync.replicas=2``, leaders that move. Each
node is an :class:`~clickstream_devstack.servers.jvm.kafka.ApacheKafka` (the same jars,
the same launching) in ``<work_dir>/node<id>/`` with its own ``kafka.log``, all
formatted with one cluster id and voting in one controller quorum. The ports are
picked before any node starts, since every node's configuration names every
controller; the nodes start together, since none is ready before a quorum is.

Faults are done node by node: :meth:`KafkaCluster.stop_node` is a controlled
shutdown (SIGTERM, wait for the exit), ``kill`` a crash (SIGKILL), ``pause`` and
``resume`` a frozen host (SIGSTOP/SIGCONT), ``start_node`` a restart on the same
ports and data. The async helpers read the cluster's metadata through an admin
client: who leads which partition, and when every replica is back in sync.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError, for_code

from clickstream_devstack.servers import kafka_probe
from clickstream_devstack.servers.jvm.kafka import ApacheKafka, cluster_id
from clickstream_devstack.servers.ports import LOOPBACK, free_port
from clickstream_ops.setup.kafka import ensure_topics

log = structlog.get_logger()

NODES = 3
REPLICATION = 3
MIN_INSYNC = 2
#: Three JVMs on a small shared machine: less than half a single node's heap each,
#: and only the quick compiler (C1): less CPU spent compiling while a node starts,
#: the longest step of a restart, at a cost in peak throughput tests do not reach.
CLUSTER_JVM = ("-Xms128m", "-Xmx320m", "-XX:TieredStopAtLevel=1")

#: Broker settings every node shares. The timeouts are shorter than Kafka's
#: defaults so that a lost or frozen node is noticed within seconds.
CLUSTER_SETTINGS: dict[str, object] = {
    "default.replication.factor": REPLICATION,
    "min.insync.replicas": MIN_INSYNC,
    "offsets.topic.replication.factor": REPLICATION,
    "transaction.state.log.replication.factor": REPLICATION,
    "transaction.state.log.min.isr": MIN_INSYNC,
    # The controller fences a broker whose heartbeats stop for this long and
    # moves its leaderships (a SIGKILLed or SIGSTOPped node).
    "broker.session.timeout.ms": 6000,
    "broker.heartbeat.interval.ms": 1000,
    # A follower that stops fetching leaves the ISR after this long.
    "replica.lag.time.max.ms": 10000,
    # Few threads: three nodes share the machine with the tests.
    "num.network.threads": 2,
    "num.io.threads": 2,
    "num.replica.fetchers": 1,
    "background.threads": 2,
    "log.cleaner.threads": 1,
}


@dataclass(frozen=True)
class PartitionState:
    """One partition as the cluster's metadata describes it."""

    partition: int
    leader: int  # -1 while it has none
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


class KafkaCluster:
    """``nodes`` KRaft nodes (ids 1..n) under ``work_dir``; a context manager."""

    name = "kafka-cluster"

    def __init__(
        self,
        work_dir: Path,
        *,
        nodes: int = NODES,
        version: str | None = None,
        settings: Mapping[str, object] | None = None,
        sizing: Sequence[str] = CLUSTER_JVM,
        start_timeout: float = 180.0,
    ) -> None:
        self.work_dir = Path(work_dir).absolute()
        ports = {
            i: {"plaintext": free_port(), "controller": free_port()} for i in range(1, nodes + 1)
        }
        voters = ",".join(f"{i}@{LOOPBACK}:{p['controller']}" for i, p in ports.items())
        cluster = cluster_id()
        self.nodes: dict[int, ApacheKafka] = {
            i: ApacheKafka(
                self.work_dir / f"node{i}",
                version=version,
                ports=node_ports,
                start_timeout=start_timeout,
                cluster_id=cluster,
                sizing=sizing,
                settings={
                    **CLUSTER_SETTINGS,
                    "node.id": i,
                    "controller.quorum.voters": voters,
                    **(settings or {}),
                },
            )
            for i, node_ports in ports.items()
        }

    # -- connection details ----------------------------------------------------

    @property
    def version(self) -> str:
        return self.nodes[1].version

    @property
    def bootstrap(self) -> str:
        """Every node's PLAINTEXT listener, comma-separated (KAFKA_BOOTSTRAP_SERVERS)."""
        return ",".join(node.bootstrap for node in self.nodes.values())

    def client_options(self) -> dict[str, Any]:
        """The same keys as ``KafkaSettings.kafka_client_options()``, for aiokafka clients."""
        return kafka_probe.client_options(self.bootstrap)

    @property
    def log_paths(self) -> list[Path]:
        return [node.log_path for node in self.nodes.values()]

    @property
    def running(self) -> bool:
        """Every node runs (a frozen one counts as running)."""
        return all(node.running for node in self.nodes.values())

    @property
    def log_path(self) -> Path:
        """The log of the first node that is not running, else the first node's
        (``clickstream-stack`` names one log per server)."""
        stopped = [node for node in self.nodes.values() if not node.running]
        return (stopped or [self.nodes[1]])[0].log_path

    # -- life cycle -------------------------------------------------------------

    def start(self) -> Self:
        """Start every node that is not running, together; return once all are ready."""
        self._each(lambda node: node.start(), [n for n in self.nodes.values() if not n.running])
        return self

    def stop(self) -> None:
        """Controlled shutdown of every node, together. The last node whose controlled
        shutdown finds no quorum left can wait for one indefinitely (1 run in 7 here):
        SIGKILLed after 20 s, since nothing of a cluster being ended is needed."""
        self._each(lambda node: node.stop(timeout=20), list(self.nodes.values()))

    def start_node(self, node_id: int) -> None:
        """(Re)start one node on its ports and data; returns once it is ready."""
        self.nodes[node_id].start()

    def stop_node(self, node_id: int, timeout: float = 120.0) -> None:
        """Controlled shutdown: SIGTERM, then wait for the exit (SIGKILL after ``timeout``).

        The node hands its leaderships over before it exits, as a rolling
        restart in a maintenance window does.
        """
        self.nodes[node_id].stop(timeout=timeout)

    def kill(self, node_id: int) -> None:
        self.nodes[node_id].kill()

    def pause(self, node_id: int) -> None:
        self.nodes[node_id].pause()

    def resume(self, node_id: int) -> None:
        self.nodes[node_id].resume()

    def _each(self, action: Any, nodes: Sequence[ApacheKafka]) -> None:
        if not nodes:
            return
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(nodes)) as pool:
            futures = [pool.submit(action, node) for node in nodes]
        errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            raise errors[0]  # type: ignore[misc]

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- topics and metadata ----------------------------------------------------

    async def create_topics(
        self,
        topics: Mapping[str, int],
        *,
        replication: int = REPLICATION,
        configs: Mapping[str, str] | None = None,
    ) -> list[str]:
        """Create missing topics ``name -> partitions`` with ``replication`` replicas
        (``min.insync.replicas`` is the brokers' 2) and topic ``configs``; then wait
        until every replica is in sync, so a fault right after starts from a healthy
        cluster."""
        if configs:
            created = await self._create_with(topics, replication, dict(configs))
        else:
            created = await ensure_topics(self.client_options(), topics, replication=replication)
        await self.wait_full_isr(topics)
        return created

    async def _create_with(
        self, topics: Mapping[str, int], replication: int, configs: dict[str, str]
    ) -> list[str]:
        admin = AIOKafkaAdminClient(**self.client_options())
        await admin.start()
        try:
            new = [NewTopic(t, n, replication, topic_configs=configs) for t, n in topics.items()]
            response = await admin.create_topics(new)
        finally:
            await admin.close()
        created = []
        for name, error_code, *rest in response.topic_errors:
            if error_code == 0:
                created.append(name)
            elif error_code != TopicAlreadyExistsError.errno:
                raise for_code(error_code)(f"cannot create topic {name!r}: {rest}")
        return created

    async def describe(self, topic: str, *, avoid: Iterable[int] = ()) -> list[PartitionState]:
        """The partitions of ``topic``, as the cluster's metadata has them now; asked of
        the nodes not in ``avoid`` (a frozen node accepts connections, never answers)."""
        skipped = set(avoid)
        options = self.client_options()
        options["bootstrap_servers"] = [
            node.bootstrap for i, node in self.nodes.items() if i not in skipped
        ]
        admin = AIOKafkaAdminClient(**options, request_timeout_ms=5000)
        await admin.start()
        try:
            # Each broker learns a new topic from the controller in its own time: one
            # that does not know it yet is asked again, for a bounded while.
            deadline = time.monotonic() + 30
            while True:
                (entry,) = await admin.describe_topics([topic])
                code = entry.get("error_code", 0)
                if code != UnknownTopicOrPartitionError.errno or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
        finally:
            await admin.close()
        if code:
            raise RuntimeError(f"cannot describe {topic!r}: error code {code}")
        return sorted(
            (
                PartitionState(
                    partition=p["partition"],
                    leader=p["leader"],
                    replicas=tuple(p["replicas"]),
                    isr=tuple(p["isr"]),
                )
                for p in entry["partitions"]
            ),
            key=lambda state: state.partition,
        )

    async def leaders(self, topic: str, *, avoid: Iterable[int] = ()) -> dict[int, int]:
        """partition -> id of its leader (-1: none)."""
        described = await self.describe(topic, avoid=avoid)
        return {state.partition: state.leader for state in described}

    async def busiest_leader(self, topic: str) -> int:
        """The node leading the most partitions of ``topic`` (lowest id on a tie)."""
        counts = Counter(leader for leader in (await self.leaders(topic)).values() if leader >= 0)
        if not counts:
            raise RuntimeError(f"no partition of {topic!r} has a leader")
        most = max(counts.values())
        return min(node for node, count in counts.items() if count == most)

    async def wait_full_isr(self, topics: Iterable[str], within: float = 180.0) -> float:
        """Wait until every partition of ``topics`` has a leader and all its replicas in
        sync; the seconds it took. Reads the metadata again every half second."""
        names = list(topics)
        started = time.monotonic()
        deadline = started + within
        lagging: list[tuple[str, PartitionState]] = []
        while True:
            lagging = []
            try:
                for topic in names:
                    lagging += [
                        (topic, state)
                        for state in await self.describe(topic)
                        if state.leader < 0 or set(state.isr) != set(state.replicas)
                    ]
            except Exception as error:  # metadata is briefly unavailable in an election
                lagging = [(name, PartitionState(-1, -1, (), ())) for name in names]
                log.info("kafka_cluster_metadata_retry", error=repr(error))
            if not lagging:
                return time.monotonic() - started
            if time.monotonic() > deadline:
                raise TimeoutError(f"replicas not in sync after {within:.0f} s: {lagging}")
            await asyncio.sleep(0.5)
