"""The report's sections as rich renderables, one function per section.

Every label says which sessions a number covers: KPIs (conversion, bounce,
revenue, averages, the funnel, pages) are over finished sessions; active
sessions (an event in the last 30 minutes) are counted apart, as in the views.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from clickstream_aggregator.report import formats as fmt
from clickstream_aggregator.report.charts import bar
from clickstream_aggregator.report.queries import ACTIVE_MINUTES, Report, Row

# A dead letter not relayed after this long is worth a look: the relay sweeps
# every few seconds and right after each batch that dead-letters.
RELAY_OVERDUE_S = 60.0
#: A dead-letter rate above this is more than a trickle: the header says so, in red.
TRICKLE = 0.01
_FUNNEL_BAR_WIDTH = 24


Columns = Sequence[tuple[str, str, fmt.Formatter]]
_COLUMN_GAP = 3  # SIMPLE_HEAD without edges: three spaces between columns
_NARROWEST_TEXT = 12


def _table(title: str, rows: Sequence[Row], columns: Columns, width: int) -> Table:
    """One line per row in ``width`` columns: long text is cut (…), numbers never."""
    cells = [[formatter(row.get(key)) for key, _, formatter in columns] for row in rows]
    natural = [
        max([len(header), *(len(cell[i]) for cell in cells)])
        for i, (_, header, _) in enumerate(columns)
    ]
    widths = list(natural)
    excess = sum(widths) + _COLUMN_GAP * (len(widths) - 1) - width
    text = [i for i, (_, _, formatter) in enumerate(columns) if formatter not in fmt.WHOLE]
    for i in sorted(text, key=lambda i: -widths[i]):
        if excess <= 0:
            break
        cut = min(excess, max(0, widths[i] - _NARROWEST_TEXT))
        widths[i] -= cut
        excess -= cut
    # Still too wide: the last columns go (a squeezed number would be unreadable).
    shown = len(columns)
    while excess > 0 and shown > 2:
        shown -= 1
        excess -= widths[shown] + _COLUMN_GAP
    table = Table(
        title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD,
        show_edge=False, pad_edge=False, min_width=min(len(title), width),
    )  # fmt: skip
    for (_, header, formatter), column_width in zip(columns[:shown], widths, strict=False):
        table.add_column(
            header,
            justify="right" if formatter in fmt.NUMERIC else "left",
            no_wrap=True,
            overflow="ellipsis",
            width=column_width,
        )
    for cell in cells:
        table.add_row(*cell[:shown])
    if not rows:
        table.caption = "no rows yet"
    elif shown < len(columns):
        left_out = ", ".join(header for _, header, _ in columns[shown:])
        table.caption = f"too narrow for: {left_out}"
        table.caption_justify = "left"
    return table


def header(report: Report, _width: int) -> RenderableType:
    finished = report.sessions.get("finished", {})
    active = report.sessions.get("active", {})
    text = Text()
    text.append("Clickstream report", style="bold")
    text.append(f"  {fmt.timestamp(report.generated_at)}  ")
    text.append(f"active: an event in the last {ACTIVE_MINUTES} min, not in KPIs", style="dim")
    text.append("\nFinished ", style="bold green")
    text.append(
        f"{fmt.integer(finished.get('sessions'))} sessions"
        f"  conversion {fmt.rate(finished.get('conversion_rate'))}"
        f"  bounce {fmt.rate(finished.get('bounce_rate'))}"
        f"  revenue {fmt.money(finished.get('revenue'))}"
    )
    text.append("\nActive   ", style="bold yellow")
    text.append(
        f"{fmt.integer(active.get('sessions'))} sessions"
        f"  {fmt.integer(active.get('events'))} events"
        f"  revenue so far {fmt.money(active.get('revenue'))}"
    )
    text.append("  (in progress: not in the KPIs)", style="dim")
    loud = dead_letter_rate(report)
    if loud is not None:
        text.append("\n")
        text.append(loud, style="bold red")
    return text


def dead_letter_rate(report: Report) -> str | None:
    """The header's warning line when more than a trickle of messages was dead-lettered.

    The rate is over the messages the aggregator either counted into sessions or
    dead-lettered (duplicates it skipped are in neither, so they are left out).
    """
    dead = sum(int(r.get("messages") or 0) for r in report.dead_letters)
    sessions = int(report.totals.get("total_sessions") or 0)
    average = report.totals.get("avg_events_per_session")
    counted = round(float(average) * sessions) if average is not None else 0
    if not dead or dead / (dead + counted) <= TRICKLE:
        return None
    reasons = ", ".join(
        f"{r['reason']} {fmt.integer(r['messages'])}" for r in report.dead_letters[:3]
    )
    return (
        f"Dead-lettered {fmt.integer(dead)} of {fmt.integer(dead + counted)} messages "
        f"({fmt.rate(dead / (dead + counted))}), not counted: {reasons}"
        " (the dead_letters table says why)"
    )


def funnel(report: Report, _width: int) -> RenderableType:
    table = Table(
        title="Funnel, finished sessions (active ones: last column)", title_justify="left",
        title_style="bold", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
    )  # fmt: skip
    for name in ("step", "", "finished", "of finished", "from previous", "active now"):
        table.add_column(name, justify="left" if name in ("step", "") else "right")
    top = max((float(r["finished_sessions"]) for r in report.funnel), default=0.0)
    for row in report.funnel:
        table.add_row(
            row["step"],
            bar(float(row["finished_sessions"]), top, _FUNNEL_BAR_WIDTH, "green"),
            fmt.integer(row["finished_sessions"]),
            fmt.rate(row["share_of_sessions"]),
            fmt.rate(row["conversion_from_previous"]),
            fmt.integer(row["active_sessions"]),
        )
    return table


def dead_letters_pending(report: Report, _width: int) -> RenderableType:
    pending = int(report.dead_letters_pending.get("pending") or 0)
    refused = int(report.dead_letters_pending.get("refused") or 0)
    age: float | None = report.dead_letters_pending.get("oldest_age_seconds")
    text = Text("Dead letters pending relay: ", style="bold")
    if pending == 0:
        text.append("none", style="green")
        return text
    overdue = age is not None and age > RELAY_OVERDUE_S
    text.append(
        f"{pending:,}, oldest {fmt.seconds(age)}", style="bold red" if overdue else "yellow"
    )
    if refused:
        text.append(f"; {refused:,} refused by Kafka, waiting for an operator", style="red")
    elif overdue:
        text.append(" (relay behind or stopped: is the aggregator up?)", style="red")
    return text


def latest_finished_sessions(report: Report, width: int) -> RenderableType:
    return _table(
        "Latest finished sessions",
        report.latest_finished_sessions,
        [
            ("session_id", "session", str),
            ("user_id", "user", str),
            ("total_events", "events", fmt.integer),
            ("session_duration_minutes", "minutes", fmt.number),
            ("total_revenue", "revenue", fmt.money),
            ("event_type_counts", "event types", fmt.counts),
        ],
        width,
    )


def hourly_traffic(report: Report, width: int) -> RenderableType:
    return _table(
        "Hourly traffic by session start (KPIs over finished sessions)",
        report.hourly_traffic,
        [
            ("hour", "hour (UTC)", fmt.hour),
            ("sessions", "sessions", fmt.integer),
            ("events", "events", fmt.integer),
            ("finished_sessions", "finished", fmt.integer),
            ("revenue", "revenue", fmt.money),
            ("conversion_rate", "conversion", fmt.rate),
            ("bounce_rate", "bounce", fmt.rate),
            ("active_sessions", "active", fmt.integer),
            ("active_revenue", "active rev.", fmt.money),
        ],
        width,
    )


def top_pages(report: Report, width: int) -> RenderableType:
    return _table(
        "Top pages (finished sessions that viewed the page)",
        report.top_pages,
        [
            ("page", "page", str),
            ("views", "views", fmt.integer),
            ("entries", "entries", fmt.integer),
            ("exits", "exits", fmt.integer),
            ("bounce_rate", "bounce rate", fmt.rate),
            ("exit_rate", "exit rate", fmt.rate),
            ("active_views", "active views", fmt.integer),
        ],
        width,
    )


def devices(report: Report, width: int) -> RenderableType:
    return _table(
        "Devices (averages, conversion and revenue over finished sessions)",
        report.device_summary,
        [
            ("device_type", "device", str),
            ("sessions", "sessions", fmt.integer),
            ("finished_sessions", "finished", fmt.integer),
            ("avg_events", "avg events", fmt.number),
            ("avg_duration_minutes", "avg minutes", fmt.number),
            ("conversion_rate", "conversion", fmt.rate),
            ("revenue", "revenue", fmt.money),
            ("active_sessions", "active", fmt.integer),
        ],
        width,
    )


def dead_letters(report: Report, width: int) -> RenderableType:
    return _table(
        "Dead-lettered messages by reason",
        report.dead_letters,
        [
            ("reason", "reason", str),
            ("messages", "messages", fmt.integer),
            ("not_relayed", "not yet on the DLQ topic", fmt.integer),
            ("latest", "latest", fmt.timestamp),
        ],
        width,
    )


def totals(report: Report, width: int) -> RenderableType:
    return _table(
        "All sessions incl. active (design document totals)",
        [report.totals],
        [
            ("total_sessions", "sessions", fmt.integer),
            ("avg_events_per_session", "avg events", fmt.number),
            ("total_revenue", "revenue", fmt.money),
            ("avg_session_duration", "avg duration (min)", fmt.number),
        ],
        width,
    )
