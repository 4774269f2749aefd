"""The aggregator's shutdown budget fits the watchdog's deadline, and every step in it is used."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable
from typing import Any

from aiokafka import TopicPartition

from clickstream_aggregator import main, startup
from clickstream_aggregator.batch import Batch, Ready
from clickstream_aggregator.deadletters.producers import RelayProducers
from clickstream_aggregator.metrics import AggregatorMetrics
from clickstream_aggregator.pipeline import Aggregator
from clickstream_aggregator.prepare import prepare
from clickstream_aggregator.records import RawPartition
from clickstream_aggregator.settings import AggregatorSettings
from clickstream_runtime.entrypoint import SHUTDOWN_DEADLINE_S, bounded
from clickstream_runtime.health import Readiness


def test_the_steps_add_up_to_less_than_the_watchdog_deadline() -> None:
    total = sum(main.SHUTDOWN_BUDGET_S.values())
    assert total <= SHUTDOWN_DEADLINE_S - main.EXIT_RESERVE_S


def test_every_step_of_the_budget_bounds_something() -> None:
    source = inspect.getsource(main)
    for step in main.SHUTDOWN_BUDGET_S:
        # Named once in the table and at least once where it is awaited.
        assert source.count(f'"{step}"') >= 2, step


def test_every_step_has_time_before_its_grace() -> None:
    for step, total in main.SHUTDOWN_BUDGET_S.items():
        # A step cut off gets its grace (at most half of it) on top of its timeout.
        assert 0 < main._within(step) < total, step
        assert main._within(step) >= total / 2, step


class _Hung:
    """A client whose stop never ends (its broker is gone); it records when it is asked."""

    def __init__(self, name: str, asked: list[str], **options: Any) -> None:
        self.name = name
        self._asked = asked
        #: How many clients had been asked to stop when this one was cut off.
        self.cut_off_after: int | None = None

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self._asked.append(self.name)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cut_off_after = len(self._asked)
            raise


async def test_the_dead_letter_clients_stop_at_once_each_cut_off_within_the_step() -> None:
    asked: list[str] = []
    made: list[_Hung] = []

    def factory(**options: Any) -> _Hung:
        made.append(_Hung(f"producer {options.get('transactional_id')}", asked, **options))
        return made[-1]

    settings = AggregatorSettings(  # type: ignore[call-arg]
        _env_file=None, kafka_topic="events", kafka_group_id="group"
    )
    producers = RelayProducers(settings, factory=factory)  # type: ignore[arg-type]
    await producers.get(0, epoch=1)
    await producers.get(1, epoch=1)
    reader = _Hung("reader", asked)

    # Every stop hangs: the step returns only because each is cut off, and all of
    # them were asked before any was cut off (one step, not one after the other).
    await asyncio.wait_for(
        startup._close_relay_clients(producers, reader, main._within("dead-letter clients")),  # type: ignore[arg-type]
        timeout=60,
    )
    assert sorted(asked) == ["producer group.dlq.events.0", "producer group.dlq.events.1", "reader"]
    assert [client.cut_off_after for client in [*made, reader]] == [3, 3, 3]


class _Loop:
    """What the batch loop talks to: one batch fetched, then a fetch that waits for ever.

    The batch's transaction never ends by itself (a server that stopped
    answering): only the shutdown's bound for the batch in flight ends it.
    """

    def __init__(self) -> None:
        self.epochs = {0: 1}
        self.committing = asyncio.Event()
        self.cut_off = False
        self.fetches = 0
        self.fetching = asyncio.Event()
        self._batch = Batch(
            "events", {0: RawPartition(0, [0], [b"k"], [b"v"], [1_700_000_000_000])}
        )

    # The consumer.
    async def getmany(self, **_: Any) -> dict[TopicPartition, list[Any]]:
        self.fetches += 1
        if self.fetches == 1:
            return {TopicPartition("events", 0): [object()]}
        self.fetching.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    def highwater(self, _: TopicPartition) -> None:
        return None

    # The ownership and positions.
    def raise_if_failed(self) -> None:
        pass

    async def claim_pending(self, _: float) -> None:
        pass

    async def raw(self, _: Any) -> dict[int, RawPartition]:
        return dict(self._batch.raw)

    async def check_in_range(self, _: Any) -> None:
        pass

    # The committer.
    async def prepare(self, batch: Batch) -> Ready:
        return Ready(batch, prepare("events", batch.partitions(), 1024), frozenset())

    async def commit(self, ready: Ready, stop: asyncio.Event) -> None:
        self.committing.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cut_off = True
            raise


class _Running:
    """The batch loop on ``fake``, its batch in flight bounded as the shutdown bounds it."""

    def __init__(self, fake: _Loop) -> None:
        settings = AggregatorSettings(_env_file=None, kafka_topic="events")  # type: ignore[call-arg]
        #: The bounded steps the loop asked for.
        self.bounded_steps: list[str] = []
        self.stop = asyncio.Event()
        aggregator = Aggregator(
            settings,
            fake,  # type: ignore[arg-type]
            fake,  # type: ignore[arg-type]
            fake,  # type: ignore[arg-type]
            fake,  # type: ignore[arg-type]
            fake,  # type: ignore[arg-type]
            asyncio.Lock(),
            AggregatorMetrics.create(Readiness()),
            asyncio.Event(),
            self._finish_in_flight,
            main.SHUTDOWN_BUDGET_S["claim or preparing cut short"],
        )
        self.task = asyncio.create_task(aggregator.run(self.stop))

    async def _finish_in_flight(self, work: Awaitable[object]) -> bool:
        self.bounded_steps.append("batch in flight")
        return await bounded(work, 0.01, "batch in flight")

    async def stopped(self) -> bool:
        """Stop the loop; whether it ended (it is cancelled if not, within a minute)."""
        self.stop.set()
        done, _ = await asyncio.wait({self.task}, timeout=60)
        if not done:
            self.task.cancel()
        return bool(done)


async def test_a_stop_while_the_next_batch_is_fetched_bounds_the_batch_in_flight() -> None:
    # The usual moment of a SIGTERM: batch N in its transaction, batch N+1 being fetched.
    fake = _Loop()
    running = _Running(fake)
    await asyncio.wait_for(fake.committing.wait(), timeout=60)
    await asyncio.wait_for(fake.fetching.wait(), timeout=60)

    assert await running.stopped(), "the batch loop waited on its transaction past the stop"
    assert running.bounded_steps == ["batch in flight"]
    assert fake.cut_off


class _SlowPrepare(_Loop):
    """The next batch is being fetched while this one is prepared; preparing never ends."""

    def __init__(self) -> None:
        super().__init__()
        self.preparing = asyncio.Event()
        self.prepare_cut = False
        self.fetch_cut = asyncio.Event()

    async def getmany(self, **options: Any) -> dict[TopicPartition, list[Any]]:
        try:
            return await super().getmany(**options)
        except asyncio.CancelledError:
            self.fetch_cut.set()
            raise

    async def prepare(self, batch: Batch) -> Ready:
        self.preparing.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.prepare_cut = True
            raise
        raise AssertionError("unreachable")


async def test_a_stop_while_preparing_cuts_the_next_fetch_short_with_it() -> None:
    fake = _SlowPrepare()
    running = _Running(fake)
    # Batch 1 is being prepared while batch 2 is fetched: the two overlap.
    await asyncio.wait_for(fake.preparing.wait(), timeout=60)
    await asyncio.wait_for(fake.fetching.wait(), timeout=60)

    assert await running.stopped(), "the batch loop waited on preparing or fetching past the stop"
    assert running.task.result() is None
    assert fake.prepare_cut
    assert not fake.committing.is_set()  # nothing prepared, nothing committed
    assert running.bounded_steps == []
    # The fetch of batch 2 was cancelled with the loop, not left running.
    await asyncio.wait_for(fake.fetch_cut.wait(), timeout=60)
