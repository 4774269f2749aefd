"""clickstream-verify's own fold against the suite's independent reference.

Two implementations written apart from README's column rules must agree on any
order of events, on timestamp ties (entry page from the first consumed, exit
page from the last consumed) and on long search histories (the first 100 kept).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from clickstream_ops.verify.fold import COLUMNS, MAX_SEARCH_QUERIES, SessionFold
from clickstream_schema import ClickEvent, EventType
from support.feed import generate
from support.reference import rows_of

EVENTS = generate(400, seed=11, users=50, sessions=12)


def _fold(events: Sequence[ClickEvent]) -> dict[str, dict[str, object]]:
    folds: dict[str, SessionFold] = {}
    for event in events:
        fold = folds.get(event.session_id)
        if fold is None:
            folds[event.session_id] = SessionFold.start(event)
        else:
            fold.add(event)
    return {sid: fold.row() for sid, fold in folds.items()}


def _assert_same(events: Sequence[ClickEvent]) -> None:
    mine, reference = _fold(events), rows_of(events)
    assert mine.keys() == reference.keys()
    for sid, row in mine.items():
        for column in COLUMNS:
            want, got = reference[sid][column], row[column]
            if column == "session_duration_minutes":
                assert math.isclose(float(got), float(want), abs_tol=1e-9), (sid, column)  # type: ignore[arg-type]
            else:
                assert got == want, (sid, column, got, want)


@settings(max_examples=60, deadline=None)
@given(st.permutations(range(len(EVENTS))), st.integers(0, len(EVENTS)))
def test_any_order_and_subset_gives_the_reference_rows(order: list[int], keep: int) -> None:
    _assert_same([EVENTS[i] for i in order[: max(1, keep)]])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(EVENTS) - 1), st.integers(0, 2)), max_size=30))
def test_timestamp_ties_take_first_and_last_consumed(ties: list[tuple[int, int]]) -> None:
    """New events (other user, page, device) at the same time as the first, a middle
    or the last event of a session, consumed after it."""
    events = list(EVENTS)
    for source, where in ties:
        session = sorted(
            (e for e in EVENTS if e.session_id == EVENTS[source].session_id),
            key=lambda e: e.timestamp,
        )
        at = session[[0, len(session) // 2, -1][where]].timestamp
        other = EVENTS[(source * 7 + 3) % len(EVENTS)]
        events.append(
            other.model_copy(
                update={
                    "event_id": uuid.uuid4(),
                    "session_id": session[0].session_id,
                    "timestamp": at,
                    "page_url": f"/tie/{len(events)}",
                }
            )
        )
    _assert_same(events)


def test_search_queries_keep_the_first_hundred_in_consumption_order() -> None:
    base = next(e for e in EVENTS if e.event_type is EventType.SEARCH)
    searches = [
        base.model_copy(update={"event_id": uuid.uuid4(), "search_query": f"q{n}"})
        for n in range(MAX_SEARCH_QUERIES + 30)
    ]

    row = _fold(searches)[base.session_id]

    assert row["search_queries"] == [f"q{n}" for n in range(MAX_SEARCH_QUERIES)]
    assert row["event_type_counts"] == {"search": MAX_SEARCH_QUERIES + 30}
    _assert_same(searches)
