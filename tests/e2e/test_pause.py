"""`mediad pause` and `mediad resume` with real daemons: a pause stops the claims of its
rows on every daemon within the bound (a second with LISTEN, daemon.poll_seconds
without), charges nothing, hands back the files sent ahead to a worker, binds `extract`
too, and ends by itself at --until.

When each row was claimed is recorded by a trigger the test adds to its own schema: the
bound is checked on the database's clock, with no timing in the test."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_observability import sample_sum, scrape
from tests.support.processes import Daemon, free_port, link_files, mediad, wait_until

SQL = Callable[..., list[tuple[Any, ...]]]


def record_claims(sql: SQL, schema: str) -> None:
    """Every claim of a row, with its owner and the database's clock, in claims_seen."""
    s = f'"{schema}"'
    sql(f"CREATE TABLE {s}.claims_seen (path text, owner text, at timestamptz)")
    sql(
        f"CREATE FUNCTION {s}.claim_seen() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"INSERT INTO {s}.claims_seen VALUES (coalesce(NEW.path, NEW.source_path), "
        "NEW.lease_owner, clock_timestamp()); RETURN NULL; END $$"
    )
    sql(
        f"CREATE TRIGGER claim_seen AFTER UPDATE OF state ON {s}.files FOR EACH ROW "
        "WHEN (NEW.state = 'running' AND OLD.state = 'pending') "
        f"EXECUTE FUNCTION {s}.claim_seen()"
    )


def claimers(sql: SQL, schema: str, under: Path, after: datetime) -> set[str]:
    rows = sql(
        f'SELECT DISTINCT owner FROM "{schema}".claims_seen WHERE path ^@ %s AND at > %s',
        (f"{under}/", after),
    )
    return {row[0] for row in rows}


def paused_since(sql: SQL, schema: str) -> datetime:
    since: datetime = sql(f'SELECT max(since) FROM "{schema}".pauses')[0][0]
    return since


def run_ok(*args: str, env: dict[str, str]) -> str:
    result = mediad(*args, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def charged(sql: SQL, schema: str, under: Path) -> int:
    """Rows under `under` that are pending and yet charged an attempt."""
    rows = sql(
        f"SELECT count(*) FROM \"{schema}\".files WHERE path ^@ %s AND state = 'pending' "
        "AND attempts > 0",
        (f"{under}/",),
    )
    return int(rows[0][0])


def state_of(sql: SQL, schema: str, under: Path) -> dict[str, int]:
    rows = sql(
        f'SELECT state, count(*) FROM "{schema}".files WHERE path ^@ %s GROUP BY state',
        (f"{under}/",),
    )
    return {state: int(n) for state, n in rows}


@pytest.mark.parametrize("listen", [True, False], ids=["listen", "poll"])
def test_a_pause_stops_the_claims_of_its_prefix_alone_on_every_daemon_until_resumed(
    listen: bool,
    mediad_env: dict[str, str],
    daemons: Callable[..., Daemon],
    sql: SQL,
    schema: str,
    small_mp4: Path,
    tmp_path: Path,
) -> None:
    bound = 1.0 if listen else 0.5  # with LISTEN a second; without, daemon.poll_seconds
    env = {
        **mediad_env,
        "MEDIAD_TEST_HOOKS": "1",
        "MEDIAD_DATABASE_LISTEN": "true" if listen else "false",
        "MEDIAD_DAEMON_POLL_SECONDS": "5" if listen else str(bound),
    }
    run_ok("migrate", env=env)
    record_claims(sql, schema)
    nas, local = tmp_path / "nas", tmp_path / "local"
    # 50 ms a file: about 10 s of work on each side for two daemons of two workers.
    nas_files = link_files(small_mp4, nas, 400, marker="__mediad_sleep_50ms__")
    local_files = link_files(small_mp4, local, 800, marker="__mediad_sleep_50ms__")
    run_ok("enqueue", *map(str, nas_files + local_files), env=env)
    owners = {f"{n}" for n in ("a", "b")}
    for instance in sorted(owners):
        daemons(env={**env, "MEDIAD_DAEMON_INSTANCE": instance}).wait_started()
    start = datetime.now().astimezone() - timedelta(hours=1)
    both = wait_until(
        lambda: len(claimers(sql, schema, nas, start)) == 2 and claimers(sql, schema, nas, start),
        60,
        "both daemons to claim rows under nas/",
    )

    run_ok("pause", "--prefix", str(nas), env=env)
    since = paused_since(sql, schema)
    deadline = since + timedelta(seconds=bound)
    # Both daemons go on claiming the other rows after the bound...
    wait_until(
        lambda: claimers(sql, schema, local, deadline + timedelta(seconds=0.3)) == both,
        60,
        "both daemons to claim rows under local/ after the pause",
    )
    # ...and neither claimed a row under the paused prefix after it.
    assert claimers(sql, schema, nas, deadline) == set()
    # Files being read finished, the ones held were given back: none runs, none charged.
    wait_until(lambda: "running" not in state_of(sql, schema, nas), 30, "nas/ to settle")
    assert state_of(sql, schema, nas).get("pending", 0) > 0
    assert charged(sql, schema, nas) == 0
    status = json.loads(run_ok("status", "--json", env=env))
    assert status["pauses"] == [{"prefix": str(nas), "since": since.isoformat(), "until": None}]

    run_ok("resume", "--prefix", str(nas), env=env)
    resumed = datetime.now().astimezone() - timedelta(seconds=5)
    wait_until(
        lambda: claimers(sql, schema, nas, max(resumed, deadline)) == both,
        60,
        "both daemons to claim rows under nas/ again",
    )
    assert json.loads(run_ok("status", "--json", env=env))["pauses"] == []


def test_files_sent_ahead_to_a_worker_go_back_uncharged_and_the_one_read_finishes(
    mediad_env: dict[str, str],
    daemons: Callable[..., Daemon],
    sql: SQL,
    schema: str,
    small_mp4: Path,
    tmp_path: Path,
) -> None:
    # One worker, slow files: it holds the one it reads and at least one sent ahead.
    env = {**mediad_env, "MEDIAD_TEST_HOOKS": "1", "MEDIAD_DAEMON_WORKERS": "1"}
    run_ok("migrate", env=env)
    record_claims(sql, schema)
    nas = tmp_path / "nas"
    files = link_files(small_mp4, nas, 6, marker="__mediad_sleep_3000ms__")
    run_ok("enqueue", *map(str, files), env=env)
    daemon = daemons(env=env)
    daemon.wait_started()
    wait_until(lambda: sql(f'SELECT 1 FROM "{schema}".claims_seen'), 60, "a claim")
    wait_until(lambda: '"ready"' in daemon.log(), 60, "the worker to be ready")

    run_ok("pause", "--prefix", str(nas), env=env)
    wait_until(lambda: '"pauses changed"' in daemon.log(), 30, "the daemon to hear the pause")
    changed = next(
        json.loads(line) for line in daemon.log().splitlines() if '"pauses changed"' in line
    )
    assert changed["withdrawing"] >= 1, changed
    # The file being read finishes; every other one is pending again, uncharged.
    wait_until(lambda: state_of(sql, schema, nas).get("done") == 1, 30, "the read to finish")
    wait_until(lambda: "running" not in state_of(sql, schema, nas), 30, "nothing running")
    assert state_of(sql, schema, nas) == {"done": 1, "pending": 5}
    assert charged(sql, schema, nas) == 0
    assert '"rows given back: paused"' in daemon.log()


def test_extract_obeys_pauses(
    mediad_env: dict[str, str], sql: SQL, schema: str, small_mp4: Path, tmp_path: Path
) -> None:
    nas, local = tmp_path / "nas", tmp_path / "local"
    nas_files = link_files(small_mp4, nas, 5)
    local_files = link_files(small_mp4, local, 5)
    run_ok("enqueue", *map(str, nas_files + local_files), env=mediad_env)
    run_ok("pause", "--prefix", str(nas), env=mediad_env)
    summary = json.loads(run_ok("extract", "--json", env=mediad_env).splitlines()[-1])
    assert summary["done"] == 5
    assert state_of(sql, schema, local) == {"done": 5}
    assert state_of(sql, schema, nas) == {"pending": 5}
    assert charged(sql, schema, nas) == 0

    # A pause of everything: extract claims nothing at all.
    run_ok("resume", "--prefix", str(nas), env=mediad_env)
    run_ok("pause", env=mediad_env)
    summary = json.loads(run_ok("extract", "--json", env=mediad_env).splitlines()[-1])
    assert summary["done"] == 0
    assert state_of(sql, schema, nas) == {"pending": 5}
    run_ok("resume", env=mediad_env)
    summary = json.loads(run_ok("extract", "--json", env=mediad_env).splitlines()[-1])
    assert summary["done"] == 5


def test_a_pause_until_a_time_ends_by_itself_and_the_metric_shows_it(
    mediad_env: dict[str, str],
    daemons: Callable[..., Daemon],
    sql: SQL,
    schema: str,
    small_mp4: Path,
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {**mediad_env, "MEDIAD_METRICS_LISTEN": f"127.0.0.1:{port}"}
    run_ok("migrate", env=env)
    record_claims(sql, schema)
    nas = tmp_path / "nas"
    now: datetime = sql("SELECT now()")[0][0]
    until = now + timedelta(seconds=4)
    run_ok("pause", "--prefix", str(nas), "--until", until.isoformat(), env=env)
    run_ok("enqueue", *map(str, link_files(small_mp4, nas, 5)), env=env)
    daemons(env=env).wait_started()
    wait_until(lambda: sample_sum(scrape(port), "mediad_paused") == 1, 30, "mediad_paused 1")

    wait_until(lambda: state_of(sql, schema, nas) == {"done": 5}, 60, "the rows, after --until")
    first = sql(f'SELECT min(at) FROM "{schema}".claims_seen')[0][0]
    assert first >= until
    assert sql(f'SELECT count(*) FROM "{schema}".pauses')[0][0] == 0
    wait_until(lambda: sample_sum(scrape(port), "mediad_paused") == 0, 30, "mediad_paused 0")


def test_resume_without_a_prefix_lifts_every_pause_and_status_lists_them(
    mediad_env: dict[str, str], sql: SQL, schema: str, small_mp4: Path, tmp_path: Path
) -> None:
    nas = tmp_path / "nas"
    run_ok("enqueue", *map(str, link_files(small_mp4, nas, 3)), env=mediad_env)
    run_ok("pause", "--prefix", f"{nas}/", env=mediad_env)
    run_ok("pause", "--until", "2999-01-01T00:00:00+00:00", env=mediad_env)
    pauses = json.loads(run_ok("status", "--json", env=mediad_env))["pauses"]
    assert [(p["prefix"], p["until"]) for p in pauses] == [
        (None, "2999-01-01T00:00:00+00:00"),
        (str(nas), None),
    ]
    text = run_ok("status", env=mediad_env)
    assert f"  {nas}: since " in text and "  everything: since " in text
    # The rows under the prefix left the claim's walk; resume brings them back.
    assert sql(f'SELECT count(*) FROM "{schema}".files WHERE paused')[0][0] == 3

    assert mediad("resume", "--prefix", "/not/paused", env=mediad_env).returncode == 1
    assert "2 pauses lifted" in run_ok("resume", env=mediad_env)
    assert json.loads(run_ok("status", "--json", env=mediad_env))["pauses"] == []
    assert sql(f'SELECT count(*) FROM "{schema}".files WHERE paused')[0][0] == 0


def test_pause_refuses_an_until_that_is_not_an_iso_time_in_the_future(
    mediad_env: dict[str, str],
) -> None:
    for until in ("tomorrow", "2001-01-01T00:00:00Z"):
        result = mediad("pause", "--until", until, env=mediad_env)
        assert result.returncode == 2, result.stderr
        assert "--until" in result.stderr and "Traceback" not in result.stderr


def test_a_paused_daemon_renews_the_lease_of_the_file_it_reads_and_drains(
    mediad_env: dict[str, str],
    daemons: Callable[..., Daemon],
    sql: SQL,
    schema: str,
    small_mp4: Path,
    tmp_path: Path,
) -> None:
    # A read that outlasts two leases: only renewal keeps it this daemon's (unrenewed, the
    # row would be rescued and read again, its attempt charged twice).
    env = {
        **mediad_env,
        "MEDIAD_TEST_HOOKS": "1",
        "MEDIAD_DAEMON_WORKERS": "1",
        "MEDIAD_DAEMON_LEASE_SECONDS": "2",
    }
    nas = tmp_path / "nas"
    (slow,) = link_files(small_mp4, nas, 1, marker="__mediad_sleep_5000ms__")
    waiting = link_files(small_mp4, tmp_path / "later", 3)
    run_ok("enqueue", str(slow), env=env)
    daemon = daemons(env=env)
    daemon.wait_started()
    wait_until(lambda: state_of(sql, schema, nas).get("running") == 1, 30, "the slow read")
    run_ok("pause", env=env)
    run_ok("enqueue", *map(str, waiting), env=env)
    wait_until(lambda: state_of(sql, schema, nas).get("done") == 1, 30, "the read to finish")
    assert sql(f'SELECT attempts FROM "{schema}".files WHERE path = %s', (str(slow),)) == [(1,)]
    # Paused: the files queued meanwhile wait, uncharged; a SIGTERM drains as ever.
    assert state_of(sql, schema, waiting[0].parent) == {"pending": 3}
    assert daemon.stop(timeout=30) == 0
    assert '"stopped"' in daemon.log()
    assert charged(sql, schema, waiting[0].parent) == 0
