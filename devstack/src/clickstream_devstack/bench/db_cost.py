"""What one event costs PostgreSQL: WAL bytes and server CPU per event of the batch transactions.

``python -m clickstream_devstack.bench.db_cost [--events N]`` generates events
the way the bench's backfill does (10,000 users, 500 concurrent sessions, keyed
onto 6 partitions), prepares them in batches of up to 10,000 records (the
aggregator's default), and only then commits each batch with the aggregator's
own transaction (:class:`~clickstream_aggregator.transaction.BatchTransaction`)
against a fresh database on an embedded PostgreSQL (``fsync`` on). The figures
cover the transactions only: WAL is ``pg_current_wal_lsn`` after minus before,
CPU is the user and system time of every process of the PostgreSQL server
(backends, WAL writer, checkpointer...) after minus before.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import tempfile
import time
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import psutil

from clickstream_aggregator import repository as repo
from clickstream_aggregator.batch import Batch, Ready
from clickstream_aggregator.migrate import migrate
from clickstream_aggregator.prepare import prepare
from clickstream_aggregator.records import RawPartition
from clickstream_aggregator.transaction import BatchTransaction, Committed
from clickstream_devstack.servers.postgres import EmbeddedPostgres
from clickstream_producer.generator import EventGenerator
from clickstream_schema import encode

_TOPIC = "db-cost"
_GROUP = "db-cost"
_MAX_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class Cost:
    events: int
    batches: int
    sessions: int
    wal_bytes: int
    cpu_s: float
    #: CPU of this process meanwhile: the service's side of the transactions
    #: (encoding the parameters, the protocol), without preparing.
    client_cpu_s: float
    seconds: float
    #: The WAL's range, for ``pg_waldump``.
    wal_start: int
    wal_end: int

    def lines(self) -> list[str]:
        return [
            f"events {self.events:,} in {self.batches} batches, {self.sessions:,} sessions",
            f"WAL      {self.wal_bytes / self.events:8.1f} B/event ({self.wal_bytes:,} B)",
            f"PG CPU   {self.cpu_s * 1e6 / self.events:8.2f} us/event ({self.cpu_s:.2f} s)",
            f"client   {self.client_cpu_s * 1e6 / self.events:8.2f} us/event of CPU in the service",
            f"wall     {self.seconds * 1e6 / self.events:8.2f} us/event",
        ]


def _batches(events: int, partitions: int, batch_size: int) -> list[Batch]:
    start = datetime.now(UTC) - timedelta(hours=1)
    generator = EventGenerator(seed=7, users=10_000, concurrent_sessions=500, start=start)
    by_partition: dict[int, list[bytes]] = {p: [] for p in range(partitions)}
    for event in generator.next_batch(events):
        key, value = encode(event)
        by_partition[zlib.crc32(key or b"") % partitions].append(value)
    # A fetch takes each partition's next records, up to batch_size in all.
    cursors = dict.fromkeys(by_partition, 0)
    batches = []
    share = batch_size // partitions
    while any(cursors[p] < len(v) for p, v in by_partition.items()):
        raw = {}
        for p, values in by_partition.items():
            first = cursors[p]
            part = values[first : first + share]
            if part:
                n = len(part)
                raw[p] = RawPartition(
                    p, list(range(first, first + n)), [None] * n, list(part), [0] * n
                )
                cursors[p] = first + n
        batches.append(Batch(_TOPIC, raw))
    return batches


def _server_cpu(data_dir: Path) -> float:
    pid = int((data_dir / "postmaster.pid").read_text().split()[0])
    postmaster = psutil.Process(pid)
    total = 0.0
    for process in [postmaster, *postmaster.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


async def measure(dsn: str, data_dir: Path, events: int, batch_size: int) -> Cost:
    batches = _batches(events, 6, batch_size)
    ready = [Ready(b, prepare(_TOPIC, b.partitions(), _MAX_BYTES)) for b in batches]
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
            claims = await repo.claim_partitions(
                conn, _GROUP, _TOPIC, dict.fromkeys(range(6), 0), "x"
            )
            await conn.execute("CHECKPOINT")
            wal_before = await conn.fetchval("SELECT pg_current_wal_lsn()")
        epochs = {p: c.epoch for p, c in claims.items()}
        transaction = BatchTransaction(pool, _GROUP, _MAX_BYTES)
        cpu_before = _server_cpu(data_dir)
        started = time.perf_counter()
        client_before = time.process_time()
        applied = 0
        for r in ready:
            outcome = await transaction.attempt(r, epochs)
            assert isinstance(outcome, Committed), outcome
            applied += outcome.events
        seconds = time.perf_counter() - started
        client = time.process_time() - client_before
        cpu = _server_cpu(data_dir) - cpu_before
        async with pool.acquire() as conn:
            wal_after = await conn.fetchval("SELECT pg_current_wal_lsn()")
            wal = await conn.fetchval(
                "SELECT pg_wal_lsn_diff($1::text::pg_lsn, $2::text::pg_lsn)::bigint",
                _lsn(wal_after),
                _lsn(wal_before),
            )
            sessions = await conn.fetchval("SELECT count(*) FROM session_metrics")
    finally:
        await pool.close()
    return Cost(applied, len(batches), sessions, wal, cpu, client, seconds, wal_before, wal_after)


def _lsn(position: int) -> str:
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m clickstream_devstack.bench.db_cost")
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--waldump", action="store_true", help="WAL by record type (pg_waldump)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="db-cost-") as tmp:
        server = EmbeddedPostgres(Path(tmp) / "data").start()
        try:
            server.create_database("cost")
            cost = asyncio.run(
                measure(server.dsn("cost"), server.data_dir, args.events, args.batch)
            )
            if args.waldump:
                dump = server.binaries.path("pg_waldump")
                wal_dir = str(server.data_dir / "pg_wal")
                span = ["-s", _lsn(cost.wal_start), "-e", _lsn(cost.wal_end)]
                stats = subprocess.run(  # noqa: S603 - our own pg_waldump, fixed arguments
                    [str(dump), "-p", wal_dir, "--stats=record", *span],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                print(stats.stdout or stats.stderr)
        finally:
            server.stop()
    print("\n".join(cost.lines()))


if __name__ == "__main__":
    main()
