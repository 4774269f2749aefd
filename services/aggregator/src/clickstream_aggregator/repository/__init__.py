"""All of the aggregator's SQL, one module per job, except the schema itself.

The schema is ``migrations/*.sql`` (applied by :mod:`clickstream_aggregator.migrate`),
and clickstream-report's read-only queries are in ``report/queries.py``; no
other module of the service runs SQL. The jobs:

* :mod:`.offsets`: claims and fencing epochs, the batch's offset check and advance;
* :mod:`.batch_writes`: the rest of a batch transaction (event ids, session rows, dead letters);
* :mod:`.pruning`: the dedupe window's end;
* :mod:`.outbox`: the dead-letter relay's reads and marks.

Every statement is parameterised and set-based (one statement per batch and
table: rows passed as arrays through ``unnest``, session rows as one JSON
document, event ids by ``COPY``). Inside a batch transaction
rows are locked in a fixed order: offset rows by partition, dedupe rows by
event id, new session rows by ``session_id``. Two replicas therefore wait for
each other rather than deadlock. Stored session rows are locked in the order
the planner's join meets them; two replicas write one session only when a
producer keyed it onto two partitions, and a deadlock that PostgreSQL reports
then (or with another client, or a relay) is retried by the failure policy.
"""

from typing import Final

from clickstream_aggregator.repository.batch_writes import (
    DEDUPE_KEY,
    applied_event_ids,
    forget_event_ids,
    insert_dead_letters,
    record_event_ids,
    upsert_sessions,
)
from clickstream_aggregator.repository.offsets import (
    Claim,
    StoredOffset,
    advance_offsets,
    claim_partitions,
    lock_offsets,
    stored_offsets,
)
from clickstream_aggregator.repository.outbox import (
    PendingStats,
    last_relayed_dlq_offset,
    limit_round,
    lock_relay_if_owner,
    mark_relayed,
    pending_dead_letters,
    pending_stats,
    record_relay_refusals,
)
from clickstream_aggregator.repository.pruning import prune_event_ids

#: Server settings of the aggregator's connections (sent when one opens).
#: Custom plans only: PostgreSQL otherwise settles on a generic plan at a
#: prepared statement's sixth run and keeps it until the next ANALYZE. One
#: settled while ``session_metrics`` was small (a new deployment, or the first
#: seconds of a backlog's drain: autovacuum analyses once a minute at most)
#: merges every later batch by a sequential scan of the whole table instead of
#: its primary key: about 2 µs of database CPU per event more in the bench's
#: 1,000,000-event drain. Planning the batch statements costs about 0.4 ms a
#: batch.
CONNECTION_SETTINGS: Final = {"plan_cache_mode": "force_custom_plan"}

__all__ = [
    "CONNECTION_SETTINGS",
    "DEDUPE_KEY",
    "Claim",
    "PendingStats",
    "StoredOffset",
    "advance_offsets",
    "applied_event_ids",
    "claim_partitions",
    "forget_event_ids",
    "insert_dead_letters",
    "last_relayed_dlq_offset",
    "limit_round",
    "lock_offsets",
    "lock_relay_if_owner",
    "mark_relayed",
    "pending_dead_letters",
    "pending_stats",
    "prune_event_ids",
    "record_event_ids",
    "record_relay_refusals",
    "stored_offsets",
    "upsert_sessions",
]
