-- mediad schema, version 15: the documents are compressed with lz4 instead of pglz where
-- the server has it.
--
-- A write-back stores each file's summary and MediaInfo document (2-5 KB of jsonb on
-- small files), which PostgreSQL compresses once a row passes about 2 KB. With pglz that
-- compression was the largest single cost of the `complete` statement: 14 % of the
-- backend's CPU; 84-89 us of backend CPU per written row against 73-80 with lz4
-- (bench.writecost on the mix of bench.mix, docs/benchmarks.md). lz4 compresses a little
-- less: the table is about 6 % larger. Reading is unchanged: each value records how it was
-- compressed, so rows written before keep pglz and are read as ever; new values use lz4.
--
-- A server built without lz4 (the embedded one of pgserver, a self-built one) refuses it,
-- and one older than PostgreSQL 14 has no SET COMPRESSION at all (run through EXECUTE, so
-- that its syntax error is raised where it can be caught): the columns then keep the
-- server's default, as before this version.
DO $$
BEGIN
    EXECUTE $sql$
        ALTER TABLE {schema}.files
            ALTER COLUMN metadata SET COMPRESSION lz4,
            ALTER COLUMN summary SET COMPRESSION lz4
    $sql$;
EXCEPTION WHEN feature_not_supported OR syntax_error THEN
    RAISE NOTICE 'lz4 is not available on this server: documents stay compressed with pglz';
END
$$;
