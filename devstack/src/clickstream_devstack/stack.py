"""``clickstream-stack``: the embedded broker and PostgreSQL, for running services by hand.

Starts both servers in ``.stack/`` (fresh each time: the broker keeps nothing on
disk, so old offsets in PostgreSQL would not match it), creates the topics and
the ``clickstream`` database, prints the variables to export, and stops both on
Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import time
from contextlib import ExitStack
from pathlib import Path

from clickstream_devstack.broker import EmbeddedKafka
from clickstream_devstack.environment import EVENTS_PARTITIONS, Database, KafkaTopics, create_topics
from clickstream_devstack.interrupts import Interrupts
from clickstream_devstack.postgres import EmbeddedPostgres
from clickstream_runtime import logs
from clickstream_schema import CONSUMER_GROUP, DLQ_TOPIC, EVENTS_TOPIC

DATABASE = "clickstream"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="clickstream-stack", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path(".stack"), help="work directory")
    parser.add_argument("--kafka-port", type=int, default=None, help="default: a free port")
    parser.add_argument("--postgres-port", type=int, default=None, help="default: a free port")
    parser.add_argument("--partitions", type=int, default=EVENTS_PARTITIONS)
    parser.add_argument("--durable", action="store_true", help="keep fsync on in PostgreSQL")
    return parser.parse_args(argv)


def exports(kafka: EmbeddedKafka, topics: KafkaTopics, database: Database) -> str:
    variables = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
        **topics.env(),
        **database.env,
    }
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in variables.items())


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logs.configure("clickstream-stack", fmt="console")
    Interrupts().install()
    work_dir: Path = args.dir.absolute()
    shutil.rmtree(work_dir, ignore_errors=True)
    topics = KafkaTopics(EVENTS_TOPIC, DLQ_TOPIC, CONSUMER_GROUP, partitions=args.partitions)
    try:
        with ExitStack() as servers:
            kafka = servers.enter_context(EmbeddedKafka(work_dir / "kafka", port=args.kafka_port))
            postgres = servers.enter_context(
                EmbeddedPostgres(
                    work_dir / "postgres", port=args.postgres_port, durable=args.durable
                )
            )
            postgres.create_database(DATABASE)
            create_topics(kafka, topics)
            env_file = work_dir / "env"
            env_file.write_text(exports(kafka, topics, Database.on(postgres, DATABASE)))
            print(f"\n# the stack is up; in another shell:  source {env_file}\n")
            print(env_file.read_text())
            print(f"# logs: {kafka.log_path}  {postgres.log_path}")
            print("# Ctrl-C stops both servers", flush=True)
            while kafka.running and postgres.running:
                time.sleep(0.5)  # idle until a signal arrives; wakes to notice a crash
            crashed = "broker" if not kafka.running else "PostgreSQL"
            print(f"error: the {crashed} stopped unexpectedly; see the logs in {work_dir}")
            return 1
    except KeyboardInterrupt:
        print("\nstopped", flush=True)
        return 0  # Ctrl-C is how this command is meant to end
