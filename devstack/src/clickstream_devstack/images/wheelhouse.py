"""An offline wheelhouse for the image builds: the lock's wheels, downloaded once.

The Dockerfile's builder stages run ``pip install -c constraints ./shared
./runtime``, then ``./services/<name>``. Here the build has no network (``podman build
--network none``), so the wheelhouse folder is bind-mounted at ``/wheelhouse``
and a ``pip.conf`` saying ``no-index`` + ``find-links`` at ``/etc/pip.conf``;
the Dockerfile itself stays unchanged. The folder is keyed by the lock and
the packages' ``pyproject.toml``, so a change to either downloads afresh.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import structlog

log = structlog.get_logger()

#: Where the build sees the wheelhouse.
MOUNT = "/wheelhouse"
#: The local packages the three images install (their dependencies are downloaded).
LOCAL_PACKAGES = (
    "shared",
    "runtime",
    "services/producer",
    "services/aggregator",
    "services/ops",
)
#: Their build backend: pip builds the local packages in isolation, offline too.
BUILD_BACKEND = "hatchling>=1.25"
PIP_CONF = f"[global]\nno-index = true\nfind-links = {MOUNT}\n"
_PINNED = re.compile(r"^[A-Za-z0-9_.-]+==", re.MULTILINE)
_STAMP = ".complete"


def constraints(lock: str) -> str:
    """The lock's pinned lines, as the Dockerfile's ``grep -E '^[A-Za-z0-9_.-]+=='`` keeps them."""
    return "".join(line + "\n" for line in lock.splitlines() if _PINNED.match(line))


def ensure_wheelhouse(repo: Path, cache: Path) -> Path:
    """The wheelhouse folder for the current lock (with its ``pip.conf``), downloaded if missing."""
    folder = cache / f"wheelhouse-{_key(repo)}"
    if (folder / _STAMP).exists():
        return folder
    partial = folder.with_suffix(".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    pinned = partial / "constraints.txt"
    pinned.write_text(constraints((repo / "requirements.lock").read_text()))
    argv = [
        sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
        "--only-binary=:all:", "--dest", str(partial), "-c", str(pinned),
        *(f"./{package}" for package in LOCAL_PACKAGES), BUILD_BACKEND,
    ]  # fmt: skip
    log.info("wheelhouse_download_started", folder=str(folder))
    result = subprocess.run(  # noqa: S603 - argv is built here, never by a shell
        argv, cwd=repo, capture_output=True, text=True, timeout=1200, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"pip download exited {result.returncode}:\n{result.stderr[-3000:]}")
    (partial / "pip.conf").write_text(PIP_CONF)
    (partial / _STAMP).touch()
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    log.info("wheelhouse_ready", folder=str(folder), wheels=len(list(folder.glob("*.whl"))))
    return folder


def _key(repo: Path) -> str:
    digest = hashlib.sha256((repo / "requirements.lock").read_bytes())
    for package in LOCAL_PACKAGES:
        digest.update((repo / package / "pyproject.toml").read_bytes())
    return digest.hexdigest()[:12]
