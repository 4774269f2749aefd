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
