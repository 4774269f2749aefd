"""The aggregator's one frozen settings object (environment and ``.env``)."""

from __future__ import annotations

import os
import socket
from typing import Literal

from pydantic import Field

from clickstream_runtime.settings import (
    ConsumerGroupSettings,
    KafkaSettings,
    ObservabilitySettings,
    PostgresSettings,
)
from clickstream_schema.codec import MAX_MESSAGE_BYTES


def _default_replica_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class AggregatorSettings(
    KafkaSettings, ConsumerGroupSettings, PostgresSettings, ObservabilitySettings
):
    metrics_port: int = Field(9102, ge=0, le=65535, description="0 turns the HTTP server off")

    aggregator_batch_max_records: int = Field(10_000, ge=1)
    aggregator_batch_timeout_ms: int = Field(100, ge=0)
    aggregator_decode_workers: int = Field(
        1, ge=0, le=32, description="processes that decode and aggregate batches; 0: inline"
    )
    aggregator_max_message_bytes: int = Field(MAX_MESSAGE_BYTES, ge=1024)
    aggregator_dedupe_retention_hours: float = Field(48.0, ge=24.0)
    aggregator_prune_interval_s: float = Field(60.0, gt=0)
    aggregator_retry_initial_s: float = Field(0.2, gt=0)
    aggregator_retry_max_s: float = Field(15.0, gt=0)
    aggregator_ready_retry_threshold_s: float = Field(30.0, gt=0)
    # A stored offset beyond a fetch's high watermark is doubted this long
    # (high watermarks trail after a leader election) before the partition's
    # leader is asked whether it is really outside the log.
    aggregator_log_end_wait_s: float = Field(30.0, gt=0)
    aggregator_replica_id: str = Field(default_factory=_default_replica_id, min_length=1)
    aggregator_pool_size: int = Field(4, ge=2)
    aggregator_startup_timeout_s: float = Field(
        0.0, ge=0, description="give up when PostgreSQL or Kafka do not answer at start; 0: wait"
    )
    # Mirror applied offsets to Kafka's group (after the database commit) so the
    # usual lag tools work; the offsets in PostgreSQL remain the truth.
    aggregator_commit_to_kafka: bool = True
    # Dead-letter relay (clickstream_aggregator.deadletters): fencing by Kafka
    # transactions (auto: where the broker has them), the largest copy written
    # (larger rows are cut, the original stays in dead_letters), and how old a
    # pending row may get before /readyz turns red.
    aggregator_dlq_transactions: Literal["auto", "on", "off"] = "auto"
    aggregator_dlq_max_message_bytes: int = Field(1_000_000, ge=16_384)
    aggregator_dlq_ready_max_age_s: float = Field(300.0, gt=0)

    kafka_session_timeout_ms: int = Field(10_000, ge=1000)
    kafka_heartbeat_interval_ms: int = Field(3_000, ge=100)
    kafka_max_poll_interval_ms: int = Field(300_000, ge=1000)
    kafka_fetch_max_bytes: int = Field(52_428_800, ge=1024)
    kafka_max_partition_fetch_bytes: int = Field(8_388_608, ge=1024)
