"""The event ids already counted, on disk, so memory does not grow with the topic.

First consumed wins: :meth:`SeenIds.first` is true only the first time an id is
offered. The ids live in a throw-away SQLite file (its page cache is bounded),
not in a Python set that would hold every event id of the retention.
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path
from uuid import UUID

_CACHE_KIB = 64 * 1024


class SeenIds:
    def __init__(self, directory: Path | None = None) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="clickstream-verify-", dir=directory)
        self._db = sqlite3.connect(Path(self._dir.name) / "seen.sqlite3", isolation_level=None)
        self._db.executescript(
            f"""
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            PRAGMA cache_size = -{_CACHE_KIB};
            PRAGMA temp_store = FILE;
            CREATE TABLE seen (event_id BLOB PRIMARY KEY, partition INTEGER NOT NULL)
                WITHOUT ROWID;
            BEGIN;
            """
        )
        #: duplicates whose first copy was on another partition: which one the
        #: aggregator counted depends on timing, so these sessions are not exact proof
        self.cross_partition = 0

    def first(self, event_id: UUID, partition: int) -> bool:
        cursor = self._db.execute(
            "INSERT INTO seen VALUES (?, ?) ON CONFLICT DO NOTHING", (event_id.bytes, partition)
        )
        if cursor.rowcount == 1:
            return True
        row = self._db.execute(
            "SELECT partition FROM seen WHERE event_id = ?", (event_id.bytes,)
        ).fetchone()
        if row is not None and row[0] != partition:
            self.cross_partition += 1
        return False

    def close(self) -> None:
        """Forget every id: the file is deleted (use under ``contextlib.closing``)."""
        self._db.close()
        self._dir.cleanup()
