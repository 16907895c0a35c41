-- mediad schema, version 10: the claim marks the paused rows it had to walk past, and one
-- daemon, not all of them in turn, expires a pause.
--
-- `mediad pause --prefix` marks the pending rows under the prefix once, so the claim's
-- index (files_claim_ready_idx) leaves them out. Rows that become pending under the prefix
-- later (a scan or an enqueue during the pause, `retry`, rows a daemon gives back) were
-- left unmarked, and every claim filtered them by path: a million of them cost each claim
-- about 270 ms. Now a claim that comes back short of its limit, having walked every
-- claimable row, marks up to 20,000 of them: the cost is paid once, by the claims that
-- found little to do.
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
          AND (NOT p_skip_existing OR f0.metadata IS NULL)
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

-- Every daemon expires a pause the moment its time is up. The first takes the row and
-- clears the marks (a long UPDATE after a large pause); the others skip the locked row
-- instead of waiting on it, since their database thread also renews their leases.
CREATE OR REPLACE FUNCTION {schema}.pause_expire() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    expired integer;
BEGIN
    DELETE FROM {schema}.pauses AS p
    WHERE p.id IN (SELECT p1.id FROM {schema}.pauses AS p1 WHERE p1.until <= now()
                   FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS expired = ROW_COUNT;
    IF expired > 0 THEN
        PERFORM {schema}.pause_unmark();
    END IF;
    RETURN expired;
END
$$;
