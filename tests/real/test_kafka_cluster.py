"""The exactly-once promise on a replicated cluster, while brokers fail and restart.

Production is a cluster of three brokers where leaders move: a broker crashes, a
maintenance window restarts every broker in turn, a host stalls. Each scenario
runs the real services on the three-node cluster (``kafka_cluster``): the
producer, idempotent with ``acks=all``, sends a fixed number of events at a steady
rate (half of it while every broker restarts in turn) to a topic with replication
3 and ``min.insync.replicas=2``, two aggregator replicas apply them, and a broker
fault happens once a share of the events is acknowledged. Afterwards: the
producer had every event acknowledged, the topic holds each exactly once, every
session row equals the independent reference computed from the topic (and
``clickstream-verify`` agrees), and neither replica stopped on its own (each
exits 0 on SIGTERM at the end). Each scenario also runs beside two busy
processes, which is where elections and fetches are slowest.

The topic stamps records with the leader's append time (``LogAppendTime``), so
each scenario prints how the producer fared around the fault: records appended
per second to the partitions that kept their leader, and the longest pause in
appends to them. Printed, never asserted: a figure for the notes, not a timing
a slow machine could break.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from clickstream_devstack.environment import Database, KafkaTopics, service_env
from clickstream_devstack.servers.jvm.kafka_cluster import KafkaCluster
from clickstream_devstack.services import Service, ServiceGroup, script_path
from support.cluster_run import Stamped, append_rates, busy_processes, longest_gap, read_stamped
from support.fault_cluster import Cluster
from support.feed import valid_events
from support.reference import differences, expected_rows, stored_rows

pytestmark = [pytest.mark.timeout(600)]

EVENTS = int(os.environ.get("CLUSTER_SCENARIO_EVENTS", "20000"))
RATE = int(os.environ.get("CLUSTER_SCENARIO_RATE", "1000"))
PARTITIONS = 6
#: The replicas' group session: the aggregator's own settings for Kafka.
SESSION_TIMEOUT_MS = 6000
HEARTBEAT_INTERVAL_MS = 1000
#: The brokers' ``broker.session.timeout.ms`` (see KafkaCluster's settings).
BROKER_SESSION_TIMEOUT_S = 6.0


@pytest.fixture(params=[0, 2], ids=["quiet", "loaded"])
def cpu_load(request: pytest.FixtureRequest) -> Iterator[int]:
    """Nothing, or two busy processes beside the test (ended afterwards)."""
    with busy_processes(request.param):
        yield request.param


@pytest.fixture
def cluster(kafka_cluster: KafkaCluster) -> KafkaCluster:
    """The session's cluster with every node running and answering (a failed
    scenario may have left one down or frozen)."""
    for node_id in kafka_cluster.nodes:
        kafka_cluster.resume(node_id)
    kafka_cluster.start()
    return kafka_cluster


@dataclass
class Run:
    """One scenario's topic, services and what was seen of them."""

    kafka: KafkaCluster
    topics: KafkaTopics
    replicas: Cluster
    producer: Service
    rate: int
    #: (epoch ms, leaders of the events topic) when the fault began.
    fault_ms: int = 0
    fault_end_ms: int = 0
    leaders_before: dict[int, int] = field(default_factory=dict)
    victims: list[int] = field(default_factory=list)

    def producer_log(self) -> list[dict[str, Any]]:
        lines = self.producer.log_path.read_text(errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def acked(self) -> int:
        progress = [e for e in self.producer_log() if e["event"] in ("progress", "finished")]
        return max((e["acked"] for e in progress), default=0)

    async def wait_acked(
        self, at_least: int, timeout: float = 240.0, *, strict: bool = True
    ) -> int:
        """Until the producer has ``at_least`` events acknowledged (or finished); the
        replicas must keep running meanwhile. ``strict=False``: give up quietly
        after ``timeout`` (a fault's length, not a check)."""
        deadline = time.monotonic() + timeout
        while (acked := self.acked()) < at_least and self.producer.running:
            self.replicas.assert_running()
            if time.monotonic() > deadline:
                assert not strict, f"producer stuck at {acked}/{at_least} acknowledged"
                return acked
            await asyncio.sleep(0.2)
        return acked

    async def begin_fault(self, victims: list[int]) -> None:
        self.leaders_before = await self.kafka.leaders(self.topics.events)
        self.victims = victims
        self.fault_ms = int(time.time() * 1000)

    def end_fault(self) -> None:
        self.fault_end_ms = int(time.time() * 1000)


async def scenario(
    kafka: KafkaCluster,
    database: Database,
    services: ServiceGroup,
    fault: Callable[[Run], Awaitable[None]],
    label: str,
    rate: int,
) -> None:
    topics = KafkaTopics.unique(prefix="cluster", partitions=PARTITIONS)
    await kafka.create_topics(
        {topics.events: PARTITIONS}, configs={"message.timestamp.type": "LogAppendTime"}
    )
    await kafka.create_topics({topics.dlq: PARTITIONS})
    env = service_env(
        kafka,
        topics,
        database,
        KAFKA_SESSION_TIMEOUT_MS=SESSION_TIMEOUT_MS,
        KAFKA_HEARTBEAT_INTERVAL_MS=HEARTBEAT_INTERVAL_MS,
        AGGREGATOR_RETRY_MAX_S=2,
        AGGREGATOR_BATCH_MAX_RECORDS=2000,
        LOG_LEVEL="info",
    )
    replicas = Cluster(services, env, database, topics)
    for name in ("r1", "r2"):
        replicas.start(name)
    for name in ("r1", "r2"):
        await replicas.wait_for_log(name, "partitions_assigned")
    started = time.monotonic()
    producer = services.launch(
        "clickstream-producer",
        env={
            **env,
            "KAFKA_ENABLE_IDEMPOTENCE": "true",
            "KAFKA_ACKS": "all",
            "PRODUCER_EVENTS": str(EVENTS),
            "PRODUCER_RATE": str(rate),
            "PRODUCER_SEED": "16",
            "PRODUCER_PROGRESS_EVERY": "500",
        },
        finite=True,
    )
    run = Run(kafka, topics, replicas, producer, rate)
    await fault(run)

    code = await asyncio.to_thread(producer.process.wait, 300)
    assert code == 0, producer.describe_exit()
    (finished,) = [e for e in run.producer_log() if e["event"] == "finished"]
    assert finished["acked"] == EVENTS

    records = await read_stamped(kafka.bootstrap, topics.events, PARTITIONS)
    assert len(records) == EVENTS, "every acknowledged event on the topic, once"
    messages = [(r.partition, r.offset, r.key, r.value) for r in records]
    events = valid_events(messages)
    assert len(events) == EVENTS
    assert len({e.event_id for e in events}) == EVENTS
    reference = expected_rows(events)

    await replicas.wait_applied(EVENTS)
    applied_s = time.monotonic() - started
    for name in list(replicas.replicas):
        assert replicas.stop(name) == 0, f"{name} did not exit cleanly"
    # Two processes for the whole run: no replica stopped and was started again.
    assert [s.name for s in replicas.retired] == ["r1-0", "r2-0"]
    stored = await stored_rows(database.dsn)
    assert differences(reference, stored) == []
    assert len(stored) == len(reference)
    assert await replicas.query("SELECT count(*) FROM dead_letters") == 0
    # The product's own recomputation agrees, reading the topic from the cluster.
    verified = await asyncio.to_thread(
        subprocess.run,
        [str(script_path("clickstream-verify")), "--json"],
        env=env,
        cwd=services.cwd,  # no .env there
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout[-3000:] + verified.stderr[-3000:]

    report(run, records, label, sessions=len(reference), seconds=applied_s)


def report(run: Run, records: list[Stamped], label: str, *, sessions: int, seconds: float) -> None:
    """The scenario's figures: appends per second from 3 s before the fault to 3 s after
    it ended, to the partitions that kept their leader (every partition when the fault
    touched every broker), and the longest pause in appends."""
    kept = [p for p, leader in run.leaders_before.items() if leader not in run.victims]
    watched = kept or list(range(PARTITIONS))
    gap, at = longest_gap(records, watched)
    gap_all, at_all = longest_gap(records, range(PARTITIONS))
    end_ms = max(run.fault_end_ms, run.fault_ms) + 3000
    last_ms = max(r.appended_ms for r in records) + 1000  # nothing after the last event
    around = append_rates(records, watched, run.fault_ms - 3000, min(end_ms, last_ms))
    print(
        f"\n[{label}] {EVENTS} events at {run.rate}/s, {sessions} sessions, applied "
        f"{seconds:.1f} s after the producer started; fault on node(s) {run.victims} at t0 "
        f"for {(run.fault_end_ms - run.fault_ms) / 1000:.1f} s; "
        f"leaders before {run.leaders_before}"
        f"\n  events/s appended to partitions {watched}"
        f"{' (kept their leader)' if kept else ''} from t0-3 s: {around}"
        f"\n  longest pause in appends there: {gap:.2f} s at t0{(at - run.fault_ms) / 1000:+.1f} s;"
        f" on any partition: {gap_all:.2f} s at t0{(at_all - run.fault_ms) / 1000:+.1f} s"
    )


# -- the faults ---------------------------------------------------------------------


async def sigkill_busiest_leader(run: Run) -> None:
    """SIGKILL the broker leading most partitions once a quarter is acknowledged;
    restart it once another fifth is (at most 15 s later), wait for full ISR."""
    await run.wait_acked(EVENTS // 4)
    victim = await run.kafka.busiest_leader(run.topics.events)
    await run.begin_fault([victim])
    run.kafka.kill(victim)
    await run.wait_acked(run.acked() + EVENTS // 5, timeout=15, strict=False)
    await asyncio.to_thread(run.kafka.start_node, victim)
    run.end_fault()
    await run.kafka.wait_full_isr([run.topics.events, run.topics.dlq])


async def rolling_restart(run: Run) -> None:
    """Controlled shutdown, start and full ISR of each broker in turn, from a tenth
    acknowledged on (production may end before the last broker is back)."""
    await run.wait_acked(EVENTS // 10)
    await run.begin_fault(list(run.kafka.nodes))
    for node_id in run.kafka.nodes:
        await asyncio.to_thread(run.kafka.stop_node, node_id)
        run.replicas.assert_running()
        await asyncio.to_thread(run.kafka.start_node, node_id)
        await run.kafka.wait_full_isr([run.topics.events, run.topics.dlq])
        run.replicas.assert_running()
    run.end_fault()


async def freeze_busiest_leader(run: Run) -> None:
    """SIGSTOP the broker leading most partitions past its session timeout, until the
    controller has moved its leaderships; SIGCONT; wait for full ISR."""
    await run.wait_acked(EVENTS // 4)
    victim = await run.kafka.busiest_leader(run.topics.events)
    await run.begin_fault([victim])
    run.kafka.pause(victim)
    frozen = time.monotonic()
    try:
        deadline = frozen + 90
        while True:
            run.replicas.assert_running()
            try:
                leaders = await run.kafka.leaders(run.topics.events, avoid=[victim])
            except Exception:  # metadata during an election
                leaders = {0: victim}
            moved = victim not in leaders.values()
            if moved and time.monotonic() - frozen > BROKER_SESSION_TIMEOUT_S + 1:
                break
            assert time.monotonic() < deadline, f"leaders still on frozen node {victim}: {leaders}"
            await asyncio.sleep(0.5)
    finally:
        run.kafka.resume(victim)
    run.end_fault()
    await run.kafka.wait_full_isr([run.topics.events, run.topics.dlq])


@pytest.mark.parametrize(
    ("fault", "rate"),
    [
        (sigkill_busiest_leader, RATE),
        # Three restarts take longer than one fault: a slower producer spans them,
        # at no cost in time.
        (rolling_restart, RATE // 2),
        (freeze_busiest_leader, RATE),
    ],
    ids=["sigkill-leader", "rolling-restart", "frozen-broker"],
)
async def test_a_broker_fault_costs_nothing(
    cluster: KafkaCluster,
    database: Database,
    services: ServiceGroup,
    cpu_load: int,
    fault: Callable[[Run], Awaitable[None]],
    rate: int,
) -> None:
    label = f"{fault.__name__}, {cpu_load} busy processes"
    await scenario(cluster, database, services, fault, label, rate)
