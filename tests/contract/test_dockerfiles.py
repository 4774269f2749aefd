"""The service Dockerfile, read as text (no Docker engine here).

One Dockerfile at the repository root builds the three service images, one target
each, on shared stages. Each target's entrypoint must be a console script of the
package its venv installs, the base images pinned, the final image non-root (uid
10001) and free of build tools, and the healthcheck probing the port the service
actually listens on.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from clickstream_runtime.settings import ObservabilitySettings
from support.dockerfile import Dockerfile

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
SERVICES = {
    "producer": ("services/producer", "clickstream-producer", 9101),
    "aggregator": ("services/aggregator", "clickstream-aggregator", 9102),
    "ops": ("services/ops", "clickstream-setup", None),
}
PINNED_PYTHON = re.compile(r"python:3\.11\.\d+-slim-(bookworm|trixie)")
CONSTRAINTS_FILTER = "grep -E '^[A-Za-z0-9_.-]+=='"


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return Dockerfile.read(DOCKERFILE)


@pytest.fixture(params=sorted(SERVICES), ids=str)
def service(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def _venv_stage(dockerfile: Dockerfile, target: str) -> str:
    """The stage whose /opt/venv the target copies (its only COPY --from)."""
    copies = [
        i.argument
        for i in dockerfile.inherited(target)
        if i.keyword == "COPY" and "--from=" in i.argument
    ]
    assert len(copies) == 1, copies
    source, _, rest = copies[0].removeprefix("--from=").partition(" ")
    assert rest == "/opt/venv /opt/venv"
    return source


def _installs(dockerfile: Dockerfile, stage: str) -> list[str]:
    return [i.argument for i in dockerfile.inherited(stage) if "pip install" in i.argument]


def test_entrypoint_is_a_console_script_of_the_installed_package(
    dockerfile: Dockerfile, service: str
) -> None:
    folder, script, _ = SERVICES[service]
    entrypoint = json.loads(dockerfile.last(service, "ENTRYPOINT").argument)  # exec form only
    assert entrypoint == [script]
    project = tomllib.loads((ROOT / folder / "pyproject.toml").read_text())["project"]
    assert script in project["scripts"]
    # Its venv holds this package and the shared ones, built from the root context,
    # and no other service's.
    installs = _installs(dockerfile, _venv_stage(dockerfile, service))
    words = " ".join(installs).split()
    for package in ("./shared", "./runtime", f"./{folder}"):
        assert package in words
    others = {f"./{f}" for f, _, _ in SERVICES.values()} - {f"./{folder}"}
    assert not others & set(words)
    assert all("-c /tmp/constraints.txt" in install for install in installs)


def test_multi_stage_on_a_pinned_slim_python(dockerfile: Dockerfile, service: str) -> None:
    venv = _venv_stage(dockerfile, service)
    built, final = dockerfile.chain(venv), dockerfile.chain(service)
    assert not {s.name for s in built} & {s.name for s in final}  # the build stays behind
    for stage in dockerfile.stages:
        assert PINNED_PYTHON.fullmatch(dockerfile.image(stage)), stage.name
    # Constraints are the lock's pinned lines: the `-e ./...` lines cannot be constraints.
    assert any(CONSTRAINTS_FILTER in i.argument for i in dockerfile.inherited(venv))


def test_final_stage_is_non_root_without_build_tools(dockerfile: Dockerfile, service: str) -> None:
    assert dockerfile.last(service, "USER").argument == "10001:10001"
    inherited = dockerfile.inherited(service)
    runs = " ".join(i.argument for i in inherited if i.keyword == "RUN")
    assert "--uid 10001" in runs
    assert "--gid 10001" in runs
    for tool in ("apt-get install", "gcc", "build-essential", "pip install"):
        assert tool not in runs
    _venv_stage(dockerfile, service)  # exactly one COPY --from, of /opt/venv
    assert dockerfile.last(service, "WORKDIR").argument == "/app"  # .env's certs/... resolve here


def test_healthcheck_probes_readyz_on_the_service_port(
    dockerfile: Dockerfile, service: str
) -> None:
    _, _, port = SERVICES[service]
    healthcheck = dockerfile.last(service, "HEALTHCHECK").argument
    if port is None:
        assert healthcheck == "NONE"  # a one-shot job; Compose waits for its exit code
        return
    options, _, command = healthcheck.partition("CMD ")
    assert "--interval=" in options
    argv = json.loads(command)
    assert argv[:2] == ["python", "-c"]
    compile(argv[2], "<healthcheck>", "exec")
    assert "/readyz" in argv[2]
    assert "os.environ['METRICS_PORT']" in argv[2]
    # The probe reads the variable the image sets: the latest ENV that sets it wins.
    settings = [
        pair.partition("=")
        for i in dockerfile.inherited(service)
        if i.keyword == "ENV"
        for pair in i.argument.split()
    ]
    assert [value for name, _, value in settings if name == "METRICS_PORT"][-1] == str(port)
    assert f"EXPOSE {port}" in [f"{i.keyword} {i.argument}" for i in dockerfile.inherited(service)]
    # The default 0 turns the HTTP server off, so the image must set a port.
    assert ObservabilitySettings.model_fields["metrics_port"].default == 0


def test_settings_default_ports_match_the_images() -> None:
    from clickstream_aggregator.settings import AggregatorSettings
    from clickstream_producer.settings import ProducerSettings

    assert ProducerSettings.model_fields["metrics_port"].default == SERVICES["producer"][2]
    assert AggregatorSettings.model_fields["metrics_port"].default == SERVICES["aggregator"][2]


def test_every_python_image_uses_the_same_base(dockerfile: Dockerfile) -> None:
    external = {s.base for s in dockerfile.stages if s.base not in dockerfile.names()}
    assert external == {"${PYTHON_IMAGE}"}
    assert set(dockerfile.args) == {"PYTHON_IMAGE"}


def test_compose_builds_each_service_from_its_target(dockerfile: Dockerfile) -> None:
    tags = {"producer": "clickstream-producer:1.0.0", "aggregator": "clickstream-aggregator:1.0.0"}
    for path in (ROOT / "docker-compose.yml", ROOT / "docker-compose.local.yml"):
        services = yaml.safe_load(path.read_text())["services"]
        for name, tag in tags.items():
            build = services[name]["build"]
            assert (build["dockerfile"], build["target"]) == ("Dockerfile", name), path.name
            assert services[name]["image"] == tag
        built = {s["build"]["target"] for s in services.values() if "target" in s.get("build", {})}
        assert built <= set(SERVICES), path.name
        assert built <= dockerfile.names(), path.name
        assert "ops" in built, path.name


def test_dockerignore_keeps_secrets_out_and_sources_in() -> None:
    patterns = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for secret in (".env", "certs/", "terraform/", "**/*.key", "**/*.pem", ".git/", ".venv/"):
        assert secret in patterns
    sources = set()
    for stage in Dockerfile.read(DOCKERFILE).stages:
        for instruction in stage.instructions:
            if instruction.keyword == "COPY" and "--from=" not in instruction.argument:
                sources.update(instruction.argument.split()[:-1])
    for source in sources:
        assert (ROOT / source).exists(), source
        top = source.split("/")[0]
        assert not {top, f"{top}/"} & patterns, f"{source} is excluded from the context"


def test_connect_image_pins_kafka_and_the_connector() -> None:
    connect = Dockerfile.read(ROOT / "docker" / "connect" / "Dockerfile")
    args = connect.arg_defaults()
    assert re.fullmatch(r"apache/kafka:\d+\.\d+\.\d+", args["KAFKA_IMAGE"])
    assert re.fullmatch(r"\d+\.\d+\.\d+", args["OPENSEARCH_CONNECTOR_VERSION"])
    for stage in connect.stages:
        image = connect.image(stage)
        assert re.fullmatch(r"[\w./-]+:\d[\w.-]*", image), image
    (download,) = [i.argument for s in connect.stages for i in s.instructions if i.keyword == "ADD"]
    assert download.startswith(
        "https://github.com/Aiven-Open/opensearch-connector-for-apache-kafka/releases/download/"
        "v${OPENSEARCH_CONNECTOR_VERSION}/"
    )
    compose = yaml.safe_load((ROOT / "docker-compose.local.yml").read_text())["services"]
    assert compose["kafka"]["image"] == args["KAFKA_IMAGE"], "broker and Connect share a release"
    assert compose["connect"]["build"]["dockerfile"] == "docker/connect/Dockerfile"
