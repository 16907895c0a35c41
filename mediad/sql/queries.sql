-- Every statement mediad runs, by name. {schema} is the quoted schema identifier;
-- values are always bound parameters: %(name)s, or %(name)b for arrays, which go in
-- binary format (the text format escapes every element in Python: for MediaInfo
-- documents that was most of the supervisor's CPU). Loaded once by mediad.queries.

-- name: schema_exists
SELECT to_regclass(format('%%I.schema_version', %(schema)s::text)) IS NOT NULL AS present;

-- name: schema_version
SELECT coalesce(max(version), 0) AS version FROM {schema}.schema_version;

-- name: migration_lock
SELECT pg_advisory_xact_lock(hashtextextended('mediad migrate ' || %(schema)s::text, 0));

-- name: record_migration
INSERT INTO {schema}.schema_version (version) VALUES (%(version)s);

-- name: claim
-- One committed statement: lock a batch of due pending rows (skipping rows other daemons
-- hold), mark them running under a new fencing token and a lease, return them. The
-- statement lives in the function {schema}.claim (migration 0003), which pins an ordered
-- walk of files_claim_idx whatever the statistics say. The attempt is charged here, so
-- a file that kills its daemon still runs out of attempts. skip_prefixes (migration
-- 0006): mount points, each ending in "/", whose rows are left alone (stalled mounts).
-- Pauses (migration 0009) the function reads itself: no daemon passes them.
SELECT id, path, attempts, lease_token, priority
FROM {schema}.claim(
    %(limit)s, %(owner)s, %(lease_seconds)s, %(skip_existing)s, %(skip_prefixes)s::text[]
);

-- The fence in the statements below is `lease_token = token` alone: a claim sets the
-- token and every way out of `running` (complete, fail, release, rescue) clears it, so a
-- matching token means the row is still running under that claim. Leaving `state` out
-- also keeps the planner on the primary key: with `state = 'running'` and statistics
-- taken when nothing ran, it would walk the partial lease index and every dead entry
-- the churn left in it.

-- name: renew_leases
UPDATE {schema}.files AS f
SET lease_expires_at = now() + make_interval(secs => %(lease_seconds)s)
FROM unnest(%(ids)b::bigint[], %(tokens)b::bigint[]) AS r(id, token)
WHERE f.id = r.id AND f.lease_token = r.token
RETURNING f.id;

-- name: complete
-- Fenced: only rows still running under the token of this claim are written.
UPDATE {schema}.files AS f
SET state = 'done',
    error_class = NULL,
    error = NULL,
    lease_token = NULL,
    lease_owner = NULL,
    lease_expires_at = NULL,
    finished_at = now(),
    resolved_path = r.resolved_path,
    size_bytes = r.size_bytes,
    mtime = 'epoch'::timestamptz + r.mtime_us * interval '1 microsecond',
    inode = r.inode,
    container = r.container,
    duration_s = r.duration_s,
    bit_rate = r.bit_rate,
    width = r.width,
    height = r.height,
    frame_rate = r.frame_rate,
    video_codec = r.video_codec,
    audio_codec = r.audio_codec,
    audio_channels = r.audio_channels,
    sample_rate = r.sample_rate,
    video_tracks = r.video_tracks,
    audio_tracks = r.audio_tracks,
    text_tracks = r.text_tracks,
    truncated = r.truncated,
    hdr_format = r.hdr_format,
    dv_profile = r.dv_profile,
    transfer = r.transfer,
    primaries = r.primaries,
    video_bit_depth = r.video_bit_depth,
    max_cll = r.max_cll,
    max_fall = r.max_fall,
    -- The record carries the instant: the summary's wall-clock text with its offset, or
    -- "+00:00" when the file states no zone (mediad/extract/record.py).
    taken_at = r.taken_at,
    taken_at_offset_min = r.taken_at_offset_min,
    taken_at_source = r.taken_at_source,
    gps_lat = r.gps_lat,
    gps_lon = r.gps_lon,
    gps_alt_m = r.gps_alt_m,
    orientation = r.orientation,
    rotation_deg = r.rotation_deg,
    mirrored = r.mirrored,
    camera_make = r.camera_make,
    camera_model = r.camera_model,
    lens = r.lens,
    frame_count = r.frame_count,
    -- The sidecar the worker read (NULL: none), so the next scan finds no change. When
    -- the second reader did not read the file (not its kind, or switched off) and no
    -- sidecar came back, the one the scan saw stays: else that scan's next run would find
    -- the sidecar "appeared" again, and queue the file at every scan.
    sidecar_size_bytes = CASE WHEN r.reader_version IS NULL AND r.sidecar_size_bytes IS NULL
                              THEN f.sidecar_size_bytes ELSE r.sidecar_size_bytes END,
    sidecar_mtime = CASE WHEN r.reader_version IS NULL AND r.sidecar_size_bytes IS NULL
                         THEN f.sidecar_mtime
                         ELSE 'epoch'::timestamptz
                              + r.sidecar_mtime_us * interval '1 microsecond' END,
    mediainfo_version = r.mediainfo_version,
    reader_version = r.reader_version,
    mapping_version = r.mapping_version,
    summary = r.summary,
    metadata = r.metadata
-- One JSON array for the whole batch (mediad/extract/record.py makes its objects, in the worker):
-- one parameter instead of one array per column, and each document parsed once.
FROM jsonb_to_recordset(%(records)s::jsonb) AS r(
    id bigint, token bigint, resolved_path text, size_bytes bigint, mtime_us bigint,
    inode bigint, container text, duration_s float8, bit_rate bigint, width int,
    height int, frame_rate float8, video_codec text, audio_codec text, audio_channels int,
    sample_rate int, video_tracks int, audio_tracks int, text_tracks int, truncated bool,
    hdr_format text, dv_profile int, transfer text, primaries text, video_bit_depth int,
    max_cll int, max_fall int, taken_at timestamptz, taken_at_offset_min int,
    taken_at_source text, gps_lat float8, gps_lon float8, gps_alt_m float8, orientation int,
    rotation_deg int, mirrored bool, camera_make text, camera_model text, lens text,
    frame_count int, sidecar_size_bytes bigint, sidecar_mtime_us bigint,
    mediainfo_version text, reader_version text, mapping_version int, summary jsonb,
    metadata jsonb)
WHERE f.id = r.id AND f.lease_token = r.token
RETURNING f.id, f.source_id, f.source_row;

-- name: fail
-- Fenced like complete. The retry decision (state and delay) is made by the caller's
-- policy; the previous metadata, if any, is kept. `keep` keeps the recorded fingerprint
-- when the failure did not look at the file (worker crash, timeout).
UPDATE {schema}.files AS f
SET state = r.state,
    run_after = now() + make_interval(secs => r.delay_s),
    error_class = r.error_class,
    error = r.error,
    lease_token = NULL,
    lease_owner = NULL,
    lease_expires_at = NULL,
    finished_at = now(),
    resolved_path = CASE WHEN r.keep THEN f.resolved_path ELSE r.resolved_path END,
    size_bytes = CASE WHEN r.keep THEN f.size_bytes ELSE r.size_bytes END,
    mtime = CASE WHEN r.keep THEN f.mtime
                 ELSE 'epoch'::timestamptz + r.mtime_us * interval '1 microsecond' END,
    inode = CASE WHEN r.keep THEN f.inode ELSE r.inode END
FROM unnest(
    %(ids)b::bigint[], %(tokens)b::bigint[], %(states)b::text[], %(delays)b::float8[],
    %(classes)b::text[], %(messages)b::text[], %(resolved_paths)b::text[],
    %(sizes)b::bigint[], %(mtimes_us)b::bigint[], %(inodes)b::bigint[],
    %(keep_fingerprints)b::bool[]
) AS r(id, token, state, delay_s, error_class, error, resolved_path, size_bytes, mtime_us,
       inode, keep)
WHERE f.id = r.id AND f.lease_token = r.token
RETURNING f.id;

-- name: release
-- Give back claimed rows that no worker finished (drain), without charging the attempt.
UPDATE {schema}.files AS f
SET state = 'pending',
    attempts = greatest(f.attempts - 1, 0),
    run_after = now(),
    lease_token = NULL,
    lease_owner = NULL,
    lease_expires_at = NULL
FROM unnest(%(ids)b::bigint[], %(tokens)b::bigint[]) AS r(id, token)
WHERE f.id = r.id AND f.lease_token = r.token
RETURNING f.id;

-- name: give_back
-- Give back claimed rows whose mount stopped answering (docs/reliability.md), without
-- charging the attempt, due again `delay` seconds from now: about when the mount is
-- probed next. Not a failure: the error of a previous attempt, if any, is kept.
UPDATE {schema}.files AS f
SET state = 'pending',
    attempts = greatest(f.attempts - 1, 0),
    run_after = now() + make_interval(secs => %(delay)s),
    lease_token = NULL,
    lease_owner = NULL,
    lease_expires_at = NULL
FROM unnest(%(ids)b::bigint[], %(tokens)b::bigint[]) AS r(id, token)
WHERE f.id = r.id AND f.lease_token = r.token
RETURNING f.id;

-- name: rescue_expired
-- Rows whose daemon died or lost the database: back to pending (the attempt stays
-- charged), or failed when that was the last one.
WITH expired AS (
    SELECT id FROM {schema}.files
    WHERE state = 'running' AND lease_expires_at < now()
    ORDER BY lease_expires_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE {schema}.files AS f
SET state = CASE WHEN f.attempts >= %(max_attempts)s THEN 'failed' ELSE 'pending' END,
    run_after = now(),
    error_class = 'lease_expired',
    error = format('the lease of %%s expired before it reported a result', f.lease_owner),
    lease_token = NULL,
    lease_owner = NULL,
    lease_expires_at = NULL,
    finished_at = now()
FROM expired
WHERE f.id = expired.id
RETURNING f.id, f.state;

-- name: enqueue
-- New paths are inserted; done or failed ones are queued again (migration 0007); pending
-- or running ones are left as they are. A path under a paused prefix is queued marked
-- paused (migration 0009), out of the claim's index, as `mediad pause` marks the rows
-- already there: a scan during a pause adds no rows for every claim to walk past. The
-- pauses it marks under are held until it commits (migration 0014), so a resume meanwhile
-- waits for it and clears these marks too; a pause being lifted marks nothing.
WITH pause AS (
    SELECT {schema}.pause_matches_held() AS under
)
INSERT INTO {schema}.files AS f (path, priority, paused)
SELECT r.p, r.pr, coalesce(r.p ^@ ANY (pause.under), false)
FROM unnest(%(paths)b::text[], %(priorities)b::int[]) AS r(p, pr), pause
ON CONFLICT (path) DO UPDATE
SET priority = EXCLUDED.priority,
    (state, attempts, run_after, enqueued_at, error_class, error,
     lease_token, lease_owner, lease_expires_at) = (SELECT * FROM {schema}.queued_again()),
    paused = EXCLUDED.paused
WHERE f.state IN ('done', 'failed')
RETURNING (xmax = 0) AS inserted;

-- name: scan_upsert
-- Like enqueue, but a known file is queued again only when its size or mtime changed, or
-- its XMP sidecar appeared, changed or went away (sidecar_size_bytes, sidecar_mtime:
-- NULL for none, so a file without one, on a row written before the sidecar columns, is
-- unchanged). `sidecars` false (extract.second_reader off: no worker reads them) leaves
-- sidecars out of the comparison and the row's sidecar columns as they are.
-- Paths under a paused prefix are queued marked paused, as enqueue's are.
WITH pause AS (
    SELECT {schema}.pause_matches_held() AS under
)
INSERT INTO {schema}.files AS f (path, priority, size_bytes, mtime, sidecar_size_bytes,
                                 sidecar_mtime, paused)
SELECT r.p, r.pr, r.s, 'epoch'::timestamptz + r.m * interval '1 microsecond',
       r.ss, 'epoch'::timestamptz + r.sm * interval '1 microsecond',
       coalesce(r.p ^@ ANY (pause.under), false)
FROM unnest(%(paths)b::text[], %(priorities)b::int[], %(sizes)b::bigint[],
            %(mtimes_us)b::bigint[], %(sidecar_sizes)b::bigint[],
            %(sidecar_mtimes_us)b::bigint[]) AS r(p, pr, s, m, ss, sm), pause
ON CONFLICT (path) DO UPDATE
SET priority = EXCLUDED.priority,
    (state, attempts, run_after, enqueued_at, error_class, error,
     lease_token, lease_owner, lease_expires_at) = (SELECT * FROM {schema}.queued_again()),
    paused = EXCLUDED.paused,
    -- What the scan saw: if the next attempt crashes without looking at the file, the
    -- next scan must not find the same change again and reset the attempts.
    size_bytes = EXCLUDED.size_bytes, mtime = EXCLUDED.mtime,
    sidecar_size_bytes = CASE WHEN %(sidecars)s THEN EXCLUDED.sidecar_size_bytes
                              ELSE f.sidecar_size_bytes END,
    sidecar_mtime = CASE WHEN %(sidecars)s THEN EXCLUDED.sidecar_mtime
                         ELSE f.sidecar_mtime END
WHERE f.state IN ('done', 'failed')
  AND ((f.size_bytes, f.mtime) IS DISTINCT FROM (EXCLUDED.size_bytes, EXCLUDED.mtime)
       OR (%(sidecars)s AND (f.sidecar_size_bytes, f.sidecar_mtime)
                            IS DISTINCT FROM (EXCLUDED.sidecar_size_bytes, EXCLUDED.sidecar_mtime)))
RETURNING (xmax = 0) AS inserted;

-- name: record_unstorable
-- A name PostgreSQL cannot hold as it is: recorded, escaped, as failed with a reason, so
-- the operator sees it instead of it being skipped.
INSERT INTO {schema}.files AS f (path, state, error_class, error, finished_at)
SELECT p, 'failed', 'bad_path', %(message)s, now() FROM unnest(%(paths)b::text[]) AS p
ON CONFLICT (path) DO NOTHING
RETURNING id;

-- name: counts_by_state
SELECT state, count(*) AS n FROM {schema}.files GROUP BY state;

-- name: older_mapping
-- Rows done by a mapping older than the current one; NULL is older than every mapping.
SELECT count(*) AS n FROM {schema}.files
WHERE state = 'done' AND (mapping_version IS NULL OR mapping_version < %(current)s);

-- name: failures_by_class
SELECT error_class, count(*) AS n FROM {schema}.files
WHERE state = 'failed' GROUP BY error_class ORDER BY n DESC;

-- name: oldest_pending_seconds
SELECT extract(epoch FROM now() - min(run_after))::float8 AS seconds
FROM {schema}.files WHERE state = 'pending' AND NOT paused AND run_after <= now();

-- name: finished_since
SELECT count(*) FILTER (WHERE state = 'done') AS done,
       count(*) FILTER (WHERE state <> 'done') AS failed
FROM {schema}.files WHERE finished_at > now() - make_interval(secs => %(seconds)s);

-- name: failures_since
-- Failed attempts by class lately (`mediad top`): rows failed for good, and rows gone
-- back to pending for a retry, both stamped finished_at (files_finished_at_idx).
SELECT error_class, count(*) AS n FROM {schema}.files
WHERE finished_at > now() - make_interval(secs => %(seconds)s) AND error_class IS NOT NULL
GROUP BY error_class ORDER BY n DESC, error_class;

-- name: show
-- One row per path: the row mediad owns (enqueue/scan), else the first attached row.
-- Not taken_at: `show` gives the summary's wall-clock text, the column holds the instant.
SELECT DISTINCT ON (coalesce(path, source_path))
       coalesce(path, source_path) AS path, state, attempts, error_class, error, priority,
       resolved_path, size_bytes, mtime, finished_at, summary, container, duration_s,
       bit_rate, width, height, frame_rate, video_codec, audio_codec, audio_channels,
       sample_rate, video_tracks, audio_tracks, text_tracks, truncated, hdr_format,
       dv_profile, transfer, primaries, video_bit_depth, max_cll, max_fall,
       taken_at_offset_min, taken_at_source, gps_lat, gps_lon, gps_alt_m, orientation,
       rotation_deg, mirrored, camera_make, camera_model, lens, frame_count
FROM {schema}.files
WHERE path = ANY(%(paths)b::text[])
   OR (source_id IS NOT NULL AND source_path = ANY(%(paths)b::text[]))
ORDER BY coalesce(path, source_path), source_id IS NOT NULL, id;

-- name: retry_failed
UPDATE {schema}.files
SET (state, attempts, run_after, enqueued_at, error_class, error,
    lease_token, lease_owner, lease_expires_at) = (SELECT * FROM {schema}.queued_again())
WHERE state = 'failed' AND (%(error_class)s::text IS NULL OR error_class = %(error_class)s::text)
RETURNING id;

-- name: requeue_finished
-- extract --all: queue again the rows that already finished, those finished longest ago
-- first, at most `limit` of them (NULL: every one). extract --all --limit N queues no
-- more than it will process: a row left pending would be extracted (and its metadata
-- overwritten) by the next run, which nobody asked for. Oldest first, so that repeated
-- runs with --limit work through the whole library.
WITH picked AS (
    SELECT id FROM {schema}.files
    WHERE state IN ('done', 'failed')
    ORDER BY finished_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), requeued AS (
    UPDATE {schema}.files AS f
    SET (state, attempts, run_after, enqueued_at, error_class, error,
         lease_token, lease_owner, lease_expires_at) = (SELECT * FROM {schema}.queued_again())
    FROM picked
    WHERE f.id = picked.id
    RETURNING 1
)
SELECT count(*) AS n FROM requeued;

-- name: files_max_id
SELECT coalesce(max(id), 0) AS id FROM {schema}.files;

-- name: reextract_batch
-- mediad reextract: the finished rows a selection names (mediad/reextract.py), in one
-- window of ids (after, upto], queued again behind new work: at `priority` (low), stamped
-- reextract_at = enqueued_at so that extract --skip-existing extracts them (migration
-- 0013). A window, not "the next N matches", so each statement walks and locks a bounded
-- slice of the primary key whatever the filters match. Without classes the rows `done`;
-- with classes the rows `failed` with one of them. Pending and running rows are never
-- touched (checked again on the row as locked); rows another transaction holds are
-- skipped. With dry_run, the rows that match are counted and nothing is locked.
WITH matching AS (
    SELECT id FROM {schema}.files
    WHERE id > %(after)s AND id <= %(upto)s
      AND state = CASE WHEN %(classes)s::text[] IS NULL THEN 'done' ELSE 'failed' END
      AND (%(classes)s::text[] IS NULL OR error_class = ANY (%(classes)s::text[]))
      AND (%(mapping_below)s::int IS NULL OR mapping_version IS NULL
           OR mapping_version < %(mapping_below)s::int)
      AND (%(containers)s::text[] IS NULL OR container = ANY (%(containers)s::text[]))
      AND (%(suffixes)s::text[] IS NULL
           OR lower(coalesce(path, source_path))
              LIKE ANY (SELECT lower(x) FROM unnest(%(suffixes)s::text[]) AS x))
), picked AS (
    SELECT f.id FROM {schema}.files AS f JOIN matching AS m ON m.id = f.id
    WHERE NOT %(dry_run)s AND f.state IN ('done', 'failed')
    FOR UPDATE OF f SKIP LOCKED
), requeued AS (
    UPDATE {schema}.files AS f
    SET priority = %(priority)s,
        (state, attempts, run_after, enqueued_at, error_class, error,
         lease_token, lease_owner, lease_expires_at) = (SELECT * FROM {schema}.queued_again()),
        reextract_at = now()
    FROM picked
    WHERE f.id = picked.id
    RETURNING 1
)
SELECT CASE WHEN %(dry_run)s THEN (SELECT count(*) FROM matching)
            ELSE (SELECT count(*) FROM requeued) END AS n;

-- name: settle_existing
-- extract --skip-existing: pending rows that hold metadata from an earlier extraction
-- are not extracted again; they go back to done with their metadata, summary, result
-- columns, attempts and finished_at (when that metadata was made) as they are. Settled
-- before the run, so no claim reads them, and no later run extracts them either. The
-- error of an attempt that failed since (a retry was pending) no longer describes the
-- row: a done row carries none. Rows queued by `mediad reextract` (reextract_at =
-- enqueued_at, migration 0013) are left pending: their metadata is there to be made again.
WITH settled AS (
    UPDATE {schema}.files
    SET state = 'done', error_class = NULL, error = NULL,
        lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL
    WHERE state = 'pending' AND metadata IS NOT NULL
      AND reextract_at IS DISTINCT FROM enqueued_at
    RETURNING 1
)
SELECT count(*) AS n FROM settled;

-- name: listen
LISTEN {channel};

-- name: pause_set
-- A pause (migration 0009), committed at once; its trigger announces it on the daemons'
-- channel, so every daemon listening reads the pauses again within a second. Pausing a
-- prefix again changes its end and who set it, never since when it has lasted.
INSERT INTO {schema}.pauses AS p (prefix, until, set_by)
VALUES (%(prefix)s::text, %(until)s::timestamptz, %(set_by)s::text)
ON CONFLICT ((coalesce(prefix, ''))) DO UPDATE
SET until = EXCLUDED.until, set_by = EXCLUDED.set_by
RETURNING p.prefix, p.since, p.until;

-- name: pause_marks_clear
-- With no prefix paused, no row should be marked. Since migration 0014 every marker holds
-- the pauses it marks under, so a lift always sees and clears their marks; this stays as
-- the check that nothing else left one, run whenever a daemon reads the pauses and finds
-- no prefix paused. Walks files_paused_idx, empty while nothing is paused.
WITH cleared AS (
    UPDATE {schema}.files SET paused = false WHERE paused RETURNING 1
)
SELECT count(*) AS cleared FROM cleared;

-- name: pause_mark
-- The pending rows under a paused prefix leave the claim's index (run after pause_set);
-- nothing is marked if a resume lifted the pause meanwhile (migration 0014).
SELECT {schema}.pause_mark(%(prefix)s::text) AS marked;

-- name: pause_lift
-- resume: one prefix's pause (or every pause), and the marks no remaining pause covers.
SELECT {schema}.pause_lift(%(prefix)s::text, %(all)s::boolean) AS lifted;

-- name: pause_expire
-- Pauses whose time is up, lifted by the first daemon that sees them.
SELECT {schema}.pause_expire() AS expired;

-- name: pauses_list
-- Every pause, in force or expired but not lifted yet; times from the database's clock.
SELECT prefix, since, until, set_by,
       coalesce(until <= now(), false) AS expired,
       extract(epoch FROM now() - since)::float8 AS age_s,
       extract(epoch FROM until - now())::float8 AS ends_in_s
FROM {schema}.pauses
ORDER BY prefix NULLS FIRST;

-- --- attached application tables (docs/attach.md) -----------------------------------

-- name: table_info
-- The table a name designates, as PostgreSQL resolves it (search_path, quoting).
SELECT c.oid::bigint AS oid, n.nspname AS schema_name, c.relname AS table_name,
       c.relkind::text AS kind, format('%%I.%%I', n.nspname, c.relname) AS qualified
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass(%(table)s::text);

-- name: table_columns
-- Columns, their types, and whether a unique index (or primary key) covers each alone.
SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
       t.typcategory::text AS category,
       EXISTS (SELECT 1 FROM pg_catalog.pg_index i
               WHERE i.indrelid = a.attrelid AND i.indisunique AND i.indpred IS NULL
                 AND i.indnkeyatts = 1 AND i.indkey[0] = a.attnum) AS is_unique
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = %(oid)s::bigint::oid AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum;

-- name: source_insert
INSERT INTO {schema}.sources (table_name, table_schema, table_relname, id_column, id_type,
                              path_column, metadata_column, metadata_type, summary_prefix,
                              summary_columns, skip_existing, path_prefix)
VALUES (%(table_name)s, %(table_schema)s, %(table_relname)s, %(id_column)s, %(id_type)s,
        %(path_column)s, %(metadata_column)s, %(metadata_type)s, %(summary_prefix)s,
        %(summary_columns)b::text[], %(skip_existing)s, %(path_prefix)s)
RETURNING id;

-- name: source_function_body
-- The body of an attached table's trigger function as installed, to compare with the one
-- this mediad writes.
SELECT p.prosrc
FROM pg_catalog.pg_proc AS p
JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
WHERE n.nspname = %(schema)s AND p.proname = %(function)s;

-- name: source_next_id
-- The id the next source_insert will get, read without consuming it (--dry-run); a
-- concurrent attach can still take it first.
SELECT CASE WHEN s.is_called THEN s.last_value + 1 ELSE s.last_value END AS id
FROM {schema}.sources_id_seq AS s;

-- name: sources_all
-- summary_types: each summary column's type as the catalog has it now (the write-back of
-- taken_at casts to it); '' for a column gone since the attach.
SELECT id, table_name, table_schema, table_relname, id_column, id_type, path_column,
       metadata_column, metadata_type, summary_prefix, summary_columns,
       ARRAY(SELECT coalesce(format_type(a.atttypid, a.atttypmod), '')
             FROM unnest(s.summary_columns) WITH ORDINALITY AS c(name, n)
             LEFT JOIN pg_catalog.pg_attribute AS a
               ON a.attrelid = to_regclass(s.table_name) AND a.attname = c.name
              AND NOT a.attisdropped
             ORDER BY c.n) AS summary_types,
       skip_existing, path_prefix, backfill_after, backfilled_at
FROM {schema}.sources AS s ORDER BY id;

-- name: source_progress
UPDATE {schema}.sources
SET backfill_after = %(after)s,
    backfilled_at = CASE WHEN %(finished)s THEN now() END
WHERE id = %(id)s;

-- name: source_summary_columns
-- The same mapping attached again: the prefixed columns found now (some added since) are
-- the ones written back. A running daemon reads them at its next start.
UPDATE {schema}.sources SET summary_columns = %(summary_columns)b::text[] WHERE id = %(id)s;

-- name: source_delete
-- Its files rows go with it (ON DELETE CASCADE).
DELETE FROM {schema}.sources WHERE id = %(id)s;

-- --- daemons (migrations 0005, 0008) ------------------------------------------------

-- name: daemon_heartbeat
-- One statement per daemon.heartbeat_seconds: the first inserts the row, the next ones
-- rewrite what changes. Times come from the database's clock: started_at is its now()
-- less the daemon's uptime (kept from the first insert), heartbeat_at its now().
INSERT INTO {schema}.daemons AS d (
    owner, host, pid, instance, mediad_version, started_at, heartbeat_at,
    heartbeat_seconds, state, workers_target, workers_alive, workers_stuck,
    workers_stuck_limit, mounts, in_flight, mediainfo_version, files_finished)
VALUES (
    %(owner)s, %(host)s, %(pid)s, %(instance)s, %(mediad_version)s,
    now() - make_interval(secs => %(uptime_s)s), now(), %(heartbeat_seconds)s, %(state)s,
    %(workers_target)s, %(workers_alive)s, %(workers_stuck)s, %(workers_stuck_limit)s,
    %(mounts)s::jsonb, %(in_flight)s::jsonb, %(mediainfo_version)s, %(files_finished)s)
ON CONFLICT (owner) DO UPDATE
SET heartbeat_at = now(),
    heartbeat_seconds = EXCLUDED.heartbeat_seconds,
    state = EXCLUDED.state,
    workers_target = EXCLUDED.workers_target,
    workers_alive = EXCLUDED.workers_alive,
    workers_stuck = EXCLUDED.workers_stuck,
    workers_stuck_limit = EXCLUDED.workers_stuck_limit,
    mounts = EXCLUDED.mounts,
    in_flight = EXCLUDED.in_flight,
    mediainfo_version = EXCLUDED.mediainfo_version,
    files_finished = EXCLUDED.files_finished;

-- name: daemon_forget
-- A clean exit: the daemon is not gone, it stopped.
DELETE FROM {schema}.daemons WHERE owner = %(owner)s;

-- name: daemons_prune
-- Rows of daemons gone (killed, host lost) for a day: deleted by any live daemon.
DELETE FROM {schema}.daemons WHERE heartbeat_at < now() - interval '1 day'
RETURNING owner;

-- name: daemons_list
-- Every row, with ages from the database's clock. A daemon is live while its heartbeat
-- is at most 3 of its own intervals old (a heartbeat may wait behind a claim or be lost
-- to a brief outage without the daemon being taken for gone).
SELECT owner, host, pid, instance, mediad_version, state, heartbeat_seconds,
       workers_target, workers_alive, workers_stuck, workers_stuck_limit, mounts,
       in_flight, mediainfo_version, files_finished,
       greatest(0, extract(epoch FROM now() - started_at))::float8 AS uptime_s,
       greatest(0, extract(epoch FROM now() - heartbeat_at))::float8 AS heartbeat_age_s,
       heartbeat_at >= now() - make_interval(secs => 3 * heartbeat_seconds) AS live
FROM {schema}.daemons
ORDER BY host, pid, owner;
