"""A batch's values handed to a worker process in bulk, in a shared-memory file.

Pickling a batch as :class:`~clickstream_aggregator.records.RawPartition` lists
costs a Python object per key and value on both sides and pushes every byte
through the pool's pipe, a pipe-buffer at a time. Instead :meth:`Dock.ship`
writes the values' bytes into a file in ``/dev/shm`` (memory, not disk) that
no other call holds, and returns a :class:`Parcel`: the file's name and, per
partition, the offsets and the values' lengths. The parcel pickles as a few
arrays; the worker maps the file and slices it (:meth:`Parcel.opened`). Keys
and timestamps stay in the service: only dead letters carry them, and the
service gives those theirs (:func:`restored`).

A file is written again only once the call that read it returned: after the
worker's death, or when the caller stops waiting (a worker may still be
reading), it is deleted instead, and :meth:`Dock.close` deletes them all once
the workers have stopped. A service killed before that leaves its files, which
the next dock in the same directory deletes (see :class:`Dock`). Without
``/dev/shm`` the files go to the temporary directory; where no file can be
written (the directory is full, say), the bytes travel inside the parcel,
through the pipe.
"""

from __future__ import annotations

import bisect
import fcntl
import itertools
import mmap
import os
import secrets
import tempfile
from array import array
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from itertools import accumulate
from pathlib import Path
from typing import Final, overload

import structlog

from clickstream_aggregator.prepare import Prepared
from clickstream_aggregator.records import RawPartition

log = structlog.get_logger()

#: Buffers per ``writev`` call (the kernel's ``IOV_MAX`` is at least this on Linux).
_IOV_MAX: Final = 1024
_PREFIX: Final = "clickstream-records-"
_LOCK: Final = "lock"


@dataclass(frozen=True, slots=True)
class Slices(Sequence[bytes | None]):
    """Items stored back to back in ``data``: item ``i`` is ``data[bounds[i]:bounds[i + 1]]``.

    ``absent`` holds the indices of the ``None`` items (stored as nothing).
    """

    data: bytes | mmap.mmap
    bounds: array[int]
    absent: frozenset[int] = frozenset()

    def __len__(self) -> int:
        return len(self.bounds) - 1

    @overload
    def __getitem__(self, index: int) -> bytes | None: ...
    @overload
    def __getitem__(self, index: slice) -> list[bytes | None]: ...
    def __getitem__(self, index: int | slice) -> bytes | list[bytes | None] | None:
        if isinstance(index, slice):
            return [self[i] for i in range(len(self))[index]]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        if index in self.absent:
            return None
        return self.data[self.bounds[index] : self.bounds[index + 1]]

    def __iter__(self) -> Iterator[bytes | None]:
        if self.absent:
            return (self[i] for i in range(len(self)))
        bounds = self.bounds
        return map(self.data.__getitem__, map(slice, bounds, itertools.islice(bounds, 1, None)))


@dataclass(frozen=True, slots=True)
class ShippedPartition:
    """One partition's values in a parcel, from ``start`` on, each ``lengths`` long in turn."""

    partition: int
    first: int
    next: int
    #: A range when the offsets have no gap (as usual): a parcel fits in the pipe's buffer.
    offsets: Sequence[int]
    start: int
    #: 4 bytes each: a Kafka record is shorter than 2 GiB.
    lengths: array[int]
    #: Indices of the ``None`` values (stored as nothing).
    absent: frozenset[int]


@dataclass(frozen=True, slots=True)
class Parcel:
    """Values on their way to a worker: their bytes in the file at ``path`` (or in ``data``)."""

    path: str | None
    size: int
    partitions: list[ShippedPartition]
    data: bytes | None = None

    @contextmanager
    def opened(self) -> Iterator[list[RawPartition]]:
        """The partitions again, in the worker, readable until the block ends.

        They carry no keys and no timestamps: only dead letters use them, and
        :func:`restored` gives those theirs from the service's records.
        """
        if self.path is None:
            yield self._partitions(self.data or b"")
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            if (size := os.fstat(fd).st_size) != self.size:  # mapped past its end: SIGBUS
                raise EOFError(f"{self.path} holds {size} bytes, not {self.size}")
            if not size:  # nothing to map
                yield self._partitions(b"")
                return
            with mmap.mmap(fd, size, prot=mmap.PROT_READ) as data:
                yield self._partitions(data)
        finally:
            os.close(fd)

    def _partitions(self, data: bytes | mmap.mmap) -> list[RawPartition]:
        partitions = []
        for p in self.partitions:
            n = len(p.lengths)
            values = Slices(data, array("q", accumulate(p.lengths, initial=p.start)), p.absent)
            partitions.append(
                RawPartition(p.partition, p.offsets, [None] * n, values, [0] * n, p.first, p.next)
            )
        return partitions


def restored(prepared: Prepared, partitions: Sequence[RawPartition]) -> Prepared:
    """``prepared`` (from a parcel of ``partitions``) with its dead letters' original records.

    A worker knows a dead-lettered message's value but not its key or timestamp.
    """
    if not prepared.dead_letters:
        return prepared
    raws = {raw.partition: raw for raw in partitions}
    letters = []
    for letter in prepared.dead_letters:
        raw = raws[letter.partition]
        index = bisect.bisect_left(raw.offsets, letter.offset)
        letters.append(
            replace(
                letter,
                key=raw.keys[index],
                value=raw.values[index],
                timestamp_ms=raw.timestamps[index],
            )
        )
    return replace(prepared, dead_letters=letters)


