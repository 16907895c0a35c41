-- mediad schema, version 14: a mark is made only under a pause that cannot be lifted
-- before the mark is committed, so a resume never leaves marks behind while another
-- prefix pause stays in force.
--
-- Before, a mark could outlive its pause: a claim, an enqueue or scan batch, or
-- `pause --prefix` read the pauses, a `resume` of that prefix committed and cleared the
-- marks it could see, then the marker committed rows marked from its older view. The lift
-- could not see them, and while any other prefix was paused nothing cleared them: those
-- rows stayed pending, never claimed, until the last prefix pause was lifted.
--
-- Every marker now takes a FOR KEY SHARE lock on each pause it marks under, in the
-- transaction that marks, and a lift deletes the pause row (a lock that conflicts):
--   - the marker locks first: the lift's DELETE waits for the marker to commit, and the
--     lift's unmark, a later statement with a later snapshot, sees and clears its marks;
--   - the lift deletes first: the marker skips that pause (SKIP LOCKED; a row deleted
--     and committed is never returned either) and marks nothing under it. Its rows stay
--     unmarked, which is always safe: the claim's filter on the active prefixes holds.
-- So a stale mark is cleared by the lift itself, in its own transaction, at the latest
-- when the one marker in flight commits (a claim's batch of 20,000 or an intake batch:
-- under a second; `pause --prefix` marking: about 15 s per million rows). The
-- alternative, sweeping paused rows that match no active prefix from every daemon after
-- each change, walks every marked row (a million under a long pause) once per daemon
-- per change and still needs a wait long enough for the slowest marker; the lock costs
-- one row lock per pause, taken only by markers: the claim takes it only when it comes
-- back short and marks, never on its hot path.
--
-- An expiry deletes with FOR UPDATE SKIP LOCKED: a pause locked by a marker is expired
-- at the daemon's next read of the pauses (daemon.poll_seconds) after the marker ends.

-- The matches (pause_match) of the prefix pauses in force, each pause row locked FOR KEY
-- SHARE until the caller's transaction ends; pauses being lifted or expired are left out.
-- Mark rows only under these, in the same transaction.
CREATE FUNCTION {schema}.pause_matches_held() RETURNS text[]
LANGUAGE sql VOLATILE AS $$
    SELECT coalesce(array_agg({schema}.pause_match(h.prefix)), ARRAY[]::text[])
    FROM (SELECT p.prefix FROM {schema}.pauses AS p
          WHERE p.prefix IS NOT NULL AND (p.until IS NULL OR p.until > now())
          FOR KEY SHARE OF p SKIP LOCKED) AS h
$$;

-- `pause --prefix` marks after pause_set has committed, in a transaction of its own: a
-- resume may have come between. Marks only while the pause is in force, holding it (a
-- resume meanwhile waits for the marking to commit, then clears the marks itself).
CREATE OR REPLACE FUNCTION {schema}.pause_mark(p_prefix text) RETURNS bigint
LANGUAGE plpgsql
SET enable_seqscan = off
AS $$
DECLARE
    marked bigint;
BEGIN
    PERFORM 1 FROM {schema}.pauses AS p
    WHERE p.prefix = p_prefix AND (p.until IS NULL OR p.until > now())
    FOR KEY SHARE;
    IF NOT FOUND THEN
        RETURN 0;  -- lifted (or ended) since it was set: nothing to mark
    END IF;
    UPDATE {schema}.files AS f SET paused = true
    WHERE f.state = 'pending' AND NOT f.paused
      AND coalesce(f.path, f.source_path) ^@ {schema}.pause_match(p_prefix);
    GET DIAGNOSTICS marked = ROW_COUNT;
    RETURN marked;
END
$$;

-- The claim of version 13; only its marking of the rows it walked past changes: under
-- the pauses it holds (pause_matches_held), not the view it filtered with.
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
    -- next claims walk past none of them; only under the pauses still in force and held
    -- until this claim commits, never from the read above, which a resume may have
    -- overtaken since.
    IF claimed < p_limit AND cardinality(paused) > 0 THEN
        paused_under := {schema}.pause_matches_held();
        IF cardinality(paused_under) > 0 THEN
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
    END IF;
END
$$;

-- Marks a race left behind before this version, while another prefix pause was in
-- force: cleared once now (the same walk a lift makes).
SELECT {schema}.pause_unmark();
