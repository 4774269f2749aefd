-- Session metrics: the design document's 17 columns (names unchanged, types the
-- same or stricter), plus what users expect beyond them.
--
-- Derived columns are GENERATED from the stored ones, so the batch upsert only
-- adds counters and merges sets; PostgreSQL keeps the derived values in step.
-- event_type_counts is derived from one counter column per event type: adding
-- integers is far cheaper than merging JSON objects on every batch.
-- jsonb_build_object is only STABLE in general (it accepts any type); over
-- integers it is immutable, which a generated column requires.
CREATE OR REPLACE FUNCTION clickstream_type_counts(
    page_view int, click int, scroll int, hover int, add_to_cart int,
    search int, login int, purchase int, share int
) RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object(
        'page_view', nullif(page_view, 0), 'click', nullif(click, 0),
        'scroll', nullif(scroll, 0), 'hover', nullif(hover, 0),
        'add_to_cart', nullif(add_to_cart, 0), 'search', nullif(search, 0),
        'login', nullif(login, 0), 'purchase', nullif(purchase, 0),
        'share', nullif(share, 0)))
$$;

CREATE TABLE IF NOT EXISTS session_metrics (
    session_id               VARCHAR(255) PRIMARY KEY,
    user_id                  VARCHAR(255) NOT NULL,
    total_events             INTEGER NOT NULL,
    event_type_counts        JSONB GENERATED ALWAYS AS (clickstream_type_counts(
        page_view_count, click_count, scroll_count, hover_count, add_to_cart_count,
        search_count, login_count, purchase_count, share_count
    )) STORED,
    first_event_timestamp    TIMESTAMPTZ NOT NULL,
    last_event_timestamp     TIMESTAMPTZ NOT NULL,
    session_duration_minutes DOUBLE PRECISION GENERATED ALWAYS AS (
        extract(epoch FROM last_event_timestamp - first_event_timestamp)::float8 / 60
    ) STORED,
    unique_pages_count       INTEGER GENERATED ALWAYS AS (jsonb_array_length(unique_pages)) STORED,
    unique_pages             JSONB NOT NULL,
    -- wider than the design's DECIMAL(10,2) so that no session total can overflow
    total_revenue            DECIMAL(14, 2) NOT NULL,
    products_viewed_count    INTEGER GENERATED ALWAYS AS (jsonb_array_length(products_viewed)) STORED,
    products_viewed          JSONB NOT NULL,
    search_queries           JSONB NOT NULL,
    unique_referrers_count   INTEGER GENERATED ALWAYS AS (jsonb_array_length(referrers)) STORED,
    referrers                JSONB NOT NULL,
    user_agent               TEXT NOT NULL,
    ip_address               INET NOT NULL,
    -- beyond the original design
    entry_page               TEXT NOT NULL,
    exit_page                TEXT NOT NULL,
    page_view_count          INTEGER NOT NULL DEFAULT 0,
    click_count              INTEGER NOT NULL DEFAULT 0,
    scroll_count             INTEGER NOT NULL DEFAULT 0,
    hover_count              INTEGER NOT NULL DEFAULT 0,
    add_to_cart_count        INTEGER NOT NULL DEFAULT 0,
    search_count             INTEGER NOT NULL DEFAULT 0,
    login_count              INTEGER NOT NULL DEFAULT 0,
    purchase_count           INTEGER NOT NULL DEFAULT 0,
    share_count              INTEGER NOT NULL DEFAULT 0,
    bounced                  BOOLEAN GENERATED ALWAYS AS (page_view_count <= 1) STORED,
    converted                BOOLEAN GENERATED ALWAYS AS (purchase_count > 0) STORED,
    device_type              TEXT NOT NULL,
    country                  TEXT,
    updated_at               TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The design document's example query orders by this column.
CREATE INDEX IF NOT EXISTS session_metrics_last_event_idx
    ON session_metrics (last_event_timestamp DESC);
