"""A decode worker that dies: retried once, then pinned on the messages that kill it.

The workers here really die (``support.crashing_workers`` makes them exit on
a marker, or pause so the test can SIGKILL them); the product runs unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path
from typing import Any
from uuid import UUID

import psutil
import pytest
from prometheus_client import CollectorRegistry, Counter
from structlog.testing import capture_logs

from clickstream_aggregator import decoding
from clickstream_aggregator.batch import Batch
from clickstream_aggregator.crash_pinning import CRASHED_DECODER, MAX_CULPRITS, DecodeWorkersFailed
from clickstream_aggregator.handover import default_directory
from clickstream_aggregator.prepare import Prepared, prepare
from clickstream_aggregator.records import UNSTORABLE, RawPartition
from clickstream_aggregator.workers import Preparer
from clickstream_runtime.entrypoint import bounded
from clickstream_schema import ClickEvent, encode
from support.crashing_workers import (
    IN_WORKER,
    KILL,
    KILLED_EXIT,
    OVERFLOW,
    PAUSE,
    WorkerHooks,
    install,
    kills,
)
from support.feed import generate

TOPIC = "clicks"
MAX_BYTES = 8192


@pytest.fixture
def hooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> WorkerHooks:
    return install(tmp_path / "hooks", monkeypatch)


def _marked(event: ClickEvent, marker: str) -> bytes:
    """A valid event whose bytes carry ``marker`` (inline, it is applied like any other)."""
    return encode(event.model_copy(update={"user_agent": f"Mozilla/5.0 {marker}"}))[1]


def _partition(partition: int, first: int, values: list[bytes | None]) -> RawPartition:
    n = len(values)
    return RawPartition(
        partition, list(range(first, first + n)), [b"k"] * n, values, [1_700_000_000_000] * n
    )


async def _prepared(preparer: Preparer, batch: Batch) -> tuple[Batch, Prepared]:
    """The batch with the rejects preparing found, and what it prepared."""
    ready = await preparer.prepare(batch)
    return ready.batch, ready.prepared


def _parcels_left() -> list[Path]:
    """The shared-memory files this process's decode workers were handed, still there."""
    return list(default_directory().glob(f"clickstream-records-{os.getpid()}-*"))


