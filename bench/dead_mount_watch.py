"""What the dead-mount benchmark reads of a daemon while a mount is dead: its processes
in state D, the local rows' progress, the mount as `mediad status` shows it, the log."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.daemon import DaemonSpec
from bench.db import Sql

# Log events that tell the story of a dead mount (docs/operations.md lists them).
EVENTS = {
    "worker killed: file ran past the timeout": "timeouts",
    "worker stuck": "workers_stuck",
    "mount stalled": "mount_stalled",
    "rows given back: their mount is not answering": "give_backs",
    "stuck processes at the limit: files on network mounts wait": "stuck_limit_reached",
    "stuck workers at the limit: not replacing workers": "replacements_stopped",
    "mount still not answering": "probes_unanswered",
}


def process_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def session_processes(sid: int) -> dict[int, str]:
    """Processes of the session `sid` (the daemon runs in a session of its own): pid ->
    state. What is left of a daemon after it exited."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:
            found[int(entry.name)] = fields[0]
    return found


class StuckSampler:
    """The most processes of the daemon's session seen in state D, every 0.1 s."""

    def __init__(self, sid: int) -> None:
        self.sid, self.most, self.now = sid, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.now = sum(1 for s in session_processes(self.sid).values() if s == "D")
            self.most = max(self.most, self.now)
            self._stop.wait(0.1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def local_progress(sql: Sql, schema: str, prefix: str) -> tuple[int, int, float | None]:
    """(done, failed, epoch of the last finished_at) of the rows under `prefix`."""
    row = sql.one(
        "SELECT count(*) FILTER (WHERE state = 'done'), "
        "count(*) FILTER (WHERE state = 'failed'), "
        "extract(epoch FROM max(finished_at))::float8 "
        f'FROM "{schema}".files WHERE path LIKE %s',
        (prefix + "/%",),
    )
    return int(row[0]), int(row[1]), row[2]


def local_timeline(sql: Sql, schema: str, prefix: str, started: float) -> list[list[int]]:
    """[second after the enqueue, local rows finished in it]: where the local files waited."""
    found = sql.rows(
        "SELECT floor(extract(epoch FROM finished_at) - %s)::int, count(*) "
        f'FROM "{schema}".files WHERE path LIKE %s AND finished_at IS NOT NULL '
        "GROUP BY 1 ORDER BY 1",
        (started, prefix + "/%"),
    )
    return [[int(s), int(n)] for s, n in found]


def last_local_rows(sql: Sql, schema: str, prefix: str, started: float) -> list[list[float]]:
    """[row id, seconds after the enqueue] of the last local rows finished: which ones
    waited, and where they stood in the queue."""
    found = sql.rows(
        "SELECT id, extract(epoch FROM finished_at) - %s "
        f'FROM "{schema}".files WHERE path LIKE %s AND finished_at IS NOT NULL '
        "ORDER BY finished_at DESC, id DESC LIMIT 5",
        (started, prefix + "/%"),
    )
    return [[int(i), round(float(t), 2)] for i, t in found]


def rows_by_state(sql: Sql, schema: str, prefix: str) -> list[dict[str, Any]]:
    found = sql.rows(
        "SELECT state, attempts, coalesce(error_class, ''), count(*) "
        f'FROM "{schema}".files WHERE path LIKE %s GROUP BY 1, 2, 3 ORDER BY 1, 2, 3',
        (prefix + "/%",),
    )
    return [
        {"state": s, "attempts": a, "error_class": c or None, "rows": n} for s, a, c, n in found
    ]


def mount_status(spec: DaemonSpec, point: str) -> dict[str, Any] | None:
    """The mount's entry in `mediad status --json` "mounts" (the daemon's heartbeat)."""
    done = subprocess.run(
        [sys.executable, "-m", "mediad", "status", "--json"],
        env=spec.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip()[-300:]}
    report = json.loads(done.stdout)
    found = [m for m in report.get("mounts", []) if m.get("mount") == point]
    entry = dict(found[0]) if found else None
    if entry is not None:
        entry.pop("owner", None)
        entry["stuck_workers_reported"] = report.get("stuck_workers")
    return entry


def published(spec: DaemonSpec, point: str, within: float = 3.0) -> dict[str, Any] | None:
    """The mount as the daemon publishes it; a round shorter than a heartbeat may end
    before its first report of the mount, so a few heartbeats are waited for."""
    deadline = time.monotonic() + within
    while True:
        found = mount_status(spec, point)
        if found is not None or time.monotonic() > deadline:
            return found
        time.sleep(0.25)


def log_events(log_path: Path, started_wall: float) -> dict[str, Any]:
    """How often each event of a dead mount was logged, and first when (s after enqueue)."""
    counts: dict[str, int] = dict.fromkeys(EVENTS.values(), 0)
    first: dict[str, float] = {}
    timed_out: list[list[Any]] = []  # [row id, worker pid, seconds after the enqueue]
    for line in log_path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError, AttributeError):
            record = json.loads(line)
            name = EVENTS.get(record.get("event", ""))
            if name is None:
                continue
            counts[name] += 1
            at = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))
            after = round(at.timestamp() - started_wall, 2)
            first.setdefault(name, after)
            if name == "timeouts":
                timed_out.append([record.get("row_id"), record.get("pid"), after])
    return {"counts": counts, "first_after_s": first, "timed_out": timed_out}
