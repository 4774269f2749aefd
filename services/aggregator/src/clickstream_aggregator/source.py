"""The Kafka side: the group consumer and who owns which partition, under which epoch.

On assignment a replica *claims* each partition in PostgreSQL (bumping its
epoch, which fences out the previous owner) and seeks to the offset stored
there; a partition never committed starts from the earliest offset. On revoke
it waits for the batch in flight to finish, then forgets the partitions.

aiokafka logs and swallows exceptions raised inside a rebalance listener; this
one records the failure instead, and the batch loop re-raises it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from clickstream_aggregator.repository import Claim
from clickstream_aggregator.settings import AggregatorSettings

log = structlog.get_logger()

ClaimPartitions = Callable[[dict[int, int]], Awaitable[dict[int, Claim]]]


def create_consumer(settings: AggregatorSettings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        **settings.kafka_client_options(),
        group_id=settings.kafka_group_id,
        # Offsets live in PostgreSQL, committed with the metrics they produced.
        enable_auto_commit=False,
        # Never skip silently: we seek explicitly, and an out-of-range stored
        # offset surfaces as an error instead of a jump to "latest".
        auto_offset_reset="none",
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
        topic: str,
        consumer: AIOKafkaConsumer,
        claim: ClaimPartitions,
        in_flight: asyncio.Lock,
        on_change: Callable[[set[int]], Any] | None = None,
    ) -> None:
        self.topic = topic
        self.epochs: dict[int, int] = {}
        self.failure: BaseException | None = None
        self._consumer = consumer
        self._claim = claim
        self._in_flight = in_flight
        self._on_change = on_change

    def raise_if_failed(self) -> None:
        if self.failure is not None:
            raise RuntimeError("partition assignment failed") from self.failure

    def drop(self, partitions: Collection[int]) -> None:
        """Stop writing and fetching partitions another replica has claimed."""
        for partition in partitions:
            self.epochs.pop(partition, None)
        tps = [TopicPartition(self.topic, p) for p in partitions]
        assigned = self._consumer.assignment()
        self._consumer.pause(*[tp for tp in tps if tp in assigned])
        self._changed()

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        try:
            # Let the batch in flight commit (or fail its fence) before letting go.
            async with self._in_flight:
                for tp in revoked:
                    self.epochs.pop(tp.partition, None)
            log.info("partitions_revoked", partitions=sorted(tp.partition for tp in revoked))
            self._changed()
        except BaseException as error:
            self.failure = error
            raise

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        try:
            partitions = sorted(tp.partition for tp in assigned if tp.topic == self.topic)
            if partitions:
                await self.claim(partitions)
                log.info("partitions_assigned", partitions=partitions)
                self._changed()
        except BaseException as error:
            self.failure = error
            log.error("partition_assignment_failed", error=repr(error))
            raise

    async def claim(self, partitions: Collection[int]) -> None:
        """Claim partitions in PostgreSQL and seek to their stored offsets."""
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        starts = await self._consumer.beginning_offsets(tps)
        claims = await self._claim({tp.partition: starts[tp] for tp in tps})
        for tp in tps:
            claim = claims[tp.partition]
            assert claim.next_offset is not None  # claim_partitions never leaves it NULL
            self._consumer.seek(tp, claim.next_offset)
            self.epochs[tp.partition] = claim.epoch
        log.info(
            "partitions_claimed",
            partitions=[tp.partition for tp in tps],
            epochs=[claims[tp.partition].epoch for tp in tps],
            offsets=[claims[tp.partition].next_offset for tp in tps],
        )

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(set(self.epochs))
