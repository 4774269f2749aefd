"""``clickstream-stack``: the embedded broker and PostgreSQL, for running services by hand.

Starts both servers in ``.stack/`` (fresh each time: the broker keeps nothing on
disk, so old offsets in PostgreSQL would not match it), creates the topics and
the ``clickstream`` database, prints the variables to export, and stops both on
Ctrl-C or SIGTERM. With ``--real``, Apache Kafka, Kafka Connect and OpenSearch
(from Maven Central, cached in ``.cache/jvm``; Java 17+ needed) replace the
embedded broker, beside the same PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import shutil
import time
from contextlib import ExitStack
from pathlib import Path

from clickstream_devstack.broker import EmbeddedKafka
from clickstream_devstack.environment import EVENTS_PARTITIONS, Database, KafkaTopics
from clickstream_devstack.interrupts import Interrupts
from clickstream_devstack.jvm.artifacts import JvmUnavailableError
from clickstream_devstack.jvm.connect import KafkaConnect
from clickstream_devstack.jvm.kafka import ApacheKafka
from clickstream_devstack.jvm.opensearch import OpenSearch
from clickstream_devstack.postgres import EmbeddedPostgres
from clickstream_ops.setup.kafka import ensure_topics
from clickstream_runtime import logs
from clickstream_schema import CONSUMER_GROUP, DLQ_TOPIC, EVENTS_TOPIC

DATABASE = "clickstream"

Broker = EmbeddedKafka | ApacheKafka
Server = EmbeddedKafka | EmbeddedPostgres | ApacheKafka | KafkaConnect | OpenSearch


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="clickstream-stack", description=__doc__.splitlines()[0].replace("``", "")
    )
    parser.add_argument("--dir", type=Path, default=Path(".stack"), help="work directory")
    parser.add_argument("--kafka-port", type=int, default=None, help="default: a free port")
    parser.add_argument("--postgres-port", type=int, default=None, help="default: a free port")
    parser.add_argument("--partitions", type=int, default=EVENTS_PARTITIONS)
    parser.add_argument("--durable", action="store_true", help="keep fsync on in PostgreSQL")
    parser.add_argument(
        "--real",
        action="store_true",
        help="Apache Kafka, Kafka Connect and OpenSearch instead of the embedded broker",
    )
    return parser.parse_args(argv)


def exports(
    kafka: Broker,
    topics: KafkaTopics,
    database: Database,
    *,
    connect: KafkaConnect | None = None,
    opensearch: OpenSearch | None = None,
) -> str:
    variables = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
        **topics.env(),
        **database.env,
    }
    if opensearch is not None:
        variables.update(opensearch.env)
    lines = [f"export {name}={shlex.quote(value)}\n" for name, value in variables.items()]
    if connect is not None:
        lines.append(f"# Kafka Connect REST API: {connect.url}\n")
    return "".join(lines)


def _create_topics(kafka: Broker, topics: KafkaTopics) -> None:
    asyncio.run(ensure_topics(kafka.client_options(), topics.partition_counts()))


def _start_real(
    servers: ExitStack, work_dir: Path, port: int | None
) -> tuple[ApacheKafka, KafkaConnect, OpenSearch]:
    requested = {"plaintext": port} if port else None
    kafka = servers.enter_context(ApacheKafka(work_dir / "kafka", ports=requested))
    connect = servers.enter_context(KafkaConnect(work_dir / "connect", kafka))
    opensearch = servers.enter_context(OpenSearch(work_dir / "opensearch"))
    return kafka, connect, opensearch


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logs.configure("clickstream-stack", fmt="console")
    Interrupts().install()
    work_dir: Path = args.dir.absolute()
    shutil.rmtree(work_dir, ignore_errors=True)
    topics = KafkaTopics(EVENTS_TOPIC, DLQ_TOPIC, CONSUMER_GROUP, partitions=args.partitions)
    try:
        with ExitStack() as servers:
            kafka: Broker
            connect: KafkaConnect | None = None
            opensearch: OpenSearch | None = None
            if args.real:
                kafka, connect, opensearch = _start_real(servers, work_dir, args.kafka_port)
            else:
                kafka = servers.enter_context(
                    EmbeddedKafka(work_dir / "kafka", port=args.kafka_port)
                )
            postgres = servers.enter_context(
                EmbeddedPostgres(
                    work_dir / "postgres", port=args.postgres_port, durable=args.durable
                )
            )
            postgres.create_database(DATABASE)
            _create_topics(kafka, topics)
            env_file = work_dir / "env"
            env_file.write_text(
                exports(
                    kafka,
                    topics,
                    Database.on(postgres, DATABASE),
                    connect=connect,
                    opensearch=opensearch,
                )
            )
            running: list[Server] = [kafka, postgres]
            running += [server for server in (connect, opensearch) if server is not None]
            print(f"\n# the stack is up; in another shell:  source {env_file}\n")
            print(env_file.read_text())
            print("# logs: " + "  ".join(str(server.log_path) for server in running))
            print("# Ctrl-C stops every server", flush=True)
            while all(server.running for server in running):
                time.sleep(0.5)  # idle until a signal arrives; wakes to notice a crash
            crashed = next(server for server in running if not server.running)
            print(f"error: {crashed.log_path.name} says why a server stopped; see {work_dir}")
            return 1
    except JvmUnavailableError as error:
        print(f"error: --real needs Java and the JVM servers: {error}")
        return 2
    except KeyboardInterrupt:
        print("\nstopped", flush=True)
        return 0  # Ctrl-C is how this command is meant to end
