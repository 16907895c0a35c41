-- mediad schema, version 1. {schema} is replaced by the quoted schema identifier.

CREATE SCHEMA IF NOT EXISTS {schema};

CREATE TABLE {schema}.schema_version (
    version     integer     NOT NULL PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- Hands out fencing tokens: every claim gets a new one, so a write from an older claim
-- of the same row can be recognised and refused.
CREATE SEQUENCE {schema}.lease_token_seq;

CREATE TABLE {schema}.files (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    path             text        NOT NULL UNIQUE CHECK (path <> ''),
    state            text        NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'running', 'done', 'failed')),
    priority         integer     NOT NULL DEFAULT 0,
    attempts         integer     NOT NULL DEFAULT 0,
    run_after        timestamptz NOT NULL DEFAULT now(),
    enqueued_at      timestamptz NOT NULL DEFAULT now(),
    -- lease: who holds the row and until when; the token fences late writers
    lease_token      bigint,
    lease_owner      text,
    lease_expires_at timestamptz,
    -- outcome of the last attempt
    error_class      text,
    error            text,
    resolved_path    text,
    size_bytes       bigint,
    mtime            timestamptz,
    inode            bigint,
    finished_at      timestamptz,  -- when the last attempt ended (done or failed)
    -- summary columns: queryable and indexable
    container        text,
    duration_s       double precision,
    bit_rate         bigint,
    width            integer,
    height           integer,
    frame_rate       double precision,
    video_codec      text,
    audio_codec      text,
    audio_channels   integer,
    sample_rate      integer,
    video_tracks     integer,
    audio_tracks     integer,
    text_tracks      integer,
    truncated        boolean,
    summary          jsonb,
    metadata         jsonb
) WITH (fillfactor = 80);

-- The claim reads only this: pending rows in claim order. Stays small however many rows
-- are done.
CREATE INDEX files_claim_idx ON {schema}.files (priority DESC, run_after, id)
    WHERE state = 'pending';
-- Finding expired leases without scanning the table.
CREATE INDEX files_lease_idx ON {schema}.files (lease_expires_at) WHERE state = 'running';
CREATE INDEX files_failed_idx ON {schema}.files (error_class) WHERE state = 'failed';
CREATE INDEX files_finished_at_idx ON {schema}.files (finished_at);

-- New work wakes idle daemons at once. Statement-level with transition tables: one
-- notification per statement, and only when a row became pending.
CREATE FUNCTION {schema}.notify_pending() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_rows WHERE state = 'pending') THEN
        PERFORM pg_notify(TG_TABLE_SCHEMA || '.work', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER files_notify_insert AFTER INSERT ON {schema}.files
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.notify_pending();

CREATE TRIGGER files_notify_update AFTER UPDATE ON {schema}.files
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.notify_pending();

-- The documented way for applications to add or re-queue a file in plain SQL.
CREATE FUNCTION {schema}.enqueue(p_path text, p_priority integer DEFAULT 0)
RETURNS bigint LANGUAGE sql AS $$
    INSERT INTO {schema}.files AS f (path, priority)
    VALUES (p_path, p_priority)
    ON CONFLICT (path) DO UPDATE
        SET state = 'pending', priority = EXCLUDED.priority, attempts = 0,
            run_after = now(), enqueued_at = now(), error_class = NULL, error = NULL,
            lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL
        WHERE f.state IN ('done', 'failed')
    RETURNING id
$$;
