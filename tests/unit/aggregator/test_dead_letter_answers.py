"""How the relay reads an error, by the one failure policy: an outage to retry, a refusal
pinned to its row, or a stop; and which server a retry is counted against."""

from __future__ import annotations

import asyncpg
import pytest
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTimestampError,
    KafkaConnectionError,
    KafkaTimeoutError,
    LeaderNotAvailableError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    RecordListTooLargeError,
    RecordTooLargeError,
    RequestTimedOutError,
    TopicAuthorizationFailedError,
    UnknownError,
)
from aiokafka.structs import RecordMetadata

from clickstream_aggregator.deadletters.sender import refused
from clickstream_aggregator.deadletters.tail import TailStopped, TailTimeout
from clickstream_aggregator.policy import Verdict, cause, verdict


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
        # PostgreSQL ended a round that waited too long on Kafka: nothing was marked.
        asyncpg.exceptions.IdleInTransactionSessionTimeoutError("idle too long"),
        asyncpg.exceptions.LockNotAvailableError("lock timeout"),
        asyncpg.exceptions.ConnectionDoesNotExistError("gone"),
    ],
)
def test_outages_are_retried(error: BaseException) -> None:
    assert verdict(error) is Verdict.RETRY
    assert not refused(error)


@pytest.mark.parametrize(
    "error",
    [
        MessageSizeTooLargeError(),
        RecordTooLargeError(),
        RecordListTooLargeError(),
        CorruptRecordException(),  # "retriable" to Kafka, but the record is to blame
        InvalidTimestampError(),
    ],
)
def test_refusals_belong_to_the_row_not_to_a_retry(error: BaseException) -> None:
    assert verdict(error) is Verdict.PIN
    assert refused(error)


def test_an_acknowledgement_is_not_a_refusal() -> None:
    assert not refused(RecordMetadata("dlq", 0, None, 7, -1, 0, 0))


@pytest.mark.parametrize(
    "error",
    [
        TopicAuthorizationFailedError(),
        UnknownError(),
        RuntimeError("dead-letter topic 'x' does not exist"),
        asyncpg.exceptions.UndefinedColumnError("relay_attempts"),
        TailStopped(),
    ],
)
def test_a_broken_deployment_or_a_bug_is_not_retried(error: BaseException) -> None:
    assert verdict(error) is Verdict.STOP
    assert not refused(error)


def test_retries_are_counted_against_the_server_that_failed() -> None:
    # The relay's retry loop uses Kafka: an error that does not say is Kafka's.
    assert cause(asyncpg.exceptions.ConnectionDoesNotExistError("gone"), "kafka") == (
        "pg_unavailable"
    )
    assert cause(NotLeaderForPartitionError(), "kafka") == "kafka_unavailable"
    assert cause(TailTimeout("no leader"), "kafka") == "kafka_unavailable"
