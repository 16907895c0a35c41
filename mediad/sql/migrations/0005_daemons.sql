-- mediad schema, version 5: one row per running daemon, so that what lives in a daemon's
-- memory (its workers, its mounts) can be seen from any host that reaches the database.
--
-- A daemon inserts its row at its first heartbeat and rewrites it every
-- daemon.heartbeat_seconds with one plain statement (no session state: it works behind
-- PgBouncer in transaction mode). A clean exit deletes it; a row whose heartbeat is
-- older than 3 of its own intervals belongs to a daemon that is gone, and any daemon
-- deletes rows gone for a day. Ages are always computed from the database's now(),
-- never from the clocks of the hosts.
CREATE TABLE {schema}.daemons (
    -- The daemon's lease_owner in files: hostname:pid or hostname:pid:instance.
    owner               text        PRIMARY KEY,
    host                text        NOT NULL,
    pid                 integer     NOT NULL,
    instance            text        NOT NULL DEFAULT '',
    mediad_version      text        NOT NULL,
    started_at          timestamptz NOT NULL DEFAULT now(),
    heartbeat_at        timestamptz NOT NULL DEFAULT now(),
    -- The daemon's own interval: readers judge each row by it, so daemons configured
    -- differently are never taken for gone.
    heartbeat_seconds   double precision NOT NULL CHECK (heartbeat_seconds > 0),
    -- 'degraded': stuck worker processes at the limit, or a mount stalled.
    state               text        NOT NULL
                        CHECK (state IN ('running', 'draining', 'degraded')),
    workers_target      integer     NOT NULL,
    workers_alive       integer     NOT NULL,
    workers_stuck       integer     NOT NULL DEFAULT 0,
    workers_stuck_limit integer     NOT NULL,
    -- One object per mount: mount, fstype, state ('ok' or 'stalled'), in_flight, stuck,
    -- timeouts_recent (docs/schema.md).
    mounts              jsonb       NOT NULL DEFAULT '[]',
    -- What the workers read now: one object per file.
    in_flight           jsonb       NOT NULL DEFAULT '[]'
);
