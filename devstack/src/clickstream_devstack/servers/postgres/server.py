"""The running server: launched on ``127.0.0.1:<free port>``, stopped in a PostgreSQL mode, psql.

Creates the cluster in ``data_dir`` on first start (:mod:`.cluster`), runs
``postgres`` in its own process group (as an unprivileged account when we are
root), and reports ready only once a real connection runs a query.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import structlog

from clickstream_devstack.servers.child_server import ChildServer
from clickstream_devstack.servers.postgres import cluster
from clickstream_devstack.servers.postgres.binaries import BIN_DIR_VARIABLE, Binaries, environment
from clickstream_devstack.servers.run_as import (
    RunAs,
    grant_traverse,
    make_world_readable,
    server_account,
)

log = structlog.get_logger()

StopMode = Literal["smart", "fast", "immediate"]
# PostgreSQL's own shutdown protocol: the postmaster picks the mode by signal.
_STOP_SIGNALS: dict[StopMode, int] = {
    "smart": signal.SIGTERM,
    "fast": signal.SIGINT,
    "immediate": signal.SIGQUIT,
}
_DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresCommandError(RuntimeError):
    """psql reported an error."""


class EmbeddedPostgres(ChildServer):
    """One PostgreSQL cluster in ``data_dir``; its server log is ``<data_dir>.log``."""

    name = "postgres"

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        password: str | None = None,
        durable: bool = True,
        ssl_cert_file: Path | None = None,
        ssl_key_file: Path | None = None,
        start_timeout: float = 30.0,
        bin_dir: Path | None = None,
    ) -> None:
        if (ssl_cert_file is None) != (ssl_key_file is None):
            raise ValueError("ssl_cert_file and ssl_key_file must be given together")
        self.binaries = Binaries.resolve(bin_dir)
        if ssl_cert_file is not None and not self.binaries.supports_ssl():
            raise ValueError(
                f"the PostgreSQL build in {self.binaries.bin_dir} has no SSL support: pass "
                f"bin_dir= or set {BIN_DIR_VARIABLE} to one that has "
                "(e.g. /usr/lib/postgresql/15/bin)"
            )
        data_dir = Path(data_dir).absolute()
        super().__init__(
            data_dir,
            ports={self.name: port or 0},
            start_timeout=start_timeout,
            log_path=data_dir.with_name(data_dir.name + ".log"),
        )
        self.data_dir = data_dir
        self.user = cluster.SUPERUSER
        self.password = password or ""
        self.durable = durable
        self.ssl_cert_file = ssl_cert_file
        self.ssl_key_file = ssl_key_file
        self._run_as = server_account()

    # -- connection details --------------------------------------------------

    @property
    def port(self) -> int:
        return self.bound_port()

    @property
    def tls(self) -> bool:
        return self.ssl_cert_file is not None

    @property
    def sslmode(self) -> str:
        return "require" if self.tls else "disable"

    def dsn(self, database: str = "postgres") -> str:
        secret = f":{quote(self.password, safe='')}" if self.password else ""
        return (
            f"postgresql://{self.user}{secret}@{self.host}:{self.port}/{database}"
            f"?sslmode={self.sslmode}"
        )

    def env(self, database: str = "postgres") -> dict[str, str]:
        """The POSTGRES_* variables of ``clickstream_runtime.settings.PostgresSettings``."""
        return {
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_DATABASE": database,
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
            "POSTGRES_SSLMODE": self.sslmode,
        }

    # -- ChildServer ---------------------------------------------------------

    def setup(self) -> None:
        if self._run_as is not None:
            if self.binaries.bundled:
                make_world_readable(self.binaries.bin_dir.parent)
            self.data_dir.parent.mkdir(parents=True, exist_ok=True)
            grant_traverse(self.data_dir.parent)
        if not cluster.is_initialised(self.data_dir):
            cluster.create(
                self.binaries, self.data_dir, password=self.password or None, run_as=self._run_as
            )
            log.info("postgres_initialised", data_dir=str(self.data_dir))
        if self.ssl_cert_file is not None and self.ssl_key_file is not None:
            cluster.install_tls(self.data_dir, self.ssl_cert_file, self.ssl_key_file, self._run_as)

    def prepare(self, ports: Mapping[str, int]) -> None:
        settings = cluster.ServerSettings(
            host=self.host, port=ports[self.name], durable=self.durable, tls=self.tls
        )
        cluster.write_settings(self.data_dir, settings, self._run_as)

    def argv(self, ports: Mapping[str, int]) -> list[str]:
        return [str(self.binaries.path("postgres")), "-D", str(self.data_dir)]

    def answers(self, ports: Mapping[str, int]) -> bool:
        result = self._run_psql("SELECT 1", "postgres", port=ports[self.name], timeout=5.0)
        return result.returncode == 0

    def environment(self) -> dict[str, str]:
        return environment()

    def run_as(self) -> RunAs | None:
        return self._run_as

    def stop(self, mode: StopMode = "fast", timeout: float = 30.0) -> None:
        """Shut down in PostgreSQL's ``mode``; SIGKILL the group after ``timeout`` seconds."""
        self._stop(signum=_STOP_SIGNALS[mode], timeout=timeout, mode=mode)

    def restart(self, mode: StopMode = "fast") -> None:
        """Stop and start again on the same port, so existing DSNs stay valid."""
        self.stop(mode)
        self.start()

    # -- administration ------------------------------------------------------

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` with psql and return its unaligned, tuples-only output."""
        result = self._run_psql(sql, database, port=self.port, timeout=60.0)
        if result.returncode != 0:
            raise PostgresCommandError(result.stderr.strip() or f"psql exited {result.returncode}")
        return result.stdout.strip()

    def create_database(self, name: str) -> None:
        self.psql(f'CREATE DATABASE "{_checked(name)}"')
        log.debug("database_created", database=name)

    def drop_database(self, name: str) -> None:
        # FORCE: services a test left running must not keep the database alive.
        self.psql(f'DROP DATABASE IF EXISTS "{_checked(name)}" WITH (FORCE)')
        log.debug("database_dropped", database=name)

    def _run_psql(
        self, sql: str, database: str, *, port: int, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        argv = [
            str(self.binaries.path("psql")),
            "--no-psqlrc",
            "--quiet",
            "--tuples-only",
            "--no-align",
            "--set=ON_ERROR_STOP=1",
            f"--host={self.host}",
            f"--port={port}",
            f"--username={self.user}",
            f"--dbname={database}",
            f"--command={sql}",
        ]
        env = {
            **environment(),
            "PGPASSWORD": self.password,
            "PGSSLMODE": self.sslmode,
            "PGCONNECT_TIMEOUT": "2",
            "HOME": os.environ.get("HOME", "/"),
        }
        try:
            return subprocess.run(  # noqa: S603 - our own argv
                argv, capture_output=True, text=True, env=env, check=False, timeout=timeout
            )
        except subprocess.TimeoutExpired as error:
            return subprocess.CompletedProcess(argv, 124, "", f"psql timed out: {error}")


def _checked(name: str) -> str:
    if not _DATABASE_NAME.match(name):
        raise ValueError(f"database name {name!r}: use lower-case letters, digits and _")
    return name
