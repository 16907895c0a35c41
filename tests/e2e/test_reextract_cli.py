"""`mediad reextract` as a user runs it: usage errors exit 2 in one line, --dry-run counts
and changes nothing, a run says how many rows it queued, `extract --skip-existing` then
extracts exactly those (and still skips the rows queued by others), and the rows of an
attached table get their new metadata written back into the application's table."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mediad.extract.summary import MAPPING_VERSION
from tests.e2e.test_attach import MAPPING, make_table
from tests.e2e.test_extract_cli import OLD, extract_all_now, summary_of
from tests.support.processes import counts, link_files, mediad

SQL = Callable[..., list[tuple[Any, ...]]]


def as_written_by_an_older_mapping(
    sql: SQL, schema: str, under: Path, mapping: bool = True
) -> None:
    """The rows under a directory as an older mediad left them: old metadata and, unless
    `mapping` is False, no mapping version."""
    sql(
        f'UPDATE "{schema}".files SET metadata = %s::jsonb, '
        "mapping_version = CASE WHEN %s THEN NULL ELSE mapping_version END "
        "WHERE path ^@ %s",
        [json.dumps(OLD), mapping, f"{under}/"],
    )


def fresh(sql: SQL, schema: str) -> set[str]:
    """Paths whose metadata this mediad wrote (MediaInfo's document, the current mapping)."""
    rows = sql(
        f"SELECT path FROM \"{schema}\".files WHERE metadata ? 'media' AND mapping_version = %s",
        [MAPPING_VERSION],
    )
    return {p for (p,) in rows}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "name the rows to extract again: --mapping-below N"),
        (["--all", "--ext", "mp4"], "--all selects every done row: give it no filter"),
        (["--ext", "/"], "--ext '/' is not an extension"),
        (["--mapping-below", "0"], "--mapping-below must be 1 or more"),
        (["--mapping-below", "newest"], "is not a version number or 'current'"),
        (["--class", "nope"], "invalid choice: 'nope'"),
        # Past what the integer columns hold: said as usage, not as a database error.
        (["--mapping-below", "99999999999"], "--mapping-below must be at most 2147483647"),
        (["--all", "--priority", "99999999999"], "is not a priority from -2147483648 to"),
    ],
    ids=[
        "no-filter",
        "all-and-filter",
        "bad-ext",
        "mapping-zero",
        "mapping-word",
        "bad-class",
        "mapping-huge",
        "priority-huge",
    ],
)
def test_usage_errors_exit_2_in_one_line_and_change_nothing(
    args: list[str], message: str, mediad_env: dict[str, str], sql: SQL, schema: str
) -> None:
    assert mediad("enqueue", "/m/a.mp4", env=mediad_env).returncode == 0

    result = mediad("reextract", *args, env=mediad_env)

    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""
    assert counts(sql, schema)["pending"] == 1


def test_dry_run_counts_then_a_run_queues_as_many_behind_new_work(
    small_mp4: Path, tmp_path: Path, mediad_env: dict[str, str], sql: SQL, schema: str
) -> None:
    env = mediad_env
    extract_all_now(env, link_files(small_mp4, tmp_path / "old", 3))
    extract_all_now(env, link_files(small_mp4, tmp_path / "new", 2))
    as_written_by_an_older_mapping(sql, schema, tmp_path / "old")
    status = json.loads(mediad("status", "--json", env=env).stdout)
    assert status["older_mapping"] == 3

    dry = mediad("reextract", "--mapping-below", "current", "--dry-run", env=env)
    dry_json = mediad("reextract", "--mapping-below", "current", "--dry-run", "--json", env=env)

    assert dry.returncode == 0, dry.stderr
    assert re.match(
        r"3 rows would be queued again at priority -100 \(dry run: nothing changed\)", dry.stdout
    )
    report = json.loads(dry_json.stdout)
    assert (report["rows"], report["dry_run"], report["priority"]) == (3, True, -100)
    assert counts(sql, schema) == {"pending": 0, "running": 0, "done": 5, "failed": 0}

    run = mediad("reextract", "--mapping-below", str(MAPPING_VERSION), "--json", env=env)

    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["rows"] == 3
    assert sql(f'SELECT DISTINCT priority FROM "{schema}".files WHERE state = %s', ["pending"]) == [
        (-100,)
    ]
    again = mediad("reextract", "--mapping-below", "current", env=env)
    assert again.stdout.startswith("0 rows queued again at priority -100, behind new work, on ")
    summary = summary_of(mediad("extract", "--json", env=env))
    assert (summary["done"], summary["pending"]) == (3, 0)
    assert len(fresh(sql, schema)) == 5
    assert json.loads(mediad("status", "--json", env=env).stdout)["older_mapping"] == 0


