"""The producer's one frozen settings object: Kafka + observability + generation knobs.

Environment names are the field names in upper case (``PRODUCER_RATE``,
``KAFKA_ACKS``...); command-line flags are passed to ``load`` as overrides and win.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import AwareDatetime, Field, model_validator

from clickstream_runtime.settings import SETTINGS_CONFIG, KafkaSettings, ObservabilitySettings


class ProducerSettings(KafkaSettings, ObservabilitySettings):
    model_config = SETTINGS_CONFIG

    metrics_port: int = Field(9101, ge=0, le=65535, description="0 turns the HTTP server off")

    producer_events: int = Field(0, ge=0, description="events to send; 0 = until stopped")
    producer_rate: float = Field(10.0, ge=0, description="events/s on the wall clock; 0 = backfill")
    producer_seed: int | None = Field(None, description="fixes the event sequence; default random")
    producer_users: int | None = Field(
        None, ge=1, description="simulated users; default 2 × concurrent sessions, at least 1000"
    )
    producer_concurrent_sessions: int | None = Field(
        None, ge=1, description="active sessions; default rate × 9.05 s (backfill: 500)"
    )
    producer_progress_every: int = Field(10, ge=1, description="log progress every N events")
    producer_start: AwareDatetime | None = Field(
        None, description="simulated clock start of a backfill; default ends it near now"
    )
    producer_generator_workers: int = Field(
        2,
        ge=0,
        le=16,
        description="backfill (--rate 0) generator processes; 0: inline, 1: same events as 0",
    )
    producer_startup_timeout_s: float = Field(
        0.0, ge=0, description="give up when Kafka does not answer at start; 0: wait until stopped"
    )
    producer_linger_ms: int = Field(50, ge=0, le=60_000)
    producer_batch_bytes: int = Field(512 * 1024, ge=16 * 1024, le=8 * 1024 * 1024)

    kafka_acks: Literal["all", "1", "0"] = "all"
    # The embedded test broker (Tansu) cannot do idempotent producing; Apache
    # Kafka (Aiven) can: the .env that clickstream-env writes turns it on.
    kafka_enable_idempotence: bool = False

    @model_validator(mode="after")
    def _check_idempotence(self) -> Self:
        if self.kafka_enable_idempotence and self.kafka_acks != "all":
            raise ValueError(
                f"KAFKA_ENABLE_IDEMPOTENCE=true needs KAFKA_ACKS=all (not {self.kafka_acks})"
            )
        return self

    def producer_options(self) -> dict[str, Any]:
        """Keyword arguments for ``AIOKafkaProducer``."""
        acks: int | str = "all" if self.kafka_acks == "all" else int(self.kafka_acks)
        return {
            **self.kafka_client_options(),
            "acks": acks,
            "enable_idempotence": self.kafka_enable_idempotence,
            "linger_ms": self.producer_linger_ms,
            "max_batch_size": self.producer_batch_bytes,
            # A request carries one batch per partition; leave room for several.
            "max_request_size": max(1024 * 1024, 4 * self.producer_batch_bytes),
        }
