-- mediad schema, version 7: one definition of "queued again".
--
-- A finished row (or an attached row whose file changed) goes back to pending in six
-- places: enqueue() below, `mediad enqueue`, `mediad scan`, `mediad retry`,
-- `mediad extract --all` and the trigger of every attached table. Each assigns these
-- columns from this function, so they cannot drift apart:
--
--   SET (state, attempts, run_after, enqueued_at, error_class, error,
--        lease_token, lease_owner, lease_expires_at) = (SELECT * FROM {schema}.queued_again())
--
-- A new request for the file: nothing charged, due now, no error, no lease (a late write
-- from a claim before is refused by the fence), and enqueued_at = now(): the request's
-- wait starts again (docs/schema.md). priority is the caller's: enqueue and scan set the
-- one they were given, the others keep the row's. The result columns and metadata stay.
--
-- The columns it returns are a contract with its callers, attached tables' trigger
-- functions included: a change is a new function, never an edit of this one.
CREATE FUNCTION {schema}.queued_again()
RETURNS TABLE (
    state text, attempts integer, run_after timestamptz, enqueued_at timestamptz,
    error_class text, error text,
    lease_token bigint, lease_owner text, lease_expires_at timestamptz
)
-- A single SELECT: PostgreSQL inlines it, and evaluates it once per statement.
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT 'pending'::text, 0, now(), now(), NULL::text, NULL::text,
           NULL::bigint, NULL::text, NULL::timestamptz
$$;

-- The function applications call: as version 1 made it, through queued_again.
CREATE OR REPLACE FUNCTION {schema}.enqueue(p_path text, p_priority integer DEFAULT 0)
RETURNS bigint LANGUAGE sql AS $$
    INSERT INTO {schema}.files AS f (path, priority)
    VALUES (p_path, p_priority)
    ON CONFLICT (path) DO UPDATE
        SET priority = EXCLUDED.priority,
            (state, attempts, run_after, enqueued_at, error_class, error,
             lease_token, lease_owner, lease_expires_at) =
            (SELECT * FROM {schema}.queued_again())
        WHERE f.state IN ('done', 'failed')
    RETURNING id
$$;
