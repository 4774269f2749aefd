"""The aggregator's Prometheus metrics, on a registry of its own."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from clickstream_runtime.health import Readiness
from clickstream_runtime.metrics import create_registry

_NS = "clickstream_aggregator"


@dataclass(frozen=True)
class AggregatorMetrics:
    registry: CollectorRegistry
    consumed: Counter
    applied: Counter
    deduplicated: Counter
    derived_ids: Counter
    dead_lettered: Counter
    dead_letters_relayed: Counter
    dead_letters_cut: Counter
    dead_letters_pending: Gauge
    dead_letters_refused: Gauge
    dead_letters_oldest_pending_seconds: Gauge
    batches: Counter
    batch_size: Histogram
    transaction_seconds: Histogram
    lag: Gauge
    freshness: Gauge
    fenced: Counter
    retries: Counter
    decode_worker_deaths: Counter
    assigned_partitions: Gauge

    @classmethod
    def create(cls, readiness: Readiness) -> AggregatorMetrics:
        r = create_registry("aggregator", version("clickstream-aggregator"), readiness)
        return cls(
            registry=r,
            consumed=Counter(f"{_NS}_events_consumed", "Messages read from the topic", registry=r),
            applied=Counter(
                f"{_NS}_events_applied", "Events counted into session_metrics", registry=r
            ),
            deduplicated=Counter(
                f"{_NS}_events_deduplicated", "Events skipped as already applied", registry=r
            ),
            derived_ids=Counter(
                f"{_NS}_events_derived_id",
                "Valid messages without an event_id, given the id derived from their bytes",
                registry=r,
            ),
            dead_lettered=Counter(
                f"{_NS}_events_dead_lettered",
                "Invalid messages recorded in the dead-letter outbox",
                ["reason"],
                registry=r,
            ),
            dead_letters_relayed=Counter(
                f"{_NS}_dead_letters_relayed",
                "Outbox rows sent to the dead-letter topic",
                registry=r,
            ),
            dead_letters_cut=Counter(
                f"{_NS}_dead_letters_cut",
                "Copies sent cut to fit Kafka (truncated, or headers only after a refusal)",
                ["kind"],
                registry=r,
            ),
            dead_letters_pending=Gauge(
                f"{_NS}_dead_letters_pending",
                "Outbox rows of the owned partitions not yet in the dead-letter topic",
                registry=r,
            ),
            dead_letters_refused=Gauge(
                f"{_NS}_dead_letters_refused",
                "Pending outbox rows left out of relaying after Kafka refused them twice",
                registry=r,
            ),
            dead_letters_oldest_pending_seconds=Gauge(
                f"{_NS}_dead_letters_oldest_pending_seconds",
                "Age of the oldest pending outbox row of the owned partitions (0: none)",
                registry=r,
            ),
            batches=Counter(f"{_NS}_batches", "Batch transactions committed", registry=r),
            batch_size=Histogram(
                f"{_NS}_batch_size",
                "Messages per committed batch",
                buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000, 20000, 50000),
                registry=r,
            ),
            transaction_seconds=Histogram(
                f"{_NS}_transaction_seconds",
                "Duration of batch transactions in PostgreSQL",
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
                registry=r,
            ),
            lag=Gauge(
                f"{_NS}_consumer_lag",
                "High watermark minus next offset, per assigned partition",
                ["partition"],
                registry=r,
            ),
            freshness=Gauge(
                f"{_NS}_freshness_seconds",
                "Now minus the newest event time applied",
                registry=r,
            ),
            fenced=Counter(
                f"{_NS}_fenced_partitions",
                "Partitions dropped because another replica claimed them",
                registry=r,
            ),
            retries=Counter(
                f"{_NS}_retries", "Retried operations, by cause", ["cause"], registry=r
            ),
            decode_worker_deaths=Counter(
                f"{_NS}_decode_worker_deaths",
                "Decode worker processes that died preparing a batch (each replaced)",
                registry=r,
            ),
            assigned_partitions=Gauge(
                f"{_NS}_assigned_partitions", "Partitions this replica owns", registry=r
            ),
        )
