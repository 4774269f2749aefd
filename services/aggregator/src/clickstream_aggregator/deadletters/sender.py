"""Writing one round's copies to the dead-letter partition, and what each answer means.

Kafka's answer for a copy is one of three: acknowledged (where it landed),
*refused* (the record itself is unacceptable: too large, corrupt; the failure
policy's ``PIN``, so it is pinned to its row, never to the partition) or a
failure of the request, which the relay's retry loop judges (an outage is
retried). With a transactional producer the round is one transaction:
committed when every copy was acknowledged, aborted otherwise, so that
``read_committed`` readers see all of it or nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from aiokafka import AIOKafkaProducer
from aiokafka.errors import InvalidProducerEpoch, ProducerFenced
from aiokafka.structs import RecordMetadata

from clickstream_aggregator.deadletters.copies import Copy
from clickstream_aggregator.policy import Verdict, verdict


def refused(answer: RecordMetadata | BaseException) -> bool:
    """Whether Kafka refused the record itself: the row's fault, not an outage."""
    return isinstance(answer, BaseException) and verdict(answer) is Verdict.PIN


@dataclass(frozen=True, slots=True)
class Written:
    """Kafka's answers for one round, by the rows' source offsets."""

    acked: dict[int, RecordMetadata]
    refused: dict[int, str]  # source offset → the refusal, for ``relay_error``
    failure: BaseException | None  # the first answer that was neither


#: Answers meaning another producer took the transactional id (or the round timed out).
_FENCES: Final = (ProducerFenced, InvalidProducerEpoch)


async def write_round(
    producer: AIOKafkaProducer,
    transactional: bool,
    topic: str,
    partition: int,
    copies: Sequence[tuple[int, Copy]],
) -> Written:
    """Send ``(source offset, copy)`` pairs to ``topic[partition]`` and sort the answers.

    With ``transactional``, nothing counts as acknowledged unless the whole round
    committed. Raises only what leaves the producer in doubt (the caller drops it).
    """
    if transactional:
        await producer.begin_transaction()
    answers = await _send_all(producer, topic, partition, [c for _, c in copies])
    failed = any(isinstance(a, BaseException) for a in answers)
    if transactional:
        if failed:
            fence = next((a for a in answers if isinstance(a, _FENCES)), None)
            if fence is not None:
                # A fenced producer cannot abort (aiokafka's transaction is in its
                # fatal state): the caller drops it, and the next producer's
                # initialisation aborts the round on the broker.
                raise fence
            # Every row of the round is sent again (refused ones as their next copy).
            await producer.abort_transaction()
        else:
            await producer.commit_transaction()
    acked: dict[int, RecordMetadata] = {}
    refusals: dict[int, str] = {}
    failure: BaseException | None = None
    for (offset, copy), answer in zip(copies, answers, strict=True):
        if refused(answer):
            refusals[offset] = f"{copy.kind} copy of {copy.size} bytes: {answer!r}"
        elif isinstance(answer, BaseException):
            failure = failure or answer
        elif not (transactional and failed):
            acked[offset] = answer
    return Written(acked, refusals, failure)


async def _send_all(
    producer: AIOKafkaProducer, topic: str, partition: int, copies: Sequence[Copy]
) -> list[RecordMetadata | BaseException]:
    """Send every copy (pipelined) and wait for each acknowledgement or error."""
    pending: list[asyncio.Future[RecordMetadata] | BaseException] = []
    for copy in copies:
        try:
            future = await producer.send(
                topic,
                key=copy.key,
                value=copy.value,
                partition=partition,
                timestamp_ms=copy.timestamp_ms,
                headers=copy.headers,
            )
        except Exception as error:
            if not refused(error):  # a refusal the client checks before sending
                raise
            pending.append(error)
        else:
            pending.append(future)
    futures = [p for p in pending if isinstance(p, asyncio.Future)]
    results = iter(await asyncio.gather(*futures, return_exceptions=True))
    return [next(results) if isinstance(p, asyncio.Future) else p for p in pending]
