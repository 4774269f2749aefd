"""terraform/ through the terraform CLI itself: ``fmt -check`` and ``validate``.

The CLI is $CLICKSTREAM_TERRAFORM, the one on PATH, or v1.5.7 as `make terraform`
built it with Go into .cache/terraform (clickstream_devstack.terraform.binary); with
none of them, every test that needs the CLI is skipped with that reason. validate needs the
provider builds in the filesystem mirror (.cache/terraform/providers); no registry
here serves them, so without them the validate tests are skipped, naming what is
missing.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from clickstream_devstack.terraform.binary import TerraformUnavailableError, find_terraform
from clickstream_devstack.terraform.check import (
    REGISTRY,
    ProvidersUnavailableError,
    Validation,
    cli_config,
    missing_providers,
    platform_name,
    required_providers,
    unformatted,
    validate,
)


@pytest.fixture(scope="module")
def terraform() -> Path:
    # No build here: a cold `go install` costs make test two to three minutes and
    # depends on the Go proxy answering; `make terraform` builds the CLI once.
    try:
        return find_terraform(build=False)
    except TerraformUnavailableError as error:
        pytest.skip(f"terraform checks skipped: {error}")


def _validate(terraform: Path, additions: dict[str, str] | None = None) -> Validation:
    try:
        return validate(terraform, additions=additions)
    except ProvidersUnavailableError as error:
        pytest.skip(f"terraform validate skipped: {error}")


# --- without the CLI ------------------------------------------------------------


def test_the_required_providers_are_read_from_versions_tf() -> None:
    assert required_providers() == ["aiven/aiven", "cyrilgdn/postgresql", "hashicorp/local"]


def test_a_provider_counts_only_with_a_build_in_the_mirror_layout(tmp_path: Path) -> None:
    sources = ["aiven/aiven", "hashicorp/local"]
    assert missing_providers(tmp_path, sources) == sources
    build = tmp_path / REGISTRY / "hashicorp" / "local" / "2.5.3" / platform_name()
    build.mkdir(parents=True)
    assert missing_providers(tmp_path, sources) == sources, "an empty version directory"
    (build / "terraform-provider-local_v2.5.3").write_bytes(b"")
    assert missing_providers(tmp_path, sources) == ["aiven/aiven"]
    # The packed layout, as `terraform providers mirror` writes it.
    packed = tmp_path / REGISTRY / "aiven" / "aiven"
    packed.mkdir(parents=True)
    (packed / "terraform-provider-aiven_4.61.0_other_arch.zip").write_bytes(b"")
    assert missing_providers(tmp_path, sources) == ["aiven/aiven"], "another platform's"
    (packed / f"terraform-provider-aiven_4.61.0_{platform_name()}.zip").write_bytes(b"")
    assert missing_providers(tmp_path, sources) == []


def test_init_may_install_only_from_the_mirror() -> None:
    config = cli_config(Path("/some/mirror"))
    assert 'path    = "/some/mirror"' in config
    assert "filesystem_mirror" in config
    assert "direct" not in config, "a direct method would let init ask the registry"
    assert "network_mirror" not in config


# --- fmt --------------------------------------------------------------------------


def test_terraform_files_are_formatted(terraform: Path) -> None:
    diff = unformatted(terraform)
    assert not diff, f"run `terraform fmt` in terraform/:\n{diff}"


def test_fmt_check_reports_a_misaligned_file(terraform: Path, tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text("locals {\n  a = 1\n  bb = 2\n}\n")
    assert "main.tf" in unformatted(terraform, tmp_path)
    (tmp_path / "main.tf").write_text("locals {\n  a  = 1\n  bb = 2\n}\n")
    assert unformatted(terraform, tmp_path) == ""


# --- validate ---------------------------------------------------------------------


def test_terraform_validates_against_the_provider_schemas(terraform: Path) -> None:
    validation = _validate(terraform)
    # Warnings count: a deprecated argument is removed in the provider's next major.
    assert not validation.diagnostics, "\n".join(map(str, validation.diagnostics))
    assert set(validation.providers) == {f"{REGISTRY}/{s}" for s in required_providers()}


def test_validate_reports_what_the_schema_does_not_have(terraform: Path) -> None:
    mistake = textwrap.dedent(
        """\
        resource "aiven_kafka_topic" "mistake" {
          project      = var.aiven_project_name
          service_name = aiven_kafka.kafka.service_name
          topic_name   = "mistake"
          partitions   = 1
          replication  = 2
          no_such_argument = true
        }
        """
    )
    validation = _validate(terraform, additions={"mistake.tf": mistake})
    (diagnostic,) = validation.diagnostics
    assert diagnostic.severity == "error"
    assert "no_such_argument" in diagnostic.detail
    assert diagnostic.where == "mistake.tf:7"
