"""terraform/ and connect/opensearch-sink.json, read as data (the terraform CLI itself:
test_terraform_validate.py).

The names every component shares (topics, group, indices) must equal the
contract in clickstream_schema; the connector JSON is the one both Terraform and
the local Compose stack register.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
import pytest

from clickstream_schema import (
    CONNECT_DLQ_TOPIC,
    CONSUMER_GROUP,
    DLQ_TOPIC,
    EVENTS_TOPIC,
    INDEX_PATTERN,
    INDEX_PREFIX,
)

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "terraform"
CONNECTOR_JSON = ROOT / "connect" / "opensearch-sink.json"
CONNECT_DOCKERFILE = ROOT / "docker" / "connect" / "Dockerfile"
OPTIONS = hcl2.SerializationOptions(
    with_comments=False, strip_string_quotes=True, explicit_blocks=False
)


@dataclass
class Module:
    resources: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    data: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    terraform: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture(scope="module")
def module() -> Module:
    parsed = Module()
    for path in sorted(TERRAFORM.glob("*.tf")):
        with path.open() as file:
            doc = hcl2.load(file, serialization_options=OPTIONS)
        for kind, target in (("resource", parsed.resources), ("data", parsed.data)):
            for block in doc.get(kind, []):
                for rtype, named in block.items():
                    for name, body in named.items():
                        assert (rtype, name) not in target, f"duplicate {rtype}.{name}"
                        target[(rtype, name)] = body
        for block in doc.get("variable", []):
            parsed.variables.update(block)
        for block in doc.get("output", []):
            parsed.outputs.update(block)
        for block in doc.get("locals", []):
            parsed.locals.update(block)
        parsed.terraform += doc.get("terraform", [])
    return parsed


@pytest.fixture(scope="module")
def connector() -> dict[str, str]:
    loaded: dict[str, str] = json.loads(CONNECTOR_JSON.read_text())
    return loaded


def _of_type(module: Module, rtype: str) -> dict[str, dict[str, Any]]:
    return {name: body for (kind, name), body in module.resources.items() if kind == rtype}


# --- versions and variables -------------------------------------------------


def test_terraform_and_providers_are_pinned(module: Module) -> None:
    (settings,) = module.terraform
    assert settings["required_version"].startswith(">= 1.5")
    providers = settings["required_providers"][0]
    assert providers["aiven"]["source"] == "aiven/aiven"
    assert re.fullmatch(r"~> 4\.\d+(\.\d+)?", providers["aiven"]["version"])
    # The opensearch_version enum of PROVIDER_OPENSEARCH_VERSIONS is complete from 4.60 on.
    assert int(providers["aiven"]["version"].split(".")[1]) >= 60
    assert providers["local"]["source"] == "hashicorp/local"
    assert all(p.get("version") for p in providers.values()), "every provider needs a version"


def test_variables_are_described_typed_and_validated(module: Module) -> None:
    for name, body in module.variables.items():
        assert body.get("description"), f"variable {name} has no description"
        assert body.get("type"), f"variable {name} has no type"
        if body["type"] == "number":
            assert body.get("validation"), f"numeric variable {name} is not validated"

    token = module.variables["aiven_api_token"]
    assert token["sensitive"] is True
    assert "default" not in token, "a token default would end up in git"
    assert "default" not in module.variables["aiven_project_name"]
    assert module.variables["kafka_topic_partitions"]["default"] == 6
    assert module.variables["kafka_topic_replication"]["default"] == 2
    assert module.variables["kafka_retention_days"]["default"] == 7
    for plan in ("kafka_plan", "kafka_connect_plan", "postgres_plan", "opensearch_plan"):
        assert plan in module.variables
    assert "kafka_version" in module.variables


#: The enum of aiven_opensearch's opensearch_user_config.opensearch_version in the
#: Aiven provider (4.60: "1", "2", "2.19", "3.3", "3.6"). The provider only lists it (its
#: schema has no check of its own, so validate cannot tell); the API rejects anything else.
PROVIDER_OPENSEARCH_VERSIONS = ["1", "2", "2.19", "3.3", "3.6"]


def test_opensearch_version_is_one_the_provider_accepts(module: Module) -> None:
    variable = module.variables["opensearch_version"]
    (validation,) = variable["validation"]
    listed = re.fullmatch(
        r"\$\{contains\(\[(.*)\], var\.opensearch_version\)\}", validation["condition"]
    )
    assert listed, validation["condition"]
    assert json.loads(f"[{listed[1]}]") == PROVIDER_OPENSEARCH_VERSIONS
    assert variable["default"] == "2.19"  # the version the real test tier runs


def test_tfvars_example_holds_placeholders_for_declared_variables(module: Module) -> None:
    with (TERRAFORM / "terraform.tfvars.example").open() as file:
        example = hcl2.load(file, serialization_options=OPTIONS)
    example.pop("__comments__", None)
    assert set(example) <= set(module.variables)
    assert "paste" in example["aiven_api_token"]
    assert not [p.name for p in TERRAFORM.glob("*.tfvars")], "tfvars must not be committed"
    assert not list(TERRAFORM.glob("*.tfstate*"))


# --- the shared names ---------------------------------------------------------


def test_names_equal_the_contract(module: Module, connector: dict[str, str]) -> None:
    names = module.locals
    assert names["events_topic"] == EVENTS_TOPIC
    assert names["dlq_topic"] == DLQ_TOPIC
    assert names["connect_dlq_topic"] == CONNECT_DLQ_TOPIC
    assert names["consumer_group"] == CONSUMER_GROUP
    assert names["index_pattern"] == INDEX_PATTERN
    assert names["database_name"] == "clickstream"

    assert connector["topics"] == EVENTS_TOPIC
    assert connector["errors.deadletterqueue.topic.name"] == CONNECT_DLQ_TOPIC
    assert connector["transforms.dailyIndex.topic.format"] == INDEX_PREFIX + "${timestamp}"


def test_topics_partitions_replication_and_retention(module: Module) -> None:
    topic = module.resources[("aiven_kafka_topic", "topic")]
    assert topic["for_each"] == "${local.topics}"
    assert set(module.locals["topics"]) == {"events", "dlq", "connect_dlq"}
    assert module.locals["topics"]["events"]["retention"] == "${var.kafka_retention_days}"
    assert topic["partitions"] == "${var.kafka_topic_partitions}"
    assert topic["replication"] == "${var.kafka_topic_replication}"
    config = topic["config"][0]
    assert "local.day_ms" in config["retention_ms"]
    assert module.locals["day_ms"] == "${24 * 60 * 60 * 1000}"
    # TimestampRouter names the index from the record's (producer's) timestamp.
    assert config["message_timestamp_type"] == "CreateTime"
    # termination_protection on topics is deprecated in provider 4.x.
    assert "termination_protection" not in topic
    assert topic["lifecycle"] == [{"prevent_destroy": True}]


def test_service_user_may_only_use_the_topics_and_the_group(module: Module) -> None:
    assert not _of_type(module, "aiven_kafka_acl"), "Aiven ACLs allow every consumer group"
    (acl,) = _of_type(module, "aiven_kafka_native_acl").values()
    assert acl["for_each"] == "${local.app_acls}"
    assert acl["principal"] == "${local.app_principal}"
    assert acl["pattern_type"] == "LITERAL"
    assert acl["permission_type"] == "ALLOW"
    text = (TERRAFORM / "kafka.tf").read_text()
    assert 'setproduct(["events", "dlq"], ["Read", "Write", "Describe"])' in text
    assert "resource_name = local.consumer_group" in text
    assert 'resource_type = "Group"' in text
    assert "Cluster" not in text, "no cluster-wide rights"
    assert 'host            = "*"' in text


def test_kafka_connect_is_its_own_service_integrated_with_kafka(module: Module) -> None:
    assert ("aiven_kafka_connect", "connect") in module.resources
    integration = module.resources[("aiven_service_integration", "kafka_to_connect")]
    assert integration["integration_type"] == "kafka_connect"
    assert integration["source_service_name"] == "${aiven_kafka.kafka.service_name}"
    assert integration["destination_service_name"] == "${aiven_kafka_connect.connect.service_name}"


def test_postgres_has_its_database_and_an_application_user(module: Module) -> None:
    database = module.resources[("aiven_pg_database", "clickstream")]
    assert database["database_name"] == "${local.database_name}"
    user = module.resources[("aiven_pg_user", "aggregator")]
    assert "avnadmin" not in user["username"]
    grant = module.resources[("postgresql_grant", "aggregator_schema")]
    assert grant["role"] == "${aiven_pg_user.aggregator.username}"
    assert set(grant["privileges"]) == {"CREATE", "USAGE"}


def test_opensearch_has_dashboards(module: Module) -> None:
    config = module.resources[("aiven_opensearch", "os")]["opensearch_user_config"][0]
    assert config["opensearch_dashboards"][0]["enabled"] is True


# --- the connector ------------------------------------------------------------


def test_terraform_registers_the_shared_connector_file(module: Module) -> None:
    assert module.locals["connector_settings"] == (
        '${jsondecode(file("${path.module}/../connect/opensearch-sink.json"))}'
    )
    sink = module.resources[("aiven_kafka_connector", "opensearch_sink")]
    assert sink["service_name"] == "${aiven_kafka_connect.connect.service_name}"
    assert sink["config"] == "${merge(local.connector_settings, local.connector_connection)}"
    connection = {k.strip('"') for k in module.locals["connector_connection"]}
    assert {"connection.url", "connection.username", "connection.password"} <= connection


def test_timestamp_router_placeholder_survives_terraform() -> None:
    """``${timestamp}`` is Connect's, not Terraform's.

    In the JSON read with file() it is data; written inline in HCL it would have
    to be ``$${timestamp}``, and templatefile() would try to interpolate it.
    """
    for path in TERRAFORM.glob("*.tf"):
        text = path.read_text()
        code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
        assert not re.search(r"(?<!\$)\$\{timestamp\}", code), f"unescaped in {path.name}"
        assert "templatefile(" not in code
        for value in re.findall(r'"topic\.format"\s*=\s*"([^"]*)"', code):
            assert value == INDEX_PREFIX + "$${timestamp}", path.name


def test_connector_indexes_json_by_event_id_into_daily_indices(connector: dict[str, str]) -> None:
    assert connector["value.converter"] == "org.apache.kafka.connect.json.JsonConverter"
    assert connector["value.converter.schemas.enable"] == "false"
    assert connector["schema.ignore"] == "true"
    # The Kafka key stays session_id (a plain string); the document id is event_id.
    assert connector["key.converter"] == "org.apache.kafka.connect.storage.StringConverter"
    assert connector["key.ignore"] == "false"
    chain = connector["transforms"].split(",")
    types = [connector[f"transforms.{name}.type"] for name in chain]
    assert types == [
        "org.apache.kafka.connect.transforms.Filter",
        "org.apache.kafka.connect.transforms.ValueToKey",
        "org.apache.kafka.connect.transforms.ExtractField$Key",
        "org.apache.kafka.connect.transforms.TimestampRouter",
    ]
    assert connector[f"transforms.{chain[1]}.fields"] == "event_id"
    assert connector[f"transforms.{chain[2]}.field"] == "event_id"
    assert connector[f"transforms.{chain[3]}.timestamp.format"] == "yyyy.MM.dd"
    declared = {key.split(".")[1] for key in connector if key.startswith("transforms.")}
    assert declared == set(chain)


def test_tombstones_are_dropped_before_the_key_transforms(connector: dict[str, str]) -> None:
    """A tombstone (null value) would fail in ValueToKey and land in the connector's DLQ,
    so the sink's own ``behavior.on.null.values`` would never apply. The config says what
    happens instead: the first transform drops it (the aggregator dead-letters the same
    message in clickstream-events-dlq as "empty")."""
    first = connector["transforms"].split(",")[0]
    predicate = connector[f"transforms.{first}.predicate"]
    assert connector[f"transforms.{first}.type"] == "org.apache.kafka.connect.transforms.Filter"
    assert connector["predicates"].split(",") == [predicate]
    assert connector[f"predicates.{predicate}.type"] == (
        "org.apache.kafka.connect.transforms.predicates.RecordIsTombstone"
    )
    assert f"transforms.{first}.negate" not in connector
    # What the sink would do if one got through anyway: nothing (no delete by id).
    assert connector["behavior.on.null.values"] == "ignore"


def test_a_record_without_a_usable_event_id_does_not_stop_the_task(
    connector: dict[str, str],
) -> None:
    """A null or missing event_id becomes a null key; the sink's document-id code throws a
    DataException inside put(), which errors.tolerance does not cover: without
    drop.invalid.message the task dies and the whole topic stops. With it, the sink
    logs the record (topic, partition, offset) and skips it; the aggregator has the
    same record in clickstream-events-dlq (it fails the event schema)."""
    assert connector["drop.invalid.message"] == "true"
    assert connector["key.ignore"] == "false"  # the document id is the key...
    assert connector["transforms.eventIdToKey.fields"] == "event_id"  # ...and the key event_id


def test_connector_error_handling(connector: dict[str, str]) -> None:
    assert connector["errors.tolerance"] == "all"
    assert connector["errors.deadletterqueue.context.headers.enable"] == "true"
    assert connector["behavior.on.malformed.documents"] == "report"
    assert all(isinstance(v, str) for v in connector.values()), "Connect wants strings"
    deployment_specific = {"connection.url", "connection.username", "connection.password"}
    assert not deployment_specific & set(connector), "addresses and secrets stay out of the file"


def _dockerfile_connector_version() -> str:
    version = re.search(
        r"ARG OPENSEARCH_CONNECTOR_VERSION=(\d+\.\d+\.\d+)\n", CONNECT_DOCKERFILE.read_text()
    )
    assert version, "docker/connect/Dockerfile must pin the connector version"
    return version[1]


def test_connector_class_matches_the_pinned_plugin(connector: dict[str, str]) -> None:
    major = int(_dockerfile_connector_version().split(".")[0])
    # The class was renamed in 4.0: OpensearchSinkConnector -> OpenSearchSinkConnector.
    expected = "OpensearchSinkConnector" if major < 4 else "OpenSearchSinkConnector"
    assert connector["connector.class"] == f"io.aiven.kafka.connect.opensearch.{expected}"


def test_aiven_runs_the_pinned_connector_version(module: Module) -> None:
    connect = module.resources[("aiven_kafka_connect", "connect")]
    (plugin,) = connect["kafka_connect_user_config"][0]["plugin_versions"]
    assert plugin == {
        "plugin_name": "${var.opensearch_connector_plugin}",
        "version": "${local.opensearch_connector_version}",
    }
    pinned = module.locals["opensearch_connector_version"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned), "an exact release, never 'latest'"
    # Aiven and the local Compose stack run the same release.
    assert pinned == _dockerfile_connector_version()


#: Set to True only together with a change that keeps the strict mapping under 4.x.
STRICT_MAPPING_KEPT_UNDER_CONNECTOR_4 = False


def test_a_connector_4_pin_needs_the_mapping_question_answered(module: Module) -> None:
    """Aiven's connector 4.x creates each missing index with ``mappings: {dynamic: true}``
    (OpenSearchTaskHandler.createIndex, with schema.ignore=true); mappings in a create
    request win over the index template's, so every daily index would accept any field.
    3.x sends no mappings and the template's ``dynamic: strict`` applies. Before the pin
    moves to 4.x, something must keep the strict mapping (e.g. clickstream-setup
    creating the coming days' indices, so that the connector only finds them existing).
    """
    major = int(module.locals["opensearch_connector_version"].split(".")[0])
    if major >= 4:
        assert STRICT_MAPPING_KEPT_UNDER_CONNECTOR_4, (
            "connector 4.x would create daily indices with dynamic: true; "
            "answer the mapping question first (see this test's docstring)"
        )


# --- outputs and certificates ---------------------------------------------------


def test_outputs_cover_every_connection_detail(module: Module) -> None:
    design_names = {
        "kafka_service_uri",
        "postgres_host",
        "postgres_port",
        "postgres_database",
        "postgres_user",
        "postgres_password",
        "opensearch_dashboard_url",
    }
    assert design_names <= set(module.outputs)
    assert {"opensearch_uri", "opensearch_user", "opensearch_password", "postgres_ca_cert"} <= set(
        module.outputs
    )
    for name, body in module.outputs.items():
        assert body.get("description"), f"output {name} has no description"
        secret = re.search(r"password|access_key|access_cert|ca_cert", body["value"])
        if secret:
            assert body.get("sensitive") is True, f"output {name} must be sensitive"
    # Bootstrap is host:port, which the clients require (no scheme).
    assert module.outputs["kafka_service_uri"]["value"] == (
        "${aiven_kafka.kafka.service_host}:${aiven_kafka.kafka.service_port}"
    )


def test_certificates_are_written_0600_where_env_points(module: Module) -> None:
    files = _of_type(module, "local_sensitive_file")
    assert set(files) == {"ca", "client_cert", "client_key"}
    for body in files.values():
        assert body["file_permission"] == "0600"
        assert body["filename"].startswith("${path.module}/../${local.")
    assert module.variables["certs_dir"]["default"] == "certs"
    assert module.locals["ca_file"] == "${var.certs_dir}/ca.pem"
    assert module.locals["cert_file"] == "${var.certs_dir}/service.cert"
    assert module.locals["key_file"] == "${var.certs_dir}/service.key"


def test_gitignore_keeps_secrets_and_state_out() -> None:
    ignored = set((ROOT / ".gitignore").read_text().split())
    required = {".env", "certs/", "*.pem", "*.key", "*.cert", "terraform/*.tfvars"}
    assert required <= ignored
    assert "terraform/*.tfstate*" in ignored
    assert "terraform/.terraform/" in ignored
