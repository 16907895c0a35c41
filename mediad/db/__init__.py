"""The database layer: the only package that imports psycopg.

- `connection`: the handle (`Database`, built from a `Target`): pool, errors, named queries.
- `queue`: the daemon's hot path (`Queue`): claim, write, renew, release, rescue, measure,
  heartbeat.
- `intake`: work coming in: enqueue, scan, retry, extract --all.
- `reads`: what status and show read.
- `migrations`: the schema's version, and bringing it up to date.
- `tables`: attached application tables (attach, backfill, detach), whose statements
  `table_sql` composes.
- `listener`: the thread that LISTENs for new work.
"""
