"""A session's aggregate with plain attributes, for tests that write session rows themselves."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from clickstream_aggregator.aggregate import SessionAggregate
from clickstream_aggregator.session_columns import DISTINCT_SETS


def a_session(
    session_id: str, first: datetime, last: datetime, revenue: Decimal = Decimal(0)
) -> SessionAggregate:
    """One page view's worth of a session, between ``first`` and ``last``."""
    return SessionAggregate(
        session_id=session_id,
        user_id="u",
        first_ts=first,
        last_ts=last,
        user_agent="agent",
        ip_address="192.0.2.1",
        entry_page="https://example.com/",
        exit_page="https://example.com/",
        device_type="desktop",
        country=None,
        revenue=revenue,
        type_counts={"page_view": 1},
        sets=tuple(set() for _ in DISTINCT_SETS),
        search_queries=[],
    )
