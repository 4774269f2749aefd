"""The failure policy: each kind of error gets the verdict its handling depends on."""

from __future__ import annotations

import asyncio
import decimal
import ssl

import asyncpg
import orjson
import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    NodeNotReadyError,
    UnknownTopicOrPartitionError,
)

from clickstream_aggregator.metrics import AggregatorMetrics
from clickstream_aggregator.policy import Backoff, Retrying, Stopping, Verdict, cause, verdict
from clickstream_aggregator.settings import AggregatorSettings
from clickstream_runtime.health import Readiness


def _client_data_error() -> BaseException:
    # What asyncpg raises for a value it cannot encode (it is an InterfaceError).
    return asyncpg.exceptions._base.DataError("invalid input for query argument $1")


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.NumericValueOutOfRangeError("numeric field overflow"),
        asyncpg.exceptions.UntranslatableCharacterError("\\u0000 cannot be converted"),
        asyncpg.exceptions.ProgramLimitExceededError("total size of jsonb array elements"),
        asyncpg.exceptions.UniqueViolationError("duplicate key"),
        _client_data_error(),
        UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
        OverflowError("date value out of range"),
        RecursionError("maximum recursion depth exceeded"),
        decimal.InvalidOperation(),
        orjson.JSONEncodeError("str is not valid UTF-8: surrogates not allowed"),
    ],
)
def test_values_a_message_carries_are_pinned_to_it(error: BaseException) -> None:
    assert verdict(error) is Verdict.PIN


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError(),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        asyncpg.exceptions.SerializationError("could not serialize access"),
        asyncpg.exceptions.DeadlockDetectedError("deadlock detected"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
        # The session ended by the server while the client was between statements.
        asyncpg.exceptions._base.InternalClientError(
            "cannot switch to state 12; another operation (2) is in progress"
        ),
        asyncpg.exceptions.TooManyConnectionsError("too many clients"),
        asyncpg.exceptions.LockNotAvailableError("lock timeout"),
        KafkaConnectionError("Unable to bootstrap"),
        NodeNotReadyError("node not ready"),
        KafkaTimeoutError(),  # a produce batch that expired while the broker was away
        UnknownTopicOrPartitionError(),  # retriable in Kafka's own terms
    ],
)
def test_outages_are_retried(error: BaseException) -> None:
    assert verdict(error) is Verdict.RETRY


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.UndefinedTableError('relation "session_metrics" does not exist'),
        asyncpg.exceptions.InsufficientPrivilegeError("permission denied"),
        ssl.SSLCertVerificationError("certificate verify failed"),
        KeyError("a bug"),
        AttributeError("a bug"),
    ],
)
def test_bugs_and_broken_deployments_stop_the_service(error: BaseException) -> None:
    assert verdict(error) is Verdict.STOP


def test_causes_name_the_resource_that_failed() -> None:
    refused = ConnectionRefusedError(111, "Connection refused")
    assert cause(refused, "postgres") == "pg_unavailable"
    assert cause(refused, "kafka") == "kafka_unavailable"
    assert cause(asyncpg.exceptions.DeadlockDetectedError("x"), "postgres") == "pg_conflict"
    assert cause(KafkaConnectionError("x"), "postgres") == "kafka_unavailable"
    assert cause(asyncpg.exceptions.AdminShutdownError("x"), "kafka") == "pg_unavailable"
    ended = asyncpg.exceptions._base.InternalClientError("another operation is in progress")
    assert cause(ended, "kafka") == "pg_unavailable"


def test_backoff_is_capped_and_jittered() -> None:
    backoff = Backoff(0.2, 15.0, rng=lambda: 1.0)
    delays = [backoff.next_delay() for _ in range(12)]
    assert delays[:3] == [0.2, 0.4, 0.8]
    assert max(delays) == 15.0
    backoff.reset()
    assert backoff.next_delay() == 0.2
    assert Backoff(0.2, 15.0, rng=lambda: 0.0).next_delay() == 0.1  # the floor


def _retrying(readiness: Readiness) -> Retrying:
    settings = AggregatorSettings(
        _env_file=None,  # type: ignore[call-arg]
        aggregator_retry_initial_s=0.01,
        aggregator_retry_max_s=0.02,
    )
    return Retrying("batch", "postgres", settings, AggregatorMetrics.create(readiness), readiness)


async def test_retrying_turns_the_resource_red_while_failing_and_green_after() -> None:
    readiness = Readiness(("postgres",))
    readiness.set("postgres", True)
    retrying = _retrying(readiness)
    seen: list[bool] = []
    attempts = iter([ConnectionRefusedError(111, "refused")] * 3)

    async def operation() -> str:
        seen.append(readiness.status().conditions["postgres"])
        error = next(attempts, None)
        if error is not None:
            raise error
        return "done"

    assert await retrying.run(operation, asyncio.Event()) == "done"
    assert seen == [True, False, False, False]
    assert readiness.status().conditions["postgres"] is True
    assert readiness.status().retry_since is None


async def test_retrying_gives_up_at_its_deadline_and_on_stop() -> None:
    readiness = Readiness(("postgres",))
    retrying = _retrying(readiness)

    async def down() -> None:
        raise ConnectionRefusedError(111, "refused")

    with pytest.raises(ConnectionRefusedError):
        await retrying.run(down, asyncio.Event(), deadline_s=0.05)
    stop = asyncio.Event()
    stop.set()
    with pytest.raises(Stopping):
        await retrying.run(down, stop)


async def test_retrying_never_retries_a_pinned_error() -> None:
    calls = 0

    async def refused() -> None:
        nonlocal calls
        calls += 1
        raise asyncpg.exceptions.NumericValueOutOfRangeError("numeric field overflow")

    with pytest.raises(asyncpg.exceptions.NumericValueOutOfRangeError):
        await _retrying(Readiness()).run(refused, asyncio.Event())
    assert calls == 1


async def test_a_loop_without_readiness_counts_its_retries_and_leaves_readyz_alone() -> None:
    # The dead-letter relay's loop: the batch loop's retry streak is the one /readyz means.
    readiness = Readiness(("kafka",))
    readiness.set("kafka", True)
    metrics = AggregatorMetrics.create(readiness)
    settings = AggregatorSettings(
        _env_file=None,  # type: ignore[call-arg]
        aggregator_retry_initial_s=0.01,
        aggregator_retry_max_s=0.02,
    )
    retrying = Retrying("dead_letter_relay", "kafka", settings, metrics, None)
    attempts = iter([KafkaTimeoutError(), asyncpg.exceptions.ConnectionDoesNotExistError("x")])
    seen: list[tuple[bool, bool]] = []

    async def operation() -> str:
        status = readiness.status()
        seen.append((status.conditions["kafka"], status.retry_since is None))
        error = next(attempts, None)
        if error is not None:
            raise error
        return "done"

    assert await retrying.run(operation, asyncio.Event()) == "done"
    assert seen == [(True, True)] * 3
    counted = {
        s.labels["cause"]: s.value
        for metric in metrics.registry.collect()
        for s in metric.samples
        if s.name.endswith("retries_total")
    }
    assert counted == {"kafka_unavailable": 1.0, "pg_unavailable": 1.0}
