"""The Kafka side: the group consumer and who owns which partition, under which epoch.

On assignment a replica *claims* each partition in PostgreSQL (bumping its
epoch, which fences out the previous owner) and seeks to the offset stored
there; a partition never committed starts from its log-start offset. On revoke
it waits for the batch in flight to finish, then forgets the partitions.

A claim needs Kafka (the log-start offsets) and PostgreSQL. The rebalance
listener tries for a bounded time only, well inside the group's session
timeout: a partition it could not claim stays paused and *pending*, and the
batch loop claims it later (:meth:`Ownership.claim_pending`), so an outage
during a rebalance never holds the whole group.

aiokafka logs and swallows exceptions raised inside a rebalance listener; this
one records the failure instead, and the batch loop re-raises it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from clickstream_aggregator import repository as repo
from clickstream_aggregator.policy import Retrying, Stopping, Verdict, verdict
from clickstream_aggregator.positions import Positions
from clickstream_aggregator.settings import AggregatorSettings

log = structlog.get_logger()


def create_consumer(settings: AggregatorSettings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        **settings.kafka_client_options(),
        group_id=settings.kafka_group_id,
        # Offsets live in PostgreSQL, committed with the metrics they produced.
        enable_auto_commit=False,
        # Never skip silently: we seek explicitly, and an out-of-range stored
        # offset surfaces as an error instead of a jump to "latest".
        auto_offset_reset="none",
        # Aborted transactions of other writers are not events.
        isolation_level="read_committed",
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        max_poll_interval_ms=settings.kafka_max_poll_interval_ms,
        fetch_max_bytes=settings.kafka_fetch_max_bytes,
        max_partition_fetch_bytes=settings.kafka_max_partition_fetch_bytes,
    )


class Ownership(ConsumerRebalanceListener):  # type: ignore[misc]
    """Partition → epoch of the partitions this replica may write (the rebalance listener)."""

    def __init__(
        self,
        settings: AggregatorSettings,
        consumer: AIOKafkaConsumer,
        pool: asyncpg.Pool,
        positions: Positions,
        retrying: Retrying,
        in_flight: asyncio.Lock,
        stop: asyncio.Event,
        on_change: Callable[[set[int]], Any] | None = None,
    ) -> None:
        self.topic = settings.kafka_topic
        self.epochs: dict[int, int] = {}
        #: Assigned to this replica but not claimed yet (paused meanwhile).
        self.pending: set[int] = set()
        self.failure: BaseException | None = None
        self._s = settings
        self._consumer = consumer
        self._pool = pool
        self._positions = positions
        self._retrying = retrying
        self._in_flight = in_flight
        self._stop = stop
        self._on_change = on_change
        # The listener and the batch loop both claim pending partitions: one at a
        # time, or a replica would claim twice and fence its own batches.
        self._claiming = asyncio.Lock()
        # Well inside the session timeout: the group waits for this listener.
        self._listener_budget_s = settings.kafka_session_timeout_ms / 1000 / 3

    def raise_if_failed(self) -> None:
        if self.failure is not None:
            raise RuntimeError("partition assignment failed") from self.failure

    def _tps(self, partitions: Collection[int]) -> list[TopicPartition]:
        return [TopicPartition(self.topic, p) for p in sorted(partitions)]

    def drop(self, partitions: Collection[int]) -> None:
        """Stop writing and fetching partitions another replica has claimed."""
        for partition in partitions:
            self.epochs.pop(partition, None)
        self._positions.forget(partitions)
        assigned = self._consumer.assignment()
        self._consumer.pause(*[tp for tp in self._tps(partitions) if tp in assigned])
        self._changed()

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        try:
            # Let the batch in flight commit (or fail its fence), and a claim the
            # batch loop has under way finish, before letting go: a claim that
            # completed after the revocation would fence the partitions' next owner.
            async with self._in_flight, self._claiming:
                gone = {tp.partition for tp in revoked if tp.topic == self.topic}
                for partition in gone:
                    self.epochs.pop(partition, None)
                self.pending -= gone
                self._positions.forget(gone)
            log.info("partitions_revoked", partitions=sorted(gone))
            self._changed()
        except BaseException as error:
            self.failure = error
            raise

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        try:
            partitions = {tp.partition for tp in assigned if tp.topic == self.topic}
            if partitions:
                self.pending |= partitions
                self._consumer.pause(*self._tps(partitions))
                await self.claim_pending(self._listener_budget_s)
                log.info("partitions_assigned", partitions=sorted(partitions))
                self._changed()
        except BaseException as error:
            self.failure = error
            log.error("partition_assignment_failed", error=repr(error))
            raise

    async def claim_pending(self, budget_s: float) -> None:
        """Claim the pending partitions, trying for at most ``budget_s``; resume those claimed."""
        if not self.pending:
            return
        async with self._claiming:
            await self._claim_pending(budget_s)

    async def _claim_pending(self, budget_s: float) -> None:
        partitions = sorted(self.pending)
        if not partitions:
            return  # claimed meanwhile
        try:
            await self._retrying.run(
                lambda: self._claim(partitions), self._stop, deadline_s=budget_s
            )
        except Stopping:
            return
        except Exception as error:
            if verdict(error) is not Verdict.RETRY:
                raise
            log.warning(
                "claim_deferred",
                partitions=partitions,
                error=repr(error),
                action="paused until PostgreSQL and Kafka answer",
            )
            return
        self.pending.difference_update(partitions)
        assigned = self._consumer.assignment()
        self._consumer.resume(*[tp for tp in self._tps(partitions) if tp in assigned])
        self._changed()

    async def _claim(self, partitions: list[int]) -> None:
        """Claim partitions in PostgreSQL and seek to their stored offsets."""
        tps = self._tps(partitions)
        starts = await self._consumer.beginning_offsets(tps)
        async with self._pool.acquire() as conn:
            claims = await repo.claim_partitions(
                conn,
                self._s.kafka_group_id,
                self.topic,
                {tp.partition: starts[tp] for tp in tps},
                self._s.aggregator_replica_id,
            )
        for tp in tps:
            claim = claims[tp.partition]
            self._positions.claimed(tp.partition, claim.next_offset, starts[tp])
            self.epochs[tp.partition] = claim.epoch
        log.info(
            "partitions_claimed",
            partitions=partitions,
            epochs=[claims[p].epoch for p in partitions],
            offsets=[claims[p].next_offset for p in partitions],
        )

    async def reclaim(self, partitions: Collection[int]) -> None:
        """Claim again partitions whose stored claim was lost (see ``OffsetCheck.unclaimed``)."""
        for partition in partitions:
            self.epochs.pop(partition, None)
        self.pending |= set(partitions)
        self._consumer.pause(*self._tps(partitions))
        await self.claim_pending(self._listener_budget_s)

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(set(self.epochs))
