"""mediad's claim statement at several table sizes, and the supervisor's memory with a backlog."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg

from bench.common import mib, say
from bench.context import Context
from bench.daemon import DaemonSpec, daemon, log_tail, remaining
from bench.db import Sql
from bench.procstat import MachineClock, cpu_seconds, memory_kib
from bench.results import BacklogRss, ClaimLatency, Latency, Results
from bench.rows import drop_schema, migrate
from mediad.db.connection import compose
from mediad.queries import named_queries

CLAIM_BATCH = 50
CLAIM_PENDING = 10_000
CLAIM_ROUNDS = 6
CLAIM_PER_ROUND = 30  # 6 x 30 = 180 measured claims of 50 rows per table


def fill_claim_table(dsn: str, sql: Sql, schema: str, rows: int, pending: int) -> float:
    """`rows` rows, the last `pending` of them pending, the rest done; returns seconds."""
    migrate(dsn, schema)
    table = f'"{schema}".files'
    started = time.perf_counter()
    sql.rows(f"ALTER TABLE {table} DISABLE TRIGGER USER")  # no NOTIFY for a bulk load
    step = 1_000_000
    for first in range(1, rows + 1, step):
        last = min(rows, first + step - 1)
        sql.rows(
            f"INSERT INTO {table} (path, state, finished_at, container, size_bytes, "
            "enqueued_at, run_after) "
            "SELECT '/library/' || lpad(g::text, 9, '0') || '.mkv', "
            "CASE WHEN g > %(done)s::bigint THEN 'pending' ELSE 'done' END, "
            "CASE WHEN g > %(done)s::bigint THEN NULL ELSE now() END, "
            "CASE WHEN g > %(done)s::bigint THEN NULL ELSE 'Matroska' END, "
            "CASE WHEN g > %(done)s::bigint THEN NULL ELSE 1000000 + g END, "
            "now() - interval '1 hour', now() - interval '1 hour' "
            "FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g",
            {"done": rows - pending, "first": first, "last": last},
        )
        if rows > step:
            say(f"  {schema}: {last:,} / {rows:,} rows")
    sql.rows(f"ALTER TABLE {table} ENABLE TRIGGER USER")
    sql.rows(f"VACUUM (ANALYZE) {table}")
    return time.perf_counter() - started


def checkpoint(sql: Sql) -> bool:
    """CHECKPOINT, if this role may (a superuser, or pg_checkpoint from PostgreSQL 15)."""
    try:
        sql.rows("CHECKPOINT")
    except psycopg.errors.InsufficientPrivilege as exc:
        say(f"no CHECKPOINT before the claims: {exc}")
        return False
    return True


def claim_params(owner: str) -> dict[str, Any]:
    return {
        "limit": CLAIM_BATCH,
        "owner": owner,
        "lease_seconds": 30.0,
        "skip_existing": False,
        "skip_prefixes": [],
    }


class ClaimCase:
    """One claim table: mediad's own claim statement, run as the daemon runs it (prepared
    after five executions), each claimed batch then finished as a write-back would, so the
    partial index churns as in real use."""

    def __init__(self, sql: Sql, schema: str, rows: int, pending: int) -> None:
        self.sql, self.schema, self.rows, self.pending = sql, schema, rows, pending
        self.claim = compose(named_queries()["claim"], schema)
        self.finish = (
            f"UPDATE \"{schema}\".files SET state = 'done', lease_token = NULL, "
            "lease_owner = NULL, lease_expires_at = NULL, finished_at = now() WHERE id = ANY(%s)"
        )
        self.seconds: list[float] = []
        self.fill_seconds = 0.0

    def run(self, count: int, measure: bool = True) -> None:
        params = claim_params("bench:claim")
        for _ in range(count):
            started = time.perf_counter()
            with self.sql.conn.cursor() as cur:
                cur.execute(self.claim, params)
                ids = [r[0] for r in cur.fetchall()]
            if measure:
                self.seconds.append(time.perf_counter() - started)
            self.sql.rows(self.finish, (ids,))

    def result(self) -> ClaimLatency:
        size = self.sql.one(
            "SELECT pg_total_relation_size(%s::regclass), pg_relation_size(%s::regclass)",
            (f'"{self.schema}".files', f'"{self.schema}".files_claim_idx'),
        )
        backlog = self.pending == self.rows and self.rows > CLAIM_PENDING
        return ClaimLatency(
            rows=self.rows,
            pending=self.pending,
            scenario="backlog" if backlog else "steady",
            batch=CLAIM_BATCH,
            fill_seconds=round(self.fill_seconds, 1),
            table_total_mib=round(size[0] / 2**20, 1),
            claim_index_mib=round(size[1] / 2**20, 2),
            latency=Latency.of(self.seconds),
            plan=explain_claim(self.sql, self.schema),
            schema=self.schema,
        )


def explain_claim(sql: Sql, schema: str) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the claim, rolled back. When the claim runs inside a
    function, the plan of the statement inside comes from auto_explain (superuser only)."""
    claim = compose(named_queries()["claim"], schema)
    from psycopg import sql as pgsql

    statement = pgsql.SQL("EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, SUMMARY ON) ") + claim
    with sql.conn.transaction(force_rollback=True), sql.conn.cursor() as cur:
        cur.execute(statement, claim_params("bench:explain"))
        plan = "\n".join(str(r[0]) for r in cur.fetchall())
    if "Function Scan" not in plan:
        return plan
    nested: list[str] = []

    def collect(diagnostic: Any) -> None:
        if "Query Text" in (diagnostic.message_primary or ""):
            nested.append(diagnostic.message_primary)

    sql.conn.add_notice_handler(collect)
    try:
        with sql.conn.transaction(force_rollback=True), sql.conn.cursor() as cur:
            cur.execute("LOAD 'auto_explain'")
            for setting in (
                "log_min_duration = 0",
                "log_nested_statements = on",
                "log_analyze = on",
                "log_buffers = on",
                "log_timing = off",
            ):
                cur.execute(f"SET LOCAL auto_explain.{setting}")
            cur.execute("SET LOCAL client_min_messages = log")
            cur.execute(claim, claim_params("bench:explain"))
    except Exception as exc:  # not a superuser, or no auto_explain: say so
        nested.append(f"(plan inside the function not available: {exc})")
    finally:
        sql.conn.remove_notice_handler(collect)
    inner = [n for n in nested if "FROM" in n and "files" in n][:1] or nested[:1]
    return plan + "\n-- inside the function (auto_explain):\n" + "\n".join(inner)


