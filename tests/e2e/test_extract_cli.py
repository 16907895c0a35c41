"""`mediad extract` tells the truth about what it did: the exit code and counts of a run cut
short by a signal, `--all --limit` re-queueing no more than it processes, `--skip-existing`
settling the rows it skips, and a log stream off a terminal that stays JSON."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mediad.db import tables
from mediad.db.connection import Database
from tests.e2e.test_attach import MAPPING, make_table
from tests.support.processes import counts, link_files, mediad, wait_until

SQL = Callable[..., list[tuple[Any, ...]]]
OLD = {"old": True}  # metadata an earlier extraction left, recognisable afterwards


def summary_of(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return parsed


def extract_all_now(env: dict[str, str], paths: list[Path]) -> None:
    """The files enqueued and extracted: done, with metadata."""
    assert mediad("enqueue", *map(str, paths), env=env).returncode == 0
    assert summary_of(mediad("extract", "--json", env=env))["done"] == len(paths)


def mark_metadata_old(sql: SQL, schema: str, where: str = "true") -> None:
    sql(f'UPDATE "{schema}".files SET metadata = %s::jsonb WHERE {where}', [json.dumps(OLD)])


# --- interrupted ------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "code", "as_json"),
    [(signal.SIGINT, 130, False), (signal.SIGTERM, 143, True)],
    ids=["sigint", "sigterm-json"],
)
def test_a_signal_drains_then_reports_the_true_counts_and_exits_128_plus_it(
    small_mp4: Path,
    tmp_path: Path,
    mediad_env: dict[str, str],
    sql: SQL,
    schema: str,
    signum: int,
    code: int,
    as_json: bool,
) -> None:
    env = {**mediad_env, "MEDIAD_TEST_HOOKS": "1"}
    paths = link_files(small_mp4, tmp_path / "lib", 60, marker="__mediad_sleep_300ms__")
    assert mediad("enqueue", *map(str, paths), env=env).returncode == 0
    stderr = (tmp_path / "stderr").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "mediad", "extract", *(["--json"] if as_json else [])],
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        start_new_session=True,
    )
    try:
        wait_until(lambda: counts(sql, schema)["done"] >= 4, 60, "some files to be done")
        if signum == signal.SIGINT:
            os.killpg(process.pid, signum)  # a terminal's Ctrl-C reaches the whole group
        else:
            process.send_signal(signum)  # kill(1), systemd: the main process alone
        out, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        stderr.close()
    assert process.returncode == code, (tmp_path / "stderr").read_text()
    now = counts(sql, schema)
    # Drained: nothing is left running, and the run really was cut short.
    assert now["running"] == 0 and now["failed"] == 0
    assert now["pending"] > 0 and now["done"] + now["pending"] == 60
    if as_json:
        summary = json.loads(out.splitlines()[-1])
        assert summary["interrupted"] == signal.Signals(signum).name
        assert (summary["done"], summary["pending"]) == (now["done"], now["pending"])
    else:
        assert f"interrupted: {now['done']} done, {now['pending']} still pending" in out


# --- --all --limit ----------------------------------------------------------------------


def test_all_with_limit_requeues_only_the_rows_it_processes_oldest_first(
    small_mp4: Path, tmp_path: Path, mediad_env: dict[str, str], sql: SQL, schema: str
) -> None:
    paths = link_files(small_mp4, tmp_path / "lib", 20)
    extract_all_now(mediad_env, paths)
    mark_metadata_old(sql, schema)
    # Finished at distinct times: the highest ids were extracted longest ago.
    sql(f"UPDATE \"{schema}\".files SET finished_at = now() - id * interval '1 hour'")
    oldest = [p for (p,) in sql(f'SELECT path FROM "{schema}".files ORDER BY id DESC LIMIT 5')]

    summary = summary_of(mediad("extract", "--all", "--limit", "5", "--json", env=mediad_env))

    assert (summary["processed"], summary["done"], summary["pending"]) == (5, 5, 0)
    assert counts(sql, schema) == {"pending": 0, "running": 0, "done": 20, "failed": 0}
    old = sql(f'SELECT path FROM "{schema}".files WHERE metadata = %s::jsonb', [json.dumps(OLD)])
    fresh = sql(f"SELECT path FROM \"{schema}\".files WHERE metadata ? 'media' ORDER BY id DESC")
    assert len(old) == 15
    assert [p for (p,) in fresh] == oldest
    # Nothing was left for the next run to re-extract.
    assert summary_of(mediad("extract", "--json", env=mediad_env))["processed"] == 0


def test_all_with_limit_caps_the_attached_tables_backfill_too(
    small_mp4: Path,
    tmp_path: Path,
    mediad_env: dict[str, str],
    sql: SQL,
    schema: str,
    app_schema: str,
) -> None:
    [own] = link_files(small_mp4, tmp_path / "own", 1)
    extract_all_now(mediad_env, [own])
    # Ten application rows that already hold metadata: the attach's backfill skips them.
    rows = [(str(p), json.dumps(OLD)) for p in link_files(small_mp4, tmp_path / "app", 10)]
    table = make_table(sql, app_schema, rows)
    assert mediad("attach", table, *MAPPING, env=mediad_env).returncode == 0
    assert counts(sql, schema)["pending"] == 0

    summary = summary_of(mediad("extract", "--all", "--limit", "4", "--json", env=mediad_env))

    # The finished row and 3 attached rows were queued, and exactly those were processed.
    assert (summary["processed"], summary["done"], summary["pending"]) == (4, 4, 0)
    assert counts(sql, schema) == {"pending": 0, "running": 0, "done": 4, "failed": 0}
    app_table = f'"{app_schema}".media_files'
    untouched = sql(
        f"SELECT count(*) FROM {app_table} WHERE metadata = %s::jsonb", [json.dumps(OLD)]
    )
    assert untouched == [(7,)]


def test_a_capped_backfill_queues_exactly_that_many_across_batches(
    mediad_env: dict[str, str], sql: SQL, schema: str, app_schema: str, db: Database
) -> None:
    # Rows 1-3 have no metadata (the attach queues them), rows 4-9 have some (skipped).
    rows = [(f"/m/{i}.mp4", json.dumps(OLD) if i > 3 else None) for i in range(1, 10)]
    table = make_table(sql, app_schema, rows)
    assert mediad("attach", table, *MAPPING, env=mediad_env).returncode == 0
    [source] = tables.sources(db)

    _, queued = tables.backfill(
        db, source, batch_size=2, skip_existing=False, resume=False, record=False, max_queued=4
    )

    assert queued == 4
    queued_rows = sql(f'SELECT source_row::int FROM "{schema}".files ORDER BY 1')
    assert [r for (r,) in queued_rows] == [1, 2, 3, 4, 5, 6, 7]


def test_limit_counts_the_rows_already_pending_before_requeueing(
    small_mp4: Path, tmp_path: Path, mediad_env: dict[str, str], sql: SQL, schema: str
) -> None:
    extract_all_now(mediad_env, link_files(small_mp4, tmp_path / "done", 10))
    waiting = link_files(small_mp4, tmp_path / "new", 3)
    assert mediad("enqueue", *map(str, waiting), env=mediad_env).returncode == 0

    summary = summary_of(mediad("extract", "--all", "--limit", "5", "--json", env=mediad_env))

    assert (summary["processed"], summary["pending"]) == (5, 0)
    assert counts(sql, schema) == {"pending": 0, "running": 0, "done": 13, "failed": 0}


# --- --skip-existing --------------------------------------------------------------------


def test_skip_existing_settles_rows_with_metadata_as_done_untouched(
    small_mp4: Path, tmp_path: Path, mediad_env: dict[str, str], sql: SQL, schema: str
) -> None:
    earlier = link_files(small_mp4, tmp_path / "earlier", 6)
    extract_all_now(mediad_env, earlier)
    mark_metadata_old(sql, schema)
    before = sql(f'SELECT path, finished_at, attempts FROM "{schema}".files ORDER BY path')
    # Queued again (as an application re-queueing would), and four new files.
    new = link_files(small_mp4, tmp_path / "new", 4)
    assert mediad("enqueue", *map(str, earlier + new), env=mediad_env).returncode == 0
    assert counts(sql, schema)["pending"] == 10

    result = mediad("extract", "--skip-existing", env=mediad_env)

    assert result.returncode == 0, result.stderr
    assert re.search(r"skipped\s+6 \(already had metadata", result.stdout)
    assert re.search(r"done\s+4\b", result.stdout)
    assert counts(sql, schema) == {"pending": 0, "running": 0, "done": 10, "failed": 0}
    settled = sql(
        f'SELECT path, finished_at, attempts FROM "{schema}".files '
        "WHERE metadata = %s::jsonb AND error_class IS NULL AND lease_token IS NULL "
        "ORDER BY path",
        [json.dumps(OLD)],
    )
    # Metadata, finished_at (when that metadata was made) and attempts as they were.
    assert [(p, f) for p, f, _ in settled] == [(p, f) for p, f, _ in before]
    assert all(attempts == 0 for _, _, attempts in settled)  # enqueue reset; not charged
    # Nobody extracts them afterwards.
    again = summary_of(mediad("extract", "--json", env=mediad_env))
    assert (again["processed"], again["pending"]) == (0, 0)


# --- off a terminal ---------------------------------------------------------------------


def test_off_a_terminal_progress_is_a_log_event_and_stderr_stays_json(
    small_mp4: Path, tmp_path: Path, mediad_env: dict[str, str]
) -> None:
    # The default log format: JSON lines, since stderr is a pipe here.
    env = {k: v for k, v in mediad_env.items() if k != "MEDIAD_LOG_FORMAT"}
    paths = link_files(small_mp4, tmp_path / "lib", 12)
    assert mediad("enqueue", *map(str, paths), env=env).returncode == 0

    result = mediad("extract", env=env)

    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines()]
    progress = [e for e in events if e["event"] == "extract progress"]
    assert progress and progress[0]["total"] == 12
    assert {"finished", "done", "failed", "files_per_s", "eta_s"} <= progress[0].keys()
    # The summary, on stdout, alone.
    assert result.stdout.startswith("processed 12 files in ")


@pytest.mark.slow
def test_extract_says_its_workers_cannot_start_as_run_does(
    tmp_path: Path, mediad_env: dict[str, str]
) -> None:
    env = {**mediad_env, "MEDIAD_EXTRACT_LIBRARY_FILE": "/nonexistent/libmediainfo.so.0"}
    assert mediad("enqueue", str(tmp_path / "a.mp4"), env=env).returncode == 0
    result = mediad("extract", env=env, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "mediad: workers cannot start: cannot load MediaInfo" in result.stderr
    assert "Traceback" not in result.stderr
