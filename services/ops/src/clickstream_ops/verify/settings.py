"""``clickstream-verify`` reads the aggregator's own variables (KAFKA_*, POSTGRES_*)."""

from __future__ import annotations

from pydantic import Field

from clickstream_runtime.settings import (
    SETTINGS_CONFIG,
    ConsumerGroupSettings,
    KafkaSettings,
    PostgresSettings,
)
from clickstream_schema.codec import MAX_MESSAGE_BYTES


class VerifySettings(KafkaSettings, ConsumerGroupSettings, PostgresSettings):
    model_config = SETTINGS_CONFIG

    #: the aggregator's size limit: a larger message is a dead letter ("oversize")
    aggregator_max_message_bytes: int = Field(MAX_MESSAGE_BYTES, ge=1024)
