"""``clickstream-stack``: the embedded broker and PostgreSQL, for running services by hand.

Starts both servers in ``.stack/`` (fresh each time: the broker keeps nothing on
disk, so old offsets in PostgreSQL would not match it), creates the topics and
the ``clickstream`` database, prints the variables to export, and stops both on
Ctrl-C or SIGTERM. With ``--real``, Apache Kafka, Kafka Connect and OpenSearch
(from Maven Central, cached in ``.cache/jvm``; Java 17+ needed) replace the
embedded broker, beside the same PostgreSQL, and the command lines of Kafka's own
group, topic and console tools are printed too. ``--real --brokers 3`` runs
Apache Kafka as a replicated cluster of three KRaft nodes (topics with
replication 3 and ``min.insync.replicas=2``, as on a managed service).
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import shutil
import time
from contextlib import ExitStack
from pathlib import Path

from clickstream_devstack.environment import EVENTS_PARTITIONS, Database, KafkaTopics
from clickstream_devstack.interrupts import Interrupts
from clickstream_devstack.servers.broker import EmbeddedKafka
from clickstream_devstack.servers.child_server import ChildServer
from clickstream_devstack.servers.jvm import kafka_tools
from clickstream_devstack.servers.jvm.artifacts import JvmUnavailableError
from clickstream_devstack.servers.jvm.connect import KafkaConnect
from clickstream_devstack.servers.jvm.kafka import ApacheKafka
from clickstream_devstack.servers.jvm.kafka_cluster import REPLICATION, KafkaCluster
from clickstream_devstack.servers.jvm.opensearch import OpenSearch
from clickstream_devstack.servers.postgres import EmbeddedPostgres
from clickstream_ops.setup.kafka import ensure_topics
from clickstream_runtime import logs
from clickstream_schema import CONSUMER_GROUP, DLQ_TOPIC, EVENTS_TOPIC

DATABASE = "clickstream"

Broker = EmbeddedKafka | ApacheKafka | KafkaCluster


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
    parser.add_argument(
        "--brokers",
        type=int,
        choices=(1, 3),
        default=1,
        help="with --real: 3 runs a replicated cluster of three KRaft nodes",
    )
    args = parser.parse_args(argv)
    if args.brokers != 1 and not args.real:
        parser.error("--brokers needs --real (the embedded broker is a single node)")
    if args.brokers != 1 and args.kafka_port is not None:
        parser.error("--kafka-port names one broker; the cluster's nodes pick free ports")
    return args


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
    if isinstance(kafka, KafkaCluster):
        # What a replicated cluster is for: clickstream-setup creates topics with
        # replication 3, and the producer waits for the in-sync replicas.
        variables.update(
            {
                "KAFKA_TOPIC_REPLICATION": str(REPLICATION),
                "KAFKA_ENABLE_IDEMPOTENCE": "true",
                "KAFKA_ACKS": "all",
            }
        )
    if opensearch is not None:
        variables.update(opensearch.env)
    lines = [f"export {name}={shlex.quote(value)}\n" for name, value in variables.items()]
    if connect is not None:
        lines.append(f"# Kafka Connect REST API: {connect.url}\n")
    return "".join(lines)


def _create_topics(kafka: Broker, topics: KafkaTopics) -> None:
    if isinstance(kafka, KafkaCluster):
        asyncio.run(kafka.create_topics(topics.partition_counts()))
    else:
        asyncio.run(ensure_topics(kafka.client_options(), topics.partition_counts()))


def _start_real(
    servers: ExitStack, work_dir: Path, port: int | None, brokers: int
) -> tuple[ApacheKafka | KafkaCluster, KafkaConnect, OpenSearch]:
    kafka: ApacheKafka | KafkaCluster
    if brokers == 1:
        requested = {"plaintext": port} if port else None
        kafka = servers.enter_context(ApacheKafka(work_dir / "kafka", ports=requested))
        first = kafka
    else:
        kafka = servers.enter_context(KafkaCluster(work_dir / "kafka", nodes=brokers))
        # Connect bootstraps from one node and learns the others from it.
        first = kafka.nodes[1]
    connect = servers.enter_context(KafkaConnect(work_dir / "connect", first))
    opensearch = servers.enter_context(OpenSearch(work_dir / "opensearch"))
    return kafka, connect, opensearch


def tool_lines(kafka: ApacheKafka | KafkaCluster, topics: KafkaTopics) -> str:
    """Kafka's group, topic and console tools against this stack, ready to paste."""
    node = kafka.nodes[1] if isinstance(kafka, KafkaCluster) else kafka
    return kafka_tools.examples(
        kafka.bootstrap,
        topics.events,
        topics.group,
        install=node.install,
        java=node.java.executable,
    )


def _kafka_logs(kafka: Broker) -> list[Path]:
    return kafka.log_paths if isinstance(kafka, KafkaCluster) else [kafka.log_path]


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
            real: ApacheKafka | KafkaCluster | None = None
            if args.real:
                real, connect, opensearch = _start_real(
                    servers, work_dir, args.kafka_port, args.brokers
                )
                kafka = real
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
            running: list[ChildServer | KafkaCluster] = [kafka, postgres]
            running += [server for server in (connect, opensearch) if server is not None]
            print(f"\n# the stack is up; in another shell:  source {env_file}\n")
            print(env_file.read_text())
            if real is not None:
                print("# Kafka's own tools (kafka-tools, from the cached jars):")
                print(tool_lines(real, topics))
            log_files = [*_kafka_logs(kafka)]
            log_files += [server.log_path for server in running if server is not kafka]
            print("# logs: " + "  ".join(str(path) for path in log_files))
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
