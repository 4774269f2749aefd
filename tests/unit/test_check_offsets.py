"""``check.offsets``: stored offsets outside the log are failures with a fix, never ``lag 0``."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from clickstream_ops.check.dead_letters import age
from clickstream_ops.check.offsets import LogRange, judge, out_of_range_fix


def test_lag_is_measured_from_the_stored_offset_or_the_log_start() -> None:
    logs = {0: LogRange(0, 100), 1: LogRange(40, 90), 2: LogRange(0, 0)}
    verdict = judge({0: 60}, logs)
    assert verdict.lags == {0: 40, 1: 50, 2: 0}
    assert verdict.total_lag == 90
    assert verdict.out_of_range == []


def test_an_offset_beyond_the_log_end_is_not_clipped_to_zero() -> None:
    verdict = judge({0: 500, 1: 10}, {0: LogRange(0, 120), 1: LogRange(0, 10)})
    (wrong,) = verdict.out_of_range
    assert wrong.beyond_end
    assert wrong.describe() == "partition 0: stored offset 500 is beyond the log end 120"
    assert verdict.lags == {1: 0}


def test_an_offset_before_the_log_start_counts_the_lost_messages() -> None:
    (wrong,) = judge({3: 10}, {3: LogRange(250, 400)}).out_of_range
    assert not wrong.beyond_end
    assert wrong.describe() == (
        "partition 3: stored offset 10 is before the log start 250 "
        "(240 message(s) deleted by retention before they were applied)"
    )


def test_the_fix_names_the_rows_to_reset_and_the_causes() -> None:
    wrong = judge({0: 500, 2: 1}, {0: LogRange(0, 120), 2: LogRange(5, 9)}).out_of_range
    fix = out_of_range_fix(wrong, "group's", "events")
    assert "topic was recreated" in fix
    assert "raise retention.ms" in fix
    assert (
        "UPDATE consumer_offsets SET next_offset = NULL WHERE group_id = 'group''s' "
        "AND topic = 'events' AND partition IN (0, 2)"
    ) in fix
    assert "with every aggregator stopped" in fix


@given(
    st.dictionaries(
        st.integers(0, 20),
        st.tuples(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(-10, 2 * 10**6)),
    )
)
def test_every_partition_is_either_lagging_or_out_of_range(
    cases: dict[int, tuple[int, int, int]],
) -> None:
    logs = {p: LogRange(min(a, b), max(a, b)) for p, (a, b, _) in cases.items()}
    stored = {p: s for p, (_, _, s) in cases.items()}
    verdict = judge(stored, logs)
    wrong = {w.partition for w in verdict.out_of_range}
    assert wrong.isdisjoint(verdict.lags)
    assert wrong | set(verdict.lags) == set(logs)
    for p, lag in verdict.lags.items():
        assert lag == logs[p].end - stored[p] >= 0
    for w in verdict.out_of_range:
        assert not logs[w.partition].start <= w.stored <= logs[w.partition].end


def test_ages_read_like_people_say_them() -> None:
    assert [age(s) for s in (5, 59, 60, 300, 3600, 3720 + 59, 86400, 90000)] == [
        "5 s",
        "59 s",
        "1 min",
        "5 min",
        "1 h",
        "1 h 2 min",
        "1 d",
        "1 d 1 h",
    ]
