"""Settings of ``clickstream-setup``: one frozen object, built once in ``main``."""

from __future__ import annotations

from pathlib import Path
from typing import Final, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings

from clickstream_ops.setup.endpoint import Endpoint, EndpointError, parse_endpoint
from clickstream_runtime.settings import SETTINGS_CONFIG, KafkaSettings, ObservabilitySettings

NOT_CONFIGURED: Final = (
    "OpenSearch is not configured: OPENSEARCH_URI is not set "
    "(http(s)://[user:password@]host:port, e.g. http://localhost:9200 for a local node)"
)


class OpenSearchSettings(BaseSettings):
    model_config = SETTINGS_CONFIG

    # Secret because Aiven's service URI embeds the password. No default: an unset
    # URI means "not configured" (as clickstream-check says), never a guessed localhost.
    opensearch_uri: SecretStr | None = Field(
        None, description="REST endpoint, http(s)://[user:password@]host:port"
    )
    opensearch_user: str | None = None
    opensearch_password: SecretStr | None = None
    opensearch_dashboards_url: SecretStr | None = Field(
        None, description="Dashboards base URL; unset skips the saved objects"
    )
    opensearch_ca_file: Path | None = Field(
        None, description="CA bundle for a private CA; Aiven's certificates are public"
    )
    opensearch_retention_days: int = Field(7, ge=1, le=3650)
    opensearch_wait_s: float = Field(
        120.0, gt=0, description="How long to wait for OpenSearch/Dashboards to come up"
    )
    opensearch_assets_dir: Path | None = Field(
        None, description="The repository's opensearch/ folder (found automatically if unset)"
    )

    @model_validator(mode="after")
    def _check_opensearch(self) -> Self:
        # Parse now so a bad URI is one clear configuration error before any request.
        if self.opensearch_uri is not None:
            self.opensearch_endpoint()
            self.dashboards_endpoint()
        if self.opensearch_ca_file is not None and not self.opensearch_ca_file.is_file():
            raise ValueError(f"OPENSEARCH_CA_FILE: {self.opensearch_ca_file} is not a file")
        return self

    def opensearch_endpoint(self) -> Endpoint:
        if self.opensearch_uri is None:
            raise EndpointError(NOT_CONFIGURED)
        return parse_endpoint(
            "OpenSearch",
            "OPENSEARCH_URI",
            self.opensearch_uri.get_secret_value(),
            user=self.opensearch_user,
            password=_reveal(self.opensearch_password),
            ca_file=self.opensearch_ca_file,
        )

    def dashboards_endpoint(self) -> Endpoint | None:
        if self.opensearch_dashboards_url is None:
            return None
        cluster = self.opensearch_endpoint()
        dashboards = parse_endpoint(
            "OpenSearch Dashboards",
            "OPENSEARCH_DASHBOARDS_URL",
            self.opensearch_dashboards_url.get_secret_value(),
            ca_file=self.opensearch_ca_file,
        )
        if dashboards.auth is None:
            # Aiven's Dashboards URL comes without credentials: log in as the OpenSearch user.
            return Endpoint(dashboards.name, dashboards.url, cluster.auth, dashboards.ca_file)
        return dashboards


class TopicSettings(BaseSettings):
    model_config = SETTINGS_CONFIG

    kafka_topic_partitions: int = Field(6, ge=1, le=10_000)
    kafka_topic_replication: int = Field(1, ge=1, le=32)


class SetupSettings(OpenSearchSettings, TopicSettings, KafkaSettings, ObservabilitySettings):
    """Everything ``clickstream-setup`` reads from the environment (and ``.env``)."""


def _reveal(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None
