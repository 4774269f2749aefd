"""The retry policy: which failures are transient, and capped, jittered backoff.

Transient failures (PostgreSQL or Kafka unreachable, a restarting server,
serialization failures, deadlocks) are retried until they pass or the service
is asked to stop; data is never skipped. Anything else is a bug or a broken
environment and stops the service (policy "stop").
"""

from __future__ import annotations

import asyncio
import random
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING

import asyncpg
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError

if TYPE_CHECKING:
    from clickstream_aggregator.settings import AggregatorSettings

_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, cannot connect now
    asyncpg.exceptions.TransactionRollbackError,  # serialization failure, deadlock
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections
    KafkaConnectionError,
    KafkaTimeoutError,
    NodeNotReadyError,
)


def is_transient(error: BaseException) -> bool:
    # An OSError, but retrying cannot help: the CA file or the server must change.
    if isinstance(error, ssl.SSLCertVerificationError):
        return False
    return isinstance(error, _TRANSIENT)


def cause(error: BaseException) -> str:
    """A short, bounded label for metrics and logs."""
    if isinstance(error, asyncpg.exceptions.TransactionRollbackError):
        return "pg_conflict"
    if isinstance(error, asyncpg.PostgresError | asyncpg.InterfaceError):
        return "pg_unavailable"
    if isinstance(error, KafkaConnectionError | KafkaTimeoutError | NodeNotReadyError):
        return "kafka_unavailable"
    return "network"


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

    def next_delay(self) -> float:
        ceiling = min(self._max, self._initial * (1 << min(self.attempts, 30)))
        self.attempts += 1
        # Full jitter spreads replicas that failed together; keep a small floor.
        return max(self._initial / 2, ceiling * float(self._rng()))

    @classmethod
    def from_settings(cls, settings: AggregatorSettings) -> Backoff:
        return cls(settings.aggregator_retry_initial_s, settings.aggregator_retry_max_s)

    def reset(self) -> None:
        self.attempts = 0

    async def wait(self, stop: asyncio.Event) -> bool:
        """Sleep for the next delay; return False if ``stop`` was set meanwhile."""
        try:
            await asyncio.wait_for(stop.wait(), timeout=self.next_delay())
        except TimeoutError:
            return True
        return False
