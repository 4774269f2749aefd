"""The verification: one pass over the topic, one over the stored rows, one over the DLQ.

1. In one PostgreSQL snapshot: the group's committed offsets and the dead-letter rows.
2. The events topic from each partition's log start up to the committed offset:
   decode every message (a failure is a dead letter), skip positions PostgreSQL
   refused ("unstorable" rows), skip undecoded the messages that killed the
   aggregator's decode worker ("crashed_decoder" rows), drop repeated event ids
   (first consumed wins), fold the rest into one aggregate per session.
3. The stored session rows (same snapshot, through a cursor), each compared with
   its aggregate, which is then dropped; what is left was never stored.
4. The dead-letter topic: every relayed row copied exactly once, nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from uuid import uuid5

import asyncpg
from aiokafka import AIOKafkaConsumer

from clickstream_ops.verify import database, topic
from clickstream_ops.verify.compare import compare, describe
from clickstream_ops.verify.database import DeadLetterRow
from clickstream_ops.verify.fold import SessionFold
from clickstream_ops.verify.report import Report
from clickstream_ops.verify.seen import SeenIds
from clickstream_ops.verify.settings import VerifySettings
from clickstream_schema import (
    DERIVED_ID_NAMESPACE,
    UNSENT_EVENT_ID,
    ClickEvent,
    InvalidEvent,
    parse,
)

#: called with (messages read, messages to read)
Progress = Callable[[int, int], None]
_PROGRESS_EVERY = 2000


@dataclass(frozen=True)
class Scope:
    """Which records to read, by their Kafka timestamp; ``None``: unbounded."""

    since: datetime | None = None
    until: datetime | None = None

    @property
    def bounded(self) -> bool:
        return self.since is not None or self.until is not None

    def contains(self, timestamp_ms: int) -> bool:
        seconds = timestamp_ms / 1000
        if self.since is not None and seconds < self.since.timestamp():
            return False
        return self.until is None or seconds < self.until.timestamp()


async def verify(
    settings: VerifySettings, scope: Scope | None = None, progress: Progress | None = None
) -> Report:
    scope = scope or Scope()
    started = time.monotonic()
    conn = await asyncpg.connect(**settings.postgres_connect_options())
    reader = topic.consumer(settings.kafka_client_options())
    try:
        await reader.start()
    except BaseException:
        # A consumer whose start failed (a wrong port) still holds a client:
        # closed here, or Python warns "Unclosed AIOKafkaConsumer" at exit.
        await reader.stop()
        await conn.close()
        raise
    try:
        await database.begin_snapshot(conn)
        committed = await database.committed_offsets(
            conn, settings.kafka_group_id, settings.kafka_topic
        )
        dead_rows = await database.dead_letter_rows(conn, settings.kafka_topic)
        parts = await topic.partitions(reader, settings.kafka_topic)
        starts = await topic.log_starts(reader, settings.kafka_topic, parts)
        highs = await topic.high_watermarks(reader, settings.kafka_topic, parts)
        report = Report(
            topic=settings.kafka_topic,
            group=settings.kafka_group_id,
            exact=not scope.bounded and all(starts[p] == 0 for p in parts),
        )
        ends = {p: committed.get(p, 0) for p in parts}
        for p in parts:
            if ends[p] < starts[p]:
                report.notes.append(
                    f"partition {p}: retention deleted offsets {ends[p]}–{starts[p] - 1} "
                    "before the group applied them"
                )
        report.counts.not_yet_applied = sum(max(0, highs[p] - ends[p]) for p in parts)
        if not report.exact:
            report.notes.append(_partial_note(scope, starts))
        folds = await _fold_topic(
            settings, scope, reader, starts, ends, dead_rows, report, progress
        )
        await _compare_rows(conn, folds, report)
        await _check_dead_letter_topic(settings, dead_rows, ends, report)
        await conn.execute("COMMIT")
        report.seconds = time.monotonic() - started
        return report
    finally:
        await reader.stop()
        await conn.close()


def _partial_note(scope: Scope, starts: dict[int, int]) -> str:
    if scope.bounded:
        why = "a time range was given"
    else:
        trimmed = sorted(p for p, s in starts.items() if s > 0)
        why = f"retention has deleted the start of partition(s) {trimmed}"
    return (
        f"partial check ({why}): a stored session is only required to contain what was read; "
        "events counted twice are found only in sessions wholly inside the range"
    )


async def _fold_topic(
    settings: VerifySettings,
    scope: Scope,
    reader: AIOKafkaConsumer,
    starts: dict[int, int],
    ends: dict[int, int],
    dead_rows: dict[tuple[int, int], DeadLetterRow],
    report: Report,
    progress: Progress | None,
) -> dict[str, SessionFold]:
    counts = report.counts
    total = sum(max(0, ends[p] - starts[p]) for p in starts)
    folds: dict[str, SessionFold] = {}
    read = 0
    if progress is not None:
        progress(0, total)
    with closing(SeenIds()) as seen:
        async for message in topic.read_range(reader, settings.kafka_topic, starts, ends):
            read += 1
            if progress is not None and read % _PROGRESS_EVERY == 0:
                progress(read, total)
            if not scope.contains(message.timestamp_ms):
                continue
            counts.messages += 1
            event = _admit(settings, message, dead_rows, report)
            if event is None:
                continue
            counts.valid += 1
            event_id = event.event_id
            if event_id is UNSENT_EVENT_ID:
                # README's rule, computed here with the standard library rather than
                # the contract's code: uuid5 of the message text in the namespace.
                event_id = uuid5(DERIVED_ID_NAMESPACE, (message.value or b"").decode("utf-8"))
                counts.derived_ids += 1
            if not seen.first(event_id, message.partition):
                counts.deduplicated += 1
                continue
            counts.applied += 1
            fold = folds.get(event.session_id)
            if fold is None:
                folds[event.session_id] = SessionFold.start(event)
            else:
                fold.add(event)
        counts.cross_partition_duplicates = seen.cross_partition
    if progress is not None:
        progress(read, total)
    counts.sessions_expected = len(folds)
    if counts.cross_partition_duplicates:
        report.notes.append(
            f"{counts.cross_partition_duplicates} duplicate(s) arrived on another partition than "
            "their first copy: which copy the aggregator counted depends on timing"
        )
    return folds


def _admit(
    settings: VerifySettings,
    message: topic.Message,
    dead_rows: dict[tuple[int, int], DeadLetterRow],
    report: Report,
) -> ClickEvent | None:
    """The message's event if it must be applied; else account for it as a dead letter."""
    counts, findings = report.counts, report.findings
    where = f"partition {message.partition} offset {message.offset}"
    row = dead_rows.get((message.partition, message.offset))
    if row is not None and row.reason == "crashed_decoder":
        # The aggregator's decode worker died on this message, every time it was
        # alone: decoding it here could end this process the same way, so it is
        # counted as the aggregator recorded it, not checked.
        report.dead_lettered(row.reason, row.error)
        counts.crashed_decoder += 1
        return None
    try:
        event = parse(message.value, max_bytes=settings.aggregator_max_message_bytes)
    except InvalidEvent as error:
        report.dead_lettered(error.reason, str(error))
        if row is None:
            findings.dead_letters_missing.add(f"{where} ({error.reason})")
        elif row.reason != error.reason:
            findings.dead_letter_reason_differs.add(
                f"{where}: {error.reason} here, {row.reason} stored"
            )
        return None
    if row is None:
        return event
    report.dead_lettered(row.reason, row.error)
    if row.reason == "unstorable":
        # PostgreSQL refused its effect; the row is the record of that, not a loss.
        counts.unstorable += 1
    else:
        findings.valid_events_dead_lettered.add(f"{where} ({row.reason})")
    return None


