"""The failure policy: what to do with each kind of error (:func:`verdict`).

Every failure gets one of three verdicts:

* ``RETRY``: the environment failed (PostgreSQL or Kafka unreachable, a
  restarting server, a serialization failure or deadlock, a transaction the
  server ended for idling, a session another transaction inserted meanwhile).
  The same work is tried again with capped, jittered backoff until it passes or
  the service is asked to stop; data is never skipped. While a dependency is
  unreachable its readiness condition is false, and a streak of retries longer
  than the threshold turns ``/readyz`` red.
* ``PIN``: a value in one message made the work fail (PostgreSQL refused it, a
  client could not encode it, the aggregation could not hold it, Kafka refused
  its dead-letter copy). The failure belongs to that message, never to its
  batch: the batch is split until the message is found, and it is
  dead-lettered (``clickstream_aggregator.pinning``); a copy Kafka refuses is
  pinned to its outbox row (``deadletters.relay``).
* ``STOP``: a bug or a broken deployment (a missing table, a permission, a
  certificate that does not verify). Retrying cannot help and splitting would
  dead-letter good messages, so the service stops with the error.

A decode worker process that dies while preparing a batch gets ``RETRY`` the
first time (a kill from outside, such as the OOM killer's, is no message's
fault) and ``PIN`` when it dies on the same batch again: the batch is split in
fresh workers until the messages that kill them are found, and those are
dead-lettered as ``crashed_decoder`` (``clickstream_aggregator.crash_pinning``).
Workers that cannot start, more culprits in one batch than a message could
explain, or a batch that kills its worker only as a whole are ``STOP``
(``DecodeWorkersFailed``, which :func:`verdict` calls ``STOP`` as it does any
error it does not know). The Preparer applies this itself: a worker death never
reaches the retry loop.

:class:`Retrying` is the one retry loop: of the batch transaction, the
start-up waits, the partition claims and the dead-letter relay's sweeps (the
relay tries every partition before it waits, so that one partition's outage
does not hold the others, and keeps out of readiness: its own condition says
how far behind it is).
"""

from __future__ import annotations

import asyncio
import decimal
import random
import ssl
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import TYPE_CHECKING, Literal, TypeVar

import asyncpg
import orjson
import structlog
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTimestampError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)

from clickstream_aggregator.repository.batch_writes import SESSIONS_KEY

if TYPE_CHECKING:
    from clickstream_aggregator.metrics import AggregatorMetrics
    from clickstream_aggregator.settings import AggregatorSettings
    from clickstream_runtime.health import Readiness

log = structlog.get_logger()

T = TypeVar("T")
Resource = Literal["postgres", "kafka"]


class Verdict(Enum):
    RETRY = "retry"
    PIN = "pin"
    STOP = "stop"


_PG_TRANSIENT: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, cannot connect now
    asyncpg.exceptions.TransactionRollbackError,  # serialization failure, deadlock
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    asyncpg.exceptions.LockNotAvailableError,  # lock_timeout
    asyncpg.exceptions.QueryCanceledError,  # statement_timeout, a cancelled query
    # idle_in_transaction_session_timeout: the server ended a transaction that
    # waited too long on something else (the relay's on Kafka); nothing of it committed.
    asyncpg.exceptions.IdleInTransactionSessionTimeoutError,
    # "cannot switch to state N; another operation is in progress": the server ended
    # the session (pg_terminate_backend, a failover) and its FATAL error arrived while
    # the client was idle, or between the statements of one call. Never a connection
    # shared by two operations: every operation here holds its own from the pool.
    asyncpg.exceptions._base.InternalClientError,
)

_TRANSIENT: tuple[type[BaseException], ...] = (
    *_PG_TRANSIENT,
    asyncpg.InterfaceError,  # the connection broke mid-operation
    OSError,
    TimeoutError,
    # Not "retriable" in aiokafka's terms, but raised for a request that expired
    # while the broker was away: an outage.
    KafkaTimeoutError,
)

# Errors a value can cause. SQLSTATE classes 22 (data exception: out of range,
# invalid text), 23 (integrity) and 54 (program limit: a jsonb or row too big);
# asyncpg's client-side DataError (a value it cannot encode, e.g. text that is
# not UTF-8), and what Python raises for a value it cannot represent.
_PINNED: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.DataError,
    asyncpg.exceptions.IntegrityConstraintViolationError,
    asyncpg.exceptions.ProgramLimitExceededError,
    asyncpg.exceptions._base.DataError,
    UnicodeError,
    OverflowError,
    RecursionError,
    decimal.InvalidOperation,
    orjson.JSONEncodeError,
    # Kafka refused the record itself, not the request (too large, corrupt, a
    # timestamp out of range): only the relay produces, and the row is to blame.
    # Before the retriable Kafka errors below: Kafka calls a corrupt record retriable.
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
    CorruptRecordException,
    InvalidTimestampError,
)


