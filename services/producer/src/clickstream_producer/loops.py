"""The two ways events reach the publisher: a backfill as fast as possible, live at a rate.

Plus building the live generator without blocking the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from contextlib import suppress
from datetime import UTC, datetime
from typing import Final

from clickstream_producer.clock import WallPacer
from clickstream_producer.generation import Chunks, GeneratorSpec
from clickstream_producer.generator import EventGenerator
from clickstream_producer.progress import Progress
from clickstream_producer.publisher import Publisher
from clickstream_producer.stopping import done_before_stop
from clickstream_producer.wire import check_matches_contract, encode_record

#: The live loop's shortest sleep (events are batched for ``PRODUCER_LINGER_MS`` anyway).
_TICK_S: Final = 0.005


async def backfill(
    chunks: Chunks, publisher: Publisher, progress: Progress, stop: asyncio.Event
) -> None:
    offer = publisher.offer
    while not stop.is_set() and (chunk := await chunks.next()) is not None:
        for key, value, time_ms in zip(chunk.keys, chunk.values, chunk.times_ms, strict=True):
            # offer() is synchronous; only a full batch needs an await.
            while (full := offer(key, value, time_ms)) is not None:
                await publisher.submit(full)
        progress.sent_events(len(chunk))
        # A chunk without a full batch never yields: let the sender and signals run.
        await asyncio.sleep(0)


async def live(
    generator: EventGenerator,
    publisher: Publisher,
    progress: Progress,
    stop: asyncio.Event,
    limit: float,
    rate: float,
    linger_ms: int,
) -> None:
    # Simulated time is wall time from the first event that can go out.
    generator.move_start(datetime.now(UTC))
    pacer = WallPacer(rate)
    linger_s = linger_ms / 1000
    flushed_at = time.monotonic()
    first = True
    while not stop.is_set() and progress.sent < limit:
        delay = pacer.delay(generator.next_time_ms)
        if delay > 0:
            if time.monotonic() - flushed_at >= linger_s:
                await publisher.flush()
                flushed_at = time.monotonic()
            # Never shorter than a tick: at thousands of events/s, waking up per event
            # would cost more than the events; what falls due meanwhile goes together.
            wait_s = max(_TICK_S, min(delay, linger_s))
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=wait_s)
            continue
        # Everything due now, as far as the rate allows, in one go.
        end_ms, allowed = pacer.due()
        records = generator.next_records(int(min(allowed, limit - progress.sent)), end_ms)
        pacer.take(len(records))
        if first:
            check_matches_contract(records[:200])
            first = False
        for record in records:
            key, value = encode_record(record)
            while (full := publisher.offer(key, value, record.time_ms)) is not None:
                await publisher.submit(full)
        progress.sent_events(len(records))
        if time.monotonic() - flushed_at >= linger_s:
            await publisher.flush()
            flushed_at = time.monotonic()
            await asyncio.sleep(0)


async def build_live(spec: GeneratorSpec, stop: asyncio.Event) -> EventGenerator | None:
    """Build the live generator in a daemon thread; ``None`` if ``stop`` comes first.

    At high rates the population takes seconds to build: the event loop must
    still see a SIGTERM meanwhile, and a stopped process must not wait for the
    build (a daemon thread is not joined at exit).
    """
    loop = asyncio.get_running_loop()
    built: asyncio.Future[EventGenerator] = loop.create_future()

    def settle(generator: EventGenerator | None, error: BaseException | None) -> None:
        if built.done():
            return
        if generator is not None:
            built.set_result(generator)
        else:
            built.set_exception(error or RuntimeError("the generator was not built"))

    def build() -> None:
        generator, error = None, None
        try:
            generator = spec.build()
        except Exception as failure:  # handed to the loop, raised there
            error = failure
        with contextlib.suppress(RuntimeError):  # the loop is gone: the process is ending
            loop.call_soon_threadsafe(settle, generator, error)

    threading.Thread(target=build, name="generator-build", daemon=True).start()
    if await done_before_stop(built, stop):
        return built.result()
    built.cancel()
    return None
