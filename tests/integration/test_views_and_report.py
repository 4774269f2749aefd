"""Analytics views against hand-computed numbers, and the report's JSON against the views.

Five crafted sessions (two devices per hour, an open-funnel session that buys
without a product page, a repeated product page with a query string) are
inserted straight into session_metrics; every expected number below was
worked out by hand from them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib import resources
from ipaddress import ip_address
from typing import Any

import asyncpg
import pytest

from clickstream_aggregator.migrate import migrate
from clickstream_aggregator.report.main import Options, ReportSettings, run
from clickstream_aggregator.report.render import to_json
from clickstream_aggregator.rows import COUNTED_TYPES
from clickstream_runtime.settings import load

pytestmark = pytest.mark.integration

SHOP = "https://shop.example.com"
T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def session(
    sid: str,
    *,
    device: str,
    start_min: float,
    duration: float,
    events: int,
    counts: dict[str, int],
    pages: list[str],
    revenue: str,
    bounced: bool,
) -> tuple[Any, ...]:
    first = T0 + timedelta(minutes=start_min)
    urls = [SHOP + p for p in pages]
    # bounced, converted, the durations and the counts are generated columns;
    # the crafted flag must agree with what PostgreSQL derives.
    assert bounced == (counts.get("page_view", 0) <= 1)
    return (
        sid, f"user-{sid}", events, first, first + timedelta(minutes=duration),
        json.dumps(urls), Decimal(revenue), "[]", "[]", "[]", "Mozilla/5.0",
        ip_address("10.0.0.1"), urls[0], urls[-1], device, "DE",
        *(counts.get(t, 0) for t in COUNTED_TYPES),
    )  # fmt: skip


SESSIONS = [
    session("s1", device="desktop", start_min=5, duration=15, events=5,
            counts={"page_view": 3, "add_to_cart": 1, "purchase": 1},
            pages=["/", "/product/7", "/checkout"], revenue="42.50", bounced=False),
    session("s2", device="mobile", start_min=40, duration=0, events=1,
            counts={"page_view": 1}, pages=["/"], revenue="0.00", bounced=True),
    session("s3", device="mobile", start_min=70, duration=6, events=4,
            counts={"page_view": 3, "add_to_cart": 1},
            pages=["/category/shoes", "/product/9", "/product/9?ref=mail", "/cart"],
            revenue="0.00", bounced=False),
    session("s4", device="tablet", start_min=110, duration=1.5, events=2,
            counts={"page_view": 2}, pages=["/search?q=red+shoes", "/product/9"],
            revenue="0.00", bounced=False),
    # Buys straight from a bookmarked /checkout: counted by the open funnel without a product page.
    session("s5", device="desktop", start_min=120, duration=3, events=3,
            counts={"page_view": 1, "purchase": 2}, pages=["/checkout"], revenue="100.00",
            bounced=True),
]  # fmt: skip

INSERT_SESSION = """
INSERT INTO session_metrics (
    session_id, user_id, total_events, first_event_timestamp, last_event_timestamp,
    unique_pages, total_revenue, products_viewed, search_queries, referrers,
    user_agent, ip_address, entry_page, exit_page, device_type, country,
    page_view_count, click_count, scroll_count, hover_count, add_to_cart_count,
    search_count, login_count, purchase_count, share_count
) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8::jsonb, $9::jsonb, $10::jsonb, $11, $12,
          $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25)
"""

INSERT_DEAD_LETTER = """
INSERT INTO dead_letters (source_topic, source_partition, source_offset, reason, error_class,
                          error_message, relayed_at)
