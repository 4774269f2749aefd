-- Exactly-once machinery: offsets (with fencing epochs) committed in the same
-- transaction as the metrics, event-id dedupe, and the dead-letter outbox.

CREATE TABLE IF NOT EXISTS consumer_offsets (
    group_id     TEXT    NOT NULL,
    topic        TEXT    NOT NULL,
    partition    INTEGER NOT NULL,
    -- the next offset to consume; NULL until the first batch commits
    next_offset  BIGINT,
    -- bumped by every assignment; a batch commits only if its epoch still matches
    epoch        BIGINT  NOT NULL DEFAULT 0,
    owner        TEXT,
    assigned_at  TIMESTAMPTZ,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);

-- Every applied event id, kept for the dedupe window (event time).
CREATE TABLE IF NOT EXISTS processed_events (
    event_id    UUID PRIMARY KEY,
    event_time  TIMESTAMPTZ NOT NULL
);
-- Events arrive roughly in time order, so a BRIN index makes pruning cheap.
CREATE INDEX IF NOT EXISTS processed_events_time_brin
    ON processed_events USING brin (event_time);

-- The dead-letter outbox: written in the batch transaction, relayed to the
-- dead-letter topic afterwards. People can query it too.
CREATE TABLE IF NOT EXISTS dead_letters (
    id                    BIGSERIAL PRIMARY KEY,
    source_topic          TEXT    NOT NULL,
    source_partition      INTEGER NOT NULL,
    source_offset         BIGINT  NOT NULL,
    message_key           BYTEA,
    message_value         BYTEA,
    message_timestamp_ms  BIGINT,
    reason                TEXT    NOT NULL,
    error_class           TEXT    NOT NULL,
    error_message         TEXT    NOT NULL,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    relayed_at            TIMESTAMPTZ,
    dlq_partition         INTEGER,
    dlq_offset            BIGINT,
    UNIQUE (source_topic, source_partition, source_offset)
);
CREATE INDEX IF NOT EXISTS dead_letters_pending_idx
    ON dead_letters (source_topic, source_partition, source_offset) WHERE relayed_at IS NULL;
