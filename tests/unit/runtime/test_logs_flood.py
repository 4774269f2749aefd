"""A real aiokafka consumer whose broker died: its error flood becomes a few JSON lines."""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from clickstream_devstack.environment import KafkaTopics, create_topics
from clickstream_devstack.servers.broker import EmbeddedKafka
from clickstream_runtime import logs
from clickstream_runtime.entrypoint import bounded
from support.logging_state import restored_logging

INTERVAL_S = 1.0
OBSERVED_S = 4.0


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """``configure`` changes process-wide state: put it back for the other tests."""
    with restored_logging():
        yield


class Counting(logging.Handler):
    """Counts what the libraries logged, before any collapsing."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.by_template: collections.Counter[tuple[str, str]] = collections.Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.by_template[(record.name, str(record.msg))] += 1


async def test_connection_errors_while_the_broker_is_down_collapse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broker = EmbeddedKafka(tmp_path).start()
    topics = KafkaTopics.unique(partitions=3)
    create_topics(broker, topics)
    # No group: leaving a group whose coordinator is dead is another matter (entrypoint).
    consumer = AIOKafkaConsumer(group_id=None, **broker.client_options())
    try:
        await consumer.start()
        consumer.assign([TopicPartition(topics.events, p) for p in range(topics.partitions)])
        await consumer.getmany(timeout_ms=1000)
        logs.configure("test-service", fmt="json", repeat_interval_s=INTERVAL_S)
        counting = Counting()
        logging.getLogger().addHandler(counting)
        capsys.readouterr()

        broker.kill()
        started = time.monotonic()
        while time.monotonic() - started < OBSERVED_S:  # the consumer keeps polling
            with contextlib.suppress(KafkaError):
                await consumer.getmany(timeout_ms=100)
    finally:
        broker.stop()
        # aiokafka's stop() can wait for ever on a dead broker: bounded, as at shutdown.
        await bounded(consumer.stop(), 5, "consumer_stop")

    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines()]  # every line is JSON
    printed = [line for line in lines if line.get("logger", "").startswith("aiokafka")]
    raw = counting.by_template.total()
    templates = len(counting.by_template)
    # Per message template: the first line, then at most one summary per interval
    # (plus one for the interval the stop cut short).
    assert len(printed) <= templates * (OBSERVED_S / INTERVAL_S + 3)
    assert raw >= 3 * len(printed), (raw, len(printed))
    assert any(line.get("repeated", 0) > 1 for line in printed)
