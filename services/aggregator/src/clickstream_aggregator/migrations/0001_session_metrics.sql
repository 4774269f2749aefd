-- Session metrics: the design document's 17 columns (names unchanged, types the
-- same or stricter), plus what users expect beyond them.
CREATE TABLE IF NOT EXISTS session_metrics (
    session_id               VARCHAR(255) PRIMARY KEY,
    user_id                  VARCHAR(255) NOT NULL,
    total_events             INTEGER NOT NULL,
    event_type_counts        JSONB NOT NULL,
    first_event_timestamp    TIMESTAMPTZ NOT NULL,
    last_event_timestamp     TIMESTAMPTZ NOT NULL,
    session_duration_minutes DOUBLE PRECISION NOT NULL,
    unique_pages_count       INTEGER NOT NULL,
    unique_pages             JSONB NOT NULL,
    total_revenue            DECIMAL(14, 2) NOT NULL,  -- wider than the design's (10,2): cannot overflow
    products_viewed_count    INTEGER NOT NULL,
    products_viewed          JSONB NOT NULL,
    search_queries           JSONB NOT NULL,
    unique_referrers_count   INTEGER NOT NULL,
    referrers                JSONB NOT NULL,
    user_agent               TEXT NOT NULL,
    ip_address               INET NOT NULL,
    -- beyond the original design
    entry_page               TEXT NOT NULL,
    exit_page                TEXT NOT NULL,
    page_view_count          INTEGER NOT NULL,
    bounced                  BOOLEAN NOT NULL,
    converted                BOOLEAN NOT NULL,
    device_type              TEXT NOT NULL,
    country                  TEXT,
    updated_at               TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The design document's example query orders by this column.
CREATE INDEX IF NOT EXISTS session_metrics_last_event_idx
    ON session_metrics (last_event_timestamp DESC);
