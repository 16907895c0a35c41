"""mediad as a user runs it: real subprocesses, real PostgreSQL, real files, real signals."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mediad.extract.summary import HDR_COLUMNS, MAPPING_VERSION
from mediad.queries import latest_version
from tests.support.media import Expected, make_bad_files
from tests.support.processes import Daemon, counts, link_files, mediad, wait_until

pytestmark = pytest.mark.slow

SQL = Callable[..., list[tuple[Any, ...]]]


def terminal(sql: SQL, schema: str) -> bool:
    c = counts(sql, schema)
    return c["pending"] == 0 and c["running"] == 0 and c["done"] + c["failed"] > 0


def show(env: dict[str, str], *paths: str) -> list[dict[str, Any]]:
    result = mediad("show", "--json", *paths, env=env)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_real_formats_come_back_with_correct_summaries(
    corpus: tuple[Path, dict[str, Expected]],
    tmp_path: Path,
    mediad_env: dict[str, str],
    daemons: Callable[..., Daemon],
    sql: SQL,
    schema: str,
) -> None:
    directory, expected = corpus
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    bad = make_bad_files(bad_dir)
    scanned = mediad("scan", str(directory), str(bad_dir), env=mediad_env)
    assert scanned.returncode == 0, scanned.stderr
    daemon = daemons()
    daemon.wait_started()
    wait_until(lambda: terminal(sql, schema), 60, "every row to finish")

    records = show(mediad_env, *(str(directory / n) for n in expected))
    for record, (name, want) in zip(records, expected.items(), strict=True):
        assert record["state"] == "done", (name, record)
        summary = record["summary"]
        assert summary["container"] == want.container, name
        if want.duration_s is not None:
            assert summary["duration_s"] == pytest.approx(want.duration_s, rel=0.02), name
        for key in (
            "width",
            "height",
            "video_codec",
            "audio_codec",
            "audio_channels",
            "sample_rate",
        ):
            assert summary[key] == getattr(want, key), (name, key)

    for record, (name, want_class) in zip(
        show(mediad_env, *(str(bad_dir / n) for n in bad)), bad.items(), strict=True
    ):
        if want_class == "done":
            assert record["state"] == "done", (name, record)
        else:
            assert (record["state"], record["error_class"]) == ("failed", want_class), name
            assert record["error"], name
    assert daemon.stop() == 0


def test_two_daemons_share_2000_rows_each_done_once(
    small_mp4: Path,
    tmp_path: Path,
    mediad_env: dict[str, str],
    daemons: Callable[..., Daemon],
    sql: SQL,
    schema: str,
) -> None:
    links = tmp_path / "links"
    link_files(small_mp4, links, 2000)
    assert mediad("scan", str(links), env=mediad_env).returncode == 0
    first, second = daemons(), daemons()
    first.wait_started()
    second.wait_started()
    wait_until(lambda: terminal(sql, schema), 240, "2,000 rows to finish")
    assert counts(sql, schema) == {"pending": 0, "running": 0, "done": 2000, "failed": 0}
    assert sql(f'SELECT attempts, count(*) FROM "{schema}".files GROUP BY 1') == [(1, 2000)]
    assert first.stop() == 0 and second.stop() == 0
    owners = {line for d in (first, second) for line in d.log().splitlines() if '"stopped"' in line}
    done_by = [json.loads(line)["done"] for line in owners]
    assert sum(done_by) == 2000 and all(n > 0 for n in done_by), done_by


def test_a_killed_worker_is_replaced_and_its_file_retried(
    small_mp4: Path,
    tmp_path: Path,
    mediad_env: dict[str, str],
    daemons: Callable[..., Daemon],
    sql: SQL,
    schema: str,
) -> None:
    env = {
        **mediad_env,
        "MEDIAD_TEST_HOOKS": "1",
        "MEDIAD_DAEMON_WORKERS": "1",
        "MEDIAD_RETRY_BACKOFF_BASE_SECONDS": "0.1",
    }
    [hanging] = link_files(small_mp4, tmp_path / "hang", 1, marker="__mediad_hang_once__")
    others = link_files(small_mp4, tmp_path / "others", 5)
    daemon = daemons(env=env)
    daemon.wait_started()
    [worker] = wait_until(daemon.worker_pids, 30, "the worker")
    assert mediad("enqueue", str(hanging), env=env).returncode == 0
    wait_until(
        lambda: sql(f'SELECT state FROM "{schema}".files') == [("running",)],
        30,
        "the worker to take the file",
    )
    os.kill(worker, signal.SIGKILL)
    assert mediad("enqueue", *map(str, others), env=env).returncode == 0
    wait_until(
        lambda: terminal(sql, schema) and counts(sql, schema)["done"] == 6,
        60,
        "the retried file and the others to finish",
    )
    [replacement] = daemon.worker_pids()
    assert replacement != worker
    [record] = show(env, str(hanging))
    assert (record["state"], record["attempts"]) == ("done", 2)
    assert '"worker died"' in daemon.log() and "SIGKILL" in daemon.log()
    assert daemon.stop() == 0


def test_a_file_that_hangs_fails_with_timeout_while_others_finish(
    small_mp4: Path,
    tmp_path: Path,
    mediad_env: dict[str, str],
    daemons: Callable[..., Daemon],
    sql: SQL,
    schema: str,
) -> None:
    env = {
        **mediad_env,
        "MEDIAD_TEST_HOOKS": "1",
        "MEDIAD_EXTRACT_TIMEOUT_SECONDS": "1",
        "MEDIAD_RETRY_MAX_ATTEMPTS": "2",
        "MEDIAD_RETRY_BACKOFF_BASE_SECONDS": "0.1",
    }
    [hanging] = link_files(small_mp4, tmp_path / "hang", 1, marker="__mediad_hang__")
    others = link_files(small_mp4, tmp_path / "ok", 20)
    assert mediad("enqueue", str(hanging), *map(str, others), env=env).returncode == 0
    daemon = daemons(env=env)
    daemon.wait_started()
    wait_until(lambda: terminal(sql, schema), 60, "every row to finish")
    [record] = show(env, str(hanging))
    assert (record["state"], record["error_class"], record["attempts"]) == ("failed", "timeout", 2)
    assert counts(sql, schema)["done"] == 20
    assert daemon.stop() == 0


def test_extract_limit_skip_existing_and_threads(
    small_mp4: Path, tmp_path: Path, mediad_env: dict[str, str], sql: SQL, schema: str
) -> None:
    files = tmp_path / "lib"
    link_files(small_mp4, files, 200)
    assert mediad("scan", str(files), env=mediad_env).returncode == 0
    # 50 rows get metadata, then are queued again (as an application re-queueing would).
    first = mediad("extract", "--limit", "50", "--json", env=mediad_env)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout.splitlines()[-1])["processed"] == 50
    sql(f"UPDATE \"{schema}\".files SET state = 'pending' WHERE state = 'done'")
    before = time.time()
    result = mediad(
        "extract", "--limit", "100", "--skip-existing", "--threads", "2", "--json", env=mediad_env
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["processed"] == 100 and summary["done"] == 100
    assert summary["skipped"] == 50
    touched = sql(
        f'SELECT count(*) FROM "{schema}".files WHERE finished_at >= to_timestamp(%s)', [before]
    )
    assert touched == [(100,)]
    # The 50 that already had metadata were not extracted again: settled as done.
    assert sql(
        f"SELECT count(*) FROM \"{schema}\".files WHERE state = 'done' AND finished_at < "
        "to_timestamp(%s)",
        [before],
    ) == [(50,)]
    assert '"workers": 2' in result.stderr


def test_an_idle_daemon_wakes_on_notify_before_the_poll(
    small_mp4: Path,
    mediad_env: dict[str, str],
    daemons: Callable[..., Daemon],
    sql: SQL,
    schema: str,
) -> None:
    env = {**mediad_env, "MEDIAD_DAEMON_POLL_SECONDS": "60"}
    daemon = daemons(env=env)
    daemon.wait_started()
    wait_until(lambda: len(daemon.worker_pids()) == 2, 30, "the workers")
    time.sleep(1)  # let the daemon go idle: its first poll found nothing
    started = time.monotonic()
    sql(f'INSERT INTO "{schema}".files (path) VALUES (%s)', [str(small_mp4)])
    wait_until(lambda: counts(sql, schema)["done"] == 1, 20, "the row to be done")
    # Well before the 60 s poll: it was the notification that woke the daemon.
    assert time.monotonic() - started < 10
    assert daemon.stop() == 0


def test_write_backs_are_batched_while_busy_and_immediate_when_idle(
    small_mp4: Path,
    tmp_path: Path,
    mediad_env: dict[str, str],
    daemons: Callable[..., Daemon],
    sql: SQL,
    schema: str,
) -> None:
    """Each write-back statement costs PostgreSQL about as much as ten rows: while workers
    are busy, results wait (up to flush_seconds) to be written together; a result that
    nothing else can join is written at once, however long flush_seconds is."""
    env = {**mediad_env, "MEDIAD_TEST_HOOKS": "1", "MEDIAD_DAEMON_FLUSH_SECONDS": "30"}
    daemon = daemons(env=env)
    daemon.wait_started()
    paths = link_files(small_mp4, tmp_path / "lib", 20, marker="__mediad_sleep_100ms__")
    sql(f'INSERT INTO "{schema}".files (path) SELECT unnest(%s::text[])', [[str(p) for p in paths]])
    wait_until(lambda: counts(sql, schema)["done"] == 20, 60, "the 20 rows to be done")
    # Rows written by one statement share its transaction's now().
    statements = sql(f'SELECT count(DISTINCT finished_at) FROM "{schema}".files')[0][0]
    assert statements <= 10, f"{statements} write-backs for 20 files: not batched"

    sql(f'INSERT INTO "{schema}".files (path) VALUES (%s)', [str(small_mp4)])
    started = time.monotonic()
    wait_until(lambda: counts(sql, schema)["done"] == 21, 25, "the lone row to be done")
    assert time.monotonic() - started < 15, "a lone result waited for flush_seconds"
    assert daemon.stop() == 0


def test_a_daemon_on_slow_files_holds_only_a_little_work(
    small_mp4: Path,
    tmp_path: Path,
    mediad_env: dict[str, str],
    daemons: Callable[..., Daemon],
    sql: SQL,
    schema: str,
) -> None:
    """Claims follow the pace (mediad/pace.py): one worker reading ten files a second
    holds about half a second of work plus its queue, not batch_size rows that another
    daemon could be reading."""
    env = {
        **mediad_env,
        "MEDIAD_TEST_HOOKS": "1",
        "MEDIAD_DAEMON_WORKERS": "1",
        "MEDIAD_DAEMON_PREFETCH": "2",
        "MEDIAD_DAEMON_BATCH_SIZE": "500",
    }
    daemon = daemons(env=env)
    daemon.wait_started()
    paths = link_files(small_mp4, tmp_path / "lib", 40, marker="__mediad_sleep_100ms__")
    sql(f'INSERT INTO "{schema}".files (path) SELECT unnest(%s::text[])', [[str(p) for p in paths]])
    held: list[int] = []

    def finished() -> bool:
        found = counts(sql, schema)
        held.append(found["running"])
        return found["done"] == 40

    wait_until(finished, 60, "the 40 rows to be done", interval=0.02)
    # Pace 10/s: claims of 5 (half a second), the next when 1 is left, 2 at the worker,
    # and the results of up to flush_seconds (0.25 s) waiting to be written: about 11.
    assert 0 < max(held) <= 13, f"held up to {max(held)} of 40 rows"
    assert daemon.stop() == 0


def test_workers_of_the_installed_command_do_not_load_the_cli(
    mediad_env: dict[str, str], daemons: Callable[..., Daemon]
) -> None:
    """systemd runs the `mediad` script, not `python -m mediad`. Spawned workers first
    re-run the parent's main module: for the script, `from mediad.cli import main`, with
    psycopg and the rest of the CLI (18 MiB more per worker, and a slower boot)."""
    script = Path(sys.executable).parent / "mediad"
    assert script.is_file(), "the console script is installed beside the interpreter"
    daemon = daemons(env=mediad_env, command=[str(script)])
    daemon.wait_started()
    workers = daemon.ready_worker_pids()
    assert len(workers) == 2
    for pid in workers:
        maps = Path(f"/proc/{pid}/maps").read_text()
        assert "libmediainfo" in maps  # what a worker needs
        assert "psycopg" not in maps, "a worker loaded the database driver"
    assert daemon.stop() == 0


def test_polling_alone_works_without_listen(
    small_mp4: Path,
    mediad_env: dict[str, str],
    daemons: Callable[..., Daemon],
    sql: SQL,
    schema: str,
) -> None:
    env = {**mediad_env, "MEDIAD_DATABASE_LISTEN": "false", "MEDIAD_DAEMON_POLL_SECONDS": "0.5"}
    daemon = daemons(env=env)
    daemon.wait_started()
    sql(f'INSERT INTO "{schema}".files (path) VALUES (%s)', [str(small_mp4)])
    wait_until(lambda: counts(sql, schema)["done"] == 1, 30, "the row to be done by polling")
    assert '"listen": false' in daemon.log()
    assert daemon.stop() == 0


def test_sigterm_drains_and_leaves_no_running_row(
    small_mp4: Path,
    tmp_path: Path,
    mediad_env: dict[str, str],
    daemons: Callable[..., Daemon],
    sql: SQL,
    schema: str,
) -> None:
    env = {**mediad_env, "MEDIAD_TEST_HOOKS": "1", "MEDIAD_DAEMON_SHUTDOWN_GRACE_SECONDS": "2"}
    [hanging] = link_files(small_mp4, tmp_path / "hang", 1, marker="__mediad_hang__")
    links = tmp_path / "many"
    link_files(small_mp4, links, 300)
    assert mediad("enqueue", str(hanging), env=env).returncode == 0
    assert mediad("scan", str(links), env=env).returncode == 0
    daemon = daemons(env=env)
    daemon.wait_started()
    wait_until(lambda: counts(sql, schema)["done"] > 20, 60, "some files to be done")
    daemon.signal(signal.SIGTERM)
    assert daemon.process.wait(timeout=30) == 0
    c = counts(sql, schema)
    assert c["running"] == 0 and sum(c.values()) == 301
    # The hanging file was interrupted, not charged: it is pending with its attempt given back.
    [record] = show(env, str(hanging))
    assert (record["state"], record["attempts"]) == ("pending", 0)


def test_workers_die_with_a_killed_supervisor(
    mediad_env: dict[str, str], daemons: Callable[..., Daemon]
) -> None:
    daemon = daemons()
    daemon.wait_started()
    workers = wait_until(
        lambda: len(daemon.worker_pids()) == 2 and daemon.worker_pids(), 30, "two workers"
    )
    os.kill(daemon.pid, signal.SIGKILL)
    daemon.process.wait(timeout=10)

    def gone() -> bool:
        return not any(Path(f"/proc/{pid}").exists() and _not_zombie(pid) for pid in workers)

    wait_until(gone, 10, "the orphaned workers to exit")


def _not_zombie(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_run_refuses_an_unmigrated_schema(mediad_env: dict[str, str]) -> None:
    env = {**mediad_env, "MEDIAD_DATABASE_AUTO_MIGRATE": "false"}
    result = mediad("run", env=env, timeout=60)
    assert result.returncode == 2
    assert "mediad migrate" in result.stderr
    migrated = mediad("migrate", env=env)
    assert migrated.returncode == 0
    assert f"now version {latest_version()}" in migrated.stdout


def test_bad_config_exits_2_naming_the_key(tmp_path: Path, mediad_env: dict[str, str]) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[daemon]\nbatch_size = -3\n")
    result = mediad("check-config", "--config", str(config), env=mediad_env)
    assert result.returncode == 2
    assert "daemon.batch_size" in result.stderr
    env_bad = mediad("status", env={**mediad_env, "MEDIAD_RETRY_MAX_ATTEMPTS": "many"})
    assert env_bad.returncode == 2 and "retry.max_attempts" in env_bad.stderr


def test_status_and_show_json(
    small_mp4: Path, mediad_env: dict[str, str], sql: SQL, schema: str
) -> None:
    assert mediad("enqueue", str(small_mp4), "/nowhere/missing.mkv", env=mediad_env).returncode == 0
    assert mediad("extract", env=mediad_env).returncode == 0
    status = json.loads(mediad("status", "--json", env=mediad_env).stdout)
    assert status["counts"] == {"pending": 0, "running": 0, "done": 1, "failed": 1}
    assert status["failures_by_class"] == {"not_found": 1}
    found, missing, unknown = show(
        mediad_env, str(small_mp4), "/nowhere/missing.mkv", "/never/seen.mp4"
    )
    assert found["state"] == "done" and found["summary"]["video_codec"] == "AVC"
    assert set(found) >= {"path", "state", "attempts", "error_class", "error", "summary"}
    assert (missing["state"], missing["error_class"]) == ("failed", "not_found")
    assert set(unknown) == set(found)
    assert unknown["path"] == "/never/seen.mp4"
    assert all(value is None for key, value in unknown.items() if key != "path")
    retried = mediad("retry", "--class", "not_found", env=mediad_env)
    assert retried.returncode == 0 and retried.stdout.startswith("1 ")
    assert counts(sql, schema)["pending"] == 1


def test_sdr_video_has_no_hdr_fields_and_rows_record_what_wrote_them(
    small_mp4: Path, mediad_env: dict[str, str], sql: SQL, schema: str
) -> None:
    """A video PyAV made (8-bit, no colour description, no light levels) through a real
    worker: the HDR fields are NULL in `show` and in the columns, nothing guessed."""
    assert mediad("enqueue", str(small_mp4), env=mediad_env).returncode == 0
    assert mediad("extract", env=mediad_env).returncode == 0
    (found,) = show(mediad_env, str(small_mp4))
    hdr = {key: found["summary"][key] for key in HDR_COLUMNS}
    assert hdr == dict.fromkeys(HDR_COLUMNS) | {"video_bit_depth": 8}
    (row,) = sql(
        f"SELECT {', '.join(HDR_COLUMNS)}, mediainfo_version, reader_version, mapping_version"
        f' FROM "{schema}".files'
    )
    assert row[: len(HDR_COLUMNS)] == tuple(hdr.values())
    mediainfo_version, reader_version, mapping_version = row[len(HDR_COLUMNS) :]
    assert mediainfo_version and mediainfo_version[0].isdigit()  # "24.12"
    assert mapping_version == MAPPING_VERSION
    assert reader_version.startswith("python-exiv2")  # an MP4 with video: read by it too

    status = json.loads(mediad("status", "--json", env=mediad_env).stdout)
    assert status["older_mapping"] == 0
    assert "older mapping" not in mediad("status", env=mediad_env).stdout
    # A row written before versions were recorded, and one by an older mapping.
    sql(f'UPDATE "{schema}".files SET mapping_version = NULL')
    assert json.loads(mediad("status", "--json", env=mediad_env).stdout)["older_mapping"] == 1
    sql(f'UPDATE "{schema}".files SET mapping_version = %s', (MAPPING_VERSION - 1,))
    assert json.loads(mediad("status", "--json", env=mediad_env).stdout)["older_mapping"] == 1
    text = mediad("status", env=mediad_env).stdout
    assert "1 done rows were summarised by an older mapping" in text
