"""A batch handed to a worker and its result back: the same records and rows, no file left."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from clickstream_aggregator.handover import Dock, Parcel, restored
from clickstream_aggregator.prepare import prepare
from clickstream_aggregator.records import RawPartition
from clickstream_schema import encode
from support.feed import generate

TOPIC = "clicks"
MAX_BYTES = 8192


def _partitions() -> list[RawPartition]:
    values: list[bytes | None] = [encode(e)[1] for e in generate(30, seed=81)]
    values[3] = None  # a tombstone
    values[4] = b""
    values[7] = b"not json"
    n = len(values)
    # Partition 2's offsets have gaps (compacted, or transaction markers).
    gappy = [10, 11, 15, 16, 30, 31, 32, 40, 41, 50]
    return [
        RawPartition(0, list(range(100, 100 + n)), [b"k%d" % i for i in range(n)], values, [7] * n),
        RawPartition(2, gappy, [None] * 10, values[:10], list(range(10)), 5, 60),
    ]


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("clickstream-records-*"))


def _unpacked(parcel: Parcel) -> list[tuple[int, list[int], list[bytes | None], int, int]]:
    with pickle.loads(pickle.dumps(parcel)).opened() as partitions:
        return [(p.partition, list(p.offsets), list(p.values), p.first, p.next) for p in partitions]


@pytest.mark.parametrize("shm", [True, False])
def test_a_parcel_holds_every_value_offset_and_range_of_its_partitions(
    tmp_path: Path, shm: bool
) -> None:
    # Without a directory it can write in, the bytes travel inside the parcel.
    directory = tmp_path if shm else tmp_path / "missing"
    dock = Dock(keep=1, directory=directory)
    partitions = _partitions()

    parcel = dock.ship(partitions)

    assert (parcel.path is not None) is shm
    assert _unpacked(parcel) == [
        (p.partition, list(p.offsets), list(p.values), p.first, p.next) for p in partitions
    ]
    dock.done(parcel, read=True)
    dock.close()
    assert _files(tmp_path) == []


def test_dead_letters_from_a_parcel_get_their_key_and_timestamp_from_the_service(
    tmp_path: Path,
) -> None:
    dock = Dock(keep=1, directory=tmp_path)
    partitions = _partitions()
    parcel = dock.ship(partitions)
    with parcel.opened() as shipped:
        in_worker = prepare(TOPIC, shipped, MAX_BYTES)
    dock.close()

    got = restored(in_worker, partitions)

    assert got == prepare(TOPIC, partitions, MAX_BYTES)
    assert {(d.partition, d.offset, d.key, d.timestamp_ms) for d in got.dead_letters} == {
        (0, 103, b"k3", 7),
        (0, 104, b"k4", 7),
        (0, 107, b"k7", 7),
        (2, 16, None, 3),
        (2, 30, None, 4),
        (2, 40, None, 7),
    }


def test_a_file_is_written_again_only_after_its_call_returned(tmp_path: Path) -> None:
    dock = Dock(keep=1, directory=tmp_path)
    first = dock.ship(_partitions())
    # While a call holds it, another parcel gets a file of its own.
    second = dock.ship(_partitions()[1:])
    assert first.path != second.path

    dock.done(first, read=True)  # its worker returned: the file is written again
    third = dock.ship(_partitions()[1:])
    assert third.path == first.path
    assert _unpacked(third)[0][1] == list(_partitions()[1].offsets)

    # A worker that died, or a caller that stopped waiting: deleted, never reused.
    dock.done(second, read=False)
    assert second.path is not None
    assert not Path(second.path).exists()
    dock.done(third, read=True)
    dock.close()
    assert _files(tmp_path) == []


_KILLED = """
import os, sys
from pathlib import Path
from clickstream_aggregator.handover import Dock
from clickstream_aggregator.records import RawPartition

dock = Dock(keep=1, directory=Path(sys.argv[1]))
dock.ship([RawPartition(0, [0, 1], [None, None], [b"a", b"b"], [0, 0])])
os._exit(0)  # as if killed: nothing deleted
"""


def test_the_files_of_a_killed_service_are_deleted_by_the_next_one(tmp_path: Path) -> None:
    alive = Dock(keep=1, directory=tmp_path)
    held = alive.ship(_partitions())
    subprocess.run([sys.executable, "-c", _KILLED, str(tmp_path)], check=True, timeout=120)
    left = set(_files(tmp_path))
    assert len(left) == 4  # each dock's lock and one parcel

    Dock(keep=1, directory=tmp_path).close()

    # The killed one's files are gone; the open dock's are untouched.
    assert set(_files(tmp_path)) == {n for n in left if f"-{os.getpid()}-" in n}
    assert _unpacked(held)[0][0] == 0
    alive.done(held, read=True)
    alive.close()
    assert _files(tmp_path) == []


def test_a_result_crosses_back_with_the_same_rows_as_the_one_prepared() -> None:
    prepared = prepare(TOPIC, _partitions(), MAX_BYTES)
    assert prepared.session_rows.count  # rows to hand back

    back = pickle.loads(pickle.dumps(prepared))

    assert back == prepared
    assert back.session_rows.rows() == prepared.session_rows.rows()
