"""Running a server (PostgreSQL, OpenSearch) when we are root, as in CI and in containers.

PostgreSQL refuses to run as root, so a root launcher hands the data directory
to an unprivileged system account and starts the server as that account. The
account must be able to reach the data directory and read the binaries, so
missing traverse/read bits for "others" are added (never removed).
"""

from __future__ import annotations

import functools
import os
import pwd
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger()

SERVER_ACCOUNT = "clickstream-pg"


@dataclass(frozen=True)
class RunAs:
    """The account a child process runs as."""

    name: str
    uid: int
    gid: int

    def popen_options(self) -> dict[str, Any]:
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def server_account(name: str = SERVER_ACCOUNT) -> RunAs | None:
    """The account to run PostgreSQL as: ``None`` (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        entry = _create_account(name)
    return RunAs(name=name, uid=entry.pw_uid, gid=entry.pw_gid)


def _create_account(name: str) -> pwd.struct_passwd:
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    argv = [
        useradd,
        "--system",
        "--user-group",
        "--no-create-home",
        "--shell",
        "/usr/sbin/nologin",
        name,
    ]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
    try:
        # A concurrent launcher may have created it first: that is success too.
        entry = pwd.getpwnam(name)
    except KeyError:
        raise RuntimeError(f"cannot create system user {name!r}: {result.stderr.strip()}") from None
    log.info("server_account_created", account=name, uid=entry.pw_uid)
    return entry


def hand_over(path: Path, account: RunAs | None) -> None:
    """Make ``path`` (recursively) owned by ``account`` unless it already is."""
    if account is None or path.stat().st_uid == account.uid:
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, account.uid, account.gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), account.uid, account.gid, follow_symlinks=False)


def grant_traverse(path: Path) -> None:
    """Let other accounts reach ``path``: add o+x to it and every ancestor lacking it."""
    for directory in (path, *path.parents):
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            directory.chmod(mode | stat.S_IXOTH)
            log.info("permissions_widened", path=str(directory), added="o+x")


@functools.cache
def make_world_readable(install_root: Path) -> None:
    """Let the server account run the bundled binaries and read their share/lib files."""
    grant_traverse(install_root)
    for root, dirs, files in os.walk(install_root):
        for name in dirs:
            _add_bits(Path(root, name), stat.S_IROTH | stat.S_IXOTH)
        for name in files:
            path = Path(root, name)
            wanted = stat.S_IROTH | (stat.S_IXOTH if path.stat().st_mode & stat.S_IXUSR else 0)
            _add_bits(path, wanted)


def _add_bits(path: Path, bits: int) -> None:
    if path.is_symlink():
        return
    mode = path.stat().st_mode
    if mode & bits != bits:
        path.chmod(mode | bits)