def _events_of(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


async def test_a_message_that_kills_its_worker_is_dead_lettered_and_the_rest_prepared(
    hooks: WorkerHooks,
) -> None:
    events = generate(600, seed=61)
    values: list[bytes | None] = [encode(e)[1] for e in events]
    killer = _marked(events[137], KILL)
    values[137] = killer
    batch = Batch(TOPIC, {0: _partition(0, 1000, values[:400]), 1: _partition(1, 0, values[400:])})
    without = [_partition(0, 1000, values[:400]).only(set(range(1000, 1400)) - {1137})]

    with capture_logs() as logs:
        async with Preparer(TOPIC, max_bytes=MAX_BYTES, workers=1, inline_below=0) as preparer:
            batch, got = await _prepared(preparer, batch)

    assert list(batch.rejects) == [(0, 1137)]
    assert _parcels_left() == []  # every death, halving and reuse included
    refusal = batch.rejects[(0, 1137)]
    assert refusal.reason == CRASHED_DECODER
    assert str(KILLED_EXIT) in refusal.error_message
    letters = [(d.partition, d.offset, d.reason, d.value) for d in got.dead_letters]
    assert letters == [(0, 1137, CRASHED_DECODER, killer)]
    # Every other event exactly as if the killer had never been in the batch.
    clean = prepare(TOPIC, [*without, batch.raw[1]], MAX_BYTES)
    assert (got.event_rows, got.session_rows, got.events) == (
        clean.event_rows,
        clean.session_rows,
        clean.events,
    )
    assert got.events == len(events) - 1
    deaths = _events_of(logs, "decode_worker_died")
    assert [d["action"] for d in deaths if d["action"] != "halving"] == [
        "prepared_again",
        "narrowing",
    ]
    assert {code for d in deaths for code in d["exit_codes"]} == {KILLED_EXIT}
    # The killer's part died on each halving (9 of 400 messages), then alone twice.
    alone = [d for d in deaths if d["action"] == "halving" and d["messages"] == 1]
    assert [(d["partition"], d["offset"]) for d in alone] == [(0, 1137), (0, 1137)]
    found = _events_of(logs, "decode_culprit_found")
    assert [(f["partition"], f["offset"]) for f in found] == [(0, 1137)]


async def test_killers_on_several_partitions_are_all_found_with_parallel_workers(
    hooks: WorkerHooks,
) -> None:
    events = generate(120, seed=62)
    values: list[bytes | None] = [encode(e)[1] for e in events]
    values[3] = _marked(events[3], KILL)
    values[119] = _marked(events[119], KILL)
    batch = Batch(TOPIC, {0: _partition(0, 0, values[:60]), 5: _partition(5, 0, values[60:])})

    async with Preparer(TOPIC, max_bytes=MAX_BYTES, workers=2, inline_below=0) as preparer:
        batch, got = await _prepared(preparer, batch)

    assert sorted(batch.rejects) == [(0, 3), (5, 59)]
    assert got == prepare(TOPIC, batch.partitions(), MAX_BYTES, reject=batch.rejects)
    assert got.events == len(events) - 2


async def test_a_worker_killed_from_outside_mid_batch_costs_nothing(hooks: WorkerHooks) -> None:
    events = generate(400, seed=63)
    values: list[bytes | None] = [encode(e)[1] for e in events]
    values[200] = _marked(events[200], PAUSE)
    batch = Batch(TOPIC, {0: _partition(0, 0, values)})

    deaths = Counter("deaths", "worker deaths", registry=CollectorRegistry())

    with capture_logs() as logs:
        async with Preparer(
            TOPIC, max_bytes=MAX_BYTES, workers=1, inline_below=0, deaths=deaths
        ) as preparer:
            preparing = asyncio.create_task(preparer.prepare(batch))
            await asyncio.to_thread(hooks.kill_paused)
            ready = await preparing

    assert ready.batch.rejects == {}
    got = ready.prepared
    assert got == prepare(TOPIC, batch.partitions(), MAX_BYTES)
    assert got.events == len(events)
    assert _parcels_left() == []
    died = _events_of(logs, "decode_worker_died")
    assert [(d["action"], d["exit_codes"]) for d in died] == [("prepared_again", [-9])]
    assert deaths._value.get() == 1


#: Deaths before a message of an 8-message batch is blamed: two on the whole
#: batch, one on each halving that holds it (4, 2, then 1 message), and one more alone.
_DEATHS_TO_BLAME = 2 + 3 + 1


@pytest.mark.parametrize(
    ("times", "actions"),
    [
        # Once: a kill from outside as far as anyone can tell; the batch is prepared again.
        (1, ["prepared_again"]),
        # Twice on the whole batch, then never: no part of it kills, nobody is blamed.
        (2, ["prepared_again", "narrowing"]),
        # Down to the message alone, which then lives: still not the message's fault.
        (_DEATHS_TO_BLAME - 1, ["prepared_again", "narrowing", "halving", "halving", "halving"]),
        # Once more alone: pinned, and only that message.
        (_DEATHS_TO_BLAME, ["prepared_again", "narrowing", *["halving"] * 4]),
    ],
)
async def test_a_message_is_blamed_only_when_it_kills_its_worker_every_time(
    hooks: WorkerHooks, times: int, actions: list[str]
) -> None:
    events = generate(8, seed=70)
    values: list[bytes | None] = [encode(e)[1] for e in events]
    suspect = 5
    values[suspect] = _marked(events[suspect], kills(times))
    batch = Batch(TOPIC, {0: _partition(0, 100, values)})

    with capture_logs() as logs:
        async with Preparer(TOPIC, max_bytes=MAX_BYTES, workers=1, inline_below=0) as preparer:
            got = await preparer.prepare(batch)

    blamed = times >= _DEATHS_TO_BLAME
    assert {k: r.reason for k, r in got.batch.rejects.items()} == (
        {(0, 100 + suspect): CRASHED_DECODER} if blamed else {}
    )
    # Everything not blamed is prepared, exactly as if no worker had ever died.
    assert got.prepared == prepare(TOPIC, batch.partitions(), MAX_BYTES, reject=got.batch.rejects)
    assert got.prepared.events == len(events) - blamed
    assert [(d.offset, d.reason) for d in got.prepared.dead_letters] == (
        [(100 + suspect, CRASHED_DECODER)] if blamed else []
    )
    assert [d["action"] for d in _events_of(logs, "decode_worker_died")] == actions


async def test_a_batch_where_every_message_kills_the_worker_stops_after_a_bounded_search(
    hooks: WorkerHooks,
) -> None:
    events = generate(64, seed=64)
    batch = Batch(TOPIC, {0: _partition(0, 0, [_marked(e, KILL) for e in events])})

    with capture_logs() as logs:
        async with Preparer(TOPIC, max_bytes=MAX_BYTES, workers=1, inline_below=0) as preparer:
            with pytest.raises(DecodeWorkersFailed, match="workers are broken"):
                await preparer.prepare(batch)

    assert len(_events_of(logs, "decode_culprit_found")) == MAX_CULPRITS + 1
    # Each culprit costs at most log2(64) halvings and a second try alone, plus
    # the two deaths on the whole batch.
    assert len(_events_of(logs, "decode_worker_died")) <= 2 + 7 * (MAX_CULPRITS + 1)
    assert [e["action"] for e in _events_of(logs, "decode_workers_failed")] == ["stopping"]


async def test_workers_that_cannot_start_stop_the_service(hooks: WorkerHooks) -> None:
    hooks.fail_starts()
    with capture_logs() as logs, pytest.raises(DecodeWorkersFailed, match="cannot start"):
        async with Preparer(TOPIC, max_bytes=MAX_BYTES, workers=1):
            pass
    assert _events_of(logs, "decode_workers_failed")


async def test_workers_that_cannot_start_again_after_a_death_stop_the_service(
    hooks: WorkerHooks,
) -> None:
    events = generate(50, seed=65)
    values: list[bytes | None] = [encode(e)[1] for e in events]
    values[7] = _marked(events[7], KILL)
    batch = Batch(TOPIC, {0: _partition(0, 0, values)})

    async with Preparer(TOPIC, max_bytes=MAX_BYTES, workers=1, inline_below=0) as preparer:
        hooks.fail_starts()
        with pytest.raises(DecodeWorkersFailed, match="cannot start"):
            await preparer.prepare(batch)


async def test_the_first_records_of_each_claim_go_to_a_worker_whatever_the_batch_size(
    hooks: WorkerHooks,
) -> None:
    # A marked event is refused in a worker and applied inline (the hooks are in
    # workers only): whether it was dead-lettered shows where it was prepared.
    events = generate(200, seed=66)
    values: list[bytes | None] = [encode(e)[1] for e in events]
    small = 20  # inline_below
    window = 100 + small  # batch_max_records + inline_below

    def prepared_in_a_worker(prepared: Prepared) -> bool:
        return [d.reason for d in prepared.dead_letters] == ["schema"]

    def batch(first: int, count: int, epoch: int) -> Batch:
        part = list(values[first : first + count])
        part[-1] = _marked(events[first + count - 1], IN_WORKER)
        return Batch(TOPIC, {0: _partition(0, first, part)}, claims={0: epoch})

    async with Preparer(
        TOPIC, max_bytes=MAX_BYTES, workers=1, inline_below=small, batch_max_records=100
    ) as preparer:

        async def run(b: Batch, exclude: frozenset[UUID] = frozenset()) -> bool:
            return prepared_in_a_worker((await preparer.prepare(b, exclude)).prepared)

        # The claim's first records, up to the window, go to a worker in small batches.
        start, seen = 0, []
        while start < window:
            count = min(small - 1, window - start)
            later = batch(start, count, epoch=1)
            seen.append(await run(later))
            start += count
        assert seen == [True] * len(seen)
        # A batch prepared again (some ids applied before) counts its records once.
        await run(later, frozenset({events[start - 2].event_id}))
        # Past the window, small batches are inline; large ones still go to a worker.
        assert not await run(batch(start, 10, epoch=1))
        assert await run(batch(start + 10, small, epoch=1))
        # A new claim of the partition (another replica had it meanwhile): fresh again.
        assert await run(batch(start + 10 + small, 10, epoch=2))
        # And a small batch of a killer in a fresh claim is pinned, not run inline.
        killer = Batch(TOPIC, {1: _partition(1, 0, [_marked(events[0], KILL)])}, claims={1: 3})
        killer = (await preparer.prepare(killer)).batch
        assert [r.reason for r in killer.rejects.values()] == [CRASHED_DECODER]


async def test_a_batch_whose_worker_another_batch_killed_is_not_blamed(
    hooks: WorkerHooks,
) -> None:
    # While one batch commits, the next is prepared: both can be in the pool when
    # the next one's message kills it. The innocent one only dies once.
    events = generate(200, seed=67)
    values: list[bytes | None] = [encode(e)[1] for e in events]
    guilty = Batch(TOPIC, {0: _partition(0, 0, [_marked(events[0], KILL), *values[1:100]])})
    innocent = Batch(TOPIC, {1: _partition(1, 0, values[100:])})

    with capture_logs() as logs:
        async with Preparer(TOPIC, max_bytes=MAX_BYTES, workers=1, inline_below=0) as preparer:
            # The guilty batch goes first, so the death finds the other one queued.
            got = await asyncio.gather(preparer.prepare(guilty), preparer.prepare(innocent))

    assert list(got[0].batch.rejects) == [(0, 0)]
    assert got[1].batch.rejects == {}
    assert got[1].prepared == prepare(TOPIC, innocent.partitions(), MAX_BYTES)
    innocent_deaths = [
        d["action"] for d in _events_of(logs, "decode_worker_died") if d.get("partitions") == [1]
    ]
    assert innocent_deaths == ["prepared_again"]


async def test_a_value_preparing_cannot_hold_is_searched_for_in_workers_too(
    hooks: WorkerHooks,
) -> None:
    # The overflow stops preparing before the killer is reached: searching for
    # it inline would decode the killer in the service's process.
    events = generate(100, seed=68)
    values: list[bytes | None] = [encode(e)[1] for e in events]
    values[10] = _marked(events[10], OVERFLOW)
    values[50] = _marked(events[50], KILL)
    batch = Batch(TOPIC, {0: _partition(0, 0, values)})

    async with Preparer(TOPIC, max_bytes=MAX_BYTES, workers=1, inline_below=0) as preparer:
        batch, got = await _prepared(preparer, batch)

    assert {k: r.reason for k, r in batch.rejects.items()} == {
        (0, 10): UNSTORABLE,
        (0, 50): CRASHED_DECODER,
    }
    assert batch.rejects[(0, 10)].error_class == "builtins.OverflowError"
    assert got.events == len(events) - 2
    assert sorted((d.offset, d.reason) for d in got.dead_letters) == [
        (10, UNSTORABLE),
        (50, CRASHED_DECODER),
    ]


async def test_closing_the_workers_cut_short_kills_the_busy_ones(hooks: WorkerHooks) -> None:
    # At shutdown the decode workers get their step of the budget; a worker deep
    # in a batch (here: paused) must not hold the exit for the rest of its work.
    events = generate(50, seed=69)
    values: list[bytes | None] = [encode(e)[1] for e in events]
    values[20] = _marked(events[20], PAUSE)
    preparer = Preparer(TOPIC, max_bytes=MAX_BYTES, workers=1, inline_below=0)
    await preparer.start()
    preparing = asyncio.create_task(preparer.prepare(Batch(TOPIC, {0: _partition(0, 0, values)})))
    pid = await asyncio.to_thread(hooks.paused_pid)
    preparing.cancel()  # what the batch loop does with a batch being prepared at a stop

    finished = await bounded(preparer.close(), 0.5, "decode workers")

    assert not finished
    gone = await asyncio.to_thread(psutil.wait_procs, [psutil.Process(pid)], 10)
    assert [p.pid for p in gone[0]] == [pid]
    assert _parcels_left() == []


async def test_a_value_preparing_cannot_hold_inline_is_pinned_to_its_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Inline (no workers, or a small batch past a claim's first records) the
    # service's own process prepares; the same wrapper as the workers' hooks
    # makes the contract's parse fail the way a value preparing cannot hold would.
    real_parse = decoding.parse

    def parse(value: bytes | None, **kwargs: Any) -> ClickEvent:
        if value and OVERFLOW.encode() in value:
            raise OverflowError("a value preparing cannot hold")
        return real_parse(value, **kwargs)

    monkeypatch.setattr(decoding, "parse", parse)
    events = generate(40, seed=71)
    values: list[bytes | None] = [encode(e)[1] for e in events]
    values[13] = _marked(events[13], OVERFLOW)
    values[30] = _marked(events[30], OVERFLOW)
    batch = Batch(TOPIC, {0: _partition(0, 0, values[:20]), 2: _partition(2, 500, values[20:])})

    with capture_logs() as logs:
        async with Preparer(TOPIC, max_bytes=MAX_BYTES, workers=0) as preparer:
            got = await preparer.prepare(batch)

    assert {k: (r.reason, r.error_class) for k, r in got.batch.rejects.items()} == {
        (0, 13): (UNSTORABLE, "builtins.OverflowError"),
        (2, 510): (UNSTORABLE, "builtins.OverflowError"),
    }
    assert got.prepared.events == len(events) - 2
    assert sorted((d.partition, d.offset) for d in got.prepared.dead_letters) == [(0, 13), (2, 510)]
    # The rest exactly as if the two had never been in the batch.
    clean = [
        _partition(0, 0, values[:20]).only(set(range(20)) - {13}),
        _partition(2, 500, values[20:]).only(set(range(500, 520)) - {510}),
    ]
    alone = prepare(TOPIC, clean, MAX_BYTES)
    assert (got.prepared.event_rows, got.prepared.session_rows) == (
        alone.event_rows,
        alone.session_rows,
    )
    found = _events_of(logs, "message_unstorable")
    assert sorted((f["partition"], f["offset"]) for f in found) == [(0, 13), (2, 510)]


async def test_closing_the_workers_cut_short_kills_a_busy_worker_of_a_batch_prepared_again(
    hooks: WorkerHooks,
) -> None:
    # The batch kills its worker once (a kill from outside, as far as anyone can
    # tell), and pauses the worker it is prepared again in.
    events = generate(50, seed=72)
    values: list[bytes | None] = [encode(e)[1] for e in events]
    values[5] = _marked(events[5], kills(1))
    values[20] = _marked(events[20], PAUSE)
    preparer = Preparer(TOPIC, max_bytes=MAX_BYTES, workers=1, inline_below=0)
    await preparer.start()
    preparing = asyncio.create_task(preparer.prepare(Batch(TOPIC, {0: _partition(0, 0, values)})))
    pid = await asyncio.to_thread(hooks.paused_pid)
    try:
        preparing.cancel()  # what the batch loop does with a batch being prepared at a stop
        await bounded(preparer.close(), 0.5, "decode workers")

        assert await asyncio.to_thread(_ended, pid, 10.0)
        assert _parcels_left() == []
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        await asyncio.wait({preparing}, timeout=60)


def _ended(pid: int, timeout: float) -> bool:
    """Whether process ``pid`` has ended (already reaped counts), waiting up to ``timeout``."""
    try:
        process = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return True
    gone, _ = psutil.wait_procs([process], timeout)
    return bool(gone)
