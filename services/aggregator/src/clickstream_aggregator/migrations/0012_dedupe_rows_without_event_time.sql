-- The dedupe table keeps only what the dedupe needs: the id (its key) and when
-- it was applied (pruning goes by applied_at since 0004). event_time was kept
-- for a report that now counts by applied_at; writing it cost every event 8
-- bytes of heap and, through its BRIN index (event times arrive out of order),
-- a summary update for about one event in six: about 20 of the ~210 bytes of WAL
-- an event cost. Existing rows keep their event_time; new rows leave it NULL.
-- The column stays (nullable) so that a replica of the previous release, still
-- running during a rolling upgrade, can keep writing it; a later release drops it.
ALTER TABLE processed_events ALTER COLUMN event_time DROP NOT NULL;
DROP INDEX IF EXISTS processed_events_time_brin;
