-- mediad schema, version 3: a claim whose plan does not depend on fresh statistics, and
-- an UPDATE notification that costs nothing on the hot path.

-- The claim must walk files_claim_idx in order and stop after p_limit rows. With stale
-- statistics (a bulk insert autovacuum has not analysed yet) the planner would rather
-- fetch every pending row and sort them: O(backlog) per claim. A function can pin the
-- planner settings for this statement alone, which works behind PgBouncer too.
CREATE FUNCTION {schema}.claim(
    p_limit integer, p_owner text, p_lease_seconds double precision,
    p_skip_existing boolean
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

-- Claims and write-backs update rows by the hundred; the statement-level trigger built a
-- transition table of every one of them only to look for rows that became pending. A
-- row-level trigger whose WHEN clause is checked in C fires for those rows alone.
DROP TRIGGER files_notify_update ON {schema}.files;

CREATE FUNCTION {schema}.notify_pending_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '.work', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER files_notify_update AFTER UPDATE OF state ON {schema}.files
    FOR EACH ROW WHEN (NEW.state = 'pending' AND OLD.state IS DISTINCT FROM 'pending')
    EXECUTE FUNCTION {schema}.notify_pending_row();