async def _compare_rows(
    conn: asyncpg.Connection, folds: dict[str, SessionFold], report: Report
) -> None:
    counts, findings = report.counts, report.findings
    async for session_id, got in database.session_rows(conn):
        counts.sessions_stored += 1
        fold = folds.pop(session_id, None)
        if fold is None:
            if report.exact:
                findings.extra_sessions.add(f"{session_id} ({got['total_events']} events)", 1)
                report.counted_twice += int(got["total_events"])
            else:
                counts.sessions_outside += 1
            continue
        counts.sessions_compared += 1
        want = fold.row()
        verdict = compare(want, got)
        if not verdict.columns:
            continue
        if not report.exact and verdict.covered:
            counts.sessions_partial += 1
            continue
        findings.different_sessions.add(describe(session_id, want, got, verdict.columns))
        report.lost += verdict.lost
        if report.exact:
            report.counted_twice += verdict.counted_twice
    for session_id, fold in folds.items():
        findings.missing_sessions.add(f"{session_id} ({fold.events} events)")
        report.lost += fold.events


async def _check_dead_letter_topic(
    settings: VerifySettings,
    dead_rows: dict[tuple[int, int], DeadLetterRow],
    ends: dict[int, int],
    report: Report,
) -> None:
    counts, findings = report.counts, report.findings
    copies, whole = await topic.dead_letter_copies(
        settings.kafka_client_options(), settings.kafka_dlq_topic, settings.kafka_topic
    )
    counts.dead_letter_rows = len(dead_rows)
    counts.dead_letter_copies = sum(copies.values())
    for (partition, offset), row in sorted(dead_rows.items()):
        n = copies.get((partition, offset), 0)
        where = f"partition {partition} offset {offset} ({row.reason})"
        if n > 1:
            findings.dead_letter_copies_duplicated.add(f"{where}: {n} copies", n - 1)
        elif n == 0 and row.relayed and whole:
            findings.dead_letter_copies_missing.add(where)
        elif n == 0:
            counts.dead_letters_pending_relay += 1
    for (partition, offset), n in sorted(copies.items()):
        # Offsets beyond the snapshot's were committed after it: not ours to judge.
        if (partition, offset) not in dead_rows and offset < ends.get(partition, 0):
            findings.dead_letter_copies_unexpected.add(
                f"partition {partition} offset {offset}: {n} copies, no dead_letters row", n
            )
    if not whole:
        report.notes.append(
            "retention has deleted part of the dead-letter topic: missing copies are not checked"
        )
