"""The settings ``clickstream-check`` reads: the services' own, one section at a time.

Each section is loaded on its own so that a malformed Kafka variable is a FAIL
line for Kafka, not a crash that hides what PostgreSQL and OpenSearch would
say. A section is "configured" when its main variable is set in the
environment or in ``.env`` (defaults such as ``localhost:9092`` do not count).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings

from clickstream_runtime.setting_errors import problems
from clickstream_runtime.settings import (
    SETTINGS_CONFIG,
    ConsumerGroupSettings,
    KafkaSettings,
    PostgresSettings,
)


class KafkaCheckSettings(KafkaSettings, ConsumerGroupSettings):
    model_config = SETTINGS_CONFIG


class PostgresCheckSettings(PostgresSettings):
    model_config = SETTINGS_CONFIG


class OpenSearchCheckSettings(BaseSettings):
    """The OPENSEARCH_* variables of ``clickstream-setup opensearch`` (same names)."""

    model_config = SETTINGS_CONFIG

    opensearch_uri: str | None = Field(None, description="https://[user:pass@]host:port")
    opensearch_dashboards_url: str | None = None
    opensearch_ca_file: Path | None = None
    opensearch_user: str | None = None
    opensearch_password: SecretStr | None = None


S = TypeVar("S", bound=BaseSettings)


@dataclass(frozen=True)
class Section(Generic[S]):
    """One service's settings: absent, invalid (with the message) or loaded."""

    variable: str
    settings: S | None = None
    error: str | None = None

    @property
    def configured(self) -> bool:
        return self.settings is not None or self.error is not None


def load_section(cls: type[S], variable: str) -> Section[S]:
    field = variable.lower()
    try:
        settings = cls()
    except ValidationError as error:
        # Any invalid variable of the section counts as "configured, wrongly":
        # somebody set it, and the service would refuse to start the same way.
        return Section(variable, error="; ".join(problems(error)))
    if field not in settings.model_fields_set or getattr(settings, field) in (None, ""):
        return Section(variable)
    return Section(variable, settings=settings)


@dataclass(frozen=True)
class CheckSettings:
    kafka: Section[KafkaCheckSettings]
    postgres: Section[PostgresCheckSettings]
    opensearch: Section[OpenSearchCheckSettings]
    dashboards: Section[OpenSearchCheckSettings]


def load_all() -> CheckSettings:
    return CheckSettings(
        kafka=load_section(KafkaCheckSettings, "KAFKA_BOOTSTRAP_SERVERS"),
        postgres=load_section(PostgresCheckSettings, "POSTGRES_HOST"),
        opensearch=load_section(OpenSearchCheckSettings, "OPENSEARCH_URI"),
        dashboards=load_section(OpenSearchCheckSettings, "OPENSEARCH_DASHBOARDS_URL"),
    )
