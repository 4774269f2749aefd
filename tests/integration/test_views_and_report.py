"""Analytics views against hand-computed numbers, and the report's JSON against the views.

Five crafted finished sessions (two devices per hour, an open-funnel session
that buys without a product page, a repeated product page with a query string)
and two active ones (events in the last minutes: one that has bought, one
that has just started) are inserted straight into session_metrics; every
expected number below was worked out by hand from them. KPIs are over the
finished five; the active two are counted apart.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib import resources
from ipaddress import ip_address
from typing import Any

import asyncpg
import pytest

from clickstream_aggregator.migrate import migrate
from clickstream_aggregator.session_columns import COUNTED_TYPES
from clickstream_ops.report.main import Options, ReportSettings, run
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
    t0: datetime = T0,
) -> tuple[Any, ...]:
    first = t0 + timedelta(minutes=start_min)
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


def active_sessions(now: datetime) -> list[tuple[Any, ...]]:
    """Two sessions with events in the last minutes of ``now`` (the database clock)."""
    return [
        # Has bought already: its revenue is "so far", not a finished session's result.
        session("a1", device="desktop", start_min=-10, duration=5, events=4,
                counts={"page_view": 2, "add_to_cart": 1, "purchase": 1},
                pages=["/", "/product/7", "/checkout"], revenue="5.00", bounced=False, t0=now),
        # Just started: one page view, not a bounce yet.
        session("a2", device="mobile", start_min=-1, duration=0, events=1,
                counts={"page_view": 1}, pages=["/"], revenue="0.00", bounced=True, t0=now),
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
    now = await connection.fetchval("SELECT now()")
    await connection.executemany(INSERT_SESSION, active_sessions(now))
    # Rows written 1.5 s and 0.5 s after the sessions' newest events (four
    # minutes apart, so never in the same minute); the finished sessions were
    # written long ago, outside any freshness window.
    await connection.execute(
        """
        UPDATE session_metrics SET updated_at = last_event_timestamp + CASE session_id
            WHEN 'a1' THEN interval '1.5 seconds' WHEN 'a2' THEN interval '0.5 seconds'
            ELSE interval '3 seconds' END
        """
    )
    # Applied event ids: three applied two minutes ago, one a year ago (outside the window).
    await connection.executemany(
        "INSERT INTO processed_events (event_id, applied_at) VALUES (gen_random_uuid(), $1)",
        [(now - timedelta(minutes=2),)] * 3 + [(now - timedelta(days=365),)],
    )
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


async def test_funnel_counts_finished_sessions_and_active_ones_apart(
    conn: asyncpg.Connection,
) -> None:
    got = await rows(conn, "SELECT * FROM session_funnel ORDER BY step_order")
    assert [tuple(r.values()) for r in got] == [
        # step_order, step, finished, share, from previous, active
        (1, "page_view", 5, D("1.0000"), None, 2),
        (2, "product_page", 3, D("0.6000"), D("0.6000"), 1),
        (3, "add_to_cart", 2, D("0.4000"), D("0.6667"), 1),
        (4, "checkout", 2, D("0.4000"), D("1.0000"), 1),
        (5, "purchase", 2, D("0.4000"), D("1.0000"), 1),
    ]


async def test_session_kpis_are_over_finished_sessions(conn: asyncpg.Connection) -> None:
    got = await rows(conn, "SELECT * FROM session_kpis")
    assert [tuple(r.values()) for r in got] == [
        # status, sessions, events, revenue, conversion, bounce, avg events, avg minutes
        ("finished", 5, 15, D("142.50"), D("0.4000"), D("0.4000"), D("3.00"), D("5.10")),
        ("active", 2, 5, D("5.00"), D("0.5000"), D("0.5000"), D("2.50"), D("2.50")),
    ]


async def test_session_kpis_of_an_empty_table_have_both_statuses(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute("DELETE FROM session_metrics")
    got = await rows(conn, "SELECT status, sessions, revenue, conversion_rate FROM session_kpis")
    assert got == [
        {"status": "finished", "sessions": 0, "revenue": D("0.00"), "conversion_rate": None},
        {"status": "active", "sessions": 0, "revenue": D("0.00"), "conversion_rate": None},
    ]


async def test_a_session_is_active_for_30_minutes_after_its_newest_event(
    conn: asyncpg.Connection,
) -> None:
    now = await conn.fetchval("SELECT now()")
    edge = [
        session(sid, device="desktop", start_min=-start, duration=0, events=1,
                counts={"page_view": 1}, pages=["/"], revenue="0.00", bounced=True, t0=now)
        for sid, start in (("quiet-29", 29), ("quiet-31", 31))
    ]  # fmt: skip
    await conn.executemany(INSERT_SESSION, edge)
    got = await rows(
        conn,
        "SELECT session_id, status, is_active FROM session_status ORDER BY session_id",
    )
    assert {r["session_id"]: (r["status"], r["is_active"]) for r in got} == {
        "a1": ("active", True),
        "a2": ("active", True),
        "quiet-29": ("active", True),
        "quiet-31": ("finished", False),
        **{f"s{i}": ("finished", False) for i in range(1, 6)},
    }


async def test_hourly_traffic_buckets_sessions_by_utc_start_hour(conn: asyncpg.Connection) -> None:
    await conn.execute("SET TIME ZONE 'Asia/Kolkata'")  # a half-hour offset must not move buckets
    got = await rows(conn, "SELECT * FROM hourly_traffic ORDER BY hour")
    finished, live = got[:3], got[3:]
    assert finished == [
        {"hour": T0, "sessions": 2, "events": 6, "finished_sessions": 2, "active_sessions": 0,
         "revenue": D("42.50"), "conversion_rate": D("0.5000"), "bounce_rate": D("0.5000"),
         "active_revenue": D("0.00")},
        {"hour": T0 + timedelta(hours=1), "sessions": 2, "events": 6, "finished_sessions": 2,
         "active_sessions": 0, "revenue": D("0.00"), "conversion_rate": D("0.0000"),
         "bounce_rate": D("0.0000"), "active_revenue": D("0.00")},
        {"hour": T0 + timedelta(hours=2), "sessions": 1, "events": 3, "finished_sessions": 1,
         "active_sessions": 0, "revenue": D("100.00"), "conversion_rate": D("1.0000"),
         "bounce_rate": D("1.0000"), "active_revenue": D("0.00")},
    ]  # fmt: skip
    # The live hour (or two, if the active sessions straddle an hour) has no
    # finished session: no rates and no revenue yet, only what is in progress.
    assert sum(r["active_sessions"] for r in live) == 2
    assert sum(r["active_revenue"] for r in live) == D("5.00")
    assert {(r["finished_sessions"], r["revenue"], r["conversion_rate"], r["bounce_rate"])
            for r in live} == {(0, D("0.00"), None, None)}  # fmt: skip


async def test_top_pages_counts_sessions_per_path(conn: asyncpg.Connection) -> None:
    got = {r.pop("page"): r for r in await rows(conn, "SELECT * FROM top_pages")}
    expected = {
        # page: (views, entries, exits, bounce_rate, exit_rate, active_views)
        "/": (2, 2, 1, D("0.5000"), D("0.5000"), 2),
        "/product/7": (1, 0, 0, None, D("0.0000"), 1),
        "/product/9": (2, 0, 1, None, D("0.5000"), 0),  # s3 twice (query string) counts once
        "/checkout": (2, 1, 2, D("1.0000"), D("1.0000"), 1),
        "/category/shoes": (1, 1, 0, D("0.0000"), D("0.0000"), 0),
        "/cart": (1, 0, 1, None, D("1.0000"), 0),
        "/search": (1, 1, 0, D("0.0000"), D("0.0000"), 0),
    }
    assert {page: tuple(r.values()) for page, r in got.items()} == expected


async def test_device_summary(conn: asyncpg.Connection) -> None:
    got = await rows(conn, "SELECT * FROM device_summary ORDER BY device_type")
    assert [tuple(r.values()) for r in got] == [
        # device, sessions, finished, avg events, avg minutes, conversion, revenue,
        # active, active revenue
        ("desktop", 3, 2, D("4.00"), D("9.00"), D("1.0000"), D("142.50"), 1, D("5.00")),
        ("mobile", 3, 2, D("2.50"), D("3.00"), D("0.0000"), D("0.00"), 1, D("0.00")),
        ("tablet", 1, 1, D("2.00"), D("1.50"), D("0.0000"), D("0.00"), 0, D("0.00")),
    ]


async def test_the_design_documents_queries_still_work(conn: asyncpg.Connection) -> None:
    latest = await rows(conn, """
        SELECT session_id, user_id, total_events, session_duration_minutes, total_revenue,
               event_type_counts
        FROM session_metrics ORDER BY last_event_timestamp DESC LIMIT 10;
    """)  # fmt: skip
    assert [r["session_id"] for r in latest] == ["a2", "a1", "s5", "s4", "s3", "s2", "s1"]
    totals = await conn.fetchrow("""
        SELECT COUNT(*) as total_sessions, AVG(total_events) as avg_events_per_session,
               SUM(total_revenue) as total_revenue,
               AVG(session_duration_minutes) as avg_session_duration
        FROM session_metrics;
    """)  # fmt: skip
    assert totals is not None
    assert dict(totals) == {
        "total_sessions": 7,
        "avg_events_per_session": pytest.approx(D(20) / 7),
        "total_revenue": D("147.50"),
        "avg_session_duration": pytest.approx((25.5 + 5) / 7),
    }


async def test_views_migrations_are_idempotent(conn: asyncpg.Connection) -> None:
    folder = resources.files("clickstream_aggregator") / "migrations"
    sql = (folder / "0011_session_status.sql").read_text(encoding="utf-8")
    await conn.execute(sql)
    await conn.execute(sql)
    assert (await conn.fetchval("SELECT count(*) FROM top_pages")) == 7
    assert (await conn.fetchval("SELECT count(*) FROM session_status WHERE is_active")) == 2


MONEY = re.compile(r"^-?[0-9]+\.[0-9]{2}$")


def as_json(value: Any, key: str | None = None) -> Any:
    """A view row as the report's JSON shows it: money as strings with two places,
    other NUMERIC as numbers, times as ISO 8601."""
    if isinstance(value, list):
        return [as_json(v) for v in value]
    if isinstance(value, dict):
        return {k: as_json(v, k) for k, v in value.items()}
    if isinstance(value, Decimal):
        return (
            f"{value:.2f}"
            if key in ("revenue", "active_revenue", "total_revenue")
            else float(value)
        )
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def money_fields(value: Any, key: str | None = None) -> list[tuple[str, Any]]:
    """Every (column, value) in the document whose column holds money."""
    if isinstance(value, list):
        return [found for v in value for found in money_fields(v, key)]
    if isinstance(value, dict):
        return [found for k, v in value.items() for found in money_fields(v, k)]
    return [(key, value)] if key is not None and "revenue" in key else []


@pytest.fixture
def report_env(
    conn: asyncpg.Connection, database: Any, monkeypatch: pytest.MonkeyPatch
) -> pytest.MonkeyPatch:
    """The report's environment points at this test's seeded database (``conn``)."""
    for name, value in database.env.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


async def report_json(capsys: pytest.CaptureFixture[str]) -> Any:
    """What ``clickstream-report --json`` prints (``report_env`` set its environment)."""
    await run(load(ReportSettings), asyncio.Event(), Options(json=True))
    return json.loads(capsys.readouterr().out)


async def test_report_json_equals_the_views(
    conn: asyncpg.Connection, report_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    document = await report_json(capsys)

    assert document["totals"] == {
        "total_sessions": 7,
        "avg_events_per_session": pytest.approx(20 / 7),
        "total_revenue": "147.50",
        "avg_session_duration": pytest.approx((25.5 + 5) / 7),
    }
    # Finished sessions only: a2 started a minute ago and is no result yet.
    assert [r["session_id"] for r in document["latest_finished_sessions"]] == [
        "s5", "s4", "s3", "s2", "s1"
    ]  # fmt: skip
    assert document["latest_finished_sessions"][0]["event_type_counts"] == {
        "page_view": 1,
        "purchase": 2,
    }
    assert document["sessions"]["finished"]["revenue"] == "142.50"
    assert document["sessions"]["active"]["revenue"] == "5.00"
    assert document["sessions"]["active"]["sessions"] == 2
    views = {
        "funnel": "SELECT * FROM session_funnel ORDER BY step_order",
        "hourly_traffic": "SELECT * FROM hourly_traffic ORDER BY hour",
        "device_summary": "SELECT * FROM device_summary ORDER BY sessions DESC, device_type",
        "top_pages": "SELECT * FROM top_pages ORDER BY views DESC, entries DESC, "
        "active_views DESC, page",
    }
    for section, query in views.items():
        assert document[section] == as_json(await rows(conn, query)), section
    assert [(r["reason"], r["messages"], r["not_relayed"]) for r in document["dead_letters"]] == [
        ("not_json", 2, 1),
        ("schema", 1, 1),
    ]
    pending = document["dead_letters_pending"]
    assert (pending["pending"], pending["refused"]) == (2, 0)
    assert 0 <= pending["oldest_age_seconds"] < 600
    # Events per minute: every minute of the window, the three recent events in one of them.
    per_minute = document["events_per_minute"]
    assert len(per_minute) == 60
    assert sorted(r["events"] for r in per_minute)[-2:] == [0, 3]
    # Freshness: the two sessions written in the window, 1.5 s and 0.5 s after their events.
    written = [r for r in document["freshness_per_minute"] if r["sessions"]]
    assert sorted((r["p50_seconds"], r["max_seconds"]) for r in written) == [
        (0.5, 0.5),
        (1.5, 1.5),
    ]


async def test_dead_letters_refused_by_kafka_are_counted_apart(
    conn: asyncpg.Connection, report_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    await conn.execute(
        "UPDATE dead_letters SET relay_attempts = 2, created_at = now() - interval '2 hours'"
        " WHERE reason = 'schema'"
    )
    pending = (await report_json(capsys))["dead_letters_pending"]
    assert (pending["pending"], pending["refused"]) == (2, 1)
    assert 7200 <= pending["oldest_age_seconds"] < 7800


async def test_report_json_shape_and_money_as_exact_strings(
    report_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    document = await report_json(capsys)
    assert list(document) == [
        "generated_at", "active_after_minutes", "totals", "sessions",
        "latest_finished_sessions", "funnel", "top_pages", "hourly_traffic",
        "events_per_minute", "freshness_per_minute", "device_summary", "dead_letters",
        "dead_letters_pending",
    ]  # fmt: skip
    assert document["active_after_minutes"] == 30
    assert datetime.fromisoformat(document["generated_at"]).tzinfo is not None
    shapes = {
        "totals": {"total_sessions", "avg_events_per_session", "total_revenue",
                   "avg_session_duration"},
        "latest_finished_sessions": {"session_id", "user_id", "total_events",
                                     "session_duration_minutes", "total_revenue",
                                     "event_type_counts", "last_event_timestamp"},
        "funnel": {"step_order", "step", "finished_sessions", "share_of_sessions",
                   "conversion_from_previous", "active_sessions"},
        "top_pages": {"page", "views", "entries", "exits", "bounce_rate", "exit_rate",
                      "active_views"},
        "hourly_traffic": {"hour", "sessions", "events", "finished_sessions", "revenue",
                           "conversion_rate", "bounce_rate", "active_sessions",
                           "active_revenue"},
        "events_per_minute": {"minute", "events"},
        "freshness_per_minute": {"minute", "sessions", "p50_seconds", "max_seconds"},
        "device_summary": {"device_type", "sessions", "finished_sessions", "avg_events",
                           "avg_duration_minutes", "conversion_rate", "revenue",
                           "active_sessions", "active_revenue"},
        "dead_letters": {"reason", "messages", "not_relayed", "latest"},
        "dead_letters_pending": {"pending", "refused", "oldest", "oldest_age_seconds"},
    }  # fmt: skip
    for section, keys in shapes.items():
        value = document[section]
        for row in value if isinstance(value, list) else [value]:
            assert set(row) == keys, section
    assert set(document["sessions"]) == {"finished", "active"}
    for kpis in document["sessions"].values():
        assert set(kpis) == {"sessions", "events", "revenue", "conversion_rate", "bounce_rate",
                             "avg_events", "avg_duration_minutes"}  # fmt: skip
    found = money_fields(document)
    assert len(found) > 20
    assert all(isinstance(v, str) and MONEY.match(v) for _, v in found), found
    assert isinstance(document["funnel"][1]["share_of_sessions"], float)


async def test_report_renders_charts_and_tables(
    report_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    report_env.setenv("COLUMNS", "160")
    await run(load(ReportSettings), asyncio.Event(), Options())
    out = capsys.readouterr().out
    for title in ("Finished 5 sessions", "Active   2 sessions", "Events/min", "Freshness",
                  "Funnel, finished sessions", "Latest finished sessions", "Top pages",
                  "Hourly traffic", "Devices", "Dead-lettered messages",
                  "All sessions incl. active"):  # fmt: skip
        assert title in out, title
    assert "Dead letters pending relay: 2, oldest" in out
    assert "$142.50" in out  # finished revenue
    assert "revenue so far $5.00" in out  # active revenue, labelled as such
    assert "66.7%" in out  # product page -> add to cart
    assert "█" in out  # funnel bars


async def test_watch_refreshes_until_stopped(
    report_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stop = asyncio.Event()
    stop.set()  # Ctrl-C already pressed: one refresh, then a clean return
    await run(load(ReportSettings), stop, Options(json=True, watch_s=3600))
    [document] = capsys.readouterr().out.splitlines()
    assert json.loads(document)["totals"]["total_sessions"] == 7


async def test_watch_fits_the_terminal(
    report_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    report_env.setenv("COLUMNS", "100")
    report_env.setenv("LINES", "30")
    stop = asyncio.Event()
    stop.set()
    await run(load(ReportSettings), stop, Options(watch_s=3600))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) <= 29
    assert "Funnel, finished sessions" in "\n".join(lines)
    assert lines[-1].startswith("Left out to fit 30 lines:")
