"""The generator's traffic: deterministic, contract-valid, shaped like real sessions."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime
from itertools import pairwise
from uuid import UUID

import pytest

from clickstream_producer.generator import MEAN_EVENT_GAP_S, EventGenerator
from clickstream_producer.wire import EventRecord, check_matches_contract, encode_record
from clickstream_schema import EVENT_TYPE_WEIGHTS, ClickEvent, DeviceType, EventType, decode, encode

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def records(
    count: int, *, seed: int = 11, users: int = 1000, sessions: int = 300
) -> list[EventRecord]:
    generator = EventGenerator(seed=seed, users=users, concurrent_sessions=sessions, start=START)
    return generator.next_records(count)


@pytest.fixture(scope="module")
def sample() -> list[EventRecord]:
    return records(100_000)


@pytest.fixture(scope="module")
def events(sample: list[EventRecord]) -> list[ClickEvent]:
    return [record.to_event() for record in sample[:20_000]]


def test_same_seed_gives_the_same_events_and_ids() -> None:
    first = [encode_record(r) for r in records(3000, seed=5)]
    again = [encode_record(r) for r in records(3000, seed=5)]
    other = [encode_record(r) for r in records(3000, seed=6)]
    assert first == again
    assert first != other
    batch = EventGenerator(seed=5, users=1000, concurrent_sessions=300, start=START).next_batch(50)
    assert [encode(e) for e in batch] == first[:50]


def test_event_type_shares_match_the_design_weights(sample: list[EventRecord]) -> None:
    counts = Counter(record.step.event_type for record in sample)
    total_weight = sum(EVENT_TYPE_WEIGHTS.values())
    for event_type, weight in EVENT_TYPE_WEIGHTS.items():
        share = counts[event_type] / len(sample)
        expected = weight / total_weight
        assert abs(share / expected - 1) <= 0.15, (event_type, share, expected)


def test_every_event_survives_the_contract_round_trip(events: list[ClickEvent]) -> None:
    for event in events:
        assert decode(encode(event)[1]) == event


def test_fast_encoding_is_byte_identical_to_the_contract(sample: list[EventRecord]) -> None:
    check_matches_contract(sample[:20_000])
    # Whole-second timestamps render without a fraction: make sure some were covered.
    assert any(r.time_ms % 1000 == 0 for r in sample[:20_000])


def test_event_ids_are_uuid7_carrying_the_event_time(events: list[ClickEvent]) -> None:
    ids = {event.event_id for event in events}
    assert len(ids) == len(events)
    for event in events[:2000]:
        assert event.event_id.version == 7
        assert event.event_id.int >> 80 == int(event.timestamp.timestamp() * 1000)
    assert isinstance(events[0].event_id, UUID)


def test_fields_fit_the_page_they_happen_on(events: list[ClickEvent]) -> None:
    for event in events:
        path = event.page_url.removeprefix("https://shop.example.com")
        if event.event_type is EventType.SEARCH:
            assert path.startswith("/search?q=")
            assert event.search_query
        if event.event_type is EventType.ADD_TO_CART:
            assert path.startswith("/product/")
            assert event.price is not None
            assert event.price > 0
            assert event.product_id
            assert event.product_id.startswith("P-")
        if event.event_type is EventType.PURCHASE:
            assert path == "/checkout"
            assert event.price is not None
            assert event.price > 0
        if event.event_type is EventType.LOGIN:
            assert path == "/account/login"
        if event.event_type is EventType.CLICK:
            assert event.element_id
        if event.price is not None:
            assert event.price == event.price.quantize(event.price.__class__("0.01"))


def test_viewport_and_user_agent_fit_the_device(events: list[ClickEvent]) -> None:
    for event in events:
        width = int(event.viewport_size.split("x")[0])
        if event.device_type is DeviceType.MOBILE:
            assert width < 500
            assert "Mobile" in event.user_agent
        elif event.device_type is DeviceType.TABLET:
            assert 700 <= width <= 1100
            assert "iPad" in event.user_agent or "Android" in event.user_agent
        else:
            assert width >= 1280
            assert "Mobile" not in event.user_agent


def test_sessions_move_forward_at_human_pace(sample: list[EventRecord]) -> None:
    times: dict[str, list[int]] = defaultdict(list)
    for record in sample:
        times[record.visit.session_id].append(record.time_ms)
    gaps = [b - a for ts in times.values() for a, b in pairwise(ts)]
    assert all(gap > 0 for gap in gaps)
    assert 1_000 <= statistics.median(gaps) <= 120_000
    finished = [ts for ts in times.values() if len(ts) >= 3]
    durations_min = [(ts[-1] - ts[0]) / 60_000 for ts in finished]
    assert 0.5 <= statistics.median(durations_min) <= 30
    # Many sessions interleave: the stream is in time order but sessions alternate.
    assert [r.time_ms for r in sample] == sorted(r.time_ms for r in sample)
    assert len({r.visit.session_id for r in sample[:100]}) > 50


def test_throughput_constant_matches_the_simulation(sample: list[EventRecord]) -> None:
    # Events per simulated second ≈ sessions / MEAN_EVENT_GAP_S once the ramp-up is over.
    half = sample[len(sample) // 2 :]
    span_s = (half[-1].time_ms - half[0].time_ms) / 1000
    implied_gap = 300 / (len(half) / span_s)
    assert abs(implied_gap / MEAN_EVENT_GAP_S - 1) < 0.2


def test_users_keep_their_device_address_and_place(events: list[ClickEvent]) -> None:
    seen: dict[str, tuple[object, ...]] = {}
    sessions: dict[str, set[str]] = defaultdict(set)
    for event in events:
        identity = (
            event.device_type,
            event.user_agent,
            event.ip_address,
            event.geo,
            event.viewport_size,
        )
        assert seen.setdefault(event.user_id, identity) == identity
        sessions[event.user_id].add(event.session_id)
    assert any(len(s) > 1 for s in sessions.values()), "some users should return"
    for event in events[:500]:
        assert event.geo is not None
        assert len(event.geo.country) == 2


def test_sessions_start_from_a_referrer_on_a_landing_page(sample: list[EventRecord]) -> None:
    first: dict[str, EventRecord] = {}
    for record in sample:
        first.setdefault(record.visit.session_id, record)
    referrers = Counter(r.visit.referrer is None for r in first.values())
    assert referrers[True] > 0
    assert referrers[False] > referrers[True]
    assert all(r.step.event_type is EventType.PAGE_VIEW for r in first.values())


def test_start_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone"):
        EventGenerator(seed=1, users=10, start=datetime(2026, 1, 1))
