"""``terraform fmt -check`` and ``terraform validate`` on terraform/, with no registry.

validate needs every provider's schema, so ``terraform init`` must install the
providers. Here it may take them only from a filesystem mirror
(``.cache/terraform/providers``, laid out as ``registry.terraform.io/<namespace>/
<type>/<version>/<os>_<arch>/terraform-provider-<type>_v<version>``), through a
generated CLI config that names no other installation method, so init never asks a
registry. validate runs on a temporary copy of the module: no ``.terraform/`` or
lock file lands in the repository.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from clickstream_devstack.terraform.binary import REPO, cache_dir

TERRAFORM_DIR = REPO / "terraform"
#: Directories that terraform/*.tf reads with file() (``${path.module}/../connect/...``);
#: the copy keeps them at the same place relative to the module.
READ_BY_MODULE = ("connect",)
MIRROR_VARIABLE = "CLICKSTREAM_TERRAFORM_PROVIDERS"
REGISTRY = "registry.terraform.io"


class ProvidersUnavailableError(RuntimeError):
    """A provider the module requires has no build in the mirror; the message says which."""


@dataclass(frozen=True)
class Diagnostic:
    """One error or warning of ``terraform validate -json``."""

    severity: str
    summary: str
    detail: str
    where: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.summary} [{self.where}]\n    {self.detail}"


@dataclass(frozen=True)
class Validation:
    """What validate said, and which provider builds init installed for it."""

    diagnostics: tuple[Diagnostic, ...]
    #: ``registry.terraform.io/aiven/aiven`` -> ``4.61.0``
    providers: Mapping[str, str]


def mirror_dir() -> Path:
    """``$CLICKSTREAM_TERRAFORM_PROVIDERS`` or ``.cache/terraform/providers``."""
    configured = os.environ.get(MIRROR_VARIABLE)
    return Path(configured) if configured else cache_dir() / "providers"


def platform_name() -> str:
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
    return f"{platform.system().lower()}_{arch}"


def required_providers(module: Path = TERRAFORM_DIR) -> list[str]:
    """The ``source`` addresses of versions.tf's required_providers (``aiven/aiven``, ...)."""
    text = (module / "versions.tf").read_text()
    return sorted(set(re.findall(r'^\s*source\s*=\s*"([\w.-]+/[\w.-]+)"', text, re.MULTILINE)))


def missing_providers(mirror: Path, sources: list[str]) -> list[str]:
    """The sources with no build for this platform in ``mirror``, in either layout
    Terraform reads: unpacked (``<version>/<platform>/terraform-provider-<type>_v<version>``)
    or packed (``terraform-provider-<type>_<version>_<platform>.zip``, what
    ``terraform providers mirror`` writes)."""
    missing = []
    for source in sources:
        namespace, kind = source.split("/")
        directory = mirror / REGISTRY / namespace / kind
        unpacked = directory.glob(f"*/{platform_name()}/terraform-provider-{kind}*")
        packed = directory.glob(f"terraform-provider-{kind}_*_{platform_name()}.zip")
        if not any(unpacked) and not any(packed):
            missing.append(source)
    return missing


def cli_config(mirror: Path) -> str:
    """A CLI config whose only installation method is ``mirror`` (no ``direct``)."""
    return (
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f"    path    = {json.dumps(str(mirror))}\n"
        f'    include = ["{REGISTRY}/*/*"]\n'
        "  }\n"
        "}\n"
    )


def _environment(config: Path) -> dict[str, str]:
    # No TF_* of the caller's (a plugin cache, TF_CLI_ARGS, a data dir) changes what
    # is checked; checkpoint is Terraform's version check over the network.
    env = {key: value for key, value in os.environ.items() if not key.startswith("TF_")}
    env.update(
        TF_CLI_CONFIG_FILE=str(config),
        TF_IN_AUTOMATION="1",
        TF_INPUT="0",
        CHECKPOINT_DISABLE="1",
    )
    return env


