"""The service Dockerfiles, read as text (no Docker engine here).

Each entrypoint must be a console script of the package the image installs, the
base images pinned, the final stage non-root and free of build tools, and the
healthcheck probing the port the service actually listens on.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from clickstream_runtime.settings import ObservabilitySettings

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {
    "producer": ("services/producer", "clickstream-producer", 9101),
    "aggregator": ("services/aggregator", "clickstream-aggregator", 9102),
    "ops": ("services/ops", "clickstream-setup", None),
}
PINNED_PYTHON = re.compile(r"python:3\.11\.\d+-slim-(bookworm|trixie)")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    argument: str


def _instructions(path: Path) -> list[Instruction]:
    text = re.sub(r"\\\n", " ", path.read_text())
    found = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, argument = stripped.partition(" ")
            found.append(Instruction(keyword.upper(), " ".join(argument.split())))
    return found


def _stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    stages: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def _args(instructions: list[Instruction]) -> dict[str, str]:
    pairs = (i.argument.partition("=") for i in instructions if i.keyword == "ARG")
    return {name: default for name, _, default in pairs}


def _resolve(image: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], image)


def _one(stage: list[Instruction], keyword: str) -> Instruction:
    (found,) = [i for i in stage if i.keyword == keyword]
    return found


@pytest.fixture(params=sorted(SERVICES), ids=str)
def service(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def test_entrypoint_is_a_console_script_of_the_installed_package(service: str) -> None:
    folder, script, _ = SERVICES[service]
    instructions = _instructions(ROOT / folder / "Dockerfile")
    final = _stages(instructions)[-1]
    entrypoint = json.loads(_one(final, "ENTRYPOINT").argument)  # exec form only
    assert entrypoint == [script]
    project = tomllib.loads((ROOT / folder / "pyproject.toml").read_text())["project"]
    assert script in project["scripts"]
    # The builder installs this package (and the shared ones) from the root context.
    installs = " ".join(i.argument for i in instructions if "pip install" in i.argument)
    for package in ("./shared", "./runtime", f"./{folder}"):
        assert package in installs.split()
    assert "-c /tmp/constraints.txt" in installs


def test_multi_stage_on_a_pinned_slim_python(service: str) -> None:
    instructions = _instructions(ROOT / SERVICES[service][0] / "Dockerfile")
    args = _args(instructions)
    stages = _stages(instructions)
    assert len(stages) >= 2
    for stage in stages:
        image = _resolve(stage[0].argument.split()[0], args)
        assert PINNED_PYTHON.fullmatch(image), image
    assert stages[0][0].argument.endswith("AS builder")
    # Constraints are the lock's pinned lines: the `-e ./...` lines cannot be constraints.
    assert any("grep -E '^[A-Za-z0-9_.-]+=='" in i.argument for i in stages[0])


def test_final_stage_is_non_root_without_build_tools(service: str) -> None:
    final = _stages(_instructions(ROOT / SERVICES[service][0] / "Dockerfile"))[-1]
    user = _one(final, "USER").argument
    assert user.split(":")[0] not in {"root", "0"}
    runs = " ".join(i.argument for i in final if i.keyword == "RUN")
    for tool in ("apt-get install", "gcc", "build-essential", "pip install"):
        assert tool not in runs
    copies = [i.argument for i in final if i.keyword == "COPY" and "--from=" in i.argument]
    assert copies == ["--from=builder /opt/venv /opt/venv"]
    assert _one(final, "WORKDIR").argument == "/app"  # .env's certs/... paths resolve here


def test_healthcheck_probes_readyz_on_the_service_port(service: str) -> None:
    _, _, port = SERVICES[service]
    final = _stages(_instructions(ROOT / SERVICES[service][0] / "Dockerfile"))[-1]
    healthcheck = _one(final, "HEALTHCHECK").argument
    if port is None:
        assert healthcheck == "NONE"  # a one-shot job; Compose waits for its exit code
        return
    options, _, command = healthcheck.partition("CMD ")
    assert "--interval=" in options
    argv = json.loads(command)
    assert argv[:2] == ["python", "-c"]
    compile(argv[2], "<healthcheck>", "exec")
    assert "/readyz" in argv[2]
    assert f"'METRICS_PORT', '{port}'" in argv[2]
    env = " ".join(i.argument for i in final if i.keyword == "ENV")
    assert f"METRICS_PORT={port}" in env
    assert f"EXPOSE {port}" in [f"{i.keyword} {i.argument}" for i in final]
    # The default 0 turns the HTTP server off, so the image must set a port.
    assert ObservabilitySettings.model_fields["metrics_port"].default == 0


def test_settings_default_ports_match_the_images() -> None:
    from clickstream_aggregator.settings import AggregatorSettings
    from clickstream_producer.settings import ProducerSettings

    assert ProducerSettings.model_fields["metrics_port"].default == SERVICES["producer"][2]
    assert AggregatorSettings.model_fields["metrics_port"].default == SERVICES["aggregator"][2]


def test_every_python_image_uses_the_same_base() -> None:
    bases = set()
    for folder, _, _ in SERVICES.values():
        instructions = _instructions(ROOT / folder / "Dockerfile")
        bases.add(_args(instructions)["PYTHON_IMAGE"])
    assert len(bases) == 1


def test_dockerignore_keeps_secrets_out_and_sources_in() -> None:
    patterns = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for secret in (".env", "certs/", "terraform/", "**/*.key", "**/*.pem", ".git/", ".venv/"):
        assert secret in patterns
    sources = set()
    for path in [*(ROOT / f / "Dockerfile" for f, _, _ in SERVICES.values())]:
        for instruction in _instructions(path):
            if instruction.keyword == "COPY" and "--from=" not in instruction.argument:
                sources.update(instruction.argument.split()[:-1])
    for source in sources:
        assert (ROOT / source).exists(), source
        top = source.split("/")[0]
        assert not {top, f"{top}/"} & patterns, f"{source} is excluded from the context"


def test_connect_image_pins_kafka_and_the_connector() -> None:
    path = ROOT / "docker" / "connect" / "Dockerfile"
    instructions = _instructions(path)
    args = _args(instructions)
    assert re.fullmatch(r"apache/kafka:\d+\.\d+\.\d+", args["KAFKA_IMAGE"])
    assert re.fullmatch(r"\d+\.\d+\.\d+", args["OPENSEARCH_CONNECTOR_VERSION"])
    for stage in _stages(instructions):
        image = _resolve(stage[0].argument.split()[0], args)
        assert re.fullmatch(r"[\w./-]+:\d[\w.-]*", image), image
    (download,) = [i.argument for i in instructions if i.keyword == "ADD"]
    assert download.startswith(
        "https://github.com/Aiven-Open/opensearch-connector-for-apache-kafka/releases/download/"
        "v${OPENSEARCH_CONNECTOR_VERSION}/"
    )
    compose = yaml.safe_load((ROOT / "docker-compose.local.yml").read_text())["services"]
    assert compose["kafka"]["image"] == args["KAFKA_IMAGE"], "broker and Connect share a release"
    assert compose["connect"]["build"]["dockerfile"] == "docker/connect/Dockerfile"
