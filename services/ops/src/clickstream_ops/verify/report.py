"""What a verification found: counts, differences with examples, and the verdict."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Final

#: Examples kept per kind of difference.
EXAMPLES: Final = 5


@dataclass
class Finding:
    """One kind of difference: how many, and the first few examples."""

    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, example: str, n: int = 1) -> None:
        self.count += n
        if len(self.examples) < EXAMPLES:
            self.examples.append(example)


@dataclass
class Counts:
    messages: int = 0  #: read from the events topic (within the committed offsets and range)
    valid: int = 0  #: decoded as events
    applied: int = 0  #: valid and first of their event_id: what session_metrics must count
    deduplicated: int = 0  #: valid, but their event_id came earlier
    #: valid messages without an event_id (given the id derived from their bytes)
    derived_ids: int = 0
    dead_lettered: int = 0  #: not events (decode fails), plus PostgreSQL-refused events
    unstorable: int = 0  #: of which valid events whose effect PostgreSQL refused
    #: of which messages that killed the aggregator's decode worker (not decoded here)
    crashed_decoder: int = 0
    not_yet_applied: int = 0  #: on the topic beyond the committed offsets (not read)
    sessions_expected: int = 0
    sessions_stored: int = 0
    sessions_compared: int = 0
    #: partial mode: stored rows that hold more than the range (events outside it)
    sessions_partial: int = 0
    #: partial mode: stored sessions with no event in what was read
    sessions_outside: int = 0
    dead_letter_rows: int = 0
    dead_letter_copies: int = 0
    dead_letters_pending_relay: int = 0
    #: duplicates whose first copy was on another partition (key other than session_id)
    cross_partition_duplicates: int = 0


@dataclass
class Findings:
    missing_sessions: Finding = field(default_factory=Finding)
    extra_sessions: Finding = field(default_factory=Finding)
    different_sessions: Finding = field(default_factory=Finding)
    #: undecodable messages without a dead_letters row
    dead_letters_missing: Finding = field(default_factory=Finding)
    #: dead_letters rows for messages that are valid events (reason other than unstorable)
    valid_events_dead_lettered: Finding = field(default_factory=Finding)
    dead_letter_reason_differs: Finding = field(default_factory=Finding)
    #: relayed rows with no copy on the dead-letter topic
    dead_letter_copies_missing: Finding = field(default_factory=Finding)
    #: a source message copied more than once
    dead_letter_copies_duplicated: Finding = field(default_factory=Finding)
    #: copies of committed messages with no dead_letters row
    dead_letter_copies_unexpected: Finding = field(default_factory=Finding)

    def items(self) -> list[tuple[str, Finding]]:
        return [(name, value) for name, value in vars(self).items() if value.count]


@dataclass
class Report:
    topic: str
    group: str
    #: exact: the whole topic from offset 0 was read; partial: a time range, or
    #: records already deleted by retention (only one-sided checks are proof then)
    exact: bool
    counts: Counts = field(default_factory=Counts)
    findings: Findings = field(default_factory=Findings)
    #: events that session_metrics is missing / counts more than once
    lost: int = 0
    counted_twice: int = 0
    notes: list[str] = field(default_factory=list)
    #: dead-lettered messages read, by reason, and the first error of each reason
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)
    first_dead_letter_errors: dict[str, str] = field(default_factory=dict)
    #: wall time of the whole verification
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.findings.items() and self.lost == 0 and self.counted_twice == 0

    def dead_lettered(self, reason: str, error: str) -> None:
        """Count one dead-lettered message read (``error``: why, kept for the first of a reason)."""
        self.counts.dead_lettered += 1
        self.dead_letter_reasons[reason] = self.dead_letter_reasons.get(reason, 0) + 1
        self.first_dead_letter_errors.setdefault(reason, " ".join(error.split())[:300])

    def top_dead_letter_reasons(self, n: int = 3) -> list[tuple[str, int]]:
        return sorted(self.dead_letter_reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:n]

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        out["findings"] = {name: asdict(f) for name, f in self.findings.items()}
        return out
