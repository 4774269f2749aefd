"""The servers of the real tier are the versions we deploy (no Java needed to check)."""

from __future__ import annotations

from pathlib import Path

import hcl2

from clickstream_devstack.servers.jvm.artifacts import POM, pom_version

TERRAFORM = Path(__file__).parents[2] / "terraform" / "variables.tf"


def _terraform_default(name: str) -> str:
    with TERRAFORM.open() as handle:
        variables = hcl2.load(handle)["variable"]
    # Depending on the python-hcl2 release, names and strings keep their quotes.
    (block,) = [b for v in variables for key, b in v.items() if key.strip('"') == name]
    return str(block["default"]).strip('"')


def test_the_pom_fetches_the_kafka_minor_version_terraform_deploys() -> None:
    deployed = _terraform_default("kafka_version")  # "3.9": Aiven picks the patch release
    assert pom_version("kafka").split(".")[:2] == deployed.split(".")[:2], POM


def test_opensearch_stays_on_2_19_while_java_17_is_the_default() -> None:
    # OpenSearch 3.x needs Java 21+; the integ-test zip brings no JDK of its own.
    assert pom_version("opensearch").startswith("2.19."), POM
