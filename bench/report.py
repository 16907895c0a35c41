"""The printed report of `python -m bench.run`."""

from __future__ import annotations

from bench.cli_baseline import CLI_BATCH
from bench.results import Results, Throughput


def _throughput_rows(results: Results) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []

    def add(name: str, run: Throughput | None, note: str = "") -> None:
        if run is None:
            return
        rows.append(
            (
                name,
                f"{run.files:,}",
                f"{run.seconds:.2f}",
                f"{run.files_per_s:,.1f}",
                f"{run.cpu_utilisation * 100:.0f}%",
                f"{run.load.get('other_load_cores', 0):.2f}",
                note,
            )
        )

    m = results.mediad
    ready = m.ready_seconds if m.ready_seconds is not None else float("nan")
    environment = results.environment
    add(
        "mediad end to end",
        m,
        f"enqueue -> written back, ready daemon; steady {m.steady_files_per_s:,.0f}/s; "
        f"RSS sup {m.supervisor_rss_peak_mib} MiB, worker {m.worker_rss_peak_mib} MiB; "
        f"db cpu {m.cpu_seconds_db_backends} s",
    )
    add(
        "mediad from its launch",
        results.daemon("mediad_from_launch"),
        f"rows queued first, the daemon's start counted (in the run above it was ready "
        f"{ready:.2f} s after its launch)",
    )
    add(
        "mediad end to end, the CLI's lib",
        results.daemon("mediad_cli_library"),
        f"the same on {(environment.get('mediad_on_cli_library') or {}).get('library')}",
    )
    add(
        "ideal multiprocessing.Pool",
        results.ideal,
        "same extract(), same options, no db; pool booted first",
    )
    if results.cli("mediainfo_batched"):
        add(
            "mediainfo CLI batched",
            results.cli("mediainfo_batched"),
            f"{CLI_BATCH} files/call, one call per core",
        )
        add(
            "mediainfo CLI batched, mediad's lib",
            results.cli("mediainfo_same_library"),
            f"the same, run on libmediainfo {environment['libmediainfo']}",
        )
        add("mediainfo CLI once per file", results.cli("mediainfo_single"), "subset")
    else:
        rows.append(("mediainfo CLI batched", "-", "-", "-", "-", "-", "not installed"))
        rows.append(("mediainfo CLI once per file", "-", "-", "-", "-", "-", "not installed"))
    n = results.noop
    add(
        "noop pipeline (mediad)",
        n,
        f"steady {n.steady_files_per_s:,.0f}/s; queue + IPC + write-back only",
    )
    return rows


def print_table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line)
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    print()


def report(results: Results) -> None:
    _header(results)
    print_table(
        ("run", "files", "seconds", "files/s", "cpu", "other load", "notes"),
        _throughput_rows(results),
    )
    print(
        "cpu: our processes' CPU time / (seconds x cores); other load: cores kept busy by "
        "processes that are not part of the run (another job on this host)"
    )
    busy = [
        name
        for name in (
            "mediad",
            "mediad_from_launch",
            "mediad_cli_library",
            "ideal",
            "mediainfo_batched",
            "mediainfo_same_library",
            "mediainfo_single",
            "noop",
        )
        if (run := results.runs.get(name)) and run.load.get("other_load_cores", 0) > 0.2
    ]
    if busy:
        print(f"WARNING: other load on this machine during {', '.join(busy)}: not clean figures")
    print()
    print("ratios:")
    for key, value in results.ratios.items():
        print(f"  {key:<32} {value}")
    print()
    _claims(results)
    _daemon_figures(results)
    rounds = len(results.mediad.rounds or []) or 1
    how = f"median of {rounds} rounds" if rounds > 1 else "one round"
    print(f"\ntargets (issue 5; throughput ratios and noop: {how}):")
    for name, check in results.targets.items():
        print(f"  {'MET ' if check['met'] else 'MISS'}  {name:<38} {check['value']}")


def _header(results: Results) -> None:
    env = results.environment
    interpreter = env["python_interpreter"]
    shared = "shared" if interpreter["shared_libpython"] else "static"
    print(
        f"\nmediad benchmark: {env['cores']} cores ({env['cpu_model']}), PostgreSQL "
        f"{env['postgresql']} ({env['server']}), libmediainfo {env['libmediainfo']}, "
        f"mediainfo CLI {env['mediainfo_cli'] or 'not installed'}, "
        f"parse_speed {env['parse_speed']}, workers {results.workers}, "
        f"mediad {env['mediad_commit']}, Python {env['python']} from "
        f"{interpreter['base']} ({shared} libpython); corpus: "
        f"{env.get('corpus', '?')}, {len(env['corpus_originals'])} distinct files\n"
    )


def _claims(results: Results) -> None:
    cases = results.claim_latency
    if not cases:
        return
    print_table(
        ("claim", "rows", "pending", "p50 ms", "p99 ms", "max ms", "claim index"),
        [
            (
                c.scenario,
                f"{c.rows:,}",
                f"{c.pending:,}",
                f"{c.latency.p50_ms:.2f}",
                f"{c.latency.p99_ms:.2f}",
                f"{c.latency.max_ms:.2f}",
                f"{c.claim_index_mib} MiB",
            )
            for c in cases
        ],
    )
    for c in cases:
        print(f"plan of the claim at {c.rows:,} rows ({c.scenario}):")
        print("\n".join("    " + line for line in c.plan.splitlines()))
    print()


def _daemon_figures(results: Results) -> None:
    lat = results.mediad.insert_to_done
    if lat:
        print(
            f"insert -> done on an idle daemon: p50 {lat.p50_ms:.1f} ms, p99 "
            f"{lat.p99_ms:.1f} ms ({lat.samples} samples, {lat.outcomes})"
        )
    table = results.mediad.table
    if table:
        print(
            f"row updates in the end-to-end run: {table.updates:,} "
            f"({table.hot_updates:,} HOT), dead rows left for autovacuum "
            f"{table.dead_rows:,}, table {table.table_total_mib} MiB"
        )
    rss = results.supervisor_rss_backlog
    if rss:
        print(
            f"supervisor RSS with {rss.pending_at_start:,} pending rows: peak "
            f"{rss.rss_peak_mib} MiB (after 2 s {rss.rss_after_2s_mib}, last "
            f"{rss.rss_last_mib}; {rss.rows_finished:,} rows done in {rss.seconds} s)"
        )
    print(
        "database connections per daemon (max seen at once): "
        + ", ".join(f"{k} {v}" for k, v in results.connections.items())
    )
