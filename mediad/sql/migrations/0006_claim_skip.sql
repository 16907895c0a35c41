-- mediad schema, version 6: a claim that leaves alone the rows of stalled mounts.
--
-- A daemon whose network mount stopped answering gives that mount's rows back and must
-- not claim them again until the mount answers; other daemons, whose view of the mount
-- may differ, still claim them. p_skip_prefixes lists the mount points to leave alone,
-- each ending in "/". Empty (the default, and what an older mediad gets by calling the
-- four-argument form) is the claim of version 3: the test is a filter on the rows the
-- ordered walk of files_claim_idx reaches, so it changes neither the plan nor the cost.
DROP FUNCTION {schema}.claim(integer, text, double precision, boolean);

CREATE FUNCTION {schema}.claim(
    p_limit integer, p_owner text, p_lease_seconds double precision,
    p_skip_existing boolean, p_skip_prefixes text[] DEFAULT ARRAY[]::text[]
)
RETURNS TABLE (id bigint, path text, attempts integer, lease_token bigint, priority integer)
LANGUAGE plpgsql
SET enable_sort = off
SET enable_bitmapscan = off
SET enable_seqscan = off
AS $$
BEGIN
    RETURN QUERY
    WITH picked AS (
        SELECT f0.id FROM {schema}.files AS f0
        WHERE f0.state = 'pending' AND f0.run_after <= now()
          AND (NOT p_skip_existing OR f0.metadata IS NULL)
          AND (cardinality(p_skip_prefixes) = 0
               OR NOT coalesce(coalesce(f0.path, f0.source_path) ^@ ANY (p_skip_prefixes),
                               false))
        ORDER BY f0.priority DESC, f0.run_after, f0.id
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ), token AS (
        SELECT nextval('{schema}.lease_token_seq') AS value
    )
    UPDATE {schema}.files AS f
    SET state = 'running',
        attempts = f.attempts + 1,
        lease_token = token.value,
        lease_owner = p_owner,
        lease_expires_at = now() + make_interval(secs => p_lease_seconds)
    FROM picked, token
    WHERE f.id = picked.id
    RETURNING f.id, coalesce(f.path, f.source_path), f.attempts, f.lease_token, f.priority;
END
$$;
