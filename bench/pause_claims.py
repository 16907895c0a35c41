"""The claim with a million paused rows against the claim with none, in one run.

Two tables of 1,010,000 rows, each with the same 10,000 claimable pending rows under
/library/. In the *unpaused* one the other 1,000,000 rows are done (a catalogue in steady
state); in the *paused* one they are pending under /nas/, paused with mediad's own
statements (pause_set, then pause_mark), and first in claim order (same priority, older
run_after, lower ids): the worst place for them, the rows a claim would walk first.
A third table, *paused-unmarked*, holds the paused rows as a pause leaves rows that became
pending under it later (no mark): only the claim's filter keeps them out, so its walk
meets every one; it shows what the mark buys, in fewer claims.

A fourth table, *before*, is the unpaused one at schema version 7: the claim before
pauses existed, so the cost pauses add to every claim shows in the same run.

Each claim is mediad's claim statement as the daemon runs it (ClaimCase, bench/claims.py),
in alternated rounds, so a burst of other load on the host hits every table alike.

    python -m bench.pause_claims [--dsn DSN] [--rounds 6] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

from bench.claims import CLAIM_PENDING, ClaimCase, checkpoint, explain_claim
from bench.common import say
from bench.db import Sql, bench_database, server
from bench.results import Latency
from bench.rows import drop_schema, migrate
from mediad.db.connection import compose
from mediad.queries import migrations, named_queries

PAUSED_ROWS = 1_000_000
PER_ROUND = 30
BEFORE_PAUSES = 7  # the schema version whose claim knew no pauses


def migrate_to(dsn: str, schema: str, version: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for migration in migrations():
            if migration.version <= version:
                conn.execute(compose(migration.text, schema))


def fill(dsn: str, sql: Sql, schema: str, paused: int, kind: str) -> float:
    """`paused` rows first in claim order (done for *unpaused*, pending under /nas/
    otherwise), then CLAIM_PENDING pending rows under /library/."""
    if kind == "before":
        migrate_to(dsn, schema, BEFORE_PAUSES)
    else:
        migrate(dsn, schema)
    table = f'"{schema}".files'
    started = time.perf_counter()
    sql.rows(f"ALTER TABLE {table} DISABLE TRIGGER USER")
    first_state = "done" if kind in ("unpaused", "before") else "pending"
    sql.rows(
        f"INSERT INTO {table} (path, state, finished_at, enqueued_at, run_after) "
        "SELECT CASE WHEN g <= %(paused)s THEN '/nas/' ELSE '/library/' END "
        "       || lpad(g::text, 9, '0') || '.mkv', "
        "CASE WHEN g <= %(paused)s THEN %(first)s ELSE 'pending' END, "
        "CASE WHEN g <= %(paused)s AND %(first)s = 'done' THEN now() END, "
        "now() - interval '2 hours', "
        "now() - CASE WHEN g <= %(paused)s THEN interval '2 hours' ELSE interval '1 hour' END "
        "FROM generate_series(1, %(total)s::bigint) AS g",
        {"paused": paused, "first": first_state, "total": paused + CLAIM_PENDING},
    )
    sql.rows(f"ALTER TABLE {table} ENABLE TRIGGER USER")
    if kind.startswith("paused"):
        queries = named_queries()
        params = {"prefix": "/nas", "until": None, "set_by": "bench"}
        sql.rows(compose(queries["pause_set"], schema), params)
        if kind == "paused":
            sql.rows(compose(queries["pause_mark"], schema), {"prefix": "/nas"})
    sql.rows(f"VACUUM (ANALYZE) {table}")
    return time.perf_counter() - started


def measure(dsn: str, rounds: int, unmarked: bool) -> dict[str, Any]:
    sql = Sql(dsn)
    kinds = ["unpaused", "paused", "before"] + (["paused-unmarked"] if unmarked else [])
    cases: dict[str, ClaimCase] = {}
    try:
        for kind in kinds:
            schema = f"bench_pause_{kind.replace('-', '_')}"
            say(f"claim table {kind}: {PAUSED_ROWS:,} rows + {CLAIM_PENDING:,} claimable")
            case = ClaimCase(sql, schema, PAUSED_ROWS + CLAIM_PENDING, CLAIM_PENDING)
            case.fill_seconds = fill(dsn, sql, schema, PAUSED_ROWS, kind)
            case.run(5, measure=False)  # warm up; psycopg prepares on the fifth
            cases[kind] = case
        checkpoint(sql)
        # The unmarked walk is slow by design: a few of its claims tell enough.
        per_round = {k: (3 if k == "paused-unmarked" else PER_ROUND) for k in kinds}
        say(f"claim latency: {rounds} alternated rounds")
        for n in range(rounds):
            order = kinds if n % 2 == 0 else list(reversed(kinds))
            for kind in order:
                cases[kind].run(per_round[kind])
        out: dict[str, Any] = {"rounds": rounds, "paused_rows": PAUSED_ROWS}
        for kind, case in cases.items():
            out[kind] = {
                "latency": Latency.of(case.seconds).as_dict(),
                "fill_seconds": round(case.fill_seconds, 1),
                "plan": explain_claim(sql, case.schema),
            }
        base = out["unpaused"]["latency"]
        for kind in kinds[1:]:
            lat = out[kind]["latency"]
            out[kind]["ratio_p50"] = round(lat["p50_ms"] / base["p50_ms"], 2)
            out[kind]["ratio_p99"] = round(lat["p99_ms"] / base["p99_ms"], 2)
        for case in cases.values():
            drop_schema(sql, case.schema)
        return out
    finally:
        sql.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", help="an existing server (default: a throwaway one)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--no-unmarked", action="store_true", help="skip the third table")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.rounds < 3:
        raise SystemExit("--rounds must be at least 3")
    with server(args.dsn) as (admin_dsn, _kind), bench_database(admin_dsn) as dsn:
        out = measure(dsn, args.rounds, not args.no_unmarked)
    if args.out:
        args.out.write_text(json.dumps(out, indent=2, default=str) + "\n")
    for kind in ("unpaused", "paused", "before", "paused-unmarked"):
        if kind not in out:
            continue
        lat, found = out[kind]["latency"], out[kind]
        ratio = (
            f"  ratio p50 {found['ratio_p50']}, p99 {found['ratio_p99']}"
            if "ratio_p50" in found
            else ""
        )
        print(
            f"{kind:<16} {lat['samples']:>4} claims  p50 {lat['p50_ms']:8.3f} ms  "
            f"p99 {lat['p99_ms']:8.3f} ms  (fill {found['fill_seconds']} s){ratio}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
