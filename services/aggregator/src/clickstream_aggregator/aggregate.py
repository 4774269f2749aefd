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

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, cast

from clickstream_aggregator.session_columns import DISTINCT_SETS, MAX_SEARCH_QUERIES
from clickstream_schema import UNKNOWN_DEVICE, EventType
from clickstream_schema.fast_decode import DecodedEvent

_ZERO = Decimal("0.00")
_PURCHASE: Final = EventType.PURCHASE.value


def _set_adder(fields: tuple[str, ...]) -> Callable[[tuple[set[str], ...], DecodedEvent], None]:
    """``add(sets, event)``: each of ``fields``' values into its set, unless it is None.

    Written out field by field, the way ``dataclasses`` writes ``__init__``:
    a loop over the fields costs about three times as much per event. The
    field names are DISTINCT_SETS' own, never input.
    """
    lines = ["def add(sets, event):"]
    for index, name in enumerate(fields):
        lines.append(f"    if (value := event.{name}) is not None:")
        lines.append(f"        sets[{index}].add(value)")
    namespace: dict[str, Any] = {}
    exec(compile("\n".join(lines), f"<sets of {', '.join(fields)}>", "exec"), namespace)  # noqa: S102
    return cast(Callable[[tuple[set[str], ...], DecodedEvent], None], namespace["add"])


#: Adds an event's values to a session's sets (one per entry of DISTINCT_SETS).
_add_to_sets: Final = _set_adder(tuple(field for _, field in DISTINCT_SETS))


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
    revenue: Decimal
    #: Events by type, keyed by the type's value (a plain ``str``, or the model's
    #: ``StrEnum`` member, which is equal to it and hashes alike).
    type_counts: dict[str, int]
    #: One set per entry of DISTINCT_SETS.
    sets: tuple[set[str], ...]
    search_queries: list[str]

    @property
    def total_events(self) -> int:
        # Summed once per session row rather than counted once per event.
        return sum(self.type_counts.values())

    @classmethod
    def start(cls, event: DecodedEvent) -> SessionAggregate:
        """An aggregate of no events yet, ``event`` its earliest and latest: add it next."""
        geo, device, ts, page = event.geo, event.device_type, event.timestamp, event.page_url
        return cls(
            session_id=event.session_id,
            user_id=event.user_id,
            first_ts=ts,
            last_ts=ts,
            user_agent=event.user_agent,
            ip_address=event.ip_address,
            entry_page=page,
            exit_page=page,
            # An event that did not say is stored as unknown, never guessed.
            device_type=UNKNOWN_DEVICE if device is None else device,
            country=None if geo is None else geo.country,
            revenue=_ZERO,
            type_counts={},
            sets=tuple(set() for _ in DISTINCT_SETS),
            search_queries=[],
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
        counts = self.type_counts
        counts[kind] = counts.get(kind, 0) + 1
        _add_to_sets(self.sets, event)
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
