"""What the demo's modules share: options, outcome, errors, constants."""

from __future__ import annotations

from dataclasses import dataclass

from clickstream_devstack.demo.progress import Snapshot
from clickstream_ops.verify.report import Report

DATABASE = "clickstream"
POLL_S = 0.5


class DemoError(RuntimeError):
    """The demo cannot finish; the message says why and where the logs are."""


@dataclass(frozen=True)
class DemoOptions:
    duration: float
    rate: int
    seed: int
    replicas: int
    catch_up_timeout: float
    backfill: int = 0
    chaos: bool = False
    #: Apache Kafka and OpenSearch from Maven Central instead of the embedded broker
    real: bool = False


@dataclass(frozen=True)
class Outcome:
    snapshot: Snapshot
    live_events: int | None
    backfill_events: int | None
    verdict: Report | None = None
    #: under --chaos, what went wrong without being caused by the chaos: replicas
    #: that died on their own (each was started again), a catch-up that stalled
    problems: tuple[str, ...] = ()
