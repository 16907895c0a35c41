"""Several daemons on one database, directly and behind PgBouncer (transaction mode).

    .venv/bin/python -m bench.scaling --dsn postgresql://postgres@127.0.0.1:5432/postgres \\
        [--files 4000] [--daemons 1,2] [--pgbouncer] [--out FILE]

For each way in (direct, and pgbouncer with --pgbouncer), each engine (mediainfo, noop) and
each daemon count: queue the same rows, start that many `mediad run` (each with workers =
cores, as on separate hosts), time until every row is finished, and check that every row
was claimed exactly once (attempts = 1). With --pgbouncer it also shows what psycopg's
automatic prepared statements do through a transaction-mode pool. See docs/scaling.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bench.common import CORES, rate, say
from bench.corpus import build_corpus
from bench.daemon import DaemonSpec, daemon, log_tail, outcome_counts, remaining
from bench.db import Sql, bench_database, server
from bench.procstat import MachineClock, TreeSampler
from bench.rows import enqueue_paths, fill_noop_rows

# `mediad run` with psycopg's automatic prepared statements turned off, without touching
# mediad: what a `prepare_threshold = None` setting in mediad would do (see docs/scaling.md).
NO_PREPARE_SHIM = (
    "-c",
    "import sys; import mediad.db.connection as c; o = c.Database.connect_kwargs; "
    "c.Database.connect_kwargs = lambda self: {**o(self), 'prepare_threshold': None}; "
    "from mediad.cli import main; sys.exit(main(['run']))",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def pgbouncer(
    admin_dsn: str, work: Path, pool_size: int, run_as: str = "postgres"
) -> Iterator[int]:
    """A transaction-mode PgBouncer on a loopback port, in front of the admin DSN's server.
    As root it runs as `run_as` (PgBouncer refuses root), who must reach the server."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    target = conninfo_to_dict(admin_dsn)
    port = free_port()
    folder = work / "pgbouncer"
    folder.mkdir()
    (folder / "userlist.txt").write_text(f'"{target.get("user", "postgres")}" ""\n')
    (folder / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={target.get('host', '127.0.0.1')} port={target.get('port', 5432)}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {folder / 'userlist.txt'}\n"
        f"pool_mode = transaction\ndefault_pool_size = {pool_size}\n"
        "max_client_conn = 200\nignore_startup_parameters = extra_float_digits,options\n"
        f"logfile = {folder / 'pgbouncer.log'}\n"
    )
    os.chmod(work, 0o755)
    os.chmod(folder, 0o777)
    command = [binary, str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:
        command[1:1] = ["-u", run_as]  # PgBouncer refuses to run as root
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited: {process.stderr.read()!r}")  # type: ignore[union-attr]
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def prepared_statement_demo(dsn: str) -> dict[str, Any]:
    """Two psycopg connections through the same transaction pool, as two daemons would."""
    found: dict[str, Any] = {}
    for threshold in (5, None):
        errors: list[str] = []
        conns = [psycopg.connect(dsn, autocommit=True) for _ in range(2)]
        try:
            for conn in conns:
                conn.prepare_threshold = threshold
            for n in range(20):
                conn = conns[n % 2]
                try:
                    conn.execute("SELECT %s::int + 1", (n,)).fetchone()
                except psycopg.Error as exc:
                    errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
        finally:
            for conn in conns:
                conn.close()
        found[f"prepare_threshold={threshold}"] = {
            "statements": 20,
            "errors": len(errors),
            "first_errors": sorted(set(errors))[:3],
        }
    return found


def run_daemons(
    sql: Sql, specs: list[DaemonSpec], files: int, work: Path, label: str
) -> dict[str, Any]:
    logs = [work / f"{label}-{n}.log" for n in range(len(specs))]
    owners: set[str] = set()
    started = time.time()
    error = ""
    with contextlib.ExitStack() as stack:
        processes = [
            stack.enter_context(daemon(spec, log)) for spec, log in zip(specs, logs, strict=True)
        ]
        samplers = [TreeSampler(p.pid) for p in processes]
        clock = MachineClock()
        deadline = time.monotonic() + max(120.0, files / 20)
        while time.monotonic() < deadline:
            owners.update(
                str(r[0])
                for r in sql.rows(
                    f'SELECT DISTINCT lease_owner FROM "{specs[0].schema}".files '
                    "WHERE state = 'running'"
                )
            )
            for sampler in samplers:
                sampler.sample()
            if remaining(sql, specs[0].schema) == 0:
                break
            dead = [p for p in processes if p.poll() is not None]
            if len(dead) == len(processes):
                error = "every daemon exited"
                break
            time.sleep(0.25)
        else:
            error = "timed out"
        exits = [p.poll() for p in processes]
        own = sum(s.supervisor_cpu + s.worker_cpu_total() for s in samplers)
        load = clock.measure(own)
    counts = outcome_counts(sql, specs[0].schema)
    elapsed = max(1e-9, (counts["last_at"] or started) - started)
    errors = []
    for log, code in zip(logs, exits, strict=True):
        if code not in (None, 0):
            lines = log_tail(log, 400).splitlines()
            errors += [line[:600] for line in lines[-3:]]
    return {
        "daemons": len(specs),
        "workers_each": specs[0].workers,
        "engine": specs[0].engine,
        "files": files,
        "done": counts["done"],
        "failed": counts["failed"],
        "max_attempts": counts["max_attempts"],
        "every_row_once": counts["done"] == files and counts["max_attempts"] == 1,
        "seconds": round(elapsed, 2),
        "files_per_s": rate(counts["done"] + counts["failed"], elapsed),
        "lease_owners_seen": len(owners),
        "cpu_seconds_daemons": round(own, 2),
        **load,
        "exit_codes_after_stop": exits,
        "error": error,
        "log_errors": errors[:5],
    }


def scenario(
    args: argparse.Namespace,
    sql: Sql,
    dsn: str,
    daemon_dsn: str,
    work: Path,
    paths: list[str],
    via: str,
    shim: bool = False,
) -> list[dict[str, Any]]:
    results = []
    for engine in args.engines.split(","):
        for count in (int(c) for c in args.daemons.split(",")):
            label = f"{via}_noprepare" if shim else via
            schema = f"scale_{label}_{engine}_{count}"
            if engine == "noop":
                fill_noop_rows(dsn, sql, schema, args.noop_files)
                files = args.noop_files
            else:
                enqueue_paths(dsn, schema, paths)
                files = len(paths)
            extra = {"MEDIAD_DATABASE_LISTEN": "false", "MEDIAD_DAEMON_POLL_SECONDS": "1"}
            specs = [
                DaemonSpec(
                    daemon_dsn,
                    schema,
                    args.workers,
                    engine,
                    str(work),
                    work / "state",
                    {**(extra if via == "pgbouncer" else {}), "MEDIAD_DAEMON_INSTANCE": f"d{n}"},
                    NO_PREPARE_SHIM if shim else ("-m", "mediad", "run"),
                )
                for n in range(count)
            ]
            say(f"{label}: {count} daemon(s), engine {engine}, {files:,} rows")
            result = run_daemons(sql, specs, files, work, schema)
            result["via"] = label
            results.append(result)
            say(
                f"  -> {result['files_per_s']} files/s, every row once: "
                f"{result['every_row_once']} {result['error']}"
            )
            sql.rows(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling")
    parser.add_argument("--dsn", help="admin DSN (TCP, needed for --pgbouncer)")
    parser.add_argument("--files", type=int, default=4000)
    parser.add_argument("--noop-files", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=CORES, help="per daemon")
    parser.add_argument("--daemons", default="1,2")
    parser.add_argument("--engines", default="mediainfo,noop")
    parser.add_argument("--pgbouncer", action="store_true")
    parser.add_argument("--pool-size", type=int, default=2, help="PgBouncer default_pool_size")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="mediad-scaling-"))
    report: dict[str, Any] = {"cores": CORES, "runs": []}
    try:
        paths, _ = build_corpus(work, args.files, None)
        with server(args.dsn) as (admin, _kind), bench_database(admin) as dsn:
            sql = Sql(dsn)
            try:
                report["runs"] += scenario(args, sql, dsn, dsn, work, paths, "direct")
                if args.pgbouncer:
                    with pgbouncer(admin, work, args.pool_size) as port:
                        via = make_conninfo(dsn, host="127.0.0.1", port=str(port))
                        report["prepared_statements"] = prepared_statement_demo(via)
                        report["runs"] += scenario(args, sql, dsn, via, work, paths, "pgbouncer")
                        report["runs"] += scenario(
                            args, sql, dsn, via, work, paths, "pgbouncer", shim=True
                        )
            finally:
                sql.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
