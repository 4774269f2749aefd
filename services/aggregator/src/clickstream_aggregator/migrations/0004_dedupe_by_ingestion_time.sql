-- Dedupe forgets ids by the time the pipeline applied them (the database's
-- clock), not by the event's own timestamp: a device whose clock is days ahead
-- must not make the pruning forget ids that later duplicates still need.
-- event_time stays for reports (events per minute of event time).
-- Existing ids count as applied now, so they are kept a full window longer.
ALTER TABLE processed_events ADD COLUMN IF NOT EXISTS applied_at TIMESTAMPTZ NOT NULL DEFAULT now();
-- Ids are inserted in commit order, so applied_at follows the physical order: BRIN fits.
CREATE INDEX IF NOT EXISTS processed_events_applied_brin
    ON processed_events USING brin (applied_at);
