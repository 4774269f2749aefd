"""docker-compose.yml (managed services) and docker-compose.local.yml (offline), read as data.

No Docker engine here: the files are validated against the Compose spec with
check-jsonschema's vendored schema, and every setting a service reads is checked
against the services' own settings classes.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import hcl2
import pytest
import yaml
from pydantic_settings import BaseSettings

from clickstream_ops import envfile
from clickstream_runtime.settings import ConsumerGroupSettings, KafkaSettings
from clickstream_schema import CONSUMER_GROUP, DLQ_TOPIC, EVENTS_TOPIC
from support.dockerfile import Dockerfile

ROOT = Path(__file__).resolve().parents[2]
MANAGED = ROOT / "docker-compose.yml"
LOCAL = ROOT / "docker-compose.local.yml"
COMPOSE_FILES = [MANAGED, LOCAL]
FIXTURE = Path(__file__).parent / "fixtures" / "terraform-output.json"
REGISTER_SCRIPT = ROOT / "docker" / "connect" / "register_connector.py"
# Read by docker/connect/register_connector.py in the set-up job, not by a settings class.
REGISTER_ENV = {"CONNECT_URL", "CONNECTOR_FILE", "CONNECT_DLQ_REPLICATION", "CONNECT_WAIT_S"}
APP_SERVICES = ("producer", "aggregator")


def _settings(service: str) -> type[BaseSettings]:
    modules = {
        "producer": ("clickstream_producer.settings", "ProducerSettings"),
        "aggregator": ("clickstream_aggregator.settings", "AggregatorSettings"),
        "setup": ("clickstream_ops.setup.settings", "SetupSettings"),
    }
    module, name = modules[service]
    cls: type[BaseSettings] = getattr(importlib.import_module(module), name)
    return cls


def _fields(service: str) -> set[str]:
    return {name.upper() for name in _settings(service).model_fields}


def _load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


@pytest.fixture(scope="module")
def managed() -> dict[str, Any]:
    return _load(MANAGED)["services"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def local() -> dict[str, Any]:
    return _load(LOCAL)["services"]  # type: ignore[no-any-return]


def _register_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("register_connector", REGISTER_SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- shape ---------------------------------------------------------------------


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_valid_against_the_compose_spec(path: Path) -> None:
    cli = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run(
        [str(cli), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_every_image_is_pinned(path: Path) -> None:
    for name, service in _load(path)["services"].items():
        image = service.get("image")
        assert image, f"{name}: give built images a name:tag too"
        repository, _, tag = image.rpartition(":")
        assert repository, f"{name}: {image} has no tag"
        assert "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest", f"{name}: {image}"


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_the_aggregator_can_scale(path: Path) -> None:
    aggregator = _load(path)["services"]["aggregator"]
    assert "container_name" not in aggregator
    assert "ports" not in aggregator
    assert "hostname" not in aggregator
    assert aggregator["restart"] == "unless-stopped"


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_built_images_come_from_the_repository_root(path: Path) -> None:
    for name, service in _load(path)["services"].items():
        if "build" in service:
            assert service["build"]["context"] == "."
            assert (ROOT / service["build"]["dockerfile"]).is_file(), name


def test_local_start_order_needs_no_manual_retries(local: dict[str, Any]) -> None:
    for name, service in local.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        for target, rule in depends.items():
            condition = rule["condition"]
            if condition == "service_healthy":
                build = local[target].get("build", {})
                has_check = "healthcheck" in local[target] or (
                    "dockerfile" in build and _image_healthcheck(build) != "NONE"
                )
                assert has_check, f"{name} waits for {target}, which has no healthcheck"
            else:
                assert condition == "service_completed_successfully", f"{name} -> {target}"
                assert local[target]["restart"] == "no"
    for name in APP_SERVICES:
        assert local[name]["depends_on"]["setup"]["condition"] == "service_completed_successfully"
    assert local["aggregator"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def _image_healthcheck(build: dict[str, str]) -> str:
    """The HEALTHCHECK the built image ends up with ("NONE" when it has none)."""
    dockerfile = Dockerfile.read(ROOT / build["dockerfile"])
    target = build.get("target", dockerfile.stages[-1].name)
    checks = [i.argument for i in dockerfile.inherited(target) if i.keyword == "HEALTHCHECK"]
    return checks[-1] if checks else "NONE"


def test_local_setup_job_orders_its_steps(local: dict[str, Any]) -> None:
    (command,) = local["setup"]["command"]
    steps = [step.strip() for step in command.split("&&")]
    # The index template must exist before the connector creates the first index.
    assert steps == [
        "clickstream-setup kafka",
        "clickstream-setup opensearch",
        "python /app/docker/connect/register_connector.py",
    ]


# --- settings --------------------------------------------------------------------


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_every_variable_set_is_one_a_service_reads(path: Path) -> None:
    for name, service in _load(path)["services"].items():
        if name not in (*APP_SERVICES, "setup"):
            continue
        allowed = _fields(name) | (REGISTER_ENV if name == "setup" else set())
        unknown = set(_environment(service)) - allowed
        assert not unknown, f"{path.name}/{name}: nobody reads {sorted(unknown)}"


def test_local_services_get_what_their_defaults_cannot_know(local: dict[str, Any]) -> None:
    kafka_env = _environment(local["kafka"])
    internal = re.search(r"INTERNAL://([\w.-]+:\d+)", kafka_env["KAFKA_ADVERTISED_LISTENERS"])
    assert internal
    postgres_env = _environment(local["postgres"])
    for name in (*APP_SERVICES, "setup"):
        env = _environment(local[name])
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == internal[1], name
    for name in APP_SERVICES:
        env = _environment(local[name])
        assert int(env["METRICS_PORT"]) > 0, "the HEALTHCHECK probes METRICS_PORT"
        # Accepted as is (no ./.env involved): raises on anything the service rejects.
        values: dict[str, Any] = {k.lower(): v for k, v in env.items()}
        _settings(name)(_env_file=None, **values)
    aggregator = _environment(local["aggregator"])
    assert aggregator["POSTGRES_HOST"] == "postgres"
    assert aggregator["POSTGRES_USER"] == postgres_env["POSTGRES_USER"]
    assert aggregator["POSTGRES_PASSWORD"] == postgres_env["POSTGRES_PASSWORD"]
    assert aggregator["POSTGRES_DATABASE"] == postgres_env["POSTGRES_DB"]
    setup = _environment(local["setup"])
    assert setup["OPENSEARCH_URI"] == "http://opensearch:9200"
    assert setup["OPENSEARCH_DASHBOARDS_URL"] == "http://dashboards:5601"
    assert setup["CONNECT_URL"] == "http://connect:8083"
    assert setup["KAFKA_TOPIC_REPLICATION"] == "1", "one local broker"
    assert _environment(local["connect"])["CONNECT_BOOTSTRAP_SERVERS"] == internal[1]


def test_managed_services_read_dotenv_and_the_certificates(managed: dict[str, Any]) -> None:
    document = json.loads(FIXTURE.read_text())
    from_dotenv = {line.split("=", 1)[0] for line in envfile.render_env(document) if "=" in line}
    for name in (*APP_SERVICES, "setup"):
        service = managed[name]
        assert service["env_file"] == ".env"
        assert "./certs:/app/certs:ro" in service["volumes"]
        assert service["user"] == "${CLICKSTREAM_UID:-10001}:${CLICKSTREAM_GID:-10001}"
        # Everything that differs from a local default arrives through .env.
        provided = from_dotenv | set(_environment(service))
        needed = {"KAFKA_BOOTSTRAP_SERVERS", "KAFKA_SSL_CAFILE", "KAFKA_SSL_CERTFILE"}
        assert needed <= provided, name
    aggregator = from_dotenv | set(_environment(managed["aggregator"]))
    postgres = {"HOST", "PORT", "DATABASE", "USER", "PASSWORD", "SSLMODE", "SSLROOTCERT"}
    assert {f"POSTGRES_{n}" for n in postgres} <= aggregator
    for name in APP_SERVICES:
        assert int(_environment(managed[name])["METRICS_PORT"]) > 0
    assert managed["setup"]["profiles"] == ["setup"]
    assert managed["setup"]["command"] == ["opensearch"]


def test_contract_names_are_the_defaults_nobody_overrides() -> None:
    assert KafkaSettings.model_fields["kafka_topic"].default == EVENTS_TOPIC
    assert KafkaSettings.model_fields["kafka_dlq_topic"].default == DLQ_TOPIC
    assert ConsumerGroupSettings.model_fields["kafka_group_id"].default == CONSUMER_GROUP
    expected = {
        "KAFKA_TOPIC": EVENTS_TOPIC,
        "KAFKA_DLQ_TOPIC": DLQ_TOPIC,
        "KAFKA_GROUP_ID": CONSUMER_GROUP,
    }
    for path in COMPOSE_FILES:
        for name, service in _load(path)["services"].items():
            env = _environment(service)
            for key, value in expected.items():
                assert env.get(key, value) == value, f"{path.name}/{name}: {key}"


# --- the connector registered locally ------------------------------------------


def test_local_connector_is_the_terraform_connector() -> None:
    register = _register_module()
    shared = json.loads((ROOT / "connect" / "opensearch-sink.json").read_text())
    config = register.connector_config(
        shared, {"OPENSEARCH_URI": "http://opensearch:9200", "CONNECT_DLQ_REPLICATION": "1"}
    )
    added = set(config) - set(shared)
    assert {k: config[k] for k in shared} == shared, "local must not alter shared settings"
    assert config["connection.url"] == "http://opensearch:9200"

    with (ROOT / "terraform" / "connector.tf").open() as file:
        parsed = hcl2.load(
            file, serialization_options=hcl2.SerializationOptions(with_comments=False)
        )
    terraform_added = {k.strip('"') for k in parsed["locals"][0]["connector_connection"]}
    with_credentials = register.connector_config(
        shared, {"OPENSEARCH_USER": "admin", "OPENSEARCH_PASSWORD": "secret"}
    )
    assert set(with_credentials) - set(shared) == terraform_added
    assert added <= terraform_added
    assert register.DEFAULT_FILE == ROOT / "connect" / "opensearch-sink.json"
