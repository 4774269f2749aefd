"""A cluster's data directory: created (from a cached initdb when it can be), our settings, TLS.

initdb costs one to two seconds on a busy CI machine; copying its result takes a
fraction of that, and every test session, demo and benchmark starts from one.
Only trust-auth clusters are cached: a password is baked in at initdb time.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import structlog

from clickstream_devstack.servers.postgres.binaries import Binaries, environment
from clickstream_devstack.servers.run_as import RunAs, hand_over

log = structlog.get_logger()

SUPERUSER = "postgres"
SETTINGS_FILE = "devstack.conf"
MAX_CONNECTIONS = 200


@dataclass(frozen=True)
class ServerSettings:
    """What we put in ``devstack.conf``, rewritten at every start."""

    host: str
    port: int
    durable: bool
    tls: bool

    def render(self) -> str:
        durability = "on" if self.durable else "off"
        lines = [
            f"listen_addresses = '{self.host}'",
            f"port = {self.port}",
            # TCP only: no socket path length limits, no root-owned /var/run to write.
            "unix_socket_directories = ''",
            f"max_connections = {MAX_CONNECTIONS}",
            # Off trades crash safety for speed: for tests, never for benchmarks.
            f"fsync = {durability}",
            f"synchronous_commit = {durability}",
            f"full_page_writes = {durability}",
            f"ssl = {'on' if self.tls else 'off'}",
            "logging_collector = off",
        ]
        if self.tls:
            lines += ["ssl_cert_file = 'server.crt'", "ssl_key_file = 'server.key'"]
        return "\n".join(lines) + "\n"


def is_initialised(data_dir: Path) -> bool:
    return (data_dir / "PG_VERSION").is_file()


def create(
    binaries: Binaries, data_dir: Path, *, password: str | None, run_as: RunAs | None
) -> None:
    """A new cluster in ``data_dir``: a copy of the cached template when possible."""
    template = None if password else _template(binaries, run_as)
    if template is None:
        _initdb(binaries, data_dir, password=password, run_as=run_as)
        return
    shutil.copytree(template, data_dir, symlinks=True, dirs_exist_ok=True)
    data_dir.chmod(0o700)
    hand_over(data_dir, run_as)


def write_settings(data_dir: Path, settings: ServerSettings, run_as: RunAs | None) -> None:
    path = data_dir / SETTINGS_FILE
    path.write_text(settings.render())
    _own(path, run_as)


def install_tls(data_dir: Path, cert_file: Path, key_file: Path, run_as: RunAs | None) -> None:
    """Copy the server certificate and key in: PostgreSQL wants the key 0600 and its own."""
    for source, name in ((cert_file, "server.crt"), (key_file, "server.key")):
        target = data_dir / name
        shutil.copyfile(source, target)
        target.chmod(0o600)
        _own(target, run_as)


def _initdb(
    binaries: Binaries, data_dir: Path, *, password: str | None, run_as: RunAs | None
) -> None:
    """Create the cluster: superuser ``postgres``, trust or SCRAM auth, C locale."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    hand_over(data_dir, run_as)
    argv = [
        str(binaries.path("initdb")),
        "--pgdata",
        str(data_dir),
        "--username",
        SUPERUSER,
        "--encoding",
        "UTF8",
        "--locale",
        "C",
        "--no-sync",
        "--no-instructions",
        f"--auth={'scram-sha-256' if password else 'trust'}",
    ]
    password_file = data_dir.parent / f".{data_dir.name}.pwfile"
    if password:
        # initdb reads the password from a file only; it lives for this call.
        password_file.unlink(missing_ok=True)
        descriptor = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(password + "\n")
        _own(password_file, run_as)
        argv.append(f"--pwfile={password_file}")
    try:
        result = subprocess.run(  # noqa: S603 - our own argv
            argv,
            capture_output=True,
            text=True,
            check=False,
            env=environment(),
            cwd=data_dir,
            **(run_as.popen_options() if run_as else {}),
        )
    finally:
        password_file.unlink(missing_ok=True)
    if result.returncode != 0:
        raise RuntimeError(f"initdb failed ({result.returncode}): {result.stderr.strip()}")
    with (data_dir / "postgresql.conf").open("a") as conf:
        conf.write("\n# clickstream devstack settings, rewritten at every start\n")
        conf.write(f"include '{SETTINGS_FILE}'\n")


def _own(path: Path, run_as: RunAs | None) -> None:
    if run_as is not None:
        os.chown(path, run_as.uid, run_as.gid)


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


def _template(binaries: Binaries, run_as: RunAs | None) -> Path | None:
    """The cached cluster's data directory for this build and owner, built on first use."""
    root = _cache_root()
    if root is None:
        return None
    postgres = binaries.path("postgres").stat()
    identity = f"{binaries.bin_dir}:{postgres.st_mtime_ns}:{postgres.st_size}"
    key = hashlib.sha256(identity.encode()).hexdigest()[:16]
    template = root / f"initdb-{key}-{run_as.name if run_as else 'self'}"
    if not is_initialised(template / "data"):
        building = Path(tempfile.mkdtemp(prefix="building-", dir=root))
        try:
            building.chmod(0o711)
            _initdb(binaries, building / "data", password=None, run_as=run_as)
            # Atomic publish: a concurrent builder that loses the race keeps the winner's.
            os.rename(building, template)
            log.info("postgres_template_built", template=str(template))
        except OSError:
            pass
        finally:
            shutil.rmtree(building, ignore_errors=True)
    return template / "data" if is_initialised(template / "data") else None
