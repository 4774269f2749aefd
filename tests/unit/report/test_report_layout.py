"""The screen: a watched report fits the terminal's height; labels say which sessions count."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st
from report_sample import sample_report
from rich.console import Console

from clickstream_aggregator.report.main import parser
from clickstream_aggregator.report.queries import Report
from clickstream_aggregator.report.render import draw_frame, print_report

CORE_TITLES = ("Clickstream report", "Events/min", "Freshness", "Funnel", "Dead letters pending")


def screen(report: Report, *, width: int, height: int, fit: bool) -> list[str]:
    out = io.StringIO()
    console = Console(file=out, width=width, height=height, color_system=None)
    print_report(console, report, fit_height=height if fit else None)
    return out.getvalue().splitlines()


@settings(max_examples=40, deadline=None)
@given(
    width=st.integers(min_value=80, max_value=220),
    height=st.integers(min_value=40, max_value=140),
    rows=st.integers(min_value=0, max_value=25),
)
def test_a_fitted_screen_never_scrolls(width: int, height: int, rows: int) -> None:
    report = sample_report(rows=rows, pending=2, oldest_age_s=90.0)
    lines = screen(report, width=width, height=height, fit=True)
    assert len(lines) <= height - 1
    text = "\n".join(lines)
    for title in CORE_TITLES:
        assert title in text
    full = screen(report, width=width, height=height, fit=False)
    if len(full) <= height - 1:
        assert lines == full  # room for everything: nothing left out
    else:
        assert lines[-1].startswith(f"Left out to fit {height} lines: ")


def test_a_50_line_terminal_keeps_the_core_and_names_what_it_left_out() -> None:
    report = sample_report()
    full = screen(report, width=100, height=50, fit=False)
    fitted = screen(report, width=100, height=50, fit=True)
    assert len(full) > 80  # what used to scroll off at every refresh
    assert len(fitted) <= 49
    assert fitted[-1].startswith("Left out to fit 50 lines: top pages, hourly traffic")


def test_labels_say_which_sessions_each_number_covers() -> None:
    text = "\n".join(screen(sample_report(), width=120, height=200, fit=False))
    assert "active: an event in the last 30 min, not in KPIs" in text
    assert "Finished 812 sessions  conversion 6.4%  bounce 31.2%  revenue $10,432.10" in text
    assert "Active   88 sessions  410 events  revenue so far $67.90" in text
    assert "Funnel, finished sessions" in text
    assert "Latest finished sessions" in text
    assert "Freshness p50, event→row written" in text
    assert "All sessions incl. active" in text


def test_dead_letters_pending_relay_show_count_and_age() -> None:
    def line(**pending: float) -> str:
        text = screen(sample_report(**pending), width=200, height=200, fit=False)
        [found] = [t for t in text if t.startswith("Dead letters pending relay:")]
        return found.rstrip()

    assert line() == "Dead letters pending relay: none"
    assert line(pending=2, oldest_age_s=4.0) == "Dead letters pending relay: 2, oldest 4.0 s"
    assert line(pending=2, oldest_age_s=3_700.0) == (
        "Dead letters pending relay: 2, oldest 1 h 1 min"
        " (relay behind or stopped: is the aggregator up?)"
    )
    assert line(pending=3, oldest_age_s=3_700.0, refused=1) == (
        "Dead letters pending relay: 3, oldest 1 h 1 min;"
        " 1 refused by Kafka, waiting for an operator"
    )


def test_help_is_plain_text() -> None:
    text = parser().format_help()
    assert "`" not in text
    assert "--watch N" in text
    assert "--json" in text
    assert "active while it has an event in the last 30 minutes" in " ".join(text.split())


@settings(max_examples=20, deadline=None)
@given(width=st.integers(min_value=80, max_value=160))
def test_tables_cut_text_and_leave_columns_out_but_never_squeeze_a_number(width: int) -> None:
    lines = screen(sample_report(), width=width, height=300, fit=False)
    assert all(len(line) <= width for line in lines)
    # A cut cell ends in "…"; a number cut that way would read as another number.
    assert not [line for line in lines if re.search(r"[0-9$%]…", line)]
    narrow_tables = [line for line in lines if line.startswith("too narrow for: ")]
    if width < 90:
        assert narrow_tables  # the hourly table's nine columns need 97 here


@settings(max_examples=5, deadline=None)
@given(width=st.integers(min_value=80, max_value=120))
def test_chart_summaries_keep_every_digit_of_big_numbers(width: int) -> None:
    # At 80 columns "this min 20,123 · peak 20,145" once read "peak 20,1…".
    base = sample_report()
    busy = replace(
        base,
        events_per_minute=[
            {**r, "events": 20_000 + i} for i, r in enumerate(base.events_per_minute)
        ],
        hourly_traffic=[
            {**r, "sessions": 1_234_567, "revenue": D("98765432.10")} for r in base.hourly_traffic
        ],
    )
    lines = screen(busy, width=width, height=300, fit=False)
    text = "\n".join(lines)
    assert not [line for line in lines if re.search(r"[0-9$%]…", line)]
    assert "this min 20,059 · peak 20,059" in text
    assert "peak 1,234,567" in text
    assert re.search(r"total \$[0-9]{1,3}(,[0-9]{3})+\.[0-9]{2} *$", text, re.MULTILINE)
    assert all(len(line) <= width for line in lines)


def test_a_dead_letter_rate_above_a_trickle_is_in_the_header() -> None:
    base = sample_report()  # 900 sessions of 11.1 events on average: 9,990 counted
    trickle = replace(base, dead_letters=[{"reason": "schema", "messages": 10}])
    assert not [line for line in screen(trickle, width=100, height=300, fit=False)[:5]
                if "Dead-lettered" in line]  # fmt: skip
    loud = replace(
        base,
        dead_letters=[
            {"reason": "schema", "messages": 9_000},
            {"reason": "not_json", "messages": 10},
        ],
    )
    top = screen(loud, width=100, height=40, fit=True)[:5]
    [line] = [line for line in top if line.startswith("Dead-lettered")]
    assert line.startswith(
        "Dead-lettered 9,010 of 19,000 messages (47.4%), not counted: schema 9,000, not_json 10"
    )


class _Writes(io.StringIO):
    """A terminal that remembers each write: what a watcher can catch between two."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)

    def isatty(self) -> bool:
        return True


def test_a_watch_frame_is_drawn_over_the_last_in_one_write_never_blank() -> None:
    # Clearing the screen and then printing showed blank frames (2 of 40 captures).
    terminal = _Writes()
    console = Console(file=terminal, width=100, height=40, force_terminal=True)
    for _ in range(2):
        draw_frame(console, sample_report(), fit_height=40)
    frames = [w for w in terminal.writes if w]  # an empty write shows nothing
    assert len(frames) == 2
    for frame in frames:
        assert frame.startswith("\x1b[H")  # home, no clear-screen (\x1b[2J) first
        assert "\x1b[2J" not in frame
        assert "Clickstream report" in frame
        assert frame.endswith("\x1b[K\x1b[J")  # then erase what the last frame left below
