"""A report on the terminal: the counts, the verdict line, the differences with examples."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from clickstream_ops.verify.report import Report

#: each kind of difference: (one, several, the rest of the phrase)
_LABELS = {
    "missing_sessions": ("session", "sessions", "missing from session_metrics"),
    "extra_sessions": ("session", "sessions", "in session_metrics with no event on the topic"),
    "different_sessions": ("session that differs", "sessions that differ", ""),
    "dead_letters_missing": ("invalid message", "invalid messages", "with no dead_letters row"),
    "valid_events_dead_lettered": ("valid event", "valid events", "dead-lettered"),
    "dead_letter_reason_differs": ("dead letter", "dead letters", "with another reason"),
    "dead_letter_copies_missing": (
        "relayed dead letter",
        "relayed dead letters",
        "missing from the dead-letter topic",
    ),
    "dead_letter_copies_duplicated": ("extra copy", "extra copies", "on the dead-letter topic"),
    "dead_letter_copies_unexpected": (
        "dead-letter copy",
        "dead-letter copies",
        "with no dead_letters row",
    ),
}


def _counted(name: str, count: int) -> str:
    one, several, rest = _LABELS[name]
    return f"{count:,} {one if count == 1 else several} {rest}".rstrip()


def verdict_line(report: Report) -> str:
    """``0 lost, 0 counted twice`` and the other differences, in one line of plain text."""
    parts = [f"{report.lost:,} lost", f"{report.counted_twice:,} counted twice"]
    parts += [_counted(name, f.count) for name, f in report.findings.items()]
    return ", ".join(parts)


def dead_letter_line(report: Report) -> str | None:
    """``75 of 75 messages (100%) dead-lettered, not counted: schema 75; first schema error: …``."""
    c = report.counts
    if not c.dead_lettered or not c.messages:
        return None
    share = c.dead_lettered / c.messages
    percent = f"{share:.0%}" if share >= 0.01 else f"{share:.2%}"
    top = report.top_dead_letter_reasons()
    reasons = ", ".join(f"{reason} {n:,}" for reason, n in top)
    more = len(report.dead_letter_reasons) - len(top)
    text = (
        f"{c.dead_lettered:,} of {c.messages:,} messages ({percent}) dead-lettered, not counted: "
        f"{reasons}{f' and {more} more reason(s)' if more > 0 else ''}"
    )
    first = report.first_dead_letter_errors.get(top[0][0])
    return f"{text}; first {top[0][0]} error: {first}" if first else text


def render(report: Report, console: Console) -> None:
    c = report.counts
    table = Table.grid(padding=(0, 2))
    table.add_column(justify="left")
    table.add_column(justify="right")
    table.add_column(justify="left", style="dim")
    table.add_row(
        "messages on the topic (committed)",
        f"{c.messages:,}",
        f"read and recomputed in {report.seconds:.1f} s",
    )
    table.add_row("  events applied", f"{c.applied:,}", "valid, first copy of their event_id")
    table.add_row("  duplicates", f"{c.deduplicated:,}", "event_id seen before: counted zero times")
    if c.derived_ids:
        table.add_row(
            "  ids derived", f"{c.derived_ids:,}", "sent without event_id: uuid5 of the bytes"
        )
    unstorable = f", {c.unstorable:,} refused by PostgreSQL" if c.unstorable else ""
    crashed = f", {c.crashed_decoder:,} killed the decoder" if c.crashed_decoder else ""
    table.add_row(
        "  dead-lettered", f"{c.dead_lettered:,}", f"not valid events{unstorable}{crashed}"
    )
    table.add_row(
        "sessions", f"{c.sessions_stored:,}", f"stored; {c.sessions_expected:,} recomputed"
    )
    pending = c.dead_letters_pending_relay
    table.add_row(
        "dead letters",
        f"{c.dead_letter_rows:,}",
        f"rows; {c.dead_letter_copies:,} copies on the dead-letter topic"
        + (f", {pending:,} not relayed yet" if pending else ""),
    )
    if c.not_yet_applied:
        table.add_row("not applied yet", f"{c.not_yet_applied:,}", "beyond the committed offsets")
    if c.sessions_partial or c.sessions_outside:
        table.add_row(
            "partly outside",
            f"{c.sessions_partial + c.sessions_outside:,}",
            "sessions with events outside what was read",
        )
    console.print(table)
    for note in report.notes:
        console.print(f"[yellow]note[/]: {escape(note)}", soft_wrap=True)
    style = "bold green" if report.ok else "bold red"
    scope = "" if report.exact else " (partial)"
    console.print(f"[{style}]{escape(verdict_line(report))}[/]{scope}", highlight=False)
    dead = dead_letter_line(report)
    if dead is not None:
        # Beside the verdict: nothing lost can still mean nothing counted.
        loud = report.counts.dead_lettered * 2 > report.counts.messages
        console.print(
            f"[{'bold red' if loud else 'yellow'}]{escape(dead)}[/]",
            highlight=False,
            soft_wrap=True,
        )
    for name, finding in report.findings.items():
        console.print(f"[red]{_counted(name, finding.count)}[/], e.g.", highlight=False)
        for example in finding.examples:
            console.print(f"  {escape(example)}", highlight=False, soft_wrap=True)
