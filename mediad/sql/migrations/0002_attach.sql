-- mediad schema, version 2: attached application tables. {schema} is the quoted schema.
--
-- An attached row of the application's table becomes one row of files with source_id and
-- source_row set, and its file name in source_path. Its path is NULL: files_path_key
-- (UNIQUE (path)) stays exactly as version 1 made it, so the documented
-- `INSERT ... ON CONFLICT (path)` of applications keeps working, and an application table
-- may hold the same file name in several rows.

CREATE TABLE {schema}.sources (
    id               serial      PRIMARY KEY,
    -- schema-qualified, quoted where needed: format('%I.%I', nspname, relname)
    table_name       text        NOT NULL UNIQUE,
    table_schema     text        NOT NULL,  -- pg_namespace.nspname
    table_relname    text        NOT NULL,  -- pg_class.relname
    id_column        text        NOT NULL,
    id_type          text        NOT NULL,  -- format_type() of id_column
    path_column      text        NOT NULL,
    metadata_column  text,
    metadata_type    text,                  -- format_type() of metadata_column
    summary_prefix   text,
    summary_columns  text[]      NOT NULL DEFAULT ARRAY[]::text[],
    skip_existing    boolean     NOT NULL DEFAULT true,
    -- backfill progress: the last id column value queued (as text), and when it finished
    backfill_after   text,
    backfilled_at    timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE {schema}.files
    ADD COLUMN source_id   integer REFERENCES {schema}.sources (id) ON DELETE CASCADE,
    ADD COLUMN source_row  text,
    ADD COLUMN source_path text,
    ALTER COLUMN path DROP NOT NULL,
    ADD CONSTRAINT files_source_check CHECK (
        CASE WHEN source_id IS NULL
             THEN path IS NOT NULL AND source_row IS NULL AND source_path IS NULL
             ELSE path IS NULL AND source_row IS NOT NULL AND source_path IS NOT NULL
                  AND source_path <> ''
        END
    );

-- One files row per attached application row; the target of the trigger's upserts, and
-- what ON DELETE CASCADE from sources uses.
CREATE UNIQUE INDEX files_source_row_key ON {schema}.files (source_id, source_row)
    WHERE source_id IS NOT NULL;
-- `mediad show PATH` for attached rows.
CREATE INDEX files_source_path_idx ON {schema}.files (source_path)
    WHERE source_id IS NOT NULL;
