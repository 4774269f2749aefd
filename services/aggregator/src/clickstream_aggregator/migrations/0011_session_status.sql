-- Active and finished sessions. A session is ACTIVE while its newest event is
-- less than 30 minutes older than the database clock (now()); otherwise it is
-- FINISHED. An active session's conversion, bounce, revenue and exit page can
-- still change, so the analytics views compute those over finished sessions
-- only and count active sessions in columns of their own (active_*).
--
-- The rule compares event time (set by the producer) with the database clock:
-- events timed in the past (a backfill) make finished sessions at once, and a
-- late event can turn a finished session active again. now() is the start of
-- the reading transaction, so one report sees one cut-off in every view.
--
-- Views are dropped and created again (their columns change): applying this
-- file twice is harmless.

CREATE OR REPLACE FUNCTION clickstream_session_is_active(last_event TIMESTAMPTZ) RETURNS BOOLEAN
LANGUAGE sql STABLE STRICT PARALLEL SAFE
AS $$
    SELECT last_event > now() - interval '30 minutes'
$$;

-- Dependents first: the views below read session_status.
DROP VIEW IF EXISTS session_kpis;
DROP VIEW IF EXISTS session_funnel;
DROP VIEW IF EXISTS hourly_traffic;
DROP VIEW IF EXISTS top_pages;
DROP VIEW IF EXISTS device_summary;
DROP VIEW IF EXISTS session_status;

-- Every session with its status: 'active' or 'finished'.
CREATE VIEW session_status AS
SELECT
    s.*,
    clickstream_session_is_active(s.last_event_timestamp) AS is_active,
    CASE WHEN clickstream_session_is_active(s.last_event_timestamp)
        THEN 'active' ELSE 'finished' END AS status
FROM session_metrics AS s;

-- One row per status, both always present (zeros and NULL rates when empty).
CREATE VIEW session_kpis AS
SELECT
    st.status,
    count(s.session_id) AS sessions,
    COALESCE(sum(s.total_events), 0) AS events,
    COALESCE(sum(s.total_revenue), 0.00) AS revenue,
    round(avg(s.converted::int), 4) AS conversion_rate,
    round(avg(s.bounced::int), 4) AS bounce_rate,
    round(avg(s.total_events), 2) AS avg_events,
    round(avg(s.session_duration_minutes)::numeric, 2) AS avg_duration_minutes
FROM (VALUES (1, 'finished'), (2, 'active')) AS st (status_order, status)
LEFT JOIN session_status AS s ON s.status = st.status
GROUP BY st.status_order, st.status
ORDER BY st.status_order;

-- Sessions reaching each step of the shop funnel (see 0010 for the steps; the
-- funnel is open). finished_sessions, share_of_sessions and
-- conversion_from_previous are over finished sessions; active_sessions counts
-- active sessions that reached the step so far.
CREATE VIEW session_funnel AS
WITH flags AS (
    SELECT
        s.is_active AS active,
        s.page_view_count > 0 AS page_view,
        COALESCE(p.product_page, false) AS product_page,
        s.add_to_cart_count > 0 AS add_to_cart,
        COALESCE(p.checkout, false) AS checkout,
        s.converted AS purchase
    FROM session_status AS s
    CROSS JOIN LATERAL (
        SELECT
            bool_or(clickstream_page_path(u.page) LIKE '/product/%') AS product_page,
            bool_or(clickstream_page_path(u.page) = '/checkout') AS checkout
        FROM jsonb_array_elements_text(s.unique_pages) AS u (page)
    ) AS p
),
reached AS (
    SELECT
        count(*) FILTER (WHERE NOT active) AS total,
        count(*) FILTER (WHERE NOT active AND page_view) AS page_view,
        count(*) FILTER (WHERE NOT active AND product_page) AS product_page,
        count(*) FILTER (WHERE NOT active AND add_to_cart) AS add_to_cart,
        count(*) FILTER (WHERE NOT active AND checkout) AS checkout,
        count(*) FILTER (WHERE NOT active AND purchase) AS purchase,
        count(*) FILTER (WHERE active AND page_view) AS active_page_view,
        count(*) FILTER (WHERE active AND product_page) AS active_product_page,
        count(*) FILTER (WHERE active AND add_to_cart) AS active_add_to_cart,
        count(*) FILTER (WHERE active AND checkout) AS active_checkout,
        count(*) FILTER (WHERE active AND purchase) AS active_purchase
    FROM flags
),
steps AS (
    SELECT v.step_order, v.step, v.finished, v.active, r.total
    FROM reached AS r
    CROSS JOIN LATERAL (VALUES
        (1, 'page_view', r.page_view, r.active_page_view),
        (2, 'product_page', r.product_page, r.active_product_page),
        (3, 'add_to_cart', r.add_to_cart, r.active_add_to_cart),
        (4, 'checkout', r.checkout, r.active_checkout),
        (5, 'purchase', r.purchase, r.active_purchase)
    ) AS v (step_order, step, finished, active)
)
SELECT
    step_order,
    step,
    finished AS finished_sessions,
    round(finished::numeric / NULLIF(total, 0), 4) AS share_of_sessions,
    round(
        finished::numeric / NULLIF(lag(finished) OVER (ORDER BY step_order), 0), 4
    ) AS conversion_from_previous,
    active AS active_sessions
