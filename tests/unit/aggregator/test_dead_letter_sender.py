"""A dead-letter round whose producer was fenced raises the fence, never a failed abort."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import ProducerFenced

from clickstream_aggregator.deadletters.copies import Copy
from clickstream_aggregator.deadletters.sender import write_round


class _FencedProducer:
    """Every send is answered with a fence; aborting then fails as aiokafka's does."""

    def __init__(self) -> None:
        self.aborted = False

    async def begin_transaction(self) -> None:
        pass

    async def send(self, *_: Any, **__: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_exception(ProducerFenced())
        return future

    async def abort_transaction(self) -> None:
        self.aborted = True
        raise AssertionError("Invalid state transition FATAL_ERROR -> ABORTING_TRANSACTION")


async def test_a_fenced_round_raises_the_fence_for_the_caller_to_drop_the_producer() -> None:
    producer = _FencedProducer()
    copy = Copy(key=b"k", value=b"v", timestamp_ms=1, headers=[], kind="full")
    with pytest.raises(ProducerFenced):
        await write_round(producer, True, "dlq", 0, [(7, copy)])  # type: ignore[arg-type]
    assert not producer.aborted
