"""The session metrics recomputed from decoded events, independently of the aggregator.

Written from README's column rules, not from the aggregator's code: one small
mutable aggregate per session, fed events in consumption order (partition,
offset). Only the aggregates are kept, never the events.

Independent on purpose: a checker that shares the code it checks shares its
bugs, so nothing here imports the aggregator's specification
(``clickstream_aggregator.session_columns``), not even :data:`MAX_SEARCH_QUERIES`.
``tests/unit/aggregator/test_session_columns.py`` fails when the two disagree
on the column list or that limit.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from operator import attrgetter
from typing import Any, Final

from clickstream_schema import ClickEvent

#: README: a session whose earliest event has no device_type is stored as this.
UNKNOWN_DEVICE: Final = "unknown"

#: ``search_queries`` keeps the first this many queries of a session, in consumption order.
MAX_SEARCH_QUERIES: Final = 100

#: Set-valued columns: (column, its count column, the event field whose distinct
#: non-null values it holds, sorted by code point). Adding a set-valued metric to
#: the verifier is one line here plus its two names in :data:`COLUMNS`.
SETS: Final = (
    ("unique_pages", "unique_pages_count", "page_url"),
    ("products_viewed", "products_viewed_count", "product_id"),
    ("referrers", "unique_referrers_count", "referrer"),
)
_SET_FIELDS: Final = tuple(attrgetter(event_field) for _, _, event_field in SETS)

#: The columns compared, in the order differences are reported.
COLUMNS: Final = (
    "user_id", "total_events", "event_type_counts", "first_event_timestamp",
    "last_event_timestamp", "session_duration_minutes", "unique_pages_count", "unique_pages",
    "total_revenue", "products_viewed_count", "products_viewed", "search_queries",
    "unique_referrers_count", "referrers", "user_agent", "ip_address", "entry_page",
    "exit_page", "page_view_count", "bounced", "converted", "device_type", "country",
)  # fmt: skip


def normal_ip(value: object) -> str:
    """An address in one textual form (PostgreSQL's INET prints IPv6 compressed)."""
    return ipaddress.ip_address(str(value).split("/")[0]).compressed


@dataclass(slots=True)
class SessionFold:
    """Everything one session's row is derived from, updated event by event."""

    first_at: datetime
    last_at: datetime
    #: from the earliest event (the first consumed on equal timestamps)
    user_id: str
    user_agent: str
    ip_address: str
    entry_page: str
    device_type: str
    country: str | None
    #: from the latest event (the last consumed on equal timestamps)
    exit_page: str
    events: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    #: one set per entry of :data:`SETS`
    sets: tuple[set[str], ...] = field(default_factory=lambda: tuple(set() for _ in SETS))
    queries: list[str] = field(default_factory=list)
    revenue: Decimal = Decimal("0.00")

    @classmethod
    def start(cls, event: ClickEvent) -> SessionFold:
        fold = cls(
            first_at=event.timestamp,
            last_at=event.timestamp,
            user_id=event.user_id,
            user_agent=event.user_agent,
            ip_address=event.ip_address,
            entry_page=event.page_url,
            device_type=_device(event),
            country=event.geo.country if event.geo else None,
            exit_page=event.page_url,
        )
        fold.add(event)
        return fold

    def add(self, event: ClickEvent) -> None:
        self.events += 1
        kind = event.event_type.value
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if event.timestamp < self.first_at:
            self.first_at = event.timestamp
            self.user_id = event.user_id
            self.user_agent = event.user_agent
            self.ip_address = event.ip_address
            self.entry_page = event.page_url
            self.device_type = _device(event)
            self.country = event.geo.country if event.geo else None
        if event.timestamp >= self.last_at:
            self.last_at = event.timestamp
            self.exit_page = event.page_url
        for values, read in zip(self.sets, _SET_FIELDS, strict=True):
            if (value := read(event)) is not None:
                values.add(value)
        if event.search_query is not None and len(self.queries) < MAX_SEARCH_QUERIES:
            self.queries.append(event.search_query)
        if kind == "purchase" and event.price is not None:
            self.revenue += event.price

    def row(self) -> dict[str, Any]:
        """The expected ``session_metrics`` columns of :data:`COLUMNS`."""
        page_views = self.counts.get("page_view", 0)
        row = {
            "user_id": self.user_id,
            "total_events": self.events,
            "event_type_counts": dict(sorted(self.counts.items())),
            "first_event_timestamp": self.first_at,
            "last_event_timestamp": self.last_at,
            "session_duration_minutes": (self.last_at - self.first_at).total_seconds() / 60,
            "total_revenue": self.revenue,
            "search_queries": list(self.queries),
            "user_agent": self.user_agent,
            "ip_address": normal_ip(self.ip_address),
            "entry_page": self.entry_page,
            "exit_page": self.exit_page,
            "page_view_count": page_views,
            "bounced": page_views <= 1,
            "converted": self.counts.get("purchase", 0) > 0,
            "device_type": self.device_type,
            "country": self.country,
        }
        for (name, count, _), values in zip(SETS, self.sets, strict=True):
            row[count] = len(values)
            row[name] = sorted(values)
        return row


def _device(event: ClickEvent) -> str:
    return UNKNOWN_DEVICE if event.device_type is None else event.device_type.value
