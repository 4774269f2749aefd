-- Analytics views over session_metrics, read by clickstream-report and by people
-- in psql. Plain views (not materialized): they are always as fresh as the table,
-- and the table is one row per session, small enough to scan for a report.
-- Every statement is CREATE OR REPLACE, so applying this file twice is harmless.
-- Rates are fractions in [0, 1] rounded to 4 places; NULL where the denominator is 0.

-- page_url values are full URLs ('https://shop.example.com/product/42?ref=x').
-- Pages are compared by path only: the host is the same shop everywhere, and
-- query strings ('/search?q=...') would split one page into one row per query.
CREATE OR REPLACE FUNCTION clickstream_page_path(url TEXT) RETURNS TEXT
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT COALESCE(
        NULLIF(
            regexp_replace(
                regexp_replace(url, '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*', ''),
                '[?#].*$', ''),
            ''),
        '/')
$$;

-- Sessions reaching each step of the shop funnel. The funnel is open: a step
-- counts every session that reached it, whether or not the session passed the
-- earlier steps (a session can land on /checkout from a bookmark), so
-- conversion_from_previous can in principle exceed 1.
--   1 page_view     at least one page_view event (page_view_count > 0)
--   2 product_page  a /product/<id> page among the session's pages
--   3 add_to_cart   at least one add_to_cart event
--   4 checkout      /checkout among the session's pages
--   5 purchase      the session converted (at least one purchase)
CREATE OR REPLACE VIEW session_funnel AS
WITH flags AS (
    SELECT
        s.page_view_count > 0 AS page_view,
        COALESCE(p.product_page, false) AS product_page,
        COALESCE((s.event_type_counts ->> 'add_to_cart')::numeric, 0) > 0 AS add_to_cart,
        COALESCE(p.checkout, false) AS checkout,
        s.converted AS purchase
    FROM session_metrics AS s
    CROSS JOIN LATERAL (
        SELECT
            bool_or(clickstream_page_path(u.page) LIKE '/product/%') AS product_page,
            bool_or(clickstream_page_path(u.page) = '/checkout') AS checkout
        FROM jsonb_array_elements_text(s.unique_pages) AS u (page)
    ) AS p
),
reached AS (
    SELECT
        count(*) AS total,
        count(*) FILTER (WHERE page_view) AS page_view,
        count(*) FILTER (WHERE product_page) AS product_page,
        count(*) FILTER (WHERE add_to_cart) AS add_to_cart,
        count(*) FILTER (WHERE checkout) AS checkout,
        count(*) FILTER (WHERE purchase) AS purchase
    FROM flags
),
steps AS (
    SELECT v.step_order, v.step, v.sessions, r.total
    FROM reached AS r
    CROSS JOIN LATERAL (VALUES
        (1, 'page_view', r.page_view),
        (2, 'product_page', r.product_page),
        (3, 'add_to_cart', r.add_to_cart),
        (4, 'checkout', r.checkout),
        (5, 'purchase', r.purchase)
    ) AS v (step_order, step, sessions)
)
SELECT
    step_order,
    step,
    sessions,
    round(sessions::numeric / NULLIF(total, 0), 4) AS share_of_sessions,
    round(
        sessions::numeric / NULLIF(lag(sessions) OVER (ORDER BY step_order), 0), 4
    ) AS conversion_from_previous
FROM steps;

-- Traffic per UTC hour in which sessions started (first_event_timestamp).
-- Truncation is done in UTC so the buckets do not depend on the client's TimeZone.
CREATE OR REPLACE VIEW hourly_traffic AS
SELECT
    date_trunc('hour', first_event_timestamp AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour,
    count(*) AS sessions,
    sum(total_events) AS events,
    sum(total_revenue) AS revenue,
    round(avg(converted::int), 4) AS conversion_rate,
    round(avg(bounced::int), 4) AS bounce_rate
FROM session_metrics
GROUP BY 1;

-- Per page path. session_metrics keeps the distinct pages of a session, not
-- every hit, so "views" here means sessions that viewed the page (a session
-- viewing it five times counts once). Entries and exits come from entry_page
-- and exit_page; bounce_rate = bounced sessions entering on the page / entries;
-- exit_rate = exits / views.
CREATE OR REPLACE VIEW top_pages AS
WITH visits AS (
    SELECT DISTINCT s.session_id, clickstream_page_path(u.page) AS page
    FROM session_metrics AS s
    CROSS JOIN LATERAL jsonb_array_elements_text(s.unique_pages) AS u (page)
),
viewed AS (
    SELECT page, count(*) AS views FROM visits GROUP BY page
),
entered AS (
    SELECT
        clickstream_page_path(entry_page) AS page,
        count(*) AS entries,
        count(*) FILTER (WHERE bounced) AS bounces
    FROM session_metrics
    GROUP BY 1
),
exited AS (
    SELECT clickstream_page_path(exit_page) AS page, count(*) AS exits
    FROM session_metrics
    GROUP BY 1
)
SELECT
    page,
    COALESCE(viewed.views, 0) AS views,
    COALESCE(entered.entries, 0) AS entries,
    COALESCE(exited.exits, 0) AS exits,
    round(entered.bounces::numeric / NULLIF(entered.entries, 0), 4) AS bounce_rate,
    round(COALESCE(exited.exits, 0)::numeric / NULLIF(viewed.views, 0), 4) AS exit_rate
FROM viewed
FULL JOIN entered USING (page)
FULL JOIN exited USING (page);

-- Per device type (desktop, mobile, tablet).
CREATE OR REPLACE VIEW device_summary AS
SELECT
    device_type,
    count(*) AS sessions,
    round(avg(total_events), 2) AS avg_events,
    round(avg(session_duration_minutes)::numeric, 2) AS avg_duration_minutes,
    round(avg(converted::int), 4) AS conversion_rate,
    sum(total_revenue) AS revenue
FROM session_metrics
GROUP BY device_type;
