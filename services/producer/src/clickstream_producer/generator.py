"""Deterministic clickstream: many interleaved sessions on a simulated clock.

``EventGenerator`` is pure (no I/O, no wall clock, no global randomness): the
same ``seed``, ``users``, ``concurrent_sessions`` and ``start`` give the same
events, ids included. Other components' tests use it for realistic test data::

    start = datetime(2024, 1, 1, tzinfo=UTC)
    events = EventGenerator(seed=7, users=50, start=start).next_batch(500)

A fixed number of slots is active at any time, each holding a session or the
pause before its next one; the sessions' next events sit in a heap keyed by
event time, so the output is in time order and sessions interleave as real
traffic does. When a session ends its user goes back to the idle pool and a new
session (of a random idle user) starts a few seconds later.

The simulation starts in its steady state: at ``start`` the slots hold sessions
already under way, each at the point a long-running simulation would have it
(see :meth:`EventGenerator._fill_steady_state`). So the first events already
have the long-run rate and event-type shares, and a session in progress at
``start`` shows up without its landing page view, as it would on a live site.
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
#: measured over millions of events (9.04–9.06 s) and guarded by a unit test.
MEAN_EVENT_GAP_S: Final = 9.05
#: Mean pause between one session ending and the next one starting in its slot.
_ARRIVAL_GAP_S: Final = 3.0
#: Mean simulated time between two samples of the warm-up timeline: longer means
#: fewer slots forked from the same session, shorter means a cheaper start-up.
_SAMPLE_SPACING_MS: Final = 30_000
#: Tries at finding an idle user with a given account status before taking any.
_MATCH_TRIES: Final = 16

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
        self._started = False
        #: Epoch ms where the simulation begins: no event is earlier.
        self.start_ms = int(start.timestamp() * 1000)
        self._fill_steady_state(self.start_ms)

    def _fill_steady_state(self, start_ms: int) -> None:
        """Give every slot the state it would have after running for a long time.

        A slot's life is a renewal process (session, pause, session...). Its
        state at a moment far from its beginning is found by cutting one long
        such life at random times: a cut lands in a session with probability
        proportional to the session's length, at a uniform point in it, and in
        a pause likewise. So one warm-up timeline of sessions is generated and
        cut at Poisson times, and each cut becomes a slot: the session cut
        continues from its state at the cut (page, cart, login, the next step)
        under an identity of its own, its next event coming when the warm-up
        timeline would have had it; a cut in a pause starts the slot's next
        session when that pause ends. The warm-up's own events are never emitted.
        """
        rng, catalog, users = self._rng, self.catalog, self.population.users
        slots = self.concurrent_sessions
        filled = 0
        spacing = _SAMPLE_SPACING_MS
        cut = rng.expovariate(1 / spacing)
        clock = 0  # ms on the warm-up timeline, where the current session began
        while filled < slots:
            referrer = catalog.referrer(rng)
            user = users[int(rng.random() * len(users))]
            visit = Visit.unrendered("warm-up", user, referrer.url)
            warm_up = Session(rng, catalog, visit, referrer.channel)
            step = warm_up.next_step()
            at = clock
            while step is not None:
                at += step.delay_ms
                # Cuts before this step: the slot's next event is this step.
                while cut < at and filled < slots:
                    self._continue(warm_up, step, start_ms + int(at - cut))
                    filled += 1
                    cut += rng.expovariate(1 / spacing)
                step = warm_up.next_step()
            clock = at + int(rng.expovariate(1 / _ARRIVAL_GAP_S) * 1000) + 1
            while cut < clock and filled < slots:
                self._start_session(start_ms + int(clock - cut))
                filled += 1
                cut += rng.expovariate(1 / spacing)

    def _continue(self, warm_up: Session, step: Step, at_ms: int) -> None:
        """A slot that holds ``warm_up`` in its current state, with ``step`` due at ``at_ms``."""
        user = self._take_user(warm_up.visit.user.registered)
        visit = Visit(f"s-{self._rng.getrandbits(64):016x}", user, warm_up.visit.referrer)
        self._push(at_ms, warm_up.fork(visit), step)

    def _take_user(self, registered: bool | None = None) -> User:
        """A random idle user, with the given account status if one is found quickly."""
        rng, idle = self._rng, self._idle
        index = int(rng.random() * len(idle))
        if registered is not None:
            for _ in range(_MATCH_TRIES):
                if idle[index].registered is registered:
                    break
                index = int(rng.random() * len(idle))
        # Swap-remove: O(1) pick of a random idle user.
        idle[index], idle[-1] = idle[-1], idle[index]
        return idle.pop()

    def _start_session(self, at_ms: int) -> None:
        rng = self._rng
        user = self._take_user()
        referrer = self.catalog.referrer(rng)
        visit = Visit(f"s-{rng.getrandbits(64):016x}", user, referrer.url)
        session = Session(rng, self.catalog, visit, referrer.channel)
        step = session.next_step()
        assert step is not None  # a session always has its landing page view
        self._push(at_ms + step.delay_ms, session, step)

    def _push(self, at_ms: int, session: Session, step: Step) -> None:
        self._sequence += 1
        heapq.heappush(self._heap, (at_ms, self._sequence, session, step))

    def move_start(self, start: datetime) -> None:
        """Shift the whole simulation to begin at ``start`` (only before the first event).

        A live producer builds its generator, then connects; its clock must
        start when the first event can go out, not when building began.
        """
        if self._started:
            raise RuntimeError("the simulation has already produced events")
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        delta = int(start.timestamp() * 1000) - self.start_ms
        # The same shift for every entry keeps the heap ordered.
        self._heap = [(at + delta, seq, session, step) for at, seq, session, step in self._heap]
        self.start_ms += delta

    def active_session_ids(self) -> set[str]:
        """Ids of the sessions with an event pending (those under way at the start, at first)."""
        return {session.visit.session_id for _, _, session, _ in self._heap}

    @property
    def next_time_ms(self) -> int:
        """Event time (epoch ms) of the event the next call will return first."""
        return self._heap[0][0]

    def next_records(self, count: int, before_ms: float = math.inf) -> list[EventRecord]:
        """The next ``count`` events (fewer if later ones are at ``before_ms`` or after).

        Records are the allocation-light form the publisher sends.
        """
        return self._take(count, before_ms)

    def records_before(self, end_ms: int) -> list[EventRecord]:
        """Every further event whose time is before ``end_ms`` (epoch ms), in time order."""
        return self._take(math.inf, end_ms)

    def _take(self, count: float, end_ms: float) -> list[EventRecord]:
        heap, rng = self._heap, self._rng
        self._started = True
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