def test_skip_existing_extracts_what_reextract_queued_and_skips_the_rest(
    small_mp4: Path, tmp_path: Path, mediad_env: dict[str, str], sql: SQL, schema: str
) -> None:
    env = mediad_env
    redo = link_files(small_mp4, tmp_path / "redo", 3)
    keep = link_files(small_mp4, tmp_path / "keep", 2)
    extract_all_now(env, redo + keep)
    as_written_by_an_older_mapping(sql, schema, tmp_path / "redo")
    as_written_by_an_older_mapping(sql, schema, tmp_path / "keep", mapping=False)
    assert mediad("reextract", "--mapping-below", "current", env=env).returncode == 0
    # Queued again by someone else, with metadata: what --skip-existing skips. And new files.
    new = link_files(small_mp4, tmp_path / "brand-new", 2)
    assert mediad("enqueue", *map(str, keep + new), env=env).returncode == 0

    result = mediad("extract", "--skip-existing", "--json", env=env)

    summary = summary_of(result)
    assert (summary["done"], summary["skipped"], summary["pending"]) == (5, 2, 0)
    assert fresh(sql, schema) == {str(p) for p in redo + new}
    kept = sql(f'SELECT path FROM "{schema}".files WHERE metadata = %s::jsonb', [json.dumps(OLD)])
    assert {p for (p,) in kept} == {str(p) for p in keep}


def test_rows_of_an_attached_table_are_extracted_again_and_written_back(
    small_mp4: Path,
    tmp_path: Path,
    mediad_env: dict[str, str],
    sql: SQL,
    schema: str,
    app_schema: str,
) -> None:
    env = mediad_env
    paths = link_files(small_mp4, tmp_path / "app", 4)
    table = make_table(sql, app_schema, [(str(p), None) for p in paths])
    assert mediad("attach", table, *MAPPING, env=env).returncode == 0
    assert summary_of(mediad("extract", "--json", env=env))["done"] == 4
    # Two of them as an older mediad left them, in its queue and in the application's rows.
    app = f'"{app_schema}".media_files'
    sql(f"UPDATE {app} SET metadata = %s::jsonb WHERE id <= 2", [json.dumps(OLD)])
    sql(
        f'UPDATE "{schema}".files SET metadata = %s::jsonb, mapping_version = NULL '
        "WHERE source_row::int <= 2",
        [json.dumps(OLD)],
    )

    queued = mediad("reextract", "--mapping-below", "current", "--ext", ".MP4", env=env)

    assert queued.stdout.startswith("2 rows queued again"), queued.stdout
    summary = summary_of(mediad("extract", "--skip-existing", "--json", env=env))
    assert (summary["done"], summary["skipped"]) == (2, 0)
    written = sql(f"SELECT id, metadata ? 'media' FROM {app} ORDER BY id")
    assert written == [(1, True), (2, True), (3, True), (4, True)]
    assert counts(sql, schema) == {"pending": 0, "running": 0, "done": 4, "failed": 0}
    assert sql(
        f'SELECT count(*) FROM "{schema}".files WHERE mapping_version = %s', [MAPPING_VERSION]
    ) == [(4,)]
