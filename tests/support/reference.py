"""An independent reference for ``session_metrics``, computed from the events themselves.

Deliberately written without the aggregator's code: straight from the column
definitions in README, over events in consumption order (partition, offset).

Which events are applied is decided the way the contract says, message by
message in consumption order:

* a message ``decode`` refuses is dead-lettered with decode's reason;
* an event whose id an applied event already had is a duplicate (not applied,
  not dead-lettered);
* a purchase that would take its session's ``total_revenue`` beyond what
  ``NUMERIC(14,2)`` holds is dead-lettered as ``unstorable``; it is not applied,
  so a later copy of it is not a duplicate and is judged again;
* every other event is applied.

``search_queries`` keeps the first :data:`MAX_SEARCH_QUERIES` queries of a
session in consumption order; ``search_count`` (in ``event_type_counts``) counts
every search.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final
from uuid import UUID

import asyncpg
import orjson

from clickstream_schema import ClickEvent, InvalidEvent, decode
from clickstream_schema.codec import MAX_MESSAGE_BYTES

COLUMNS = (
    "session_id", "user_id", "total_events", "event_type_counts", "first_event_timestamp",
    "last_event_timestamp", "session_duration_minutes", "unique_pages_count", "unique_pages",
    "total_revenue", "products_viewed_count", "products_viewed", "search_queries",
    "unique_referrers_count", "referrers", "user_agent", "ip_address", "entry_page",
    "exit_page", "page_view_count", "bounced", "converted", "device_type", "country",
)  # fmt: skip


#: Largest ``total_revenue`` the column (NUMERIC(14,2)) holds.
MAX_TOTAL_REVENUE: Final = Decimal("999999999999.99")
#: Queries kept per session in ``search_queries``.
MAX_SEARCH_QUERIES: Final = 100

Position = tuple[int, int]  # (partition, offset)


@dataclass
class Settlement:
    """What must become of each message of a topic."""

    #: Applied events in consumption order.
    applied: list[ClickEvent] = field(default_factory=list)
    #: Positions of the applied events (same order).
    applied_at: list[Position] = field(default_factory=list)
    #: Dead-lettered messages and their reasons.
    dead_letters: dict[Position, str] = field(default_factory=dict)
    #: Positions of duplicates (neither applied nor dead-lettered).
    duplicates: list[Position] = field(default_factory=list)


class _Judge:
    """Applied, duplicate or unstorable: one valid event after all earlier ones."""

    def __init__(self) -> None:
        self.applied_ids: set[UUID] = set()
        self.revenue: dict[str, Decimal] = defaultdict(lambda: Decimal("0.00"))

    def __call__(self, event: ClickEvent) -> str:
        if event.event_id in self.applied_ids:
            return "duplicate"
        if event.event_type.value == "purchase" and event.price:
            total = self.revenue[event.session_id] + event.price
            if total > MAX_TOTAL_REVENUE:
                return "unstorable"
            self.revenue[event.session_id] = total
        self.applied_ids.add(event.event_id)
        return "applied"


def settle(
    messages: Iterable[tuple[int, int, bytes | None, bytes | None]],
    *,
    max_bytes: int = MAX_MESSAGE_BYTES,
) -> Settlement:
    """Judge every message (as ``read_back`` returns them, in consumption order)."""
    result = Settlement()
    judge = _Judge()
    for partition, offset, _key, value in messages:
        at = (partition, offset)
        try:
            event = decode(value, max_bytes=max_bytes)
        except InvalidEvent as error:
            result.dead_letters[at] = error.reason
            continue
        verdict = judge(event)
        if verdict == "applied":
            result.applied.append(event)
            result.applied_at.append(at)
        elif verdict == "duplicate":
            result.duplicates.append(at)
        else:
            result.dead_letters[at] = verdict
    return result


def expected_rows(events_in_consumption_order: Iterable[ClickEvent]) -> dict[str, dict[str, Any]]:
    """One row per session from the events the contract applies (see the module doc)."""
    judge = _Judge()
    return rows_of(e for e in events_in_consumption_order if judge(e) == "applied")


def rows_of(applied: Iterable[ClickEvent]) -> dict[str, dict[str, Any]]:
    """One row per session from events that are all applied (already settled)."""
    by_session: dict[str, list[ClickEvent]] = defaultdict(list)
    for event in applied:
        by_session[event.session_id].append(event)
    return {sid: _row(sid, evs) for sid, evs in by_session.items()}


def _row(session_id: str, events: Sequence[ClickEvent]) -> dict[str, Any]:
    first_ts = min(e.timestamp for e in events)
    last_ts = max(e.timestamp for e in events)
    earliest = next(e for e in events if e.timestamp == first_ts)
    latest = [e for e in events if e.timestamp == last_ts][-1]
    counts: dict[str, int] = defaultdict(int)
    for e in events:
        counts[e.event_type.value] += 1
    pages = sorted({e.page_url for e in events})
    products = sorted({e.product_id for e in events if e.product_id is not None})
    referrers = sorted({e.referrer for e in events if e.referrer is not None})
    page_views = counts.get("page_view", 0)
    return {
        "session_id": session_id,
        "user_id": earliest.user_id,
        "total_events": len(events),
        "event_type_counts": dict(sorted(counts.items())),
        "first_event_timestamp": first_ts,
        "last_event_timestamp": last_ts,
        "session_duration_minutes": (last_ts - first_ts).total_seconds() / 60,
        "unique_pages_count": len(pages),
        "unique_pages": pages,
        "total_revenue": sum(
            (e.price for e in events if e.event_type.value == "purchase" and e.price),
            Decimal("0.00"),
        ),
        "products_viewed_count": len(products),
        "products_viewed": products,
        "search_queries": [e.search_query for e in events if e.search_query is not None][
            :MAX_SEARCH_QUERIES
        ],
        "unique_referrers_count": len(referrers),
        "referrers": referrers,
        "user_agent": earliest.user_agent,
        # PostgreSQL returns inet values, which print in their compressed form.
        "ip_address": str(ipaddress.ip_address(earliest.ip_address)),
        "entry_page": earliest.page_url,
        "exit_page": latest.page_url,
        "page_view_count": page_views,
        "bounced": page_views <= 1,
        "converted": counts.get("purchase", 0) > 0,
        "device_type": earliest.device_type.value if earliest.device_type else "unknown",
        "country": earliest.geo.country if earliest.geo else None,
    }


async def stored_rows(dsn: str) -> dict[str, dict[str, Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(f"SELECT {', '.join(COLUMNS)} FROM session_metrics")
    finally:
        await conn.close()
    result = {}
    for row in rows:
        item = dict(row)
        for key in (
            "event_type_counts",
            "unique_pages",
            "products_viewed",
            "search_queries",
            "referrers",
        ):
            item[key] = orjson.loads(item[key])
        item["ip_address"] = str(item["ip_address"])
        result[item["session_id"]] = item
    return result


async def stored_dead_letters(dsn: str, topic: str) -> dict[Position, str]:
    """The ``dead_letters`` rows of a topic as {(partition, offset): reason}.

    The table's unique key is the position, so a message is dead-lettered at most once.
    """
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT source_partition, source_offset, reason FROM dead_letters "
            "WHERE source_topic = $1",
            topic,
        )
    finally:
        await conn.close()
    return {(r["source_partition"], r["source_offset"]): r["reason"] for r in rows}


def differences(
    expected: dict[str, dict[str, Any]], stored: dict[str, dict[str, Any]], limit: int = 5
) -> list[str]:
    """Human-readable differences (empty when the tables agree exactly)."""
    problems = []
    for sid in sorted(expected.keys() - stored.keys())[:limit]:
        problems.append(f"missing session {sid}")
    for sid in sorted(stored.keys() - expected.keys())[:limit]:
        problems.append(f"unexpected session {sid}")
    for sid in sorted(expected.keys() & stored.keys()):
        want, got = expected[sid], stored[sid]
        for column in COLUMNS:
            a, b = want[column], got[column]
            if column == "session_duration_minutes":
                same = abs(a - b) <= 1e-9 * max(1.0, abs(a))
            else:
                same = a == b
            if not same:
                problems.append(f"{sid}.{column}: expected {a!r}, stored {b!r}")
                if len(problems) >= limit:
                    return problems
    return problems