def _run(
    terraform: Path, args: list[str], cwd: Path, env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own argv
        [str(terraform), *args],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def terraform_version(terraform: Path) -> str:
    with tempfile.TemporaryDirectory(prefix="terraform-version-") as tmp:
        config = Path(tmp) / "empty.tfrc"
        config.write_text("")
        result = _run(terraform, ["version", "-json"], Path(tmp), _environment(config))
    if result.returncode != 0:
        raise RuntimeError(f"{terraform} version failed: {result.stderr.strip()}")
    version: str = json.loads(result.stdout)["terraform_version"]
    return version


def unformatted(terraform: Path, module: Path = TERRAFORM_DIR) -> str:
    """``terraform fmt -check -diff`` of ``module``: empty when every file is formatted.

    fmt only reads here (-check); it needs no provider.
    """
    with tempfile.TemporaryDirectory(prefix="terraform-fmt-") as tmp:
        config = Path(tmp) / "empty.tfrc"
        config.write_text("")
        result = _run(
            terraform, ["fmt", "-check", "-diff", "-no-color"], module, _environment(config)
        )
    if result.returncode == 0:
        return ""
    return (result.stdout + result.stderr).strip() or f"terraform fmt exited {result.returncode}"


def _copy_module(destination: Path, additions: Mapping[str, str]) -> Path:
    module = destination / TERRAFORM_DIR.name
    module.mkdir()
    for path in TERRAFORM_DIR.glob("*.tf"):
        shutil.copy2(path, module)
    for name in READ_BY_MODULE:
        shutil.copytree(REPO / name, destination / name)
    for name, text in additions.items():
        (module / name).write_text(text)
    return module


def validate(
    terraform: Path, mirror: Path | None = None, additions: Mapping[str, str] | None = None
) -> Validation:
    """``terraform init -backend=false`` and ``terraform validate`` on a copy of terraform/.

    ``additions`` are files written into the copy first (a test's deliberate mistake).
    Raises :class:`ProvidersUnavailableError` when the mirror lacks a provider, and
    RuntimeError when init fails.
    """
    mirror = (mirror or mirror_dir()).resolve()
    missing = missing_providers(mirror, required_providers())
    if missing:
        raise ProvidersUnavailableError(
            f"no {platform_name()} build of {', '.join(missing)} in {mirror} "
            f"({REGISTRY}/<namespace>/<type>/, unpacked or packed). No Terraform registry "
            "is reachable here and the Go module proxy serves none of these providers: fill the "
            f"mirror with `terraform providers mirror -platform={platform_name()} {mirror}` "
            f"(run in terraform/) on a machine that reaches {REGISTRY}"
        )
    with tempfile.TemporaryDirectory(prefix="terraform-check-") as tmp:
        module = _copy_module(Path(tmp), additions or {})
        config = Path(tmp) / "cli.tfrc"
        config.write_text(cli_config(mirror))
        env = _environment(config)
        init = _run(terraform, ["init", "-backend=false", "-input=false", "-no-color"], module, env)
        if init.returncode != 0:
            raise RuntimeError(f"terraform init failed:\n{init.stdout}{init.stderr}".strip())
        result = _run(terraform, ["validate", "-json", "-no-color"], module, env)
        try:
            report = json.loads(result.stdout)
        except json.JSONDecodeError as error:
            raise RuntimeError(
                f"terraform validate gave no JSON:\n{result.stdout}{result.stderr}"
            ) from error
        selections = json.loads(_run(terraform, ["version", "-json"], module, env).stdout)
    diagnostics = tuple(_diagnostic(entry) for entry in report.get("diagnostics", []))
    return Validation(diagnostics=diagnostics, providers=selections["provider_selections"])


def _diagnostic(entry: Mapping[str, object]) -> Diagnostic:
    where = "the module"
    span = entry.get("range")
    if isinstance(span, dict):
        start = span.get("start", {})
        line = start.get("line") if isinstance(start, dict) else None
        where = f"{span.get('filename')}:{line}"
    return Diagnostic(
        severity=str(entry.get("severity")),
        summary=str(entry.get("summary")),
        detail=str(entry.get("detail", "")),
        where=where,
    )
