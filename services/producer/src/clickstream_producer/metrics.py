"""The producer's Prometheus metrics and readiness, on a registry of its own.

Readiness has one condition, ``kafka``: true once the client has started and
knows the topic's partitions, false when a batch could not be delivered. The
producer does not retry on its own (aiokafka retries retriable errors, then the
delivery policy is "stop"), so there is no retry streak to report: a failed
delivery is final and the process is about to exit with the error.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from clickstream_runtime.health import Readiness
from clickstream_runtime.metrics import create_registry

_NS = "clickstream_producer"

#: The one readiness condition of the producer.
KAFKA = "kafka"


@dataclass(frozen=True)
class ProducerMetrics:
    registry: CollectorRegistry
    readiness: Readiness
    produced: Counter
    acknowledged: Counter
    failed: Counter
    batches: Counter
    batch_size: Histogram
    rate: Gauge

    @classmethod
    def create(cls, readiness: Readiness | None = None) -> ProducerMetrics:
        readiness = readiness if readiness is not None else Readiness((KAFKA,))
        r = create_registry("producer", version("clickstream-producer"), readiness)
        return cls(
            registry=r,
            readiness=readiness,
            produced=Counter(
                f"{_NS}_events_produced",
                "Events generated and handed to the publisher",
                registry=r,
            ),
            acknowledged=Counter(
                f"{_NS}_events_acknowledged", "Events the broker acknowledged", registry=r
            ),
            failed=Counter(
                f"{_NS}_events_failed",
                "Events whose batch could not be delivered, by error class",
                ["error"],
                registry=r,
            ),
            batches=Counter(
                f"{_NS}_send_batches", "Record batches handed to the Kafka client", registry=r
            ),
            batch_size=Histogram(
                f"{_NS}_send_batch_size",
                "Records per batch handed to the Kafka client",
                buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000, 20000, 50000),
                registry=r,
            ),
            rate=Gauge(
                f"{_NS}_rate_events_per_second",
                "Achieved rate (events/s) over the interval of the last progress line",
                registry=r,
            ),
        )

    def batch_sent(self, records: int) -> None:
        """A batch of ``records`` was handed to the Kafka client."""
        self.batches.inc()
        self.batch_size.observe(records)

    def delivery_failed(self, records: int, error: BaseException) -> None:
        """A batch is lost for good: count its records and stop reporting ready."""
        self.failed.labels(error=type(error).__name__).inc(records)
        self.readiness.set(KAFKA, False, f"delivery failed: {error!r}")
