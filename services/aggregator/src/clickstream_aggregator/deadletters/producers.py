"""The relay's Kafka producers, fenced by transactions when the broker has them.

``AGGREGATOR_DLQ_TRANSACTIONS``:

* ``on``: one transactional producer per source partition, with the
  ``transactional.id`` ``<group>.dlq.<topic>.<partition>`` (the same on every
  replica). A new owner's producer start (``InitProducerId``) fences the
  previous owner's producer and aborts its open transaction, so a stalled
  relay's copies can no longer land after the new owner reconciled. The
  reconcile reader uses ``read_committed``. A broker that answers that it has
  no transactions is a broken deployment: the relay stops the service
  (``dead_letter_relay_failed``).
* ``off``: one plain producer (``acks=all``) for every partition, no fencing.
* ``auto`` (default): ``on``; if the broker answers that it has no
  transactions (Tansu, the test broker, answers ``UnknownError`` to
  ``InitProducerId``), ``off`` from then on, logged once as
  ``dead_letter_fencing_unavailable``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Literal

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import UnknownError, UnsupportedVersionError

from clickstream_aggregator.settings import AggregatorSettings

log = structlog.get_logger()

Mode = Literal["auto", "on", "off"]
ProducerFactory = Callable[..., AIOKafkaProducer]

#: Answers that mean "this broker has no transactions" (not "try again").
_NO_TRANSACTIONS = (UnknownError, UnsupportedVersionError)
_START_TIMEOUT_S = 15.0
_STOP_TIMEOUT_S = 2.0
#: Default ``max_request_size`` of aiokafka and Kafka's default ``message.max.bytes``.
_KAFKA_DEFAULT_MAX_BYTES = 1_048_576


def transactional_id(settings: AggregatorSettings, partition: int) -> str:
    return f"{settings.kafka_group_id}.dlq.{settings.kafka_topic}.{partition}"


async def stop_bounded(client: Any, what: str, within_s: float = _STOP_TIMEOUT_S) -> None:
    """Stop an aiokafka client within ``within_s``: exit must not wait on a dead broker."""
    try:
        async with asyncio.timeout(within_s):
            await client.stop()
    except Exception as error:
        log.warning("kafka_client_stop_failed", client=what, error=repr(error))


class RelayProducers:
    """Hands the relay the producer for a source partition under a claim epoch."""

    def __init__(
        self, settings: AggregatorSettings, *, factory: ProducerFactory = AIOKafkaProducer
    ) -> None:
        self._s = settings
        self._factory = factory
        self.mode: Mode = settings.aggregator_dlq_transactions
        self._shared: AIOKafkaProducer | None = None
        self._fenced: dict[int, tuple[int, AIOKafkaProducer]] = {}

    @property
    def transactional(self) -> bool:
        """Whether copies are written in transactions (``auto`` counts as on until refused)."""
        return self.mode != "off"

    def _options(self) -> dict[str, Any]:
        return {
            **self._s.kafka_client_options(),
            "acks": "all",
            "linger_ms": 5,
            "max_request_size": max(
                _KAFKA_DEFAULT_MAX_BYTES, self._s.aggregator_dlq_max_message_bytes
            ),
        }

    async def _start(self, producer: AIOKafkaProducer) -> None:
        try:
            await asyncio.wait_for(producer.start(), timeout=_START_TIMEOUT_S)
        except BaseException:
            await stop_bounded(producer, "dead-letter producer")
            raise

    async def get(self, partition: int, epoch: int) -> tuple[AIOKafkaProducer, bool]:
        """The producer for ``partition`` and whether it is transactional.

        With transactions, a new claim (epoch) gets a new producer, whose start
        fences every earlier producer of the partition, here or on another replica.
        """
        if self.mode != "off":
            held = self._fenced.get(partition)
            if held is not None and held[0] == epoch:
                return held[1], True
            await self.discard(partition)
            producer = self._factory(
                **self._options(), transactional_id=transactional_id(self._s, partition)
            )
            try:
                await self._start(producer)
            except _NO_TRANSACTIONS as error:
                if self.mode == "on":
                    raise
                self.mode = "off"
                log.warning(
                    "dead_letter_fencing_unavailable",
                    error=repr(error),
                    effect="relaying without transactions (AGGREGATOR_DLQ_TRANSACTIONS=auto)",
                )
            else:
                self._fenced[partition] = (epoch, producer)
                log.info(
                    "dead_letter_producer_fenced_in",
                    partition=partition,
                    epoch=epoch,
                    transactional_id=transactional_id(self._s, partition),
                )
                return producer, True
        if self._shared is None:
            shared = self._factory(**self._options())
            await self._start(shared)
            self._shared = shared
        return self._shared, False

    async def discard(self, partition: int) -> None:
        """Close a partition's transactional producer (fenced, or the partition is gone)."""
        held = self._fenced.pop(partition, None)
        if held is not None:
            await stop_bounded(held[1], f"dead-letter producer {partition}")

    async def keep_only(self, partitions: set[int]) -> None:
        for partition in [p for p in self._fenced if p not in partitions]:
            await self.discard(partition)

    async def close(self, within_s: float = _STOP_TIMEOUT_S) -> None:
        """Stop every producer, all at once: together within ``within_s``.

        At shutdown ``within_s`` is the aggregator's budget step for its
        dead-letter clients, so that no stop inside outlasts it.
        """
        held = [(f"dead-letter producer {p}", pair[1]) for p, pair in self._fenced.items()]
        self._fenced.clear()
        if self._shared is not None:
            held.append(("dead-letter producer", self._shared))
            self._shared = None
        await asyncio.gather(*(stop_bounded(producer, what, within_s) for what, producer in held))
