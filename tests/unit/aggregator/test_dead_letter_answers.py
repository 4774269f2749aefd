"""How the relay reads an error: an outage to retry, a refusal pinned to its row, or a stop."""

from __future__ import annotations

import asyncpg
import pytest
from aiokafka.errors import (
    CorruptRecordException,
    KafkaConnectionError,
    KafkaTimeoutError,
    LeaderNotAvailableError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    RecordTooLargeError,
    RequestTimedOutError,
    TopicAuthorizationFailedError,
    UnknownError,
)

from clickstream_aggregator.deadletters.sender import REFUSALS, resource, retriable
from clickstream_aggregator.deadletters.tail import TailTimeout


@pytest.mark.parametrize(
    "error",
    [
        NotLeaderForPartitionError(),
        LeaderNotAvailableError(),
        RequestTimedOutError(),
        KafkaConnectionError(),
        KafkaTimeoutError(),
        TailTimeout("no leader"),
        ConnectionRefusedError(),
        asyncpg.exceptions.IdleInTransactionSessionTimeoutError("idle too long"),
        asyncpg.exceptions.LockNotAvailableError("lock timeout"),
        asyncpg.exceptions.ConnectionDoesNotExistError("gone"),
    ],
)
def test_outages_are_retried(error: BaseException) -> None:
    assert retriable(error)


@pytest.mark.parametrize(
    "error", [MessageSizeTooLargeError(), RecordTooLargeError(), CorruptRecordException()]
)
def test_refusals_belong_to_the_row_not_to_a_retry(error: BaseException) -> None:
    assert isinstance(error, REFUSALS)
    assert not retriable(error)


@pytest.mark.parametrize(
    "error",
    [
        TopicAuthorizationFailedError(),
        UnknownError(),
        RuntimeError("dead-letter topic 'x' does not exist"),
        asyncpg.exceptions.UndefinedColumnError("relay_attempts"),
    ],
)
def test_a_broken_deployment_or_a_bug_is_not_retried(error: BaseException) -> None:
    assert not retriable(error)


def test_retries_are_counted_against_the_server_that_failed() -> None:
    assert resource(asyncpg.exceptions.ConnectionDoesNotExistError("gone")) == "postgres"
    assert resource(NotLeaderForPartitionError()) == "kafka"
    assert resource(TailTimeout("no leader")) == "kafka"
