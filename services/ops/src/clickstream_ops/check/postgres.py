"""PostgreSQL: settings → files → DNS → TCP → TLS → login → schema → dead letters waiting."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg

from clickstream_ops.check.counting import check_recent_dead_letters
from clickstream_ops.check.dead_letters import check_dead_letters
from clickstream_ops.check.files import CertFile, check_files
from clickstream_ops.check.network import (
    check_dns,
    check_postgres_tls,
    check_tcp,
    unverified_context,
)
from clickstream_ops.check.results import Result, ServiceChecks
from clickstream_ops.check.settings import PostgresCheckSettings, Section
from clickstream_runtime.tls import TlsFileError, postgres_ssl_context
from clickstream_schema import CONSUMER_GROUP, EVENTS_TOPIC

STEPS = (
    "settings", "certificates", "dns", "tcp", "tls", "auth", "schema", "dead_letters", "counting",
)  # fmt: skip
VARIABLE = "POSTGRES_HOST"
_VERIFYING = ("verify-ca", "verify-full")
_TLS_REQUIRED = ("require", *_VERIFYING)

SCHEMA_QUERY = """
SELECT
    to_regclass('session_metrics') IS NOT NULL AS has_metrics,
    to_regclass('schema_migrations') IS NOT NULL AS has_migrations,
    to_regclass('consumer_offsets') IS NOT NULL AS has_offsets
"""
ROW_COUNT = "SELECT count(*) FROM session_metrics"
SCHEMA_VERSION = "SELECT max(version) FROM schema_migrations"
STORED_OFFSETS = """
SELECT partition, next_offset FROM consumer_offsets
WHERE group_id = $1 AND topic = $2 AND next_offset IS NOT NULL
"""


def _where(s: PostgresCheckSettings) -> str:
    return f"{s.postgres_host}:{s.postgres_port}/{s.postgres_database}"


async def check_postgres(
    section: Section[PostgresCheckSettings],
    wait_s: float,
    *,
    group: str = CONSUMER_GROUP,
    topic: str = EVENTS_TOPIC,
) -> list[Result]:
    """The steps of :data:`STEPS`; ``group``/``topic``: the aggregator's, for ``counting``."""
    checks = ServiceChecks("postgres", STEPS)
    await _run(checks, section, wait_s, group, topic)
    return checks.results()


async def _run(
    checks: ServiceChecks,
    section: Section[PostgresCheckSettings],
    wait_s: float,
    group: str,
    topic: str,
) -> None:
    s = section.settings
    if s is None:
        checks.fail("settings", section.error or "invalid", "fix the variable named")
        return
    checks.ok("settings", f"{_where(s)} as {s.postgres_user}, sslmode={s.postgres_sslmode}")
    if not await _reachable(checks, s, wait_s):
        return
    conn = await _login(checks, s, wait_s)
    if conn is None:
        return
    try:
        version = conn.get_server_version()
        checks.ok(
            "auth", f"logged in as {s.postgres_user} (server {version.major}.{version.minor})"
        )
        await _schema(checks, conn, wait_s)
        if not checks.blocked:
            await check_dead_letters(checks, conn, wait_s)
            await check_recent_dead_letters(checks, conn, wait_s, group, topic)
    finally:
        await conn.close()


async def _reachable(checks: ServiceChecks, s: PostgresCheckSettings, wait_s: float) -> bool:
    """Files, DNS, TCP and TLS, stopping at the first failure."""
    files = (
        [CertFile("POSTGRES_SSLROOTCERT", s.postgres_sslrootcert)] if s.postgres_sslrootcert else []
    )
    check_files(checks, files)
    return (
        not checks.blocked
        and await check_dns(checks, [s.postgres_host], VARIABLE)
        and await check_tcp(checks, [(s.postgres_host, s.postgres_port)], "POSTGRES_PORT", wait_s)
        and await _tls(checks, s, wait_s)
    )


async def _login(
    checks: ServiceChecks, s: PostgresCheckSettings, wait_s: float
) -> asyncpg.Connection | None:
    try:
        return await asyncpg.connect(**s.postgres_connect_options() | {"timeout": wait_s})
    except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError) as exc:
        checks.fail(
            "auth",
            f"login refused for {s.postgres_user}: {exc}",
            "check POSTGRES_USER and POSTGRES_PASSWORD (Aiven: avnadmin's password)",
        )
    except asyncpg.InvalidCatalogNameError as exc:
        checks.fail("auth", str(exc), "check POSTGRES_DATABASE (Aiven's default is defaultdb)")
    except (asyncpg.PostgresError, OSError, TimeoutError) as exc:
        checks.fail("auth", f"{type(exc).__name__}: {exc}", "see the message; check POSTGRES_*")
    return None


async def _tls(checks: ServiceChecks, s: PostgresCheckSettings, wait_s: float) -> bool:
    if s.postgres_sslmode == "disable":
        checks.skip("tls", "sslmode=disable: the connection is not encrypted")
        return True
    try:
        context = (
            postgres_ssl_context(
                s.postgres_sslrootcert, check_hostname=s.postgres_sslmode == "verify-full"
            )
            if s.postgres_sslmode in _VERIFYING and s.postgres_sslrootcert
            else unverified_context()
        )
    except TlsFileError as exc:
        checks.fail("tls", str(exc.code), "fix the file named")
        return False
    where = (s.postgres_host, s.postgres_port)
    offered = await check_postgres_tls(checks, *where, context, "POSTGRES_SSLROOTCERT", wait_s)
    if offered is None:
        if s.postgres_sslmode in _TLS_REQUIRED:
            checks.fail(
                "tls",
                f"the server offers no TLS, sslmode={s.postgres_sslmode} needs it",
                "enable ssl on the server or set POSTGRES_SSLMODE=prefer for a local one",
            )
            return False
        checks.skip("tls", f"the server offers no TLS (sslmode={s.postgres_sslmode}: unencrypted)")
        return True
    return offered


async def _schema(checks: ServiceChecks, conn: asyncpg.Connection, wait_s: float) -> None:
    present = await conn.fetchrow(SCHEMA_QUERY, timeout=wait_s)
    assert present is not None
    if not present["has_metrics"]:
        checks.fail(
            "schema",
            "table session_metrics does not exist",
            "start clickstream-aggregator once: it applies the migrations",
        )
        return
    rows = await conn.fetchval(ROW_COUNT, timeout=wait_s)
    version = (
        await conn.fetchval(SCHEMA_VERSION, timeout=wait_s) if present["has_migrations"] else None
    )
    checks.ok(
        "schema",
        f"session_metrics has {rows} row(s); schema version "
        f"{f'{version:04d}' if version is not None else 'unknown (no schema_migrations)'}",
    )


async def stored_offsets(
    section: Section[PostgresCheckSettings], wait_s: float, group: str, topic: str
) -> dict[int, int] | None:
    """The aggregator's own offsets for the Kafka lag check; None when not reachable."""
    s = section.settings
    if s is None:
        return None
    # Any failure here is already reported by the PostgreSQL checks themselves.
    with contextlib.suppress(asyncpg.PostgresError, OSError, TimeoutError, TlsFileError):
        async with asyncio.timeout(wait_s * 2):
            conn = await asyncpg.connect(**s.postgres_connect_options() | {"timeout": wait_s})
            try:
                present = await conn.fetchrow(SCHEMA_QUERY)
                if present is not None and present["has_offsets"]:
                    rows = await conn.fetch(STORED_OFFSETS, group, topic)
                    return {r["partition"]: r["next_offset"] for r in rows} or None
            finally:
                await conn.close()
    return None
