"""How many simulated users and concurrent sessions a run needs for its rate.

A session emits an event every ``MEAN_EVENT_GAP_S`` simulated seconds on
average, so ``--rate R`` needs about ``R × MEAN_EVENT_GAP_S`` sessions under way
at once, and a user is in at most one session at a time. By default both are
sized from the rate: ``R × MEAN_EVENT_GAP_S`` concurrent sessions (a backfill:
500) and twice as many users, at least 1000, so users come back for new sessions
as on a real shop. ``--users`` and ``--concurrent-sessions`` override either;
when the overrides cannot reach the rate, :attr:`Sizing.hint` says which one
limits it and to what.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

#: Sessions under way at once in a backfill (``--rate 0``) unless overridden.
BACKFILL_CONCURRENCY: Final = 500
#: Default users per concurrent session, and the smallest default population.
USERS_PER_SESSION: Final = 2
MIN_USERS: Final = 1000
#: Below this share of the asked rate, the sizing comes with a hint.
_SHORTFALL: Final = 0.9


@dataclass(frozen=True)
class Sizing:
    users: int
    #: Sessions under way at any time (never more than ``users``).
    concurrent_sessions: int
    #: Events/s the sessions produce on the wall clock (0 for a backfill).
    expected_rate: float
    #: Why ``--rate`` will not be reached, naming the flag to change; None when it will.
    hint: str | None = None


def size_for(
    rate: float,
    *,
    mean_gap_s: float,
    users: int | None = None,
    concurrent_sessions: int | None = None,
) -> Sizing:
    """Users and concurrent sessions for ``rate`` events/s; given values win."""
    needed = math.ceil(rate * mean_gap_s) if rate > 0 else BACKFILL_CONCURRENCY
    sessions = concurrent_sessions if concurrent_sessions is not None else needed
    population = users if users is not None else max(MIN_USERS, USERS_PER_SESSION * sessions)
    active = min(sessions, population)
    expected = active / mean_gap_s if rate > 0 else 0.0
    hint = None
    if rate > 0 and expected < rate * _SHORTFALL:
        if active < sessions:
            hint = (
                f"--users {population} allows at most {population} sessions at once "
                f"(about {expected:.1f} events/s); {rate:g} events/s need about {needed} "
                "users in sessions: raise --users or leave it unset"
            )
        else:
            hint = (
                f"--concurrent-sessions {sessions} gives about {expected:.1f} events/s; "
                f"{rate:g} events/s need about {needed}: raise it or leave it unset"
            )
    return Sizing(population, active, expected, hint)
