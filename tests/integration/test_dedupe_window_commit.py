"""The dedupe window, pinned exactly: ids applied just inside the retention stay and
their re-sends count zero times; ids just outside it are pruned and count again.

``applied_at`` is backdated rather than waited for.
"""

from __future__ import annotations

from clickstream_aggregator.batch import Batch, Ready
from clickstream_aggregator.dedupe_window import DedupeWindow
from clickstream_aggregator.records import RawPartition
from clickstream_aggregator.transaction import AppliedBefore, BatchTransaction, Committed
from clickstream_aggregator.workers import Preparer
from clickstream_devstack.environment import Database
from support.aggregator import claimed_pool
from support.feed import as_messages, generate

TOPIC = "events"
GROUP = "group"
RETENTION_HOURS = 2.0
MAX_BYTES = 1 << 20


def _batch(values: list[bytes | None], first: int) -> Batch:
    n = len(values)
    raw = RawPartition(0, list(range(first, first + n)), [None] * n, values, [0] * n)
    return Batch(TOPIC, {0: raw})


async def _commit(transaction: BatchTransaction, preparer: Preparer, batch: Batch) -> Committed:
    """What the Committer does with ids applied before: prepare again without them."""
    ready: Ready = await preparer.prepare(batch)
    while True:
        outcome = await transaction.attempt(ready, {0: 1})
        if isinstance(outcome, Committed):
            return outcome
        assert isinstance(outcome, AppliedBefore), outcome
        ready = await preparer.prepare(batch, ready.exclude | outcome.ids)


async def test_ids_inside_the_retention_stay_and_ids_outside_are_pruned(
    database: Database,
) -> None:
    events = generate(40, seed=91)
    values: list[bytes | None] = [v for _, v in as_messages(events)]
    inside = [e.event_id for e in events[:20]]
    outside = [e.event_id for e in events[20:]]
    async with claimed_pool(database.dsn, GROUP, TOPIC) as pool:
        transaction = BatchTransaction(pool, GROUP, MAX_BYTES)
        async with Preparer(TOPIC, max_bytes=MAX_BYTES, workers=0) as preparer:
            first = await _commit(transaction, preparer, _batch(values, 0))
            async with pool.acquire() as conn:
                for ids, minutes in ((inside, -1), (outside, 1)):
                    await conn.execute(
                        "UPDATE processed_events SET applied_at = now() - make_interval("
                        "hours => $2::int) - make_interval(mins => $3::int) "
                        "WHERE event_id = ANY($1::uuid[])",
                        ids,
                        int(RETENTION_HOURS),
                        minutes,
                    )
            pruned = await DedupeWindow(pool, RETENTION_HOURS, 3600).prune()
            async with pool.acquire() as conn:
                kept = {
                    r["event_id"] for r in await conn.fetch("SELECT event_id FROM processed_events")
                }
            # Every event sent again: those still remembered count zero times.
            again = await _commit(transaction, preparer, _batch(values, len(values)))
            async with pool.acquire() as conn:
                total = await conn.fetchval("SELECT sum(total_events) FROM session_metrics")
    assert first.events == 40
    assert pruned == len(outside)
    assert kept == set(inside)
    assert again.events == len(outside)
    assert again.duplicates == len(inside)
    assert total == 40 + len(outside)
