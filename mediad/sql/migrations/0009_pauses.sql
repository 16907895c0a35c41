-- mediad schema, version 9: pauses, kept in the database so that every daemon on every
-- host obeys them.
--
-- A pause covers every row (prefix NULL) or the rows whose path, as mediad reads it
-- (coalesce(path, source_path): an attached row's path already joined with its table's
-- path_prefix), lies under a directory. It lasts until `until` (NULL: until resumed).
-- Paused rows stay pending and are never charged: the claim leaves them alone.
--
-- The claim stays cheap however many rows are paused: a prefix pause marks the pending
-- rows under it (files.paused), and the index the claim walks holds unmarked rows only, so
-- the claim's ordered walk never meets them. Rows that become pending under a paused
-- prefix later (a release, a give-back, an enqueue) are not marked; the claim's filter on
-- the active prefixes leaves them alone too, as it does the rows of stalled mounts
-- (migration 0006). A mark is only ever a shortcut of an active pause: lifting or
-- expiring a pause clears the marks no remaining pause covers, in the same transaction.
CREATE TABLE {schema}.pauses (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- A directory: absolute, no trailing slash but for "/" itself. NULL: every row.
    prefix  text        CHECK (prefix IS NULL OR left(prefix, 1) = '/'),
    since   timestamptz NOT NULL DEFAULT now(),
    until   timestamptz,
    set_by  text        NOT NULL DEFAULT ''
);
-- One pause per prefix (NULL included: NULLS NOT DISTINCT is PostgreSQL 15 only).
CREATE UNIQUE INDEX pauses_prefix_key ON {schema}.pauses ((coalesce(prefix, '')));

-- Any change to the pauses wakes every daemon that LISTENs, with a payload of its own:
-- they read the pauses again (mediad/db/listener.py), within a second of the commit.
CREATE FUNCTION {schema}.notify_pauses() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '.work', 'pause');
    RETURN NULL;
END
$$;
CREATE TRIGGER pauses_notify AFTER INSERT OR UPDATE OR DELETE ON {schema}.pauses
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.notify_pauses();

ALTER TABLE {schema}.files ADD COLUMN paused boolean NOT NULL DEFAULT false;

-- The claim's walk, without the marked rows. files_claim_idx stays as it was, for
-- readers of pending rows; the claim walks this one alone: it is ordered by -priority (the
-- same order as priority DESC), an order files_claim_idx cannot give, so the plan cannot
-- fall back to walking the marked rows, whatever a cached generic plan was made with.
-- The marked rows are found through an index of their own, empty while nothing is paused.
CREATE INDEX files_claim_ready_idx ON {schema}.files ((-priority::bigint), run_after, id)
    WHERE state = 'pending' AND NOT paused;
CREATE INDEX files_paused_idx ON {schema}.files (id) WHERE paused;

-- What a pause's prefix matches: the paths under that directory.
CREATE FUNCTION {schema}.pause_match(p_prefix text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p_prefix = '/' THEN '/' ELSE p_prefix || '/' END
$$;

-- The pauses in force now.
CREATE FUNCTION {schema}.pauses_active()
RETURNS SETOF {schema}.pauses
LANGUAGE sql STABLE AS $$
    SELECT * FROM {schema}.pauses WHERE until IS NULL OR until > now()
$$;

-- Marks the pending rows under a prefix: run after the pause is committed (daemons obey
-- it at once through the claim's filter), so a long marking delays nothing.
CREATE FUNCTION {schema}.pause_mark(p_prefix text) RETURNS bigint
LANGUAGE plpgsql
SET enable_seqscan = off
AS $$
DECLARE
    marked bigint;
BEGIN
    UPDATE {schema}.files AS f SET paused = true
    WHERE f.state = 'pending' AND NOT f.paused
      AND coalesce(f.path, f.source_path) ^@ {schema}.pause_match(p_prefix);
    GET DIAGNOSTICS marked = ROW_COUNT;
    RETURN marked;
END
$$;

-- Clears the marks that no active pause covers (after a pause is lifted or expired).
CREATE FUNCTION {schema}.pause_unmark() RETURNS bigint
LANGUAGE plpgsql
SET enable_seqscan = off
AS $$
DECLARE
    matches text[];
    cleared bigint;
BEGIN
    matches := ARRAY(SELECT {schema}.pause_match(a.prefix) FROM {schema}.pauses_active() AS a
                     WHERE a.prefix IS NOT NULL);
    UPDATE {schema}.files AS f SET paused = false
    WHERE f.paused
      AND NOT coalesce(coalesce(f.path, f.source_path) ^@ ANY (matches), false);
    GET DIAGNOSTICS cleared = ROW_COUNT;
    RETURN cleared;
END
$$;

-- Lifts the pause of one prefix (p_all: every pause, the prefix is ignored); returns how
-- many pauses were lifted. The marks go in the same transaction.
CREATE FUNCTION {schema}.pause_lift(p_prefix text, p_all boolean) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    lifted integer;
BEGIN
    DELETE FROM {schema}.pauses AS p
    WHERE p_all OR coalesce(p.prefix, '') = coalesce(p_prefix, '');
    GET DIAGNOSTICS lifted = ROW_COUNT;
    IF lifted > 0 THEN
        PERFORM {schema}.pause_unmark();
    END IF;
    RETURN lifted;
END
$$;

-- Pauses whose time is up: deleted, and their marks cleared. Any daemon runs it when it
-- sees one; the others, blocked on the same rows, then find nothing to do.
CREATE FUNCTION {schema}.pause_expire() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    expired integer;
BEGIN
    DELETE FROM {schema}.pauses AS p WHERE p.until <= now();
    GET DIAGNOSTICS expired = ROW_COUNT;
    IF expired > 0 THEN
        PERFORM {schema}.pause_unmark();
    END IF;
    RETURN expired;
END
$$;

-- The claim of version 6, obeying pauses: a pause of everything claims nothing (no walk
-- at all), a prefix pause joins the stalled mounts' prefixes, and marked rows are not in
-- the index it walks. The pauses table holds a handful of rows: reading it costs the
-- claim a few microseconds (measured: docs/benchmarks.md).
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
END
$$;
