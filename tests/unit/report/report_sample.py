"""A made-up report, as fetch_report would return it, for rendering without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from clickstream_ops.report.queries import Report

NOW = datetime(2026, 12, 1, 15, 30, 12, tzinfo=UTC)
D = Decimal


def sample_report(
    *, pending: int = 0, oldest_age_s: float | None = None, refused: int = 0, rows: int = 10
) -> Report:
    hour0 = NOW.replace(minute=0, second=0) - timedelta(hours=23)
    minute0 = NOW.replace(second=0) - timedelta(minutes=59)
    steps = ["page_view", "product_page", "add_to_cart", "checkout", "purchase"]
    kpis: dict[str, Any] = {
        "sessions": 812, "events": 9_140, "revenue": D("10432.10"), "conversion_rate": D("0.0640"),
        "bounce_rate": D("0.3121"), "avg_events": D("11.26"), "avg_duration_minutes": D("6.40"),
    }  # fmt: skip
    return Report(
        generated_at=NOW,
        totals={
            "total_sessions": 900,
            "avg_events_per_session": D("11.1"),
            "total_revenue": D("10500.00"),
            "avg_session_duration": 6.1,
        },
        sessions={
            "finished": kpis,
            "active": {**kpis, "sessions": 88, "events": 410, "revenue": D("67.90")},
        },
        latest_finished_sessions=[
            {
                "session_id": f"sess-{i}",
                "user_id": f"user-{i}",
                "total_events": 7 + i,
                "session_duration_minutes": 3.5,
                "total_revenue": D("19.99") if i % 3 else D("0.00"),
                "event_type_counts": {"page_view": 4, "click": 3},
                "last_event_timestamp": NOW - timedelta(minutes=31 + i),
            }
            for i in range(rows)
        ],
        funnel=[
            {
                "step_order": n + 1,
                "step": step,
                "finished_sessions": 800 // (n + 1),
                "share_of_sessions": D("0.5"),
                "conversion_from_previous": None if n == 0 else D("0.5"),
                "active_sessions": 80 // (n + 1),
            }
            for n, step in enumerate(steps)
        ],
        top_pages=[
            {
                "page": f"/product/{i}",
                "views": 100 - i,
                "entries": 10,
                "exits": 9,
                "bounce_rate": D("0.2"),
                "exit_rate": D("0.09"),
                "active_views": 3,
            }
            for i in range(rows)
        ],
        hourly_traffic=[
            {
                "hour": hour0 + timedelta(hours=h),
                "sessions": 30 + h,
                "events": 300 + h,
                "finished_sessions": 30 + h,
                "revenue": D("123.45"),
                "conversion_rate": D("0.06"),
                "bounce_rate": D("0.3"),
                "active_sessions": 0,
                "active_revenue": D("0.00"),
            }
            for h in range(24)
            if h != 5  # an hour without sessions
        ],
        events_per_minute=[
            {"minute": minute0 + timedelta(minutes=m), "events": 60 * (m % 7)} for m in range(60)
        ],
        freshness_per_minute=[
            {
                "minute": minute0 + timedelta(minutes=m),
                "sessions": m % 2,
                "p50_seconds": 0.8 if m % 2 else None,
                "max_seconds": 2.5 if m % 2 else None,
            }
            for m in range(60)
        ],
        device_summary=[
            {
                "device_type": d,
                "sessions": 300,
                "finished_sessions": 270,
                "avg_events": D("11.00"),
                "avg_duration_minutes": D("6.00"),
                "conversion_rate": D("0.06"),
                "revenue": D("3477.37"),
                "active_sessions": 30,
                "active_revenue": D("22.63"),
            }
            for d in ("desktop", "mobile", "tablet")
        ],
        dead_letters=[
            {"reason": "not_json", "messages": 3, "not_relayed": pending, "latest": NOW},
        ],
        dead_letters_pending={
            "pending": pending,
            "refused": refused,
            "oldest": None if oldest_age_s is None else NOW - timedelta(seconds=oldest_age_s),
            "oldest_age_seconds": oldest_age_s,
        },
    )
