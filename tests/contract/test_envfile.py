"""``clickstream-env`` against a recorded ``terraform output -json`` document.

The fixture is shaped like Terraform's output (name -> value/type/sensitive) and
holds every output terraform/outputs.tf declares; the .env it produces must be
accepted by the services' own settings classes.
"""

from __future__ import annotations

import importlib
import json
import os
import stat
from pathlib import Path
from typing import Any

import hcl2
import pytest
from dotenv import dotenv_values
from pydantic_settings import BaseSettings

from clickstream_ops import envfile
from clickstream_schema import CONSUMER_GROUP, DLQ_TOPIC, EVENTS_TOPIC

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).parent / "fixtures" / "terraform-output.json"
COMPOSE_ONLY = {"CLICKSTREAM_UID", "CLICKSTREAM_GID"}  # read by docker compose, not Python


@pytest.fixture
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(FIXTURE.read_text())
    return loaded


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No inherited settings and no stray ./.env: only the file under test counts."""
    for name in list(os.environ):
        if name.startswith(("KAFKA_", "POSTGRES_", "OPENSEARCH_", "PRODUCER_", "AGGREGATOR_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _settings_class(module: str, name: str) -> type[BaseSettings]:
    cls: type[BaseSettings] = getattr(importlib.import_module(module), name)
    return cls


def _values(lines: list[str], tmp_path: Path) -> dict[str, str | None]:
    path = tmp_path / "rendered.env"
    path.write_text("\n".join(lines) + "\n")
    return dict(dotenv_values(path))


def test_every_env_variable_comes_from_the_matching_output(
    document: dict[str, Any], tmp_path: Path
) -> None:
    env = _values(envfile.render_env(document, uid=1000, gid=1000), tmp_path)

    raw = {name: entry["value"] for name, entry in document.items()}
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == raw["kafka_service_uri"]
    assert env["POSTGRES_HOST"] == raw["postgres_host"]
    assert env["POSTGRES_PORT"] == str(raw["postgres_port"])
    assert env["POSTGRES_DATABASE"] == raw["postgres_database"] == "clickstream"
    assert env["POSTGRES_USER"] == raw["postgres_user"]
    assert env["POSTGRES_PASSWORD"] == raw["postgres_password"]
    assert env["OPENSEARCH_URI"] == raw["opensearch_uri"]
    assert env["OPENSEARCH_DASHBOARDS_URL"] == raw["opensearch_dashboard_url"]
    assert env["OPENSEARCH_PASSWORD"] == raw["opensearch_password"]
    assert (env["KAFKA_TOPIC"], env["KAFKA_DLQ_TOPIC"]) == (EVENTS_TOPIC, DLQ_TOPIC)
    assert env["KAFKA_GROUP_ID"] == CONSUMER_GROUP
    assert env["KAFKA_ENABLE_IDEMPOTENCE"] == "true"
    assert (env["CLICKSTREAM_UID"], env["CLICKSTREAM_GID"]) == ("1000", "1000")


def test_tls_paths_point_at_the_files_terraform_writes(
    document: dict[str, Any], tmp_path: Path
) -> None:
    env = _values(envfile.render_env(document), tmp_path)

    assert env["POSTGRES_SSLMODE"] == "verify-full"
    # One project CA signs both the Kafka and the PostgreSQL server certificates.
    assert env["POSTGRES_SSLROOTCERT"] == env["KAFKA_SSL_CAFILE"] == "certs/ca.pem"
    assert env["KAFKA_SSL_CERTFILE"] == "certs/service.cert"
    assert env["KAFKA_SSL_KEYFILE"] == "certs/service.key"
    certs_tf = (ROOT / "terraform" / "certs.tf").read_text()
    locals_tf = (ROOT / "terraform" / "locals.tf").read_text()
    for name in ("ca.pem", "service.cert", "service.key"):
        assert name in locals_tf
    assert certs_tf.count('file_permission      = "0600"') == 3


def test_the_env_file_is_accepted_by_every_service(
    document: dict[str, Any], clean_env: Path
) -> None:
    env_path = clean_env / ".env"
    envfile.write_env(env_path, envfile.render_env(document, uid=1000, gid=1000), force=False)
    classes = {
        "producer": _settings_class("clickstream_producer.settings", "ProducerSettings"),
        "aggregator": _settings_class("clickstream_aggregator.settings", "AggregatorSettings"),
        "setup": _settings_class("clickstream_ops.setup.settings", "SetupSettings"),
    }
    known = set(COMPOSE_ONLY)
    for cls in classes.values():
        known |= {name.upper() for name in cls.model_fields}
        cls()  # reads ./.env; raises on anything the service would reject

    aggregator: Any = classes["aggregator"]()
    assert aggregator.postgres_sslmode == "verify-full"
    assert aggregator.postgres_password.get_secret_value() == "AVNS_fixturePostgresPw02"
    assert aggregator.kafka_uses_tls
    # A misspelt name would be silently ignored (extra="ignore"), so catch it here.
    written = set(dotenv_values(env_path))
    assert written <= known, f"not read by any service: {sorted(written - known)}"


def test_values_that_need_it_are_quoted_literally(document: dict[str, Any], tmp_path: Path) -> None:
    document["postgres_password"]["value"] = "p$ss #word"
    lines = envfile.render_env(document)

    assert "POSTGRES_PASSWORD='p$ss #word'" in lines
    assert _values(lines, tmp_path)["POSTGRES_PASSWORD"] == "p$ss #word"

    document["postgres_password"]["value"] = "it's"
    with pytest.raises(envfile.EnvFileError, match="POSTGRES_PASSWORD"):
        envfile.render_env(document)


def test_missing_outputs_are_named(document: dict[str, Any]) -> None:
    del document["postgres_password"], document["opensearch_uri"]

    with pytest.raises(envfile.EnvFileError, match="opensearch_uri, postgres_password"):
        envfile.render_env(document)


def test_main_writes_a_private_file_and_refuses_to_overwrite_it(
    clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = clean_env / ".env"
    args = ["--from-json", str(FIXTURE), "--output", str(target)]

    assert envfile.main(args) == 0
    first = target.read_text()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert "KAFKA_BOOTSTRAP_SERVERS=clickstream-kafka-demo-project.b.aivencloud.com:24947" in first

    target.write_text("# edited by hand\n")
    assert envfile.main(args) == 1
    assert "--force" in capsys.readouterr().err
    assert target.read_text() == "# edited by hand\n"

    target.chmod(0o644)
    assert envfile.main([*args, "--force"]) == 0
    assert target.read_text() == first
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_main_explains_a_missing_terraform(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(clean_env))  # an empty directory: no terraform

    assert envfile.main(["--output", str(clean_env / ".env")]) == 1
    assert "--from-json" in capsys.readouterr().err
    assert not (clean_env / ".env").exists()


def test_the_recording_matches_the_declared_outputs(document: dict[str, Any]) -> None:
    with (ROOT / "terraform" / "outputs.tf").open() as file:
        parsed = hcl2.load(
            file, serialization_options=hcl2.SerializationOptions(with_comments=False)
        )
    declared = {name.strip('"') for block in parsed["output"] for name in block}

    assert set(document) == declared
    assert declared >= envfile.REQUIRED_OUTPUTS
    # Terraform refuses to print a secret in an output that is not marked sensitive.
    for name in ("postgres_password", "opensearch_password", "kafka_access_key"):
        assert document[name]["sensitive"] is True
