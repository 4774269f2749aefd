"""The image builder's pure parts: no podman needed, so these run everywhere."""

from __future__ import annotations

import resource
import shutil
import subprocess
from pathlib import Path

import pytest

from clickstream_devstack.images.base import pinned_base, qualified
from clickstream_devstack.images.build import DOCKERFILE, IMAGES, REPO
from clickstream_devstack.images.podman import ulimit_options
from clickstream_devstack.images.wheelhouse import LOCAL_PACKAGES, PIP_CONF, constraints
from support.dockerfile import Dockerfile


@pytest.mark.skipif(shutil.which("grep") is None, reason="needs grep")
def test_wheelhouse_constraints_are_the_lines_the_dockerfiles_keep() -> None:
    # The Dockerfile's own filter, run on the real lock: the wheelhouse must be
    # downloaded under exactly the constraints the offline build installs with.
    grep = subprocess.run(
        ["grep", "-E", "^[A-Za-z0-9_.-]+==", str(REPO / "requirements.lock")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert constraints((REPO / "requirements.lock").read_text()) == grep.stdout
    dockerfile_filter = "grep -E '^[A-Za-z0-9_.-]+==' requirements.lock"
    assert dockerfile_filter in (REPO / DOCKERFILE).read_text()


def test_the_wheelhouse_covers_every_package_an_image_installs() -> None:
    dockerfile = Dockerfile.read(REPO / DOCKERFILE)
    for spec in IMAGES:
        # Every pip install any stage of the file runs: the builds run --network none.
        words = " ".join(
            i.argument
            for s in dockerfile.stages
            for i in s.instructions
            if "pip install" in i.argument
        ).split()
        installed = {p for p in LOCAL_PACKAGES if f"./{p}" in words}
        assert {"shared", "runtime", f"services/{spec.service}"} <= installed, spec.target
    assert "no-index = true" in PIP_CONF


def test_every_image_is_a_target_of_the_one_dockerfile_on_its_pinned_base() -> None:
    dockerfile = Dockerfile.read(REPO / DOCKERFILE)
    assert {spec.target for spec in IMAGES} <= dockerfile.names()
    base = pinned_base(REPO / DOCKERFILE)
    assert base.startswith("python:3.11.")
    assert {dockerfile.image(stage) for stage in dockerfile.stages} == {base}


def test_pinned_base_refuses_a_dockerfile_without_the_argument(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM python:3.11-slim\n")
    with pytest.raises(ValueError, match="PYTHON_IMAGE"):
        pinned_base(dockerfile)


@pytest.mark.parametrize(
    ("name", "full"),
    [
        ("python:3.11.13-slim-bookworm", "docker.io/library/python:3.11.13-slim-bookworm"),
        ("apache/kafka:3.9.1", "docker.io/apache/kafka:3.9.1"),
        ("quay.io/podman/stable:v4", "quay.io/podman/stable:v4"),
        ("localhost/python:3.11", "localhost/python:3.11"),
        ("registry:5000/python:3.11", "registry:5000/python:3.11"),
    ],
)
def test_qualified_names_are_what_podman_resolves_short_names_to(name: str, full: str) -> None:
    assert qualified(name) == full


def test_ulimits_never_exceed_what_this_process_may_have() -> None:
    options = ulimit_options()
    limits = dict(value.split("=") for value in options[1::2])
    assert options[0::2] == ["--ulimit", "--ulimit"]
    for kind, key in ((resource.RLIMIT_NOFILE, "nofile"), (resource.RLIMIT_NPROC, "nproc")):
        soft, hard = (int(v) for v in limits[key].split(":"))
        assert soft == hard > 0
        ceiling = resource.getrlimit(kind)[1]
        assert ceiling == resource.RLIM_INFINITY or hard <= ceiling