FROM steps;

-- Traffic per UTC hour in which sessions started. sessions and events count
-- every session; revenue, conversion_rate and bounce_rate are over the hour's
-- finished sessions (NULL rates while none has finished); active_revenue is
-- what the hour's active sessions have bought so far.
CREATE VIEW hourly_traffic AS
SELECT
    date_trunc('hour', first_event_timestamp AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour,
    count(*) AS sessions,
    sum(total_events) AS events,
    count(*) FILTER (WHERE NOT is_active) AS finished_sessions,
    count(*) FILTER (WHERE is_active) AS active_sessions,
    COALESCE(sum(total_revenue) FILTER (WHERE NOT is_active), 0.00) AS revenue,
    round(avg(converted::int) FILTER (WHERE NOT is_active), 4) AS conversion_rate,
    round(avg(bounced::int) FILTER (WHERE NOT is_active), 4) AS bounce_rate,
    COALESCE(sum(total_revenue) FILTER (WHERE is_active), 0.00) AS active_revenue
FROM session_status
GROUP BY 1;

-- Per page path, over finished sessions (an active session's exit page is not
-- its exit yet); views = finished sessions that viewed the page, active_views =
-- active sessions that viewed it so far. Otherwise as in 0010.
CREATE VIEW top_pages AS
WITH visits AS (
    SELECT DISTINCT s.session_id, s.is_active, clickstream_page_path(u.page) AS page
    FROM session_status AS s
    CROSS JOIN LATERAL jsonb_array_elements_text(s.unique_pages) AS u (page)
),
viewed AS (
    SELECT
        page,
        count(*) FILTER (WHERE NOT is_active) AS views,
        count(*) FILTER (WHERE is_active) AS active_views
    FROM visits
    GROUP BY page
),
entered AS (
    SELECT
        clickstream_page_path(entry_page) AS page,
        count(*) AS entries,
        count(*) FILTER (WHERE bounced) AS bounces
    FROM session_status
    WHERE NOT is_active
    GROUP BY 1
),
exited AS (
    SELECT clickstream_page_path(exit_page) AS page, count(*) AS exits
    FROM session_status
    WHERE NOT is_active
    GROUP BY 1
)
SELECT
    page,
    COALESCE(viewed.views, 0) AS views,
    COALESCE(entered.entries, 0) AS entries,
    COALESCE(exited.exits, 0) AS exits,
    round(entered.bounces::numeric / NULLIF(entered.entries, 0), 4) AS bounce_rate,
    round(COALESCE(exited.exits, 0)::numeric / NULLIF(viewed.views, 0), 4) AS exit_rate,
    COALESCE(viewed.active_views, 0) AS active_views
FROM viewed
FULL JOIN entered USING (page)
FULL JOIN exited USING (page);

-- Per device type. sessions counts every session; the averages, conversion
-- and revenue are over finished sessions; active_* as in hourly_traffic.
CREATE VIEW device_summary AS
SELECT
    device_type,
    count(*) AS sessions,
    count(*) FILTER (WHERE NOT is_active) AS finished_sessions,
    round(avg(total_events) FILTER (WHERE NOT is_active), 2) AS avg_events,
    round(avg(session_duration_minutes) FILTER (WHERE NOT is_active)::numeric, 2)
        AS avg_duration_minutes,
    round(avg(converted::int) FILTER (WHERE NOT is_active), 4) AS conversion_rate,
    COALESCE(sum(total_revenue) FILTER (WHERE NOT is_active), 0.00) AS revenue,
    count(*) FILTER (WHERE is_active) AS active_sessions,
    COALESCE(sum(total_revenue) FILTER (WHERE is_active), 0.00) AS active_revenue
FROM session_status
GROUP BY device_type;
