"""Directories and PostgreSQL servers of a test's own, outside pytest's basetemp.

As root, PostgreSQL and OpenSearch run as another account, which must traverse
every ancestor of their data directory, and every new pytest session resets
/tmp/pytest-of-root to 0700 (other sessions may run at the same time): their
directories live under /tmp directly and are removed afterwards.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from clickstream_devstack.servers.postgres import EmbeddedPostgres


@contextlib.contextmanager
def private_dir(prefix: str) -> Iterator[Path]:
    """A fresh directory ``/tmp/<prefix>…``, removed with everything in it afterwards."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def private_postgres(prefix: str, **options: Any) -> Iterator[EmbeddedPostgres]:
    """A running non-durable PostgreSQL (``EmbeddedPostgres`` ``options``), stopped
    immediately afterwards: its data is throw-away, no shutdown checkpoint needed."""
    with private_dir(prefix) as root:
        server = EmbeddedPostgres(root / "data", durable=False, **options)
        try:
            server.start()
            yield server
        finally:
            server.stop("immediate")
