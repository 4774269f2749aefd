"""Which producer the relay writes a partition's copies with, per AGGREGATOR_DLQ_TRANSACTIONS."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, UnknownError

from clickstream_aggregator.deadletters.producers import RelayProducers, transactional_id
from clickstream_aggregator.settings import AggregatorSettings


class FakeProducer:
    def __init__(
        self, log: list[tuple[str, Any]], fail_start: BaseException | None, **options: Any
    ) -> None:
        self.options = options
        self._log = log
        self._fail = fail_start
        self.stopped = False

    async def start(self) -> None:
        self._log.append(("start", self.options.get("transactional_id")))
        if self._fail is not None:
            raise self._fail

    async def stop(self) -> None:
        self.stopped = True
        self._log.append(("stop", self.options.get("transactional_id")))


def _producers(
    mode: str, fail_transactional: BaseException | None = None
) -> tuple[RelayProducers, list[tuple[str, Any]]]:
    log: list[tuple[str, Any]] = []
    settings = AggregatorSettings(  # type: ignore[call-arg]
        _env_file=None,
        kafka_topic="events",
        kafka_group_id="group",
        aggregator_dlq_transactions=mode,
    )

    def factory(**options: Any) -> FakeProducer:
        fail = fail_transactional if "transactional_id" in options else None
        return FakeProducer(log, fail, **options)

    return RelayProducers(settings, factory=factory), log  # type: ignore[arg-type]


async def test_on_gives_each_partition_its_own_fencing_producer_per_claim() -> None:
    producers, log = _producers("on")
    first, transactional = await producers.get(3, epoch=1)
    assert transactional
    assert first.options["transactional_id"] == "group.dlq.events.3"
    assert first.options["acks"] == "all"
    assert (await producers.get(3, epoch=1))[0] is first  # same claim, same producer

    # A new claim starts a new producer: its start (InitProducerId) fences every
    # earlier one with the same transactional id, on any replica.
    second, _ = await producers.get(3, epoch=2)
    assert second is not first
    assert first.stopped
    other, _ = await producers.get(4, epoch=2)
    assert other.options["transactional_id"] == "group.dlq.events.4"

    await producers.keep_only({4})
    assert second.stopped
    assert not other.stopped
    await producers.close()
    assert other.stopped
    assert [e for e, _ in log].count("start") == 3


async def test_off_shares_one_plain_producer() -> None:
    producers, log = _producers("off")
    a, transactional = await producers.get(0, epoch=1)
    b, _ = await producers.get(1, epoch=7)
    assert a is b
    assert not transactional
    assert "transactional_id" not in a.options
    await producers.close()
    assert log == [("start", None), ("stop", None)]


async def test_auto_falls_back_once_when_the_broker_has_no_transactions() -> None:
    producers, log = _producers("auto", fail_transactional=UnknownError())
    shared, transactional = await producers.get(0, epoch=1)
    assert not transactional
    assert producers.mode == "off"
    assert (await producers.get(1, epoch=1))[0] is shared
    assert log[:2] == [("start", "group.dlq.events.0"), ("stop", "group.dlq.events.0")]
    await producers.close()


@pytest.mark.parametrize("mode", ["auto", "on"])
async def test_an_unreachable_broker_is_an_outage_not_a_reason_to_give_up_fencing(
    mode: str,
) -> None:
    producers, _ = _producers(mode, fail_transactional=KafkaConnectionError())
    with pytest.raises(KafkaConnectionError):
        await producers.get(0, epoch=1)
    assert producers.mode == mode


async def test_on_refuses_to_write_unfenced_copies() -> None:
    producers, _ = _producers("on", fail_transactional=UnknownError())
    with pytest.raises(UnknownError):
        await producers.get(0, epoch=1)
    assert producers.mode == "on"


def test_the_transactional_id_is_the_same_on_every_replica() -> None:
    a = AggregatorSettings(  # type: ignore[call-arg]
        _env_file=None, kafka_topic="t", kafka_group_id="g", aggregator_replica_id="r1"
    )
    b = a.model_copy(update={"aggregator_replica_id": "r2"})
    assert transactional_id(a, 5) == transactional_id(b, 5) == "g.dlq.t.5"
