"""A cached, freshly initdb'd cluster to copy instead of running initdb every time.

initdb costs one to two seconds on a busy CI machine; copying its result takes a
fraction of that, and every test session, demo and benchmark starts from one.
Only trust-auth clusters are cached: a password is baked in at initdb time.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from pathlib import Path

import structlog

from clickstream_devstack.servers.postgres_cluster import Binaries, initdb
from clickstream_devstack.servers.run_as import RunAs, hand_over

log = structlog.get_logger()


def _cache_root() -> Path | None:
    """A private directory in the temp dir, or None if one cannot be trusted."""
    root = Path(tempfile.gettempdir()) / f"clickstream-devstack-{os.geteuid()}"
    try:
        # 0711: a server account (when we are root) may pass through, not list.
        root.mkdir(mode=0o711, exist_ok=True)
        info = root.lstat()
    except OSError:
        return None
    # Someone else's directory or a symlink in a shared /tmp must never be used.
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        return None
    return root


def _key(binaries: Binaries) -> str:
    postgres = binaries.path("postgres")
    identity = f"{binaries.bin_dir}:{postgres.stat().st_mtime_ns}:{postgres.stat().st_size}"
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def _template(binaries: Binaries, run_as: RunAs | None) -> Path | None:
    root = _cache_root()
    if root is None:
        return None
    owner = run_as.name if run_as else "self"
    template = root / f"initdb-{_key(binaries)}-{owner}"
    if (template / "data" / "PG_VERSION").is_file():
        return template / "data"
    building = Path(tempfile.mkdtemp(prefix="building-", dir=root))
    try:
        building.chmod(0o711)
        initdb(binaries, building / "data", password=None, run_as=run_as)
        # Atomic publish: a concurrent builder that loses the race keeps the winner's.
        os.rename(building, template)
        log.info("postgres_template_built", template=str(template))
    except OSError:
        pass
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return template / "data" if (template / "data" / "PG_VERSION").is_file() else None


def create_cluster(
    binaries: Binaries, data_dir: Path, *, password: str | None, run_as: RunAs | None
) -> None:
    """A new cluster in ``data_dir``: a copy of the cached template when possible."""
    template = None if password else _template(binaries, run_as)
    if template is None:
        initdb(binaries, data_dir, password=password, run_as=run_as)
        return
    shutil.copytree(template, data_dir, symlinks=True, dirs_exist_ok=True)
    data_dir.chmod(0o700)
    hand_over(data_dir, run_as)
