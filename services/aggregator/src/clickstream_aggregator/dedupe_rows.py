"""A batch's dedupe rows in the form of binary ``COPY``, built where the batch is prepared.

One row per applied event: its id and its event time (``processed_events``).
Binary rows are packed in the worker process that prepares the batch, so the
service's process only hands the bytes to ``COPY``; and ``COPY`` writes them
with one WAL record per page (a multi-insert) instead of one per row. Every row
has the same size and starts with the same six bytes, so rows sort by event id
as bytes, which is PostgreSQL's order of ``uuid`` (the lock order of the dedupe
index that keeps concurrent batches deadlock-free).
"""

from __future__ import annotations

import struct
from typing import Final
from uuid import UUID

from clickstream_schema import ClickEvent

#: Field count, then (length, value) per field: the id (16 bytes), the event time
#: (int64 microseconds since 2000-01-01 UTC, PostgreSQL's ``timestamptz``).
ROW: Final = struct.Struct("!hi16siq")
_ID: Final = slice(6, 22)
#: 2000-01-01T00:00:00Z in microseconds since the Unix epoch.
_PG_EPOCH_US: Final = 946_684_800_000_000
_HEADER: Final = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_TRAILER: Final = struct.pack("!h", -1)
#: The columns the rows fill, in order.
COLUMNS: Final = ("event_id", "event_time")


def row(event: ClickEvent) -> bytes:
    """The event's row; its time to the millisecond, as stored before."""
    ms = int(event.timestamp.timestamp() * 1000)
    return ROW.pack(2, 16, event.event_id.bytes, 8, ms * 1000 - _PG_EPOCH_US)


def split(rows: bytes) -> list[bytes]:
    size = ROW.size
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def event_ids(rows: bytes) -> list[UUID]:
    """The ids of ``rows``, in their order."""
    return [UUID(bytes=r[_ID]) for r in split(rows)]


def id_of(packed: bytes) -> bytes:
    """The id of one packed row, as bytes (for comparing and sorting)."""
    return packed[_ID]


def copy_payload(rows: bytes) -> bytes:
    """What ``COPY processed_events (event_id, event_time) FROM STDIN (FORMAT binary)`` reads."""
    return _HEADER + rows + _TRAILER
