-- Helpers the batch upsert uses to merge a batch's partial aggregate into the
-- stored row. Plain SQL functions, immutable, so the planner can inline them.

-- Sorted union of two JSON arrays of strings (code-point order, like Python's sorted()).
CREATE OR REPLACE FUNCTION clickstream_sorted_union(a jsonb, b jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(jsonb_agg(v ORDER BY v COLLATE "C"), '[]'::jsonb)
    FROM (
        SELECT jsonb_array_elements_text(a)
        UNION
        SELECT jsonb_array_elements_text(b)
    ) AS t(v)
$$;

-- Key-wise sum of two JSON objects of counts.
CREATE OR REPLACE FUNCTION clickstream_add_counts(a jsonb, b jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(jsonb_object_agg(k, n), '{}'::jsonb)
    FROM (
        SELECT k, sum(v::bigint) AS n
        FROM (
            SELECT * FROM jsonb_each_text(a)
            UNION ALL
            SELECT * FROM jsonb_each_text(b)
        ) AS e(k, v)
        GROUP BY k
    ) AS s
$$;
