"""Settings shared by the services, read from the environment (and ``.env``).

Each service composes these mixins into one frozen settings object, built once
in ``main`` and passed down. Variable names are the design document's, so an
existing ``.env`` keeps working.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, Self, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from clickstream_runtime.setting_errors import problems
from clickstream_runtime.tls import TlsFileError, kafka_ssl_context, postgres_ssl_context
from clickstream_schema import CONSUMER_GROUP, DLQ_TOPIC, EVENTS_TOPIC

SETTINGS_CONFIG = SettingsConfigDict(
    env_file=".env",
    env_file_encoding="utf-8",
    extra="ignore",
    frozen=True,
    case_sensitive=False,
)

PostgresSslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]


class SettingsError(SystemExit):
    """Missing or malformed settings: raised before anything connects, all of them at once.

    One problem is one line, ``configuration error: NAME=VALUE: what is wrong``;
    several are a first line counting them and one indented line each.
    """

    def __init__(self, problems: str | list[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        if len(self.problems) == 1:
            message = f"configuration error: {self.problems[0]}"
        else:
            listed = "".join(f"\n  {problem}" for problem in self.problems)
            message = f"configuration error: {len(self.problems)} settings are invalid:{listed}"
        super().__init__(message)


class KafkaSettings(BaseSettings):
    model_config = SETTINGS_CONFIG

    kafka_bootstrap_servers: str = Field(
        "localhost:9092", description="host:port[,host:port...] of the brokers (not a URL)"
    )
    kafka_topic: str = Field(EVENTS_TOPIC, min_length=1)
    kafka_dlq_topic: str = Field(DLQ_TOPIC, min_length=1)
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_client_id: str = "clickstream"

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _check_bootstrap(cls, value: str) -> str:
        # A field rule, not a model rule: reported together with the other fields' problems.
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit() or "/" in host:
                # Never echo credentials someone put in a URL by mistake.
                shown = re.sub(r"//[^@/]*@", "//***@", server.strip())
                raise ValueError(
                    f"{shown!r} is not host:port (no scheme, no path; several: a:9092,b:9092)"
                )
        return value

    @model_validator(mode="after")
    def _check_kafka(self) -> Self:
        if (self.kafka_ssl_certfile is None) != (self.kafka_ssl_keyfile is None):
            raise ValueError(
                "KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE must be set together (client certificate)"
            )
        if self.kafka_ssl_certfile is not None and self.kafka_ssl_cafile is None:
            # TLS is on only with KAFKA_SSL_CAFILE: without it the client would go plaintext.
            raise ValueError("KAFKA_SSL_CAFILE is required with a client certificate")
        return self

    @property
    def kafka_uses_tls(self) -> bool:
        return self.kafka_ssl_cafile is not None

    def kafka_ssl_context(self) -> ssl.SSLContext | None:
        if not self.kafka_uses_tls:
            return None
        return kafka_ssl_context(
            self.kafka_ssl_cafile, self.kafka_ssl_certfile, self.kafka_ssl_keyfile
        )

    def kafka_client_options(self) -> dict[str, Any]:
        """Connection keyword arguments shared by every aiokafka client we create."""
        context = self.kafka_ssl_context()
        return {
            "bootstrap_servers": self.kafka_bootstrap_servers.split(","),
            "client_id": self.kafka_client_id,
            "security_protocol": "SSL" if context else "PLAINTEXT",
            "ssl_context": context,
        }


class PostgresSettings(BaseSettings):
    model_config = SETTINGS_CONFIG

    postgres_host: str = "localhost"
    postgres_port: int = Field(5432, ge=1, le=65535)
    postgres_database: str = "clickstream"
    postgres_user: str = "postgres"
    postgres_password: SecretStr = SecretStr("")
    postgres_sslmode: PostgresSslMode = "prefer"
    postgres_sslrootcert: Path | None = Field(
        None, description="CA certificate for verify-ca / verify-full"
    )
    postgres_connect_timeout_s: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _check_postgres(self) -> Self:
        if self.postgres_sslmode in ("verify-ca", "verify-full") and not self.postgres_sslrootcert:
            raise ValueError(
                f"POSTGRES_SSLROOTCERT is required with sslmode={self.postgres_sslmode}"
            )
        return self

    def postgres_connect_options(self) -> dict[str, Any]:
        """Keyword arguments for ``asyncpg.connect`` / ``create_pool``."""
        ssl_option: Any = self.postgres_sslmode
        if self.postgres_sslmode in ("verify-ca", "verify-full"):
            assert self.postgres_sslrootcert is not None
            ssl_option = postgres_ssl_context(
                self.postgres_sslrootcert, check_hostname=self.postgres_sslmode == "verify-full"
            )
        return {
            "host": self.postgres_host,
            "port": self.postgres_port,
            "database": self.postgres_database,
            "user": self.postgres_user,
            "password": self.postgres_password.get_secret_value() or None,
            "ssl": ssl_option,
            "timeout": self.postgres_connect_timeout_s,
        }


class ObservabilitySettings(BaseSettings):
    model_config = SETTINGS_CONFIG

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"
    metrics_port: int = Field(0, ge=0, le=65535, description="0 turns the HTTP server off")
    metrics_host: str = "0.0.0.0"  # noqa: S104 - containers expose it; override for hosts


class ConsumerGroupSettings(BaseSettings):
    model_config = SETTINGS_CONFIG

    kafka_group_id: str = Field(CONSUMER_GROUP, min_length=1)


T = TypeVar("T", bound=BaseSettings)


def load(cls: type[T], *, flags: Mapping[str, str] | None = None, **overrides: Any) -> T:
    """Build a settings object; every invalid setting is reported at once (:class:`SettingsError`).

    ``overrides`` are values from the command line (field name -> value; leave
    out flags not given). ``flags`` maps those fields to the flag the user typed
    (``{"producer_rate": "--rate"}``), so that a bad ``--rate -5`` is reported as
    ``--rate -5: must be at least 0``, not by its environment variable.
    """
    try:
        settings = cls(**overrides)
    except ValidationError as error:
        raise SettingsError(problems(error, flags=flags, from_flags=overrides.keys())) from None
    # Open the TLS files now: a service must not wait for one server first and
    # only then find that a file for the other is missing.
    found: list[str] = []
    if isinstance(settings, KafkaSettings):
        _collect(found, settings.kafka_ssl_context)
    if isinstance(settings, PostgresSettings):
        _collect(found, settings.postgres_connect_options)
    if found:
        raise SettingsError(found)
    return settings


def _collect(found: list[str], open_files: Callable[[], object]) -> None:
    try:
        open_files()
    except TlsFileError as error:
        found.append(error.detail)
