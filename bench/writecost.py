"""PostgreSQL's CPU per row for mediad's claim and write-back, without the daemon.

    .venv/bin/python -m bench.writecost --dsn DSN [--source DIR] [--rows 20000]
        [--batch 500] [--repeat 3] [--compression pglz,lz4]

Each corpus file is read once, as a worker reads it, and its write-back record kept. Then,
in a fresh schema per run, `--rows` pending rows are claimed and written back as done,
`--batch` at a time, with mediad's own `claim` and `complete` statements (prepared, as the
daemon runs them) and those records, while the CPU of the one backend that runs them is
read from /proc: the server must be on this machine. Runs alternate the documents'
compression (`--compression`: each is set on the summary and metadata columns after the
migrations), so two methods are compared on the same host minutes apart.

Prints one JSON object per run: backend CPU per row of the claim and of the write-back (µs),
and the WAL the write-back made per row. The supervisor, the IPC and the workers are not in
it: bench.e2e measures those.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql as pgsql
from psycopg.rows import dict_row

from bench.corpus import corpus_originals
from bench.db import bench_database, server
from bench.procstat import cpu_seconds
from mediad.db.connection import Database, Target
from mediad.db.migrations import migrate
from mediad.extract.extractor import extract
from mediad.extract.mediainfo import prepare
from mediad.extract.options import ExtractOptions
from mediad.extract.record import batch_text, record_of
from mediad.models import Extracted, Job, Record

SCHEMA = "bench_writecost"


def read_corpus(source: Path | None, work: Path) -> list[Extracted]:
    """Every file of the corpus as a worker reads it (MediaInfo alone, as bench.run)."""
    prepare(library_file=None, parse_speed=0.5, full=False)
    options = ExtractOptions(second_reader=False)
    outcomes = [extract(str(p), options) for p in corpus_originals(work / "originals", source)]
    found = [o for o in outcomes if isinstance(o, Extracted)]
    if not found:
        raise SystemExit("no corpus file could be read")
    return found


def records(rows: list[dict[str, Any]], corpus: list[Extracted]) -> list[Record]:
    return [
        record_of(
            Job(r["id"], r["path"], r["attempts"], r["lease_token"]), corpus[r["id"] % len(corpus)]
        )
        for r in rows
    ]


def one_run(
    dsn: str, corpus: list[Extracted], compression: str, rows: int, batch: int
) -> dict[str, Any]:
    db = Database(Target(dsn, SCHEMA, owner="bench"))
    db.open()
    try:
        migrate(db)
        claim, complete = db.query("claim"), db.query("complete")
        with psycopg.connect(dsn, autocommit=True) as conn:
            table = pgsql.SQL("{}.files").format(pgsql.Identifier(SCHEMA))
            method = pgsql.SQL(compression)
            conn.execute(
                pgsql.SQL(
                    "ALTER TABLE {t} ALTER COLUMN metadata SET COMPRESSION {m}, "
                    "ALTER COLUMN summary SET COMPRESSION {m}"
                ).format(t=table, m=method)
            )
            conn.execute(
                pgsql.SQL(
                    "INSERT INTO {} (path) SELECT '/bench/d' || g / 1000 || '/f' || g "
                    "FROM generate_series(1, %s) AS g"
                ).format(table),
                (rows,),
            )
            conn.execute(pgsql.SQL("VACUUM ANALYZE {}").format(table))
            conn.execute("CHECKPOINT")
            pid = conn.info.backend_pid
            claim_cpu = write_cpu = 0.0
            wal = 0
            written = 0
            params = {
                "limit": batch,
                "owner": "bench",
                "lease_seconds": 300.0,
                "skip_existing": False,
                "skip_prefixes": [],
            }
            while True:
                before = cpu_seconds(pid) or 0.0
                with conn.cursor(row_factory=dict_row) as cur:
                    cur.execute(claim, params, prepare=True)
                    claimed = cur.fetchall()
                claim_cpu += (cpu_seconds(pid) or 0.0) - before
                if not claimed:
                    break
                text = batch_text(records(claimed, corpus))
                lsn = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()
                before = cpu_seconds(pid) or 0.0
                with conn.transaction(), conn.cursor() as cur:
                    cur.execute(complete, {"records": text}, prepare=True)
                    written += len(cur.fetchall())
                write_cpu += (cpu_seconds(pid) or 0.0) - before
                # The server's whole WAL: other databases' writes count too (a busy host).
                grown = conn.execute(
                    "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %s)", lsn
                ).fetchone()
                wal += int(grown[0]) if grown else 0
            size = conn.execute(
                "SELECT pg_total_relation_size(%s::regclass)", (f"{SCHEMA}.files",)
            ).fetchone()
            conn.execute(pgsql.SQL("DROP SCHEMA {} CASCADE").format(pgsql.Identifier(SCHEMA)))
    finally:
        db.close()
    if written != rows:
        raise SystemExit(f"{written} of {rows} rows written back")
    return {
        "compression": compression,
        "rows": rows,
        "claim_us_per_row": round(claim_cpu / rows * 1e6, 1),
        "complete_us_per_row": round(write_cpu / rows * 1e6, 1),
        "complete_wal_bytes_per_row": wal // rows,
        "table_mib": round((size[0] if size else 0) / 2**20, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.writecost", description=__doc__)
    parser.add_argument("--dsn", help="admin DSN (default: a throwaway pgserver)")
    parser.add_argument("--source", type=Path, help="the distinct files (e.g. a bench.mix)")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--compression", default="pglz,lz4", help="comma-separated, alternated")
    args = parser.parse_args(argv)
    methods = [m.strip() for m in args.compression.split(",") if m.strip()]
    if not methods or any(m not in ("pglz", "lz4") for m in methods):
        raise SystemExit("--compression: pglz and/or lz4")
    with tempfile.TemporaryDirectory(prefix="mediad-writecost-") as work:
        corpus = read_corpus(args.source, Path(work))
        found: dict[str, list[float]] = {m: [] for m in methods}
        with server(args.dsn) as (admin_dsn, _kind), bench_database(admin_dsn) as dsn:
            for n in range(args.repeat):
                # Every other repetition backwards: neither method always runs first.
                for method in methods if n % 2 == 0 else methods[::-1]:
                    result = one_run(dsn, corpus, method, args.rows, args.batch)
                    cost = result["claim_us_per_row"] + result["complete_us_per_row"]
                    found[method].append(cost)
                    print(json.dumps({"repetition": n + 1, **result}), flush=True)
                    time.sleep(0.5)
    for method, costs in found.items():
        print(f"{method}: claim + complete, median {statistics.median(costs):.1f} µs per row")
    return 0


if __name__ == "__main__":
    sys.exit(main())
