-- mediad schema, version 13: rows queued by `mediad reextract` are told from the others, so
-- that `extract --skip-existing` extracts them.
--
-- skip-existing skips the pending rows that already hold metadata: a file re-queued after
-- an earlier extraction. A row `mediad reextract` queued is exactly such a row, queued so
-- that its metadata is made again (by a newer mapping or reader). reextract stamps
-- reextract_at with the same now() as the enqueued_at that queued_again() sets: the row's
-- current request is a re-extraction while the two are equal. Any later re-queue (enqueue,
-- scan, retry, extract --all, an attached table's trigger) sets enqueued_at alone, so the
-- stamp stops counting without anyone clearing it; the daemon's own returns to pending (a
-- retry after a failure, release, give back, rescue) keep enqueued_at, and so the request.
ALTER TABLE {schema}.files ADD COLUMN reextract_at timestamptz;

-- The claim of version 10, with one change: skip_existing leaves the rows queued by
-- reextract to be claimed (settle_existing, in mediad/sql/queries.sql, leaves them too).
CREATE OR REPLACE FUNCTION {schema}.claim(
    p_limit integer, p_owner text, p_lease_seconds double precision,
    p_skip_existing boolean, p_skip_prefixes text[] DEFAULT ARRAY[]::text[]
)
RETURNS TABLE (id bigint, path text, attempts integer, lease_token bigint, priority integer)
LANGUAGE plpgsql
SET enable_sort = off
SET enable_bitmapscan = off
SET enable_seqscan = off
-- The pauses table has no index its reads could use: with seqscan off, their plans carry
-- the disabling cost, which passes jit_above_cost, and compiling them took 60 ms a claim.
SET jit = off
AS $$
DECLARE
    everything boolean;
    paused text[];
    skip text[];
    claimed integer;
    paused_under text[];
BEGIN
    -- One read of the pauses (each statement here costs the claim about 50 us).
    SELECT coalesce(bool_or(a.prefix IS NULL), false),
           coalesce(array_agg({schema}.pause_match(a.prefix)), ARRAY[]::text[])
    INTO everything, paused
    FROM {schema}.pauses_active() AS a;
    IF everything THEN
        RETURN;
    END IF;
    skip := p_skip_prefixes || paused;
    RETURN QUERY
    WITH picked AS (
        SELECT f0.id FROM {schema}.files AS f0
        WHERE f0.state = 'pending' AND NOT f0.paused AND f0.run_after <= now()
          AND (NOT p_skip_existing OR f0.metadata IS NULL
               OR f0.reextract_at = f0.enqueued_at)
          AND (cardinality(skip) = 0
               OR NOT coalesce(coalesce(f0.path, f0.source_path) ^@ ANY (skip), false))
        ORDER BY (-f0.priority::bigint), f0.run_after, f0.id
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
    GET DIAGNOSTICS claimed = ROW_COUNT;
    -- A claim short of its limit has walked every claimable row already: rows that became
    -- pending under a paused prefix since the pause was set (a scan, a retry, a row given
    -- back) were among them, filtered by path. Mark a bounded batch of them now, so the
    -- next claims walk past none of them.
    paused_under := paused;  -- in the statement below, "paused" names the column
    IF claimed < p_limit AND cardinality(paused_under) > 0 THEN
        UPDATE {schema}.files AS f SET paused = true
        WHERE f.id IN (
            SELECT f1.id FROM {schema}.files AS f1
            WHERE f1.state = 'pending' AND NOT f1.paused
              AND coalesce(f1.path, f1.source_path) ^@ ANY (paused_under)
            ORDER BY (-f1.priority::bigint), f1.run_after, f1.id
            LIMIT 20000
            FOR UPDATE SKIP LOCKED
        );
    END IF;
END
$$;