VALUES ('clickstream-events', 0, $1, $2, 'InvalidEvent', 'crafted', $3)
"""


@pytest.fixture
async def conn(database: Any) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database.dsn)
    await migrate(connection)
    await connection.executemany(INSERT_SESSION, SESSIONS)
    await connection.executemany(
        INSERT_DEAD_LETTER,
        [(1, "not_json", T0), (2, "not_json", None), (3, "schema", None)],
    )
    yield connection
    await connection.close()


async def rows(conn: asyncpg.Connection, query: str) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(query)]


def D(value: str) -> Decimal:
    return Decimal(value)


async def test_funnel_counts_each_step_and_step_to_step_conversion(
    conn: asyncpg.Connection,
) -> None:
    got = await rows(conn, "SELECT * FROM session_funnel ORDER BY step_order")
    assert [(r["step"], r["sessions"], r["share_of_sessions"], r["conversion_from_previous"])
            for r in got] == [
        ("page_view", 5, D("1.0000"), None),
        ("product_page", 3, D("0.6000"), D("0.6000")),
        ("add_to_cart", 2, D("0.4000"), D("0.6667")),
        ("checkout", 2, D("0.4000"), D("1.0000")),
        ("purchase", 2, D("0.4000"), D("1.0000")),
    ]  # fmt: skip


async def test_hourly_traffic_buckets_sessions_by_utc_start_hour(conn: asyncpg.Connection) -> None:
    await conn.execute("SET TIME ZONE 'Asia/Kolkata'")  # a half-hour offset must not move buckets
    got = await rows(conn, "SELECT * FROM hourly_traffic ORDER BY hour")
    assert got == [
        {"hour": T0, "sessions": 2, "events": 6, "revenue": D("42.50"),
         "conversion_rate": D("0.5000"), "bounce_rate": D("0.5000")},
        {"hour": T0 + timedelta(hours=1), "sessions": 2, "events": 6, "revenue": D("0.00"),
         "conversion_rate": D("0.0000"), "bounce_rate": D("0.0000")},
        {"hour": T0 + timedelta(hours=2), "sessions": 1, "events": 3, "revenue": D("100.00"),
         "conversion_rate": D("1.0000"), "bounce_rate": D("1.0000")},
    ]  # fmt: skip


async def test_top_pages_counts_sessions_per_path(conn: asyncpg.Connection) -> None:
    got = {r.pop("page"): r for r in await rows(conn, "SELECT * FROM top_pages")}
    expected = {
        # page: (views, entries, exits, bounce_rate, exit_rate)
        "/": (2, 2, 1, D("0.5000"), D("0.5000")),
        "/product/7": (1, 0, 0, None, D("0.0000")),
        "/product/9": (2, 0, 1, None, D("0.5000")),  # s3 twice (query string) counts once
        "/checkout": (2, 1, 2, D("1.0000"), D("1.0000")),
        "/category/shoes": (1, 1, 0, D("0.0000"), D("0.0000")),
        "/cart": (1, 0, 1, None, D("1.0000")),
        "/search": (1, 1, 0, D("0.0000"), D("0.0000")),
    }
    assert {page: tuple(r.values()) for page, r in got.items()} == expected


async def test_device_summary(conn: asyncpg.Connection) -> None:
    got = await rows(conn, "SELECT * FROM device_summary ORDER BY device_type")
    assert [tuple(r.values()) for r in got] == [
        ("desktop", 2, D("4.00"), D("9.00"), D("1.0000"), D("142.50")),
        ("mobile", 2, D("2.50"), D("3.00"), D("0.0000"), D("0.00")),
        ("tablet", 1, D("2.00"), D("1.50"), D("0.0000"), D("0.00")),
    ]


async def test_the_design_documents_queries_still_work(conn: asyncpg.Connection) -> None:
    latest = await rows(conn, """
        SELECT session_id, user_id, total_events, session_duration_minutes, total_revenue,
               event_type_counts
        FROM session_metrics ORDER BY last_event_timestamp DESC LIMIT 10;
    """)  # fmt: skip
    assert [r["session_id"] for r in latest] == ["s5", "s4", "s3", "s2", "s1"]
    totals = await conn.fetchrow("""
        SELECT COUNT(*) as total_sessions, AVG(total_events) as avg_events_per_session,
               SUM(total_revenue) as total_revenue,
               AVG(session_duration_minutes) as avg_session_duration
        FROM session_metrics;
    """)  # fmt: skip
    assert totals is not None
    assert dict(totals) == {
        "total_sessions": 5,
        "avg_events_per_session": D("3"),
        "total_revenue": D("142.50"),
        "avg_session_duration": pytest.approx(5.1),
    }


async def test_views_migration_is_idempotent(conn: asyncpg.Connection) -> None:
    folder = resources.files("clickstream_aggregator") / "migrations"
    sql = (folder / "0010_analytics_views.sql").read_text(encoding="utf-8")
    await conn.execute(sql)
    await conn.execute(sql)
    assert (await conn.fetchval("SELECT count(*) FROM top_pages")) == 7


def as_json(value: Any) -> Any:
    """A view row as JSON shows it: NUMERIC as numbers, times as ISO 8601."""
    if isinstance(value, list):
        return [as_json(v) for v in value]
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


async def test_report_json_equals_the_views(
    conn: asyncpg.Connection, database: Any, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    for name, value in database.env.items():
        monkeypatch.setenv(name, value)
    settings = load(ReportSettings)
    await run(settings, asyncio.Event(), Options(json=True))
    document = json.loads(capsys.readouterr().out)

    assert document["totals"] == {
        "total_sessions": 5,
        "avg_events_per_session": 3.0,
        "total_revenue": 142.5,
        "avg_session_duration": pytest.approx(5.1),
    }
    assert [r["session_id"] for r in document["latest_sessions"]] == ["s5", "s4", "s3", "s2", "s1"]
    assert document["latest_sessions"][0]["event_type_counts"] == {"page_view": 1, "purchase": 2}
    views = {
        "funnel": "SELECT * FROM session_funnel ORDER BY step_order",
        "hourly_traffic": "SELECT * FROM hourly_traffic ORDER BY hour",
        "device_summary": "SELECT * FROM device_summary ORDER BY sessions DESC, device_type",
        "top_pages": "SELECT * FROM top_pages ORDER BY views DESC, entries DESC, page",
    }
    for section, query in views.items():
        assert document[section] == as_json(await rows(conn, query)), section
    assert [(r["reason"], r["messages"], r["not_relayed"]) for r in document["dead_letters"]] == [
        ("not_json", 2, 1),
        ("schema", 1, 1),
    ]
    assert isinstance(document["funnel"][1]["share_of_sessions"], float)


async def test_report_renders_tables(
    conn: asyncpg.Connection, database: Any, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    for name, value in database.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("COLUMNS", "160")
    await run(load(ReportSettings), asyncio.Event(), Options())
    out = capsys.readouterr().out
    for title in ("Totals", "Latest sessions", "Funnel", "Top pages", "Hourly traffic",
                  "Devices", "Dead-lettered messages"):  # fmt: skip
        assert title in out
    assert "$142.50" in out
    assert "66.7%" in out  # product page -> add to cart


def test_to_json_keeps_numbers_as_numbers() -> None:
    from clickstream_aggregator.report.queries import Report

    report = Report(
        totals={"total_sessions": 0, "total_revenue": None},
        latest_sessions=[], funnel=[{"rate": D("0.6667"), "revenue": D("12.00")}],
        top_pages=[], hourly_traffic=[{"hour": T0, "events": D("7")}], device_summary=[],
    )  # fmt: skip
    document = json.loads(to_json(report))
    assert document["funnel"] == [{"rate": 0.6667, "revenue": 12.0}]
    assert document["hourly_traffic"] == [{"hour": "2024-05-01T10:00:00+00:00", "events": 7}]


async def test_watch_refreshes_until_stopped(
    conn: asyncpg.Connection,
    database: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in database.env.items():
        monkeypatch.setenv(name, value)
    stop = asyncio.Event()
    stop.set()  # Ctrl-C already pressed: one refresh, then a clean return
    await run(load(ReportSettings), stop, Options(json=True, watch_s=3600))
    [document] = capsys.readouterr().out.splitlines()
    assert json.loads(document)["totals"]["total_sessions"] == 5