def supervisor_rss_with_backlog(
    sql: Sql, spec: DaemonSpec, seconds: float, log_path: Path
) -> BacklogRss:
    """Run the daemon (noop engine) against a big backlog; follow the supervisor's RSS."""
    before = remaining(sql, spec.schema)
    samples: list[tuple[float, int]] = []
    with daemon(spec, log_path) as process:
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            if process.poll() is not None:
                raise RuntimeError(f"mediad run exited:\n{log_tail(log_path)}")
            rss = memory_kib(process.pid).get("VmRSS", 0)
            samples.append((time.monotonic() - started, rss))
            time.sleep(0.25)
        peak = memory_kib(process.pid).get("VmHWM", 0)
    after = remaining(sql, spec.schema)
    settled = [rss for at, rss in samples if at >= 2.0] or [0]
    return BacklogRss(
        pending_at_start=before,
        seconds=seconds,
        rows_finished=before - after,
        rss_after_2s_mib=mib(settled[0]),
        rss_last_mib=mib(settled[-1]),
        rss_peak_mib=mib(max(peak, *settled)),
    )


def claims(ctx: Context, results: Results) -> None:
    """Fill every table first, then measure them in interleaved rounds, so that a burst
    of other load on the host hits every size alike."""
    args, sql = ctx.args, ctx.sql
    sizes = [int(s) for s in args.claim_sizes.split(",") if s.strip()]
    if args.big and 10_000_000 not in sizes:
        sizes.append(10_000_000)
    # Steady state: a big table of finished rows and a modest queue.
    plan = [(f"bench_claim_{size}", size, min(size, CLAIM_PENDING)) for size in sizes]
    if args.backlog_rows:
        # A backlog: every row pending (the first scan of a big library).
        rows = args.backlog_rows
        plan.append((f"bench_claim_{rows}_backlog", rows, rows))
    cases: list[ClaimCase] = []
    for schema, rows, pending in plan:
        say(f"claim table: {rows:,} rows, {pending:,} pending ({schema})")
        case = ClaimCase(sql, schema, rows, pending)
        case.fill_seconds = fill_claim_table(ctx.dsn, sql, schema, rows, pending)
        case.run(5, measure=False)  # warm up; psycopg prepares on the fifth
        cases.append(case)
    # The fills wrote gigabytes of WAL: without this, the checkpoint they set off is still
    # writing while the claims are timed (a p99 of 10 ms at 10M rows against 3 at 10k,
    # once), which a catalogue in steady state does not see.
    checkpointed = checkpoint(sql)
    say(f"claim latency: {CLAIM_ROUNDS} interleaved rounds of {CLAIM_PER_ROUND} claims each")
    clock = MachineClock()
    backend_cpu = cpu_seconds(sql.backend_pid) or 0.0
    for _ in range(CLAIM_ROUNDS):
        for case in cases:
            case.run(CLAIM_PER_ROUND)
    load = clock.measure((cpu_seconds(sql.backend_pid) or backend_cpu) - backend_cpu)
    for case in cases:
        measured = case.result()
        measured.load, measured.checkpoint_before = load, checkpointed
        results.claim_latency.append(measured)
    for schema, *_ in plan:
        if not (args.backlog_rows and schema.endswith("_backlog")):
            drop_schema(sql, schema)
    if args.backlog_rows:
        schema = plan[-1][0]
        say(f"supervisor RSS with {remaining(sql, schema):,} pending rows (noop engine)")
        results.supervisor_rss_backlog = supervisor_rss_with_backlog(
            sql, ctx.spec(schema, "noop"), args.backlog_seconds, ctx.work / "backlog.log"
        )
        drop_schema(sql, schema)
