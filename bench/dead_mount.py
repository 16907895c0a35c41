"""`python -m bench.nas --dead-mount`: local files while a network mount is dead (issue 17:
"with one mount dead, local files at least 0.9 x their rate without it").

Rounds alternate between two daemons, both started with the user's settings (the
defaults, `workers` = cores or `--workers`, `extract.timeout_seconds` = `--timeout`, any
`--set`), `extract.roots` = the local corpus and a FUSE mount of tests/support/fusefs.py:

- *alone*: --files local files (hard links of bench.run's corpus) queued into the ready
  daemon; the FUSE mount is there, idle;
- *dead mount*: every read of the FUSE mount blocks for the whole round (`fs.block()`,
  as a server that went away), and the same local files are queued at once with
  --dead-files files of the mount, interleaved (one dead file first, then one every
  files/dead-files local files), so dead files are claimed early and throughout.

The local rate is local files / seconds from the enqueue to the last local row's
`finished_at`. With the dead mount, once every local row is finished, the benchmark
reads what happened there: the daemon's processes in state D (stuck, held by the mount;
the most seen, sampled every 0.1 s), the mount in `mediad status --json` "mounts", the
dead rows by state and attempts, and the daemon's log events (timeouts, stuck workers,
the stall). Then it releases the mount, stops the daemon (SIGTERM), unmounts, checks no
process of the daemon is left, and drops the rows.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.common import say
from bench.daemon import DaemonSpec, Watch, daemon, wait_ready
from bench.db import Sql
from bench.dead_mount_watch import (
    StuckSampler,
    last_local_rows,
    local_progress,
    local_timeline,
    log_events,
    published,
    rows_by_state,
    session_processes,
)
from bench.procstat import TreeSampler
from bench.rows import ENQUEUE_BATCH, drop_schema, enqueuer
from mediad.config import load as load_config

MODES = ("alone", "dead_mount")


def interleave(local: list[str], dead: list[str]) -> list[str]:
    """Dead paths spread evenly among the local ones, the first dead one first."""
    out: list[str] = []
    j = 0
    for i, path in enumerate(local):
        while j < len(dead) and j * len(local) <= i * len(dead):
            out.append(dead[j])
            j += 1
        out.append(path)
    out.extend(dead[j:])
    return out


class DeadMountBench:
    def __init__(
        self, args: argparse.Namespace, sql: Sql, dsn: str, work: Path, fusefs: Any
    ) -> None:
        self.args, self.sql, self.dsn, self.work, self.fusefs = args, sql, dsn, work, fusefs

    def settings(self) -> dict[str, str]:
        return {
            "MEDIAD_EXTRACT_TIMEOUT_SECONDS": str(self.args.timeout),
            # The daemon's row in the database, read by `status --json`: fresh within a
            # second when the round ends (an UPDATE a second; the mount handling is the
            # same whatever its period).
            "MEDIAD_DAEMON_HEARTBEAT_SECONDS": "1",
            **self.args.settings,
        }

    def round(self, mode: str, n: int, local: list[str], dead_rel: list[str]) -> dict[str, Any]:
        workers = self.args.dead_workers
        say(
            f"{mode.replace('_', ' ')}: {len(local)} local files, {workers} workers (round {n + 1})"
        )
        local_root = str(self.work / "local")
        with self.fusefs.mounted(self.work / "share") as fs:
            dead = [str(fs.path / rel) for rel in dead_rel] if mode == "dead_mount" else []
            spec = DaemonSpec(
                self.dsn,
                f"bench_dead_{mode}_{n}",
                workers,
                "mediainfo",
                os.pathsep.join((local_root, str(fs.path))),
                self.work / "state",
                extra=self.settings(),
            )
            paths = interleave(local, dead)
            result = self._run(spec, fs, paths, local_root, mode, n)
        if self.args.logs is not None:
            self.args.logs.mkdir(parents=True, exist_ok=True)
            shutil.copy(self.work / f"dead-{mode}-{n}.log", self.args.logs)
        # Zombies hold nothing (no memory, no mount): what this container's init has not
        # reaped yet is not the daemon's doing.
        left = {p: s for p, s in session_processes(result.pop("_sid")).items() if s != "Z"}
        result["processes_left_after_unmount"] = len(left)
        if left:
            say(f"WARNING: processes of the daemon left after the round: {left}")
        drop_schema(self.sql, spec.schema)
        return result

    def _run(
        self, spec: DaemonSpec, fs: Any, paths: list[str], local_root: str, mode: str, n: int
    ) -> dict[str, Any]:
        local_count = sum(1 for p in paths if p.startswith(local_root + "/"))
        timeout = max(180.0, local_count / 10)
        log_path = self.work / f"dead-{mode}-{n}.log"
        result: dict[str, Any] = {"mode": mode, "local_files": local_count}
        result["dead_files"] = len(paths) - local_count
        with enqueuer(self.dsn, spec.schema, paths, ENQUEUE_BATCH) as enqueue:
            exclude = set(self.sql.daemon_backends(set()))
            with daemon(spec, log_path) as process:
                listens = load_config(None, environ=spec.env()).database.listen
                wait_ready(self.sql, process, log_path, exclude, timeout, listens)
                watch = Watch(TreeSampler(process.pid))
                stuck = StuckSampler(process.pid)
                if mode == "dead_mount":
                    fs.block()
                watch.start_clock(self.sql, exclude)
                started_wall = time.time()
                try:
                    enqueue()
                    done, failed, last = self._wait_local(
                        spec.schema,
                        local_root,
                        local_count,
                        process,
                        log_path,
                        timeout,
                        watch,
                        exclude,
                    )
                    waited = time.time() - started_wall
                    load = watch.clock.measure(sum(watch.cpu()))
                    result["stuck_now"] = stuck.now
                    result["local_done_by_second"] = local_timeline(
                        self.sql, spec.schema, local_root, started_wall
                    )
                    result["last_local_rows"] = last_local_rows(
                        self.sql, spec.schema, local_root, started_wall
                    )
                    if mode == "dead_mount":
                        result["mount_status"] = published(spec, str(fs.path))
                        result["dead_rows"] = rows_by_state(self.sql, spec.schema, str(fs.path))
                        result["held_reads"] = len(fs.held())
                finally:
                    fs.release()
                    stop_started = time.monotonic()
                    process.send_signal(15)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        process.wait(timeout=60)
                    result["stop_seconds"] = round(time.monotonic() - stop_started, 2)
                    result["exit_code"] = process.returncode
                    stuck.stop()
                result["_sid"] = process.pid
        seconds = max(1e-9, (last or started_wall) - started_wall)
        result.update(
            local_done=done,
            local_unfinished=local_count - done - failed,
            local_failed=failed,
            seconds=round(seconds, 3),
            local_files_per_s=round((done + failed) / seconds, 1),
            waited_seconds=round(waited, 2),
            stuck_most=stuck.most,
            worker_processes_seen=len(watch.sampler.worker_pids),
            other_load_cores=load["other_load_cores"],
            events=log_events(log_path, started_wall),
        )
        return result

    def _wait_local(
        self,
        schema: str,
        local_root: str,
        count: int,
        process: subprocess.Popen[bytes],
        log_path: Path,
        timeout: float,
        watch: Watch,
        exclude: set[int],
    ) -> tuple[int, int, float | None]:
        deadline = time.monotonic() + timeout
        progress, progressed_at = -1, time.monotonic()
        while True:
            watch.sample(self.sql, exclude)
            if process.poll() is not None:
                raise RuntimeError(f"mediad run exited with {process.returncode}: see {log_path}")
            done, failed, last = local_progress(self.sql, schema, local_root)
            if done + failed >= count:
                return done, failed, last
            if done + failed != progress:
                progress, progressed_at = done + failed, time.monotonic()
            # Local files that stopped finishing: the round ends there, its rate counted
            # up to now (what a user waiting for them would see), and the report says so.
            stopped = time.monotonic() - progressed_at > self.args.no_progress
            if stopped or time.monotonic() > deadline:
                say(f"{count - done - failed} of {count} local files unfinished: ending the round")
                return done, failed, time.time()
            time.sleep(0.1)


def summarise(rounds: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    alone, dead = rounds["alone"], rounds["dead_mount"]
    rate = {m: statistics.median(r["local_files_per_s"] for r in rounds[m]) for m in MODES}
    by_round = [
        round(d["local_files_per_s"] / a["local_files_per_s"], 3)
        for a, d in zip(alone, dead, strict=True)
    ]
    return {
        "alone_files_per_s": rate["alone"],
        "dead_mount_files_per_s": rate["dead_mount"],
        "alone_by_round": [r["local_files_per_s"] for r in alone],
        "dead_mount_by_round": [r["local_files_per_s"] for r in dead],
        "ratio_of_medians": round(rate["dead_mount"] / rate["alone"], 3),
        "ratio_by_round": by_round,
        "ratio_median": round(statistics.median(by_round), 3),
        "target": 0.9,
        "local_failed_max": max(r["local_failed"] for r in alone + dead),
        "local_unfinished_max": max(r["local_unfinished"] for r in alone + dead),
        "stuck_most": max(r["stuck_most"] for r in dead),
        "processes_left_max": max(r["processes_left_after_unmount"] for r in alone + dead),
        "other_load_cores_max": max((r["other_load_cores"] or 0.0) for r in alone + dead),
    }


def measure(bench: DeadMountBench, local: list[str], dead_rel: list[str]) -> dict[str, Any]:
    rounds: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    for n in range(bench.args.rounds):
        for mode in MODES if n % 2 == 0 else MODES[::-1]:
            rounds[mode].append(bench.round(mode, n, local, dead_rel))
    return {"summary": summarise(rounds), "rounds": rounds}


def report(results: dict[str, Any]) -> None:
    s, env = results["dead_mount"]["summary"], results["environment"]
    print(
        f"\nlocal files with a dead FUSE mount: {results['files']} local files, "
        f"{results['dead_files']} on the mount (every read blocked), "
        f"{results['dead_workers']} workers, extract.timeout_seconds "
        f"{results['timeout']:g}, median of {results['rounds']} alternating rounds; "
        f"mediad {env['mediad_commit']}\n"
    )
    print(f"{'round':<6}{'alone files/s':>15}{'dead mount files/s':>20}{'ratio':>8}")
    for i, (a, d, ratio) in enumerate(
        zip(s["alone_by_round"], s["dead_mount_by_round"], s["ratio_by_round"], strict=True)
    ):
        print(f"{i + 1:<6}{a:>15.1f}{d:>20.1f}{ratio:>8.3f}")
    print(
        f"{'median':<6}{s['alone_files_per_s']:>15.1f}{s['dead_mount_files_per_s']:>20.1f}"
        f"{s['ratio_median']:>8.3f}"
    )
    met = "met" if s["ratio_median"] >= s["target"] else "NOT met"
    print(
        f"dead mount / alone: {s['ratio_median']} (median of the rounds' ratios; of the "
        f"medians {s['ratio_of_medians']}), target >= {s['target']}: {met}\n"
    )
    print("on the dead mount, when the last local file was done:")
    for i, r in enumerate(results["dead_mount"]["rounds"]["dead_mount"]):
        status = r.get("mount_status") or {}
        state = status.get("state", "not reported")
        rows = ", ".join(
            f"{x['rows']} {x['state']} attempts={x['attempts']}"
            + (f" {x['error_class']}" if x["error_class"] else "")
            for x in r.get("dead_rows", [])
        )
        ev, first = r["events"]["counts"], r["events"]["first_after_s"]
        print(
            f"  round {i + 1}: after {r['seconds']:.1f} s"
            + (
                f" ({r['local_unfinished']} local files NOT finished)"
                if r["local_unfinished"]
                else ""
            )
            + f"; mount {state} "
            f"(in flight {status.get('in_flight', '-')}, stuck {status.get('stuck', '-')}, "
            f"recent timeouts {status.get('timeouts_recent', '-')}); "
            f"processes in D: {r['stuck_now']} (most {r['stuck_most']}); "
            f"timeouts {ev['timeouts']} (first at {first.get('timeouts', '-')} s), "
            f"stalled at {first.get('mount_stalled', '-')} s, "
            f"stuck limit at {first.get('stuck_limit_reached', '-')} s; "
            f"dead rows: {rows or 'none'}; "
            f"timed out (row@s): {' '.join(f'{i}@{t}' for i, _pid, t in r['events']['timed_out'])}"
            f"; last local rows (row@s): "
            f"{' '.join(f'{i}@{t}' for i, t in r.get('last_local_rows', [])[:3])}; "
            f"stopped in {r['stop_seconds']} s "
            f"(exit {r['exit_code']}), processes left {r['processes_left_after_unmount']}"
        )
    if s["local_unfinished_max"]:
        print(
            f"WARNING: up to {s['local_unfinished_max']} local files were not finished in a "
            f"round: it ended after {results['no_progress']:g} s without progress, its rate "
            "counted to then"
        )
    if s["local_failed_max"]:
        print(f"WARNING: local files failed in a round: {s['local_failed_max']}")
    if s["processes_left_max"]:
        print(f"WARNING: processes of a daemon were left: {s['processes_left_max']}")
    if s["other_load_cores_max"] > 0.2:
        print(
            f"WARNING: other load on this machine up to {s['other_load_cores_max']} cores: "
            "not clean figures"
        )
