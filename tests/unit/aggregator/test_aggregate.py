"""The fold against the independent reference: the same session rows from the same events.

``aggregate`` folds events as the aggregator decodes them (fast-decoded, or the
model's converted by ``from_model``); ``support.reference`` computes each row
straight from the column definitions, over the model's events. Timestamps are
drawn from a few instants, some equal under different offsets, so that ties and
an order unlike the text's are common; pages repeat so that sets deduplicate.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from clickstream_aggregator.aggregate import SessionAggregate, aggregate
from clickstream_aggregator.session_columns import MAX_SEARCH_QUERIES, session_rows
from clickstream_schema import decode, fast_decode
from support.hostile import BASE, extreme_events, wire
from support.reference import rows_of

#: Equal instants under different offsets, and their neighbours a microsecond away.
_TIMES = (
    "2026-11-01T09:00:00Z",
    "2026-11-01T10:00:00+01:00",
    "2026-11-01T03:30:00-05:30",
    "2026-11-01T08:59:59.999999Z",
    "2026-11-01T09:00:00.000001+00:00",
    "2026-11-01T09:30:00+01:00",
)


@st.composite
def _topic(draw: st.DrawFn) -> list[bytes]:
    """Messages of a few sessions in consumption order."""
    messages = []
    for _ in range(draw(st.integers(1, 20))):
        event = draw(extreme_events(session_ids=st.sampled_from(("s-1", "s-2", "s-3"))))
        event["timestamp"] = draw(st.sampled_from(_TIMES))
        for field, common in (("page_url", "/a"), ("product_id", "p-1"), ("referrer", "r")):
            if field in event and draw(st.booleans()):
                event[field] = common
        messages.append(wire(event))
    return messages


def _as_row(aggregate: SessionAggregate) -> dict[str, Any]:
    pages, products, referrers = (sorted(values) for values in aggregate.sets)
    return {
        "session_id": aggregate.session_id,
        "user_id": aggregate.user_id,
        "total_events": aggregate.total_events,
        "event_type_counts": dict(sorted(aggregate.type_counts.items())),
        "first_event_timestamp": aggregate.first_ts,
        "last_event_timestamp": aggregate.last_ts,
        "unique_pages": pages,
        "total_revenue": aggregate.revenue,
        "products_viewed": products,
        "search_queries": aggregate.search_queries,
        "referrers": referrers,
        "user_agent": aggregate.user_agent,
        "ip_address": str(ipaddress.ip_address(aggregate.ip_address)),
        "entry_page": aggregate.entry_page,
        "exit_page": aggregate.exit_page,
        "device_type": aggregate.device_type,
        "country": aggregate.country,
    }


@settings(max_examples=100)
@given(_topic())
def test_the_fold_gives_the_reference_rows(messages: list[bytes]) -> None:
    models = [decode(m) for m in messages]
    reference = rows_of(models)
    for events in (
        [fast_decode.decode(m) for m in messages],
        [fast_decode.from_model(e) for e in models],
    ):
        folded = aggregate(events)
        assert folded.keys() == reference.keys()
        for session_id, aggregate_of_session in folded.items():
            row = _as_row(aggregate_of_session)
            assert row == {key: reference[session_id][key] for key in row}


@settings(max_examples=50)
@given(_topic())
def test_the_models_events_fold_into_the_same_rows_as_the_fast_decoders(
    messages: list[bytes],
) -> None:
    # Tests and tools fold ClickEvents: StrEnum members where the fast decoder has strings.
    fast = aggregate(fast_decode.decode(m) for m in messages)
    model = aggregate(decode(m) for m in messages)  # type: ignore[misc]
    assert session_rows(model.values()) == session_rows(fast.values())


def test_a_session_keeps_its_first_queries_and_counts_every_search() -> None:
    without_id = {k: v for k, v in BASE.items() if k != "event_id"}
    # Each message's id is derived from its bytes: distinct queries, distinct ids.
    messages = [
        wire({**without_id, "event_type": "search", "search_query": f"q{n}"})
        for n in range(MAX_SEARCH_QUERIES + 30)
    ]
    (folded,) = aggregate(fast_decode.decode(m) for m in messages).values()
    assert folded.search_queries == [f"q{n}" for n in range(MAX_SEARCH_QUERIES)]
    assert folded.type_counts == {"search": MAX_SEARCH_QUERIES + 30}
    assert folded.total_events == MAX_SEARCH_QUERIES + 30
