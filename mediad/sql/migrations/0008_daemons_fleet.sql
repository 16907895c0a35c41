-- mediad schema, version 8: what `status`, `mediad top` and the fleet's metrics need of
-- each daemon beyond version 5's row: the libmediainfo its workers loaded, and how many
-- files it finished since it started (a reader takes their rate). `in_flight`, there
-- since version 5, is now written: one object per file a worker reads
-- (path, worker_pid, mount, seconds; slowest first; docs/schema.md).
ALTER TABLE {schema}.daemons
    ADD COLUMN mediainfo_version text NOT NULL DEFAULT '',
    ADD COLUMN files_finished bigint NOT NULL DEFAULT 0;
