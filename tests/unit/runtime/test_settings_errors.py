"""``settings.load``: every invalid setting at once, by the name the user typed, in plain words."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import Field, SecretStr

from clickstream_runtime.settings import (
    SETTINGS_CONFIG,
    KafkaSettings,
    ObservabilitySettings,
    PostgresSettings,
    SettingsError,
    load,
)


class ToolSettings(KafkaSettings, PostgresSettings, ObservabilitySettings):
    """A service's settings: mixins plus fields of its own, as the producer's."""

    model_config = SETTINGS_CONFIG

    tool_rate: float = Field(10.0, ge=0)
    tool_users: int = Field(1000, ge=1)
    tool_name: str = Field("x", min_length=1)
    tool_token: SecretStr = SecretStr("")


FLAGS = {"tool_rate": "--rate", "tool_users": "--users"}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "LOG_LEVEL", "METRICS_PORT", "POSTGRES_PORT"):
        monkeypatch.delenv(name, raising=False)
    for name in ("TOOL_RATE", "TOOL_USERS", "TOOL_NAME", "TOOL_TOKEN", "KAFKA_SSL_CERTFILE"):
        monkeypatch.delenv(name, raising=False)


def failure(**overrides: object) -> SettingsError:
    with pytest.raises(SettingsError) as caught:
        load(ToolSettings, flags=FLAGS, **overrides)
    return caught.value


def test_a_bad_flag_is_named_by_the_flag() -> None:
    error = failure(tool_rate=-5)
    assert str(error) == "configuration error: --rate -5: must be at least 0"


def test_the_same_value_from_the_environment_is_named_by_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOOL_RATE", "-5")
    assert str(failure()) == "configuration error: TOOL_RATE=-5: must be at least 0"


def test_every_problem_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "loud")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "https://user:pw@broker:9092/")
    monkeypatch.setenv("POSTGRES_PORT", "notaport")
    error = failure(tool_rate=-5, tool_users="many")
    assert str(error).splitlines() == [
        "configuration error: 5 settings are invalid:",
        "  LOG_LEVEL=loud: must be one of 'debug', 'info', 'warning' or 'error'",
        "  POSTGRES_PORT=notaport: must be a whole number",
        "  KAFKA_BOOTSTRAP_SERVERS: 'https://***@broker:9092/' is not host:port "
        "(no scheme, no path; several: a:9092,b:9092)",
        "  --rate -5: must be at least 0",
        "  --users many: must be a whole number",
    ]
    assert "pw" not in str(error)


def test_no_library_wording_for_rules_across_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SSL_CERTFILE", "/etc/client.pem")
    text = str(failure())
    assert text == (
        "configuration error: KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE must be set together "
        "(client certificate)"
    )
    for library_word in ("ToolSettings", "Value error", "Input should", "validation error"):
        assert library_word not in text


def test_secrets_are_never_echoed() -> None:
    text = str(failure(tool_token=SecretStr("s3cr3t"), tool_name=""))
    assert text == "configuration error: TOOL_NAME='': must not be empty"
    assert "s3cr3t" not in text


def test_tls_file_problems_of_both_servers_are_reported_together(tmp_path: Path) -> None:
    missing_ca, missing_root = tmp_path / "ca.pem", tmp_path / "root.pem"
    error = failure(
        kafka_ssl_cafile=missing_ca,
        postgres_sslmode="verify-full",
        postgres_sslrootcert=missing_root,
    )
    assert error.problems == [
        f"KAFKA_SSL_CAFILE={missing_ca}: file not found",
        f"POSTGRES_SSLROOTCERT={missing_root}: file not found",
    ]
    # Nothing about the bootstrap servers: they are fine.
    assert "KAFKA_BOOTSTRAP_SERVERS" not in str(error)


def test_valid_settings_load() -> None:
    settings = load(ToolSettings, flags=FLAGS, tool_rate=0)
    assert settings.tool_rate == 0


@given(rate=st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False))
def test_any_negative_rate_is_one_line_naming_the_flag(rate: float) -> None:
    with pytest.raises(SettingsError) as caught:
        load(ToolSettings, flags=FLAGS, tool_rate=rate)
    (line,) = str(caught.value).splitlines()
    assert line.startswith(f"configuration error: --rate {rate}: must be at least 0")
