"""Fetch the JVM servers from Maven Central into ``.cache/jvm/``, once.

The versions are those of ``devstack/maven/pom.xml`` (the one place they are
kept); a component is fetched by running Maven on that file, with its local
repository inside the cache, and marked complete by a stamp file, so a second
run neither starts Maven nor touches the network.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog

log = structlog.get_logger()

Component = Literal["kafka", "opensearch"]

#: devstack/maven/pom.xml, beside this package's source tree (editable install).
POM = Path(__file__).resolve().parents[4] / "maven" / "pom.xml"
CACHE_VARIABLE = "CLICKSTREAM_JVM_CACHE"
_STAMP = ".complete"
_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


class JvmUnavailableError(RuntimeError):
    """Java or the artifacts cannot be had here; the message says why."""


def cache_dir() -> Path:
    """``$CLICKSTREAM_JVM_CACHE`` or ``<repo>/.cache/jvm``."""
    configured = os.environ.get(CACHE_VARIABLE)
    return Path(configured) if configured else POM.parents[2] / ".cache" / "jvm"


def chosen_version(component: Component) -> str:
    """``$CLICKSTREAM_KAFKA_VERSION`` / ``$CLICKSTREAM_OPENSEARCH_VERSION`` (to try another
    release), else the pom's."""
    return os.environ.get(f"CLICKSTREAM_{component.upper()}_VERSION") or pom_version(component)


def pom_version(component: Component) -> str:
    """The version the pom pins for ``component`` (``kafka.version``, ``opensearch.version``)."""
    root = ET.parse(POM).getroot()  # noqa: S314 - our own file
    element = root.find(f"m:properties/m:{component}.version", _NS)
    if element is None or not element.text:
        raise RuntimeError(f"{POM} has no <{component}.version> property")
    return element.text.strip()


@dataclass(frozen=True)
class Java:
    """A ``java`` launcher and its JDK home."""

    executable: Path
    home: Path
    major: int


def find_java() -> Java:
    """``$JAVA_HOME/bin/java`` or ``java`` on PATH; :class:`JvmUnavailableError` if neither."""
    home = os.environ.get("JAVA_HOME")
    candidate = Path(home) / "bin" / "java" if home else None
    if candidate is None or not candidate.exists():
        found = shutil.which("java")
        if found is None:
            raise JvmUnavailableError(
                "no Java: `java` is not on PATH and JAVA_HOME is unset "
                "(install a JDK 17+, e.g. `apt-get install openjdk-17-jdk-headless`)"
            )
        candidate = Path(found)
    executable = candidate.resolve()
    result = subprocess.run(  # noqa: S603 - a resolved java binary
        [str(executable), "-version"], capture_output=True, text=True, check=False, timeout=60
    )
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr)
    if result.returncode != 0 or match is None:
        raise JvmUnavailableError(f"{executable} -version failed: {result.stderr.strip()}")
    major = int(match.group(1))
    if major == 1 and match.group(2):  # "1.8.0_x"
        major = int(match.group(2))
    if major < 17:
        raise JvmUnavailableError(f"{executable} is Java {major}; the servers need Java 17+")
    return Java(executable=executable, home=executable.parent.parent, major=major)


def install_dir(component: Component, version: str | None = None) -> Path:
    """Where ``component`` lives in the cache: ``kafka-<v>/`` or ``opensearch-<v>/``."""
    return cache_dir() / f"{component}-{version or chosen_version(component)}"


def ensure(component: Component, version: str | None = None) -> Path:
    """The cached installation of ``component``, fetched with Maven if not there yet."""
    version = version or chosen_version(component)
    target = install_dir(component, version)
    # The stamp names the descriptor it was fetched with: a changed pom (a module
    # added) fetches again, from Maven's repository in the cache where it can.
    stamp = f"{component} {version} {hashlib.sha256(POM.read_bytes()).hexdigest()[:16]}\n"
    if _stamped(target, stamp):
        return target
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    # One download at a time, even from parallel test sessions.
    with (cache / f".{component}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _stamped(target, stamp):
            _fetch(component, version, cache)
            (target / _STAMP).write_text(stamp)
    return target


def _stamped(target: Path, stamp: str) -> bool:
    path = target / _STAMP
    return path.exists() and path.read_text() == stamp


def _fetch(component: Component, version: str, cache: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise JvmUnavailableError(
            f"{component} {version} is not in {cache} and Maven (`mvn`) is not installed"
        )
    argv = [
        mvn,
        "--batch-mode",
        "--quiet",
        "--file",
        str(POM),
        f"--activate-profiles={component}",
        f"-Dmaven.repo.local={cache / 'm2'}",
        f"-Djvm.cache={cache}",
        f"-D{component}.version={version}",
        "process-resources",
    ]
    log.info("jvm_artifacts_fetching", component=component, version=version, cache=str(cache))
    env = {**os.environ, "JAVA_HOME": str(find_java().home)}
    result = subprocess.run(  # noqa: S603 - our own argv
        argv, capture_output=True, text=True, check=False, timeout=1800, env=env
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()
        raise RuntimeError(
            f"mvn could not fetch {component} {version}:\n" + "\n".join(output[-30:])
        )
    log.info("jvm_artifacts_fetched", component=component, version=version)
