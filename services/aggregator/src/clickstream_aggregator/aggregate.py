"""Pure session aggregation: fold events into per-session partial aggregates.

A partial aggregate holds exactly what the ``session_metrics`` row needs; the
repository's SQL upsert merges it into the stored row by the same rules.
Consumption order (partition offset order) breaks ties:

* first/last timestamps are min/max of event time, so arrival order does not
  matter; the attributes of the earliest event (user, user agent, IP, entry
  page, device, country) come from the event with the smallest timestamp, the
  first consumed on a tie; the exit page from the largest, the last consumed on
  a tie;
* distinct values (:data:`~clickstream_aggregator.session_columns.DISTINCT_SETS`:
  pages, products, referrers) are kept as sets, stored sorted by code point;
* ``search_queries`` keeps the first :data:`MAX_SEARCH_QUERIES` queries in
  consumption order; ``search_count`` still counts every search. One abusive
  session must not grow a row without bound.

Nothing here touches Kafka or PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from operator import attrgetter
from typing import Final

from clickstream_aggregator.session_columns import DISTINCT_SETS, MAX_SEARCH_QUERIES
from clickstream_schema import UNKNOWN_DEVICE, EventType
from clickstream_schema.fast_decode import DecodedEvent

_ZERO = Decimal("0.00")
_PURCHASE: Final = EventType.PURCHASE.value
#: The event fields whose distinct values the sets keep, in DISTINCT_SETS order.
_SET_FIELDS: Final = tuple(field for _, field in DISTINCT_SETS)
#: Reads them all in one call (a tuple, even of one field).
_read_set_fields: Final = attrgetter(*_SET_FIELDS, *_SET_FIELDS[:1])


def _no_sets() -> tuple[set[str], ...]:
    return tuple(set() for _ in _SET_FIELDS)


@dataclass(slots=True)
class SessionAggregate:
    session_id: str
    user_id: str
    first_ts: datetime
    last_ts: datetime
    user_agent: str
    ip_address: str
    entry_page: str
    exit_page: str
    device_type: str
    country: str | None
    total_events: int = 0
    revenue: Decimal = _ZERO
    #: Events by type, keyed by the type's value (plain ``str``, or the model's
    #: ``StrEnum`` member, which is equal and hashes alike).
    type_counts: dict[str, int] = field(default_factory=dict)
    #: One set per entry of DISTINCT_SETS.
    sets: tuple[set[str], ...] = field(default_factory=_no_sets)
    search_queries: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, event: DecodedEvent) -> SessionAggregate:
        """An aggregate of no events yet, ``event`` its earliest and latest: add it next."""
        geo = event.geo
        device = event.device_type
        return cls(
            session_id=event.session_id,
            user_id=event.user_id,
            first_ts=event.timestamp,
            last_ts=event.timestamp,
            user_agent=event.user_agent,
            ip_address=event.ip_address,
            entry_page=event.page_url,
            exit_page=event.page_url,
            # An event that did not say is stored as unknown, never guessed.
            device_type=UNKNOWN_DEVICE if device is None else device,
            country=None if geo is None else geo.country,
        )

    def add(self, event: DecodedEvent) -> None:
        """Fold in an event consumed after every event already in the aggregate."""
        ts = event.timestamp
        if ts < self.first_ts:
            self.first_ts = ts
            self.user_id = event.user_id
            self.user_agent = event.user_agent
            self.ip_address = event.ip_address
            self.entry_page = event.page_url
            device, geo = event.device_type, event.geo
            self.device_type = UNKNOWN_DEVICE if device is None else device
            self.country = None if geo is None else geo.country
        if ts >= self.last_ts:
            self.last_ts = ts
            self.exit_page = event.page_url
        kind = event.event_type
        self.total_events += 1
        counts = self.type_counts
        counts[kind] = counts.get(kind, 0) + 1
        # zip stops at the sets: the field read twice (see _read_set_fields) is left out.
        for values, value in zip(self.sets, _read_set_fields(event)):  # noqa: B905
            if value is not None:
                values.add(value)
        query = event.search_query
        if query is not None and len(self.search_queries) < MAX_SEARCH_QUERIES:
            self.search_queries.append(query)
        # ==, not is: the model's member equals the value a fast-decoded event holds.
        if kind == _PURCHASE and event.price is not None:
            self.revenue += event.price


def aggregate(events: Iterable[DecodedEvent]) -> dict[str, SessionAggregate]:
    """Aggregate events given in consumption order, one entry per session."""
    sessions: dict[str, SessionAggregate] = {}
    started = sessions.get
    for event in events:
        session_id = event.session_id
        current = started(session_id)
        if current is None:
            current = sessions[session_id] = SessionAggregate.start(event)
        current.add(event)
    return sessions
