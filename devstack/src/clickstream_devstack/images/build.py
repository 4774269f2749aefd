"""Build the three service images from the Dockerfile's targets, unchanged, offline.

``podman build --network none --pull=never`` with the stand-in base image
(:mod:`.base`) and the wheelhouse (:mod:`.wheelhouse`) bind-mounted into the
``RUN`` steps. ``--format docker`` keeps ``HEALTHCHECK`` (the OCI format has no
such field and would drop it). Layers are cached by podman, so an unchanged
service rebuilds in seconds.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import structlog

from clickstream_devstack.images.base import ensure_base, pinned_base
from clickstream_devstack.images.podman import Podman, PodmanUnavailableError, ulimit_options
from clickstream_devstack.images.wheelhouse import MOUNT, ensure_wheelhouse

log = structlog.get_logger()

REPO = Path(__file__).resolve().parents[4]
CACHE_VARIABLE = "CLICKSTREAM_IMAGES_CACHE"


#: The one Dockerfile, at the repository root; each image is one of its targets.
DOCKERFILE = "Dockerfile"


@dataclass(frozen=True)
class ImageSpec:
    """One service image: its target in the Dockerfile and the tag Compose gives it."""

    service: str
    target: str
    tag: str


IMAGES = (
    ImageSpec("producer", "producer", "clickstream-producer:1.0.0"),
    ImageSpec("aggregator", "aggregator", "clickstream-aggregator:1.0.0"),
    ImageSpec("ops", "ops", "clickstream-ops:1.0.0"),
)


@dataclass(frozen=True)
class BuildReport:
    """What one ``build_all`` did and how long each step took (seconds)."""

    base: str
    base_s: float
    wheelhouse_s: float
    images_s: dict[str, float]

    def lines(self) -> list[str]:
        steps = [f"base image: {self.base} in {self.base_s:.1f} s"]
        steps.append(f"wheelhouse: {self.wheelhouse_s:.1f} s")
        steps += [f"{name}: built in {s:.1f} s" for name, s in self.images_s.items()]
        return steps


def cache_dir() -> Path:
    """``$CLICKSTREAM_IMAGES_CACHE`` or ``<repo>/.cache/images`` (ignored by git)."""
    configured = os.environ.get(CACHE_VARIABLE)
    return Path(configured) if configured else REPO / ".cache" / "images"


def build_all(podman: Podman, *, repo: Path = REPO, cache: Path | None = None) -> BuildReport:
    """Base image, wheelhouse and the three images; each step reuses what is cached."""
    cache = cache or cache_dir()
    base = pinned_base(repo / DOCKERFILE)
    started = time.monotonic()
    how = ensure_base(podman, base, cache)
    base_s = time.monotonic() - started
    check_can_run(podman, base)
    started = time.monotonic()
    wheelhouse = ensure_wheelhouse(repo, cache)
    wheelhouse_s = time.monotonic() - started
    images_s = {}
    for spec in IMAGES:
        started = time.monotonic()
        build_image(podman, spec, repo=repo, wheelhouse=wheelhouse)
        images_s[spec.tag] = time.monotonic() - started
    return BuildReport(how, base_s, wheelhouse_s, images_s)


def check_can_run(podman: Podman, image: str) -> None:
    """Run ``true`` in ``image``: where containers cannot start at all, say why, before building."""
    result = podman.run(
        "run", "--rm", "--network", "none", *ulimit_options(), image, "true",
        timeout=120, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        reason = (result.stderr or result.stdout).strip().splitlines()[-1:]
        raise PodmanUnavailableError(f"podman cannot start a container here: {' '.join(reason)}")


def build_image(podman: Podman, spec: ImageSpec, *, repo: Path, wheelhouse: Path) -> None:
    log.info("image_build_started", image=spec.tag, target=spec.target)
    previous = _image_id(podman, spec.tag)
    podman.run(
        "build",
        "--format", "docker",
        "--pull=never",
        "--network", "none",
        "--layers",
        *ulimit_options(),
        "--volume", f"{wheelhouse}:{MOUNT}:ro",
        "--volume", f"{wheelhouse / 'pip.conf'}:/etc/pip.conf:ro",
        "--file", str(repo / DOCKERFILE),
        "--target", spec.target,
        "--tag", spec.tag,
        str(repo),
        timeout=1800,
    )  # fmt: skip
    if previous is not None and previous != _image_id(podman, spec.tag):
        # The tag moved on; the old image would pile up as <none> (300 MB each).
        podman.run("rmi", previous, timeout=120, check=False)
    log.info("image_built", image=spec.tag)


def _image_id(podman: Podman, tag: str) -> str | None:
    result = podman.run("image", "inspect", "--format", "{{.Id}}", tag, timeout=60, check=False)
    return result.stdout.strip() if result.returncode == 0 else None
