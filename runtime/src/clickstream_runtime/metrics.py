"""Prometheus registry every service starts from, with readiness as metrics.

Each service owns its own ``CollectorRegistry`` (not the global default) so
that tests can build several services in one process without "duplicated
timeseries" errors. Readiness is exported too, so alerts can use the same
signal as the orchestrator's ``/readyz`` probe.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Info,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from clickstream_runtime.health import Readiness

NAMESPACE = "clickstream"


class ReadinessCollector(Collector):
    """Exports ``clickstream_ready`` and one ``clickstream_readiness_condition`` per condition."""

    def __init__(self, readiness: Readiness) -> None:
        self._readiness = readiness

    def collect(self) -> Iterable[Metric]:
        status = self._readiness.status()
        ready = GaugeMetricFamily(f"{NAMESPACE}_ready", "1 when /readyz answers 200, else 0")
        ready.add_metric([], 1.0 if status.ready else 0.0)
        yield ready
        conditions = GaugeMetricFamily(
            f"{NAMESPACE}_readiness_condition",
            "1 when the named readiness condition holds",
            labels=["condition"],
        )
        for name, ok in sorted(status.conditions.items()):
            conditions.add_metric([name], 1.0 if ok else 0.0)
        yield conditions
        retrying = GaugeMetricFamily(
            f"{NAMESPACE}_retry_since_seconds",
            "Unix time the current retry streak started, 0 when not retrying",
        )
        retrying.add_metric([], status.retry_since.timestamp() if status.retry_since else 0.0)
        yield retrying


def create_registry(
    service: str, version: str, readiness: Readiness | None = None
) -> CollectorRegistry:
    """A fresh registry with process/GC metrics, build info and (optionally) readiness."""
    registry = CollectorRegistry(auto_describe=True)
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        # The default collectors are module singletons; registering them in a
        # private registry as well is supported and keeps the usual metrics.
        registry.register(collector)
    info = Info(f"{NAMESPACE}_build", "Service name and version", registry=registry)
    info.info({"service": service, "version": version})
    if readiness is not None:
        registry.register(ReadinessCollector(readiness))
    return registry
