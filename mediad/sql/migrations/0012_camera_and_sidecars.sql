-- mediad schema, version 12: camera metadata as columns, and the XMP sidecar as part of a
-- file's fingerprint.
--
-- The camera columns hold the summary keys of the same names (docs/schema.md), NULL when
-- the file does not state the value. taken_at is the instant: the summary's wall-clock
-- time at its stated offset (taken_at_offset_min), or read as UTC when the file states no
-- zone (taken_at_offset_min NULL); the summary keeps the wall-clock text as the file has it.
--
-- sidecar_size_bytes and sidecar_mtime describe the XMP sidecar beside the file
-- (`name.ext.xmp`, else `name.xmp`) as the last scan or extraction saw it; NULL when it
-- had none. A scan queues a file again when its sidecar appears, changes or goes away,
-- as it does for the file's own size and mtime. Rows written before this version have
-- NULL there, as files without a sidecar do: the first scan after the upgrade queues
-- again only the files that have one.
ALTER TABLE {schema}.files
    ADD COLUMN taken_at            timestamptz,
    ADD COLUMN taken_at_offset_min integer,
    ADD COLUMN taken_at_source     text,
    ADD COLUMN gps_lat             double precision,
    ADD COLUMN gps_lon             double precision,
    ADD COLUMN gps_alt_m           double precision,
    ADD COLUMN orientation         smallint,
    ADD COLUMN rotation_deg        integer,
    ADD COLUMN mirrored            boolean,
    ADD COLUMN camera_make         text,
    ADD COLUMN camera_model        text,
    ADD COLUMN lens                text,
    ADD COLUMN frame_count         integer,
    ADD COLUMN sidecar_size_bytes  bigint,
    ADD COLUMN sidecar_mtime       timestamptz;

-- A photo library's timeline: "taken between", "newest first". Partial, so a completion
-- of a file without a capture time (most video and audio) adds no index entry: the
-- write-back already updates indexed columns (state, finished_at), and a row whose
-- taken_at is NULL costs nothing more. Built at migration time over columns that are all
-- NULL, it holds nothing yet. Other lookups (GPS boxes, camera) are left to the
-- application's own indexes (docs/schema.md).
CREATE INDEX files_taken_at_idx ON {schema}.files (taken_at) WHERE taken_at IS NOT NULL;
