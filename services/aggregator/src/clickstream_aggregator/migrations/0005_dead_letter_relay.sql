-- Dead-letter relay bookkeeping: rows Kafka refused, so that one such row never
-- blocks its partition and stays visible instead.
--
-- relay_attempts: how many times Kafka refused this row's copy (not counting
--   outages, which are retried without counting). 1 → the next copy is
--   headers only; 2 or more → the row is left out of relaying (it stays
--   pending: relayed_at IS NULL) until an operator resets relay_attempts to 0.
-- relay_error: the last refusal, for people and clickstream-check.
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS relay_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS relay_error TEXT;
