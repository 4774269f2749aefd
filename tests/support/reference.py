"""An independent reference for ``session_metrics``, computed from the events themselves.

Deliberately written without the aggregator's code: straight from the column
definitions in README, over events in consumption order (partition, offset).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

import asyncpg
import orjson

from clickstream_schema import ClickEvent

COLUMNS = (
    "session_id", "user_id", "total_events", "event_type_counts", "first_event_timestamp",
    "last_event_timestamp", "session_duration_minutes", "unique_pages_count", "unique_pages",
    "total_revenue", "products_viewed_count", "products_viewed", "search_queries",
    "unique_referrers_count", "referrers", "user_agent", "ip_address", "entry_page",
    "exit_page", "page_view_count", "bounced", "converted", "device_type", "country",
)  # fmt: skip


def expected_rows(events_in_consumption_order: Iterable[ClickEvent]) -> dict[str, dict[str, Any]]:
    """Dedupe by event_id (first consumed wins), then one row per session."""
    seen: set[object] = set()
    by_session: dict[str, list[ClickEvent]] = defaultdict(list)
    for event in events_in_consumption_order:
        if event.event_id in seen:
            continue
        seen.add(event.event_id)
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
        "search_queries": [e.search_query for e in events if e.search_query is not None],
        "unique_referrers_count": len(referrers),
        "referrers": referrers,
        "user_agent": earliest.user_agent,
        "ip_address": str(earliest.ip_address),
        "entry_page": earliest.page_url,
        "exit_page": latest.page_url,
        "page_view_count": page_views,
        "bounced": page_views <= 1,
        "converted": counts.get("purchase", 0) > 0,
        "device_type": earliest.device_type.value,
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
