"""The generator's traffic: deterministic, contract-valid, shaped like real sessions."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime
from itertools import pairwise
from uuid import UUID

import pytest

from clickstream_producer.generator import MEAN_EVENT_GAP_S, EventGenerator
from clickstream_producer.sizing import size_for
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


def _share_errors(window: list[EventRecord]) -> dict[str, float]:
    """Per event type: its share in ``window`` relative to the design's weight, minus 1."""
    counts = Counter(record.step.event_type for record in window)
    total_weight = sum(EVENT_TYPE_WEIGHTS.values())
    return {
        event_type.value: round(counts[event_type] / len(window) / (weight / total_weight) - 1, 3)
        for event_type, weight in EVENT_TYPE_WEIGHTS.items()
    }


# The defaults of a backfill (500 sessions, 1000 users) and of --rate 10 (91 sessions).
@pytest.mark.parametrize(("seed", "users", "sessions"), [(1, 1000, 500), (8, 1000, 91)])
def test_every_window_has_the_design_shares_from_the_start(
    seed: int, users: int, sessions: int
) -> None:
    # Before the steady-state start, the first 30,000 events of a backfill had
    # purchases ~30 % below their weight: every session began at the start.
    # ±10 % over 30,000 events is about 1.5 standard deviations of the counting
    # noise of the rarest types (purchase 0.8 %, share 1 %, whose events come in
    # clusters): some seeds miss it in some window, so these seeds are fixed; the
    # absence of a bias at the start is shown over many seeds below.
    sample = records(150_000, seed=seed, users=users, sessions=sessions)
    for begin in (0, 60_000, 120_000):
        errors = _share_errors(sample[begin : begin + 30_000])
        assert all(abs(error) <= 0.10 for error in errors.values()), (begin, errors)


def test_the_first_events_are_not_biased_towards_early_funnel_steps() -> None:
    # The first 30,000 events of eight seeds together: the counting noise is
    # small enough here for ±6 % per type (purchase was about -30 %).
    first = [r for seed in range(1, 9) for r in records(30_000, seed=seed, sessions=500)]
    errors = _share_errors(first)
    assert all(abs(error) <= 0.06 for error in errors.values()), errors


def test_long_run_shares_are_calibrated(sample: list[EventRecord]) -> None:
    errors = _share_errors(sample)
    assert all(abs(error) <= 0.06 for error in errors.values()), errors


def test_sessions_are_under_way_at_the_start() -> None:
    generator = EventGenerator(seed=9, users=1000, concurrent_sessions=300, start=START)
    under_way = generator.active_session_ids()
    assert len(under_way) <= 300
    first: dict[str, EventRecord] = {}
    for record in generator.next_records(20_000):
        first.setdefault(record.visit.session_id, record)
    # Sessions already in progress show up mid-journey: not all with a landing page view.
    resumed = [first[s] for s in under_way if s in first]
    assert len(resumed) > 200
    assert sum(r.step.event_type is not EventType.PAGE_VIEW for r in resumed) > 50
    # Some were in their checkout: purchases come at once, not after a ramp-up.
    early = records(2_000, seed=9, sessions=300)
    assert any(r.step.event_type is EventType.PURCHASE for r in early)
    # Sessions that begin after the start land with a page view.
    assert all(
        r.step.event_type is EventType.PAGE_VIEW for s, r in first.items() if s not in under_way
    )


def test_moving_the_start_shifts_every_event_and_nothing_else() -> None:
    later = START.replace(hour=15)
    moved = EventGenerator(seed=5, users=1000, concurrent_sessions=300, start=START)
    moved.move_start(later)
    shifted = moved.next_records(2000)
    original = records(2000, seed=5)
    delta_ms = 3 * 3600 * 1000
    assert [r.time_ms - delta_ms for r in shifted] == [r.time_ms for r in original]
    assert [r.random_bits for r in shifted] == [r.random_bits for r in original]
    assert shifted[0].time_ms >= moved.start_ms
    with pytest.raises(RuntimeError, match="already"):
        moved.move_start(START)


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
    # Events per simulated second = sessions / MEAN_EVENT_GAP_S, from the first event on.
    span_s = (sample[-1].time_ms - START.timestamp() * 1000) / 1000
    implied_gap = 300 / (len(sample) / span_s)
    assert abs(implied_gap / MEAN_EVENT_GAP_S - 1) < 0.02


@pytest.mark.parametrize("rate", [10, 5000, 8000])
def test_the_default_sizing_delivers_the_rate_from_the_first_seconds(rate: float) -> None:
    # What `clickstream-producer --rate R` builds with default settings; the live
    # loop releases each event at its simulated time, so simulated seconds are
    # wall seconds. (Today's wall-clock speed is `make bench`'s business.)
    sizing = size_for(rate, mean_gap_s=MEAN_EVENT_GAP_S)
    generator = EventGenerator(
        seed=17, users=sizing.users, concurrent_sessions=sizing.concurrent_sessions, start=START
    )
    window_s = 5 if rate >= 1000 else 120  # enough events for a ±5 % check
    start_ms = generator.start_ms
    per_second = Counter(
        (r.time_ms - start_ms) // 1000 for r in generator.records_before(start_ms + window_s * 1000)
    )
    delivered = sum(per_second.values()) / window_s
    assert abs(delivered / rate - 1) <= 0.05, (rate, delivered)
    if rate >= 1000:
        # Already in the very first second, not after a ramp-up.
        assert per_second[0] >= 0.9 * rate, per_second


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


def test_sessions_start_from_a_referrer_on_a_landing_page() -> None:
    generator = EventGenerator(seed=11, users=1000, concurrent_sessions=300, start=START)
    under_way = generator.active_session_ids()
    first: dict[str, EventRecord] = {}
    for record in generator.next_records(50_000):
        first.setdefault(record.visit.session_id, record)
    new = [r for s, r in first.items() if s not in under_way]
    referrers = Counter(r.visit.referrer is None for r in new)
    assert referrers[True] > 0
    assert referrers[False] > referrers[True]
    assert all(r.step.event_type is EventType.PAGE_VIEW for r in new)


def test_start_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone"):
        EventGenerator(seed=1, users=10, start=datetime(2026, 1, 1))