def verdict(error: BaseException) -> Verdict:
    if isinstance(error, asyncpg.UniqueViolationError) and error.constraint_name == SESSIONS_KEY:
        # A race between two inserts of one session, no value's fault: again,
        # the session is there now (repository.batch_writes.upsert_sessions).
        return Verdict.RETRY
    # Order matters: asyncpg's client DataError is an InterfaceError (transient
    # below), but retrying a value it cannot encode would stall the partition.
    if isinstance(error, _PINNED):
        return Verdict.PIN
    if isinstance(error, ssl.SSLCertVerificationError):
        return Verdict.STOP  # an OSError, but the CA file or the server must change
    if isinstance(error, _TRANSIENT):
        return Verdict.RETRY
    if isinstance(error, KafkaError) and error.retriable:
        return Verdict.RETRY
    return Verdict.STOP


def failing(error: BaseException, resource: Resource) -> Resource:
    """Which server an error came from; ``resource`` (what was being used) when it does not say."""
    if isinstance(error, KafkaError):
        return "kafka"
    if isinstance(
        error,
        asyncpg.PostgresError
        | asyncpg.InterfaceError
        | asyncpg.exceptions._base.InternalClientError,
    ):
        return "postgres"
    return resource


def cause(error: BaseException, resource: Resource) -> str:
    """A short, bounded label for metrics and logs; ``resource`` is what was being used."""
    if isinstance(error, asyncpg.exceptions.TransactionRollbackError):
        return "pg_conflict"
    return "pg_unavailable" if failing(error, resource) == "postgres" else "kafka_unavailable"


class Stopping(Exception):
    """The service was asked to stop while waiting to retry."""


class Backoff:
    """Exponential backoff with full jitter, capped; ``reset`` after a success."""

    def __init__(
        self,
        initial_s: float,
        max_s: float,
        *,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._initial = initial_s
        self._max = max_s
        self._rng = rng
        self.attempts = 0

    @classmethod
    def from_settings(cls, settings: AggregatorSettings) -> Backoff:
        return cls(settings.aggregator_retry_initial_s, settings.aggregator_retry_max_s)

    def next_delay(self) -> float:
        ceiling = min(self._max, self._initial * (1 << min(self.attempts, 30)))
        self.attempts += 1
        # Full jitter spreads replicas that failed together; keep a small floor.
        return max(self._initial / 2, ceiling * float(self._rng()))

    def reset(self) -> None:
        self.attempts = 0

    async def wait(self, stop: asyncio.Event) -> bool:
        """Sleep for the next delay; return False if ``stop`` was set meanwhile."""
        try:
            await asyncio.wait_for(stop.wait(), timeout=self.next_delay())
        except TimeoutError:
            return True
        return False


class Retrying:
    """The retry loop: run an operation until it succeeds, is not transient, or stop is set.

    One instance per loop (it keeps that loop's backoff state). ``deadline_s``
    bounds one call: a caller that must answer in time (a rebalance listener)
    gets the last error instead of waiting on. ``resource`` is what the
    operation uses, for an error that does not say which server it came from
    (:func:`failing`). Without ``readiness`` the loop's failures are counted
    and logged but leave ``/readyz`` to others (the dead-letter relay: one retry
    streak is shared by the service, and the batch loop's is the one it means).
    """

    def __init__(
        self,
        what: str,
        resource: Resource,
        settings: AggregatorSettings,
        metrics: AggregatorMetrics,
        readiness: Readiness | None,
    ) -> None:
        self._what = what
        self._resource = resource
        self._metrics = metrics
        self._readiness = readiness
        self._backoff = Backoff.from_settings(settings)

    async def run(
        self,
        operation: Callable[[], Awaitable[T]],
        stop: asyncio.Event,
        *,
        deadline_s: float | None = None,
    ) -> T:
        loop = asyncio.get_running_loop()
        give_up = None if deadline_s is None else loop.time() + deadline_s
        while True:
            try:
                result = await operation()
            except Exception as error:
                if verdict(error) is not Verdict.RETRY:
                    raise
                self.failed(error)
                if give_up is not None and loop.time() >= give_up:
                    raise
                if not await self._backoff.wait(stop):
                    raise Stopping(self._what) from error
                continue
            self.succeeded()
            return result

    def failed(self, error: BaseException) -> None:
        """Count and report one transient failure."""
        label = cause(error, self._resource)
        self._metrics.retries.labels(cause=label).inc()
        if self._readiness is not None:
            self._readiness.enter_retry(f"{self._what}: {label}: {error!r}")
            if label != "pg_conflict":
                self._readiness.set(failing(error, self._resource), False, f"{label}: {error!r}")
        log.warning(
            f"{self._what}_retry",
            cause=label,
            error=repr(error),
            attempt=self._backoff.attempts + 1,
        )

    def succeeded(self) -> None:
        retried = self._backoff.attempts > 0
        self._backoff.reset()
        if self._readiness is not None:
            if retried:
                self._readiness.leave_retry()
            self._readiness.set(self._resource, True)
