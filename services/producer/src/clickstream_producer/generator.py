"""Deterministic clickstream: many interleaved sessions on a simulated clock.

``EventGenerator`` is pure (no I/O, no wall clock, no global randomness): the
same ``seed``, ``users``, ``concurrent_sessions`` and ``start`` give the same
events, ids included. Other components' tests use it for realistic test data::

    start = datetime(2024, 1, 1, tzinfo=UTC)
    events = EventGenerator(seed=7, users=50, start=start).next_batch(500)

A fixed number of sessions is active at any time; their next events sit in a
heap keyed by event time, so the output is in time order and sessions
interleave as real traffic does. When a session ends its user goes back to the
idle pool and a new session (of a random idle user) starts a few seconds later.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator
from datetime import datetime
from typing import Final

from clickstream_producer.catalog import Catalog
from clickstream_producer.journey import Session
from clickstream_producer.population import Population, User
from clickstream_producer.wire import EventRecord, Step, Visit
from clickstream_schema import ClickEvent

#: Mean simulated time between two consecutive events of one session (including the
#: pause before the next session of the slot). Events/s ≈ concurrent_sessions / this;
#: measured over 200k events (≈9.1 s) and guarded by a unit test.
MEAN_EVENT_GAP_S: Final = 9.0
#: Sessions of the initial population start spread over this span, not all at once.
_RAMP_MS: Final = 60_000
#: Mean pause between one session ending and the next one starting in its slot.
_ARRIVAL_GAP_S: Final = 3.0

# tuple.__new__ skips the Python-level __new__ of a NamedTuple: one record per event.
_new_record = tuple.__new__


class EventGenerator:
    """An endless, seeded stream of :class:`ClickEvent` in time order."""

    def __init__(
        self,
        *,
        seed: int,
        users: int = 1000,
        concurrent_sessions: int = 200,
        start: datetime,
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if concurrent_sessions < 1:
            raise ValueError("concurrent_sessions must be at least 1")
        rng = random.Random(seed)
        self._rng = rng
        self.catalog = Catalog(random.Random(rng.getrandbits(64)))
        self.population = Population(random.Random(rng.getrandbits(64)), users)
        # A user is in at most one session at a time, so users cap the concurrency.
        self.concurrent_sessions = min(concurrent_sessions, users)
        self._idle: list[User] = list(self.population.users)
        self._heap: list[tuple[int, int, Session, Step]] = []
        self._sequence = 0
        start_ms = int(start.timestamp() * 1000)
        for _ in range(self.concurrent_sessions):
            self._start_session(start_ms + int(rng.random() * _RAMP_MS))

    def _start_session(self, at_ms: int) -> None:
        rng, idle = self._rng, self._idle
        # Swap-remove: O(1) pick of a random idle user.
        index = int(rng.random() * len(idle))
        idle[index], idle[-1] = idle[-1], idle[index]
        user = idle.pop()
        referrer = self.catalog.referrer(rng)
        visit = Visit(f"s-{rng.getrandbits(64):016x}", user, referrer.url)
        session = Session(rng, self.catalog, visit, referrer.channel)
        step = session.next_step()
        assert step is not None  # a session always has its landing page view
        self._push(at_ms + step.delay_ms, session, step)

    def _push(self, at_ms: int, session: Session, step: Step) -> None:
        self._sequence += 1
        heapq.heappush(self._heap, (at_ms, self._sequence, session, step))

    @property
    def next_time_ms(self) -> int:
        """Event time (epoch ms) of the event the next call will return first."""
        return self._heap[0][0]

    def next_records(self, count: int) -> list[EventRecord]:
        """The next ``count`` events as records: the allocation-light form the publisher sends."""
        return self._take(count, math.inf)

    def records_before(self, end_ms: int) -> list[EventRecord]:
        """Every further event whose time is before ``end_ms`` (epoch ms), in time order."""
        return self._take(math.inf, end_ms)

    def _take(self, count: float, end_ms: float) -> list[EventRecord]:
        heap, rng = self._heap, self._rng
        records: list[EventRecord] = []
        append = records.append
        while len(records) < count and heap[0][0] < end_ms:
            at_ms, _seq, session, step = heap[0]
            append(_new_record(EventRecord, (at_ms, rng.getrandbits(74), session.visit, step)))
            following = session.next_step()
            if following is not None:
                self._sequence += 1
                heapq.heapreplace(
                    heap, (at_ms + following.delay_ms, self._sequence, session, following)
                )
                continue
            heapq.heappop(heap)
            self._idle.append(session.visit.user)
            self._start_session(at_ms + int(rng.expovariate(1 / _ARRIVAL_GAP_S) * 1000) + 1)
        return records

    def next_batch(self, count: int) -> list[ClickEvent]:
        """The next ``count`` events as validated contract models."""
        return [record.to_event() for record in self.next_records(count)]

    def __iter__(self) -> Iterator[ClickEvent]:
        return self

    def __next__(self) -> ClickEvent:
        return self.next_records(1)[0].to_event()
