"""Paths on the command line and on standard input, as `find -print0 | xargs -0` and shell
pipelines give them: names that are not UTF-8 (Linux allows any bytes but NUL and /),
newlines inside names, `-` for standard input. Real CLI, real PostgreSQL."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mediad.config import mask_dsn
from mediad.db.connection import Database
from tests.support.processes import mediad, mediad_bytes_in

SQL = Callable[..., list[tuple[Any, ...]]]

# Latin-1 "café": the byte 0xE9 alone is not UTF-8.
LATIN1 = b"caf\xe9"


def non_utf8(directory: Path | str, raw: bytes) -> str:
    """The name as Python holds it (os.fsdecode), as mediad receives it from argv."""
    return os.fsdecode(os.fsencode(str(directory)) + b"/" + raw)


@pytest.fixture
def env(mediad_env: dict[str, str]) -> dict[str, str]:
    # Strict standard streams, as under a UTF-8 locale other than C: a name that is not
    # UTF-8 printed as it is, or read from stdin as text, raises instead of slipping by.
    return {**mediad_env, "PYTHONIOENCODING": "utf-8:strict"}


def rows(sql: SQL, schema: str) -> dict[str, tuple[str, str | None]]:
    found = sql(f'SELECT path, state, error_class FROM "{schema}".files')
    return {path: (state, error_class) for path, state, error_class in found}


def nul_separated(paths: list[str]) -> bytes:
    return b"".join(os.fsencode(p) + b"\0" for p in paths)


def test_show_finds_a_name_that_is_not_utf8_read_nul_separated(
    env: dict[str, str], tmp_path: Path
) -> None:
    paths = [f"{tmp_path}/a.flac", non_utf8(tmp_path, LATIN1 + b".flac"), f"{tmp_path}/b.flac"]
    queued = mediad("enqueue", *paths, env=env)
    assert queued.returncode == 1, queued.stderr  # one name recorded as failed
    assert f"{tmp_path}/caf\\xe9.flac" in queued.stderr

    shown = mediad_bytes_in("show", "--json", "-0", "-", env=env, stdin=nul_separated(paths))

    assert shown.returncode == 0, shown.stderr
    assert "Traceback" not in shown.stderr
    records = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [r["path"] for r in records] == [
        f"{tmp_path}/a.flac",
        f"{tmp_path}/caf\\xe9.flac",
        f"{tmp_path}/b.flac",
    ]
    assert [(r["state"], r["error_class"]) for r in records] == [
        ("pending", None),
        ("failed", "bad_path"),
        ("pending", None),
    ]


def test_show_prints_names_that_are_not_utf8_escaped(env: dict[str, str], tmp_path: Path) -> None:
    recorded = non_utf8(tmp_path, LATIN1 + b".flac")
    unknown = non_utf8(tmp_path, b"na\xefve.flac")
    mediad("enqueue", recorded, env=env)

    shown = mediad("show", recorded, unknown, env=env)

    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == f"{tmp_path}/caf\\xe9.flac"
    assert lines[1] == "  state failed, attempts 0"
    assert lines[2].startswith("  error [bad_path] ")
    assert lines[3:5] == [f"{tmp_path}/na\\xefve.flac", "  unknown to mediad"]
    assert lines[5:] == [f"database: {mask_dsn(env['MEDIAD_DATABASE_DSN'])}"]


def test_show_keeps_the_order_across_lookups(env: dict[str, str], tmp_path: Path) -> None:
    """More paths than one lookup takes: still one line per path, in the order given."""
    paths = [f"{tmp_path}/f{i:04d}.flac" for i in range(1100)]
    paths[1050] = non_utf8(tmp_path, LATIN1 + b".flac")
    paths.reverse()
    assert (
        mediad_bytes_in("enqueue", "-0", "-", env=env, stdin=nul_separated(paths)).returncode == 1
    )

    shown = mediad_bytes_in("show", "--json", "--null", "-", env=env, stdin=nul_separated(paths))

    assert shown.returncode == 0, shown.stderr
    records = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [r["path"] for r in records] == [
        p.replace(non_utf8(tmp_path, LATIN1), f"{tmp_path}/caf\\xe9") for p in paths
    ]
    assert {r["state"] for r in records} == {"pending", "failed"}
    assert records[len(paths) - 1 - 1050]["error_class"] == "bad_path"


def test_enqueue_reads_names_as_bytes_whatever_the_stream_encoding(
    mediad_env: dict[str, str], sql: SQL, schema: str, tmp_path: Path
) -> None:
    # ASCII standard streams: reading stdin as text would fail on any byte above 0x7F.
    env = {**mediad_env, "PYTHONIOENCODING": "ascii:strict"}
    stdin = (
        f"{tmp_path}/été.flac\n\n".encode()
        + os.fsencode(tmp_path)
        + b"/"
        + LATIN1
        + b".flac\n   \n"
        + f"{tmp_path}/plain.flac".encode()  # the last line needs no newline
    )

    queued = mediad_bytes_in("enqueue", "-", env=env, stdin=stdin)

    assert queued.returncode == 1, queued.stderr  # one name recorded as failed
    assert "Traceback" not in queued.stderr
    assert queued.stdout.startswith("2 new,")
    assert rows(sql, schema) == {
        f"{tmp_path}/été.flac": ("pending", None),
        f"{tmp_path}/caf\\xe9.flac": ("failed", "bad_path"),
        f"{tmp_path}/plain.flac": ("pending", None),
    }


def test_null_separated_names_may_hold_newlines(
    env: dict[str, str], sql: SQL, schema: str, tmp_path: Path
) -> None:
    paths = [f"{tmp_path}/two\nlines.flac", f"{tmp_path}/x.flac"]

    queued = mediad_bytes_in("enqueue", "--null", "-", env=env, stdin=nul_separated(paths))

    assert queued.returncode == 0, queued.stderr
    assert rows(sql, schema) == {p: ("pending", None) for p in paths}
    shown = mediad_bytes_in("show", "--json", "-0", "-", env=env, stdin=nul_separated(paths))
    assert shown.returncode == 0, shown.stderr
    records = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [(r["path"], r["state"]) for r in records] == [(p, "pending") for p in paths]


def test_show_dash_reads_standard_input(env: dict[str, str], tmp_path: Path) -> None:
    mediad("enqueue", f"{tmp_path}/a.flac", env=env)

    shown = mediad("show", "--json", "-", env=env, stdin=f"\n{tmp_path}/a.flac\n\n")

    assert shown.returncode == 0, shown.stderr
    records = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [(r["path"], r["state"]) for r in records] == [(f"{tmp_path}/a.flac", "pending")]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("show", "-", "/srv/a.flac"), "must be the only PATH"),
        (("enqueue", "/srv/a.flac", "-"), "must be the only PATH"),
        (("show", "--null", "/srv/a.flac"), "--null applies to paths read from standard input"),
        (("enqueue", "-0", "/srv/a.flac"), "--null applies to paths read from standard input"),
    ],
)
def test_dash_comes_alone_and_null_needs_it(
    env: dict[str, str],
    db: Database,
    sql: SQL,
    schema: str,
    args: tuple[str, ...],
    says: str,
) -> None:
    result = mediad(*args, env=env, stdin="/srv/b.flac\n")

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and says in result.stderr
    assert sql(f'SELECT count(*) FROM "{schema}".files') == [(0,)]


BAD = os.fsdecode(LATIN1)


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("attach", BAD, "--id", "id", "--path", "path"), id="attach-table"),
        pytest.param(("attach", "public.media", "--id", BAD, "--path", "path"), id="attach-id"),
        pytest.param(("detach", BAD), id="detach-table"),
        pytest.param(("retry", "--class", BAD), id="retry-class"),
        pytest.param(("status", "--dsn", f"postgresql://127.0.0.1/{BAD}"), id="dsn"),
        pytest.param(("status", "--config", f"/nonexistent/{BAD}.toml"), id="config"),
        pytest.param(
            ("status", "--dsn", "", "--state-dir", f"/nonexistent/{BAD}"),
            id="embedded-state-dir",
        ),
        pytest.param(("scan", f"/nonexistent/{BAD}"), id="scan-dir"),
        pytest.param(("run", "--scan", f"/nonexistent/{BAD}"), id="run-scan"),
        pytest.param(("run", "--metrics-listen", f"{BAD}:9464"), id="metrics-listen"),
    ],
)
def test_a_name_that_is_not_utf8_gets_a_clear_error(
    env: dict[str, str], args: tuple[str, ...]
) -> None:
    result = mediad(*args, env=env)

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "caf\\xe9" in last, result.stderr


def test_scan_records_a_tree_whose_name_is_not_utf8(env: dict[str, str], tmp_path: Path) -> None:
    tree = Path(non_utf8(tmp_path, LATIN1))
    tree.mkdir()
    (tree / "a.flac").write_bytes(b"not media")

    scanned = mediad("scan", str(tree), env=env)

    assert scanned.returncode == 1, scanned.stderr  # a bad name is reported
    assert "1 names that are not UTF-8" in scanned.stdout
    shown = mediad("show", "--json", str(tree / "a.flac"), env=env)
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert record["path"] == f"{tmp_path}/caf\\xe9/a.flac"
    assert (record["state"], record["error_class"]) == ("failed", "bad_path")


def test_a_config_file_whose_name_is_not_utf8(env: dict[str, str], tmp_path: Path) -> None:
    config = Path(non_utf8(tmp_path, LATIN1 + b".toml"))
    config.write_text("[retry]\nmax_attempts = 7\n")

    checked = mediad("check-config", "--config", str(config), env=env)

    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.splitlines()[0] == (
        f"# configuration is valid (source: {tmp_path}/caf\\xe9.toml)"
    )
    assert "max_attempts = 7" in checked.stdout
