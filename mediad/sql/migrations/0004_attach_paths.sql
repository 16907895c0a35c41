-- mediad schema, version 4: attached tables whose paths are relative to a library root.
--
-- path_prefix (absolute, no trailing slash but for "/" itself) is prepended to a path
-- that does not start with "/", by the trigger and the backfill alike; NULL leaves paths
-- as the application wrote them. It is part of the mapping: another prefix is another
-- mapping, so existing queue rows never mix two roots.
ALTER TABLE {schema}.sources ADD COLUMN path_prefix text
    CHECK (path_prefix IS NULL OR left(path_prefix, 1) = '/');
