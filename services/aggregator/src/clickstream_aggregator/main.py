"""``clickstream-aggregator``: the service entrypoint and its wiring.

After start-up (``startup``: PostgreSQL and Kafka are waited for the same
way), the batch loop runs beside its helpers
(dead-letter relay, Kafka offset mirror, dedupe pruning, readiness probes);
any of them failing stops the service. Every step of the shutdown is bounded
by its entry in :data:`SHUTDOWN_BUDGET_S`, whose sum fits the watchdog's
deadline, so SIGTERM ends the process in time whatever the servers are doing.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from contextlib import AsyncExitStack
from typing import Any, Final

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer

from clickstream_aggregator.deadletters import DeadLetterRelay
from clickstream_aggregator.dedupe_window import DedupeWindow
from clickstream_aggregator.gc_tuning import tune_gc
from clickstream_aggregator.metrics import AggregatorMetrics
from clickstream_aggregator.mirror import OffsetMirror
from clickstream_aggregator.ownership import Ownership, create_consumer
from clickstream_aggregator.pipeline import Aggregator
from clickstream_aggregator.policy import Resource, Retrying, Stopping
from clickstream_aggregator.positions import OffsetOutOfRange, Positions
from clickstream_aggregator.settings import AggregatorSettings
from clickstream_aggregator.startup import connect, relay_clients, start_consumer
from clickstream_aggregator.transaction import BatchTransaction, Committer
from clickstream_aggregator.workers import Preparer
from clickstream_runtime import logs
from clickstream_runtime.entrypoint import bounded, serve
from clickstream_runtime.health import Readiness, serve_health
from clickstream_runtime.probes import kafka_probe, keep_probing, postgres_probe
from clickstream_runtime.settings import load

log = structlog.get_logger()

#: The shutdown, step by step in the order the steps run once ``stop`` is set,
#: and the seconds each may take at most, a cut-off step's grace included
#: (:func:`_step`). The watchdog ends the process ``SHUTDOWN_DEADLINE_S`` (9 s)
#: after ``stop``: the sum leaves at least :data:`EXIT_RESERVE_S` for the
#: interpreter's exit.
SHUTDOWN_BUDGET_S: Final[Mapping[str, float]] = {
    # A claim or the preparing of a fetched batch is cut short (the next owner
    # applies the batch); the transaction in flight commits, or rolls back.
    "claim or preparing cut short": 0.2,
    "batch in flight": 2.7,
    "helper tasks": 0.5,  # relay, offset mirror, pruning, probes see the stop
    "dead-letter drain": 1.2,  # a last relay sweep, so a clean stop leaves little pending
    "probe pool": 0.3,
    "decode workers": 0.8,  # then the ones still busy are killed
    "dead-letter clients": 1.0,  # the relay's producers and tail reader
    "consumer": 1.0,  # leaving the group lets the others take over at once
    "postgres pool": 0.4,
    "health server": 0.2,
    "helper tasks cancelled": 0.2,  # what did not see the stop in time
}
#: What the interpreter's exit has left at least (a test checks the sum).
EXIT_RESERVE_S: Final = 0.5


def _within(what: str) -> float:
    """A step's timeout: its budget less ``bounded``'s grace for a step it cuts off."""
    total = SHUTDOWN_BUDGET_S[what]
    return total - min(0.5, total / 2)


async def _step(work: Awaitable[object], what: str) -> bool:
    """``work`` within its budget: :func:`_within`, plus the grace if it is cut off."""
    return await bounded(work, _within(what), what)


async def _step_later(close: Callable[[], Awaitable[object]], what: str) -> None:
    """A shutdown step for an exit stack, in a task of its own (see ``bounded``).

    Its own task, so that a client whose close leaks a cancellation (aiokafka's
    consumer does when its broker is gone) cannot cancel the rest of the shutdown.
    """
    await _step(close(), what)


def _supervised(
    stop: asyncio.Event, name: str, work: Coroutine[Any, Any, None]
) -> asyncio.Task[None]:
    """A helper task whose failure stops the service (it is re-raised at the end)."""

    async def supervise() -> None:
        try:
            await work
        except Exception as error:
            log.error("task_failed", task=name, error=repr(error), policy="stop")
            stop.set()
            raise

    return asyncio.create_task(supervise(), name=name)


class _Wiring:
    """The running parts of one aggregator, connected to its PostgreSQL pool and consumer."""

    def __init__(
        self,
        settings: AggregatorSettings,
        stop: asyncio.Event,
        readiness: Readiness,
        metrics: AggregatorMetrics,
    ) -> None:
        self.settings = settings
        self.stop = stop
        self.readiness = readiness
        self.metrics = metrics
        self.in_flight = asyncio.Lock()
        self.dead_letters = asyncio.Event()

    def retrying(self, what: str, resource: Resource) -> Retrying:
        return Retrying(what, resource, self.settings, self.metrics, self.readiness)

    def on_change(self, owned: set[int]) -> None:
        self.metrics.assigned_partitions.set(len(owned))
        self.readiness.set("assigned", True)  # joined the group (an idle replica may own none)
        self.dead_letters.set()  # new partitions may have outbox rows to reconcile

    async def consumer(
        self, stack: AsyncExitStack, pool: asyncpg.Pool
    ) -> tuple[AIOKafkaConsumer, Ownership, Positions]:
        s = self.settings
        consumer = create_consumer(s)
        positions = Positions(consumer, s.kafka_topic, s.aggregator_log_end_wait_s)
        ownership = Ownership(
            s,
            consumer,
            pool,
            positions,
            self.retrying("claim", "postgres"),
            self.in_flight,
            self.stop,
            self.on_change,
        )
        consumer.subscribe([s.kafka_topic], listener=ownership)
        await start_consumer(consumer, s, self.stop, self.retrying("kafka_connect", "kafka"))
        # Leaving the group lets the others take over at once; bounded, since a
        # dead coordinator never answers.
        stack.push_async_callback(_step_later, consumer.stop, "consumer")
        return consumer, ownership, positions

    async def helpers(
        self,
        stack: AsyncExitStack,
        pool: asyncpg.Pool,
        consumer: AIOKafkaConsumer,
        relay: DeadLetterRelay,
        mirror: OffsetMirror,
    ) -> list[asyncio.Task[None]]:
        s, stop, readiness = self.settings, self.stop, self.readiness
        # Its own connection: a pool busy with batches must not read as "down".
        probe_pool: asyncpg.Pool = await asyncpg.create_pool(
            **s.postgres_connect_options(), min_size=0, max_size=1
        )
        stack.push_async_callback(_step_later, probe_pool.close, "probe pool")
        dedupe = DedupeWindow(
            pool, s.aggregator_dedupe_retention_hours, s.aggregator_prune_interval_s
        )
        work: dict[str, Coroutine[Any, Any, None]] = {
            "dead-letter-relay": relay.run(stop),
            "dedupe-window": dedupe.run(stop),
            "probe-postgres": keep_probing("postgres", postgres_probe(probe_pool), readiness, stop),
            "probe-kafka": keep_probing(
                "kafka", kafka_probe(consumer._client, s.kafka_topic), readiness, stop
            ),
        }
        if s.aggregator_commit_to_kafka:
            work["kafka-offset-mirror"] = mirror.run(stop)
        return [_supervised(stop, name, coroutine) for name, coroutine in work.items()]


async def _serve(wiring: _Wiring, stack: AsyncExitStack, tasks: list[asyncio.Task[None]]) -> None:
    s, stop = wiring.settings, wiring.stop
    pool = await connect(s, stop, wiring.retrying("postgres_connect", "postgres"))
    stack.push_async_callback(_step_later, pool.close, "postgres pool")
    consumer, ownership, positions = await wiring.consumer(stack, pool)
    # One step: the clients stop at once, each within the step's time.
    relay_stack = AsyncExitStack()
    stack.push_async_callback(_step_later, relay_stack.aclose, "dead-letter clients")
    producers, tail_reader = await relay_clients(
        relay_stack, s, close_s=_within("dead-letter clients")
    )
    relay = DeadLetterRelay(
        s,
        pool,
        producers,
        tail_reader,
        ownership,
        wiring.metrics,
        wiring.readiness,
        wiring.dead_letters,
    )
    preparer = Preparer(
        s.kafka_topic,
        max_bytes=s.aggregator_max_message_bytes,
        workers=s.aggregator_decode_workers,
        batch_max_records=s.aggregator_batch_max_records,
        deaths=wiring.metrics.decode_worker_deaths,
    )
    await preparer.start()
    stack.push_async_callback(_step_later, preparer.close, "decode workers")
    mirror = OffsetMirror(consumer, s.kafka_topic)
    committer = Committer(
        BatchTransaction(pool, s.kafka_group_id, s.aggregator_max_message_bytes),
        preparer,
        ownership,
        positions,
        wiring.retrying("batch", "postgres"),
        wiring.metrics,
    )
    aggregator = Aggregator(
        s,
        consumer,
        committer,
        ownership,
        positions,
        mirror,
        wiring.in_flight,
        wiring.metrics,
        wiring.dead_letters,
        functools.partial(_step, what="batch in flight"),
        SHUTDOWN_BUDGET_S["claim or preparing cut short"],
    )
    tasks.extend(await wiring.helpers(stack, pool, consumer, relay, mirror))
    try:
        await aggregator.run(stop)
    except OffsetOutOfRange as error:
        log.error(
            "offset_out_of_range",
            reason=str(error),
            partition=error.partition,
            case=error.case.name,
        )
        raise
    finally:
        stop.set()
        wiring.dead_letters.set()  # wake the relay so it sees the stop at once
        await asyncio.wait(tasks, timeout=SHUTDOWN_BUDGET_S["helper tasks"])
        await _step(relay.sweep(asyncio.Event()), "dead-letter drain")


async def run(settings: AggregatorSettings, stop: asyncio.Event) -> None:
    readiness = Readiness(
        ("postgres", "kafka", "assigned"),
        retry_threshold_s=settings.aggregator_ready_retry_threshold_s,
    )
    metrics = AggregatorMetrics.create(readiness)
    log.info(
        "aggregator_starting",
        topic=settings.kafka_topic,
        group=settings.kafka_group_id,
        replica=settings.aggregator_replica_id,
        postgres=f"{settings.postgres_host}:{settings.postgres_port}/{settings.postgres_database}",
        kafka_tls=settings.kafka_uses_tls,
    )
    tasks: list[asyncio.Task[None]] = []
    try:
        async with AsyncExitStack() as stack:
            health = serve_health(
                settings.metrics_host, settings.metrics_port, metrics.registry, readiness
            )
            await health.__aenter__()
            stack.push_async_callback(
                _step_later, functools.partial(health.__aexit__, None, None, None), "health server"
            )
            await _serve(_Wiring(settings, stop, readiness, metrics), stack, tasks)
    except Stopping:
        pass  # asked to stop while still waiting for PostgreSQL or Kafka
    finally:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=SHUTDOWN_BUDGET_S["helper tasks cancelled"])
    for task in tasks:
        failure = None if not task.done() or task.cancelled() else task.exception()
        if failure is not None:
            raise failure
    log.info("aggregator_stopped")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="clickstream-aggregator",
        description="Consume the clickstream topic and keep exactly-once session metrics in "
        "PostgreSQL. Configured by environment variables (see README).",
    )
    parser.parse_args(argv)
    settings = load(AggregatorSettings)
    logs.configure("aggregator", level=settings.log_level, fmt=settings.log_format)
    tune_gc()
    serve(run, settings)
