"""Kafka's own operator tools, run from the jars the stack already fetched.

``kafka-consumer-groups.sh``, ``kafka-topics.sh`` and friends are thin shell
wrappers around classes of the ``kafka-tools`` artifact (fetched with the
servers, see ``devstack/maven/pom.xml``); this module builds the same command
lines with ``java -cp <libs>/*``, so an operator can run them against the dev
stack without a Kafka download, and tests can compare their output with ours.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path

from clickstream_devstack.servers.jvm import artifacts
from clickstream_devstack.servers.jvm.kafka import classpath

#: Shell script name -> main class (Kafka 3.9 and 4.x alike).
TOOLS = {
    "kafka-consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "kafka-topics": "org.apache.kafka.tools.TopicCommand",
    "kafka-console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "kafka-get-offsets": "org.apache.kafka.tools.GetOffsetShell",
}
#: A short-lived client: a small heap, no logging below warnings.
_OPTIONS = ("-Xmx256m", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")


def argv(tool: str, args: Sequence[str], *, install: Path, java: Path) -> list[str]:
    """The command line of ``tool`` (a key of :data:`TOOLS`) with ``args``."""
    return [str(java), *_OPTIONS, "-cp", classpath(install), TOOLS[tool], *args]


def run(
    tool: str, args: Sequence[str], *, install: Path | None = None, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run ``tool`` to completion; its output as text (``check=False``: read the code)."""
    command = argv(
        tool,
        args,
        install=install or artifacts.ensure("kafka"),
        java=artifacts.find_java().executable,
    )
    return subprocess.run(  # noqa: S603 - our own argv
        command, capture_output=True, text=True, check=False, timeout=timeout
    )


def examples(bootstrap: str, topic: str, group: str, *, install: Path, java: Path) -> str:
    """Ready-to-paste command lines of the group, topic and console tools (shell comments
    and commands), for ``clickstream-stack`` to print."""
    server = ["--bootstrap-server", bootstrap]
    lines = {
        "the aggregator group's offsets and lag (a mirror of PostgreSQL's consumer_offsets)": (
            "kafka-consumer-groups",
            [*server, "--describe", "--group", group],
        ),
        "partitions, leaders, replicas and in-sync replicas of the events topic": (
            "kafka-topics",
            [*server, "--describe", "--topic", topic],
        ),
        "the first ten events, with their keys": (
            "kafka-console-consumer",
            [
                *server,
                "--topic",
                topic,
                "--from-beginning",
                "--max-messages",
                "10",
                "--property",
                "print.key=true",
            ],
        ),
    }
    return "".join(
        f"# {what}:\n{shlex.join(argv(tool, args, install=install, java=java))}\n"
        for what, (tool, args) in lines.items()
    )
