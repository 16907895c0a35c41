-- mediad schema, version 11: HDR fields as columns, and which extractor wrote each row.
--
-- The HDR columns hold the summary keys of the same names (docs/schema.md), NULL when
-- MediaInfo does not say. mediainfo_version and reader_version name the libraries that
-- read the file; mapping_version is mediad's own version of the mapping from their
-- documents to the summary (MAPPING_VERSION in mediad/extract/summary.py). Rows written
-- before this version have NULL there, which counts as older than every mapping.
ALTER TABLE {schema}.files
    ADD COLUMN hdr_format        text,
    ADD COLUMN dv_profile        integer,
    ADD COLUMN transfer          text,
    ADD COLUMN primaries         text,
    ADD COLUMN video_bit_depth   integer,
    ADD COLUMN max_cll           integer,
    ADD COLUMN max_fall          integer,
    ADD COLUMN mediainfo_version text,
    ADD COLUMN reader_version    text,
    ADD COLUMN mapping_version   integer;