class Dock:
    """Writes parcels for one set of workers into files of its own, and deletes them.

    While the dock is open it holds a lock on a file beside them, which the
    kernel releases when the process ends however it ends: a new dock deletes
    the files of every dock whose lock it can take (a service that was killed).
    """

    def __init__(self, keep: int, directory: Path | None = None) -> None:
        self._directory = directory or default_directory()
        #: This dock's files: the pid and a token, so that no other dock's are touched.
        self._prefix = f"{_PREFIX}{os.getpid()}-{secrets.token_hex(8)}-"
        self._numbers = itertools.count()
        #: Files whose call is over, to be written again: at most ``keep``.
        self._free: list[str] = []
        self._keep = keep
        self._piped = False
        self._lock: int | None = None
        try:
            _sweep_abandoned(self._directory)
            self._lock = _locked(self._directory, self._prefix)
        except OSError as error:
            self._piping(error)

    def ship(self, partitions: Sequence[RawPartition]) -> Parcel:
        """The values of ``partitions`` as a parcel, their bytes written to a file no call holds."""
        shipped = []
        size = 0
        for raw in partitions:
            values = raw.values
            if None in values:
                absent = frozenset(i for i, value in enumerate(values) if value is None)
                lengths = array("I", (0 if value is None else len(value) for value in values))
            else:
                absent = frozenset()
                lengths = array("I", map(len, values))  # type: ignore[arg-type]  # no None
            offsets = _compact(raw.offsets)
            shipped.append(
                ShippedPartition(raw.partition, raw.first, raw.next, offsets, size, lengths, absent)
            )
            size += sum(lengths)
        if self._lock is not None:  # open
            path = self._free.pop() if self._free else f"{self._prefix}{next(self._numbers)}"
            path = str(self._directory / path)
            try:
                _write(path, [raw.values for raw in partitions], size)
                return Parcel(path, size, shipped)
            except OSError as error:
                _unlink(path)
                self._piping(error)
        data = b"".join(value for raw in partitions for value in raw.values if value)
        return Parcel(None, size, shipped, data)

    def _piping(self, error: OSError) -> None:
        if not self._piped:  # once: it says the deployment lacks room, not what a batch did
            self._piped = True
            log.warning(
                "records_shipped_by_pipe", directory=str(self._directory), error=repr(error)
            )

    def done(self, parcel: Parcel, *, read: bool) -> None:
        """The call that took ``parcel`` is over: ``read`` if its worker returned.

        Otherwise (the worker died, or the caller stopped waiting while a worker
        may still read it) the file is deleted, never written again.
        """
        if parcel.path is None:
            return
        if read and self._lock is not None and len(self._free) < self._keep:
            self._free.append(parcel.path)
        else:
            _unlink(parcel.path)

    def close(self) -> None:
        """Delete every file of this dock (call once its workers stopped)."""
        self._free.clear()
        for leftover in self._directory.glob(f"{self._prefix}*"):
            _unlink(str(leftover))
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


def default_directory() -> Path:
    """``/dev/shm`` where there is one (memory), else the temporary directory."""
    shm = Path("/dev/shm")  # noqa: S108  # names with a random token, mode 0600, no links
    return shm if shm.is_dir() else Path(tempfile.gettempdir())


def _compact(offsets: Sequence[int]) -> Sequence[int]:
    if offsets and offsets[-1] - offsets[0] == len(offsets) - 1:
        return range(offsets[0], offsets[-1] + 1)
    return array("q", offsets)


def _locked(directory: Path, prefix: str) -> int:
    """A lock file for ``prefix``, held: it appears under its name already locked."""
    name = directory / f"{prefix}{_LOCK}"
    hidden = directory / f".{name.name}"
    fd = os.open(hidden, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(hidden, name)
    except BaseException:
        os.close(fd)
        _unlink(str(hidden))
        raise
    return fd


def _sweep_abandoned(directory: Path) -> None:
    """Delete the files of docks whose process ended without deleting them."""
    for lock in directory.glob(f"{_PREFIX}*-{_LOCK}"):
        try:
            fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its dock is open
            for leftover in directory.glob(f"{lock.name.removesuffix(_LOCK)}*"):
                _unlink(str(leftover))
        finally:
            os.close(fd)


def _unlink(path: str) -> None:
    with suppress(FileNotFoundError):
        os.unlink(path)


def _write(path: str, chunks: list[Sequence[bytes | None]], size: int) -> None:
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
    try:
        for chunk in chunks:
            present = [item for item in chunk if item] if None in chunk else chunk
            for start in range(0, len(present), _IOV_MAX):
                _write_all(fd, present[start : start + _IOV_MAX])  # type: ignore[arg-type]
        os.ftruncate(fd, size)  # a file written again may have been longer
    finally:
        os.close(fd)


def _write_all(fd: int, buffers: list[bytes]) -> None:
    written = os.writev(fd, buffers)
    if written < sum(map(len, buffers)):  # a short write: the rest one piece at a time
        rest = memoryview(b"".join(buffers))[written:]
        while rest:
            rest = rest[os.write(fd, rest) :]
