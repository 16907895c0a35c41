"""The benchmark command runs on a tiny corpus and prints its whole table.

Not a timed test: nothing here looks at a speed. docs/benchmarks.md has the real figures.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import bench_command

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

TABLE_ROWS = (
    "mediad end to end",
    "mediad from its launch",
    "ideal multiprocessing.Pool",
    "mediainfo CLI batched",
    "mediainfo CLI once per file",
    "noop pipeline (mediad)",
)
JSON_KEYS = (
    "environment",
    "mediad",
    "ideal",
    "noop",
    "ratios",
    "targets",
    "claim_latency",
    "connections",
    "supervisor_rss_backlog",
)


def test_benchmark_runs_on_a_tiny_corpus_and_prints_every_row(
    test_dsn: str, tmp_path: Path
) -> None:
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAD_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--files",
            "200",
            "--dsn",
            test_dsn,
            "--out",
            str(out),
            "--claim-sizes",
            "10000",
            "--backlog-rows",
            "20000",
            "--backlog-seconds",
            "3",
            "--noop-files",
            "2000",
            "--single-files",
            "20",
            "--latency-samples",
            "5",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    table = result.stdout
    for row in TABLE_ROWS:
        assert row in table, (row, table)
    installed = shutil.which("mediainfo") is not None
    if not installed:
        assert "not installed" in table
    for line in (
        "ratios:",
        "mediad_over_ideal",
        "noop_files_per_s",
        "insert -> done",
        "supervisor RSS with",
        "database connections per daemon",
        "targets (issue 5; throughput ratios and noop: one round):",
        "plan of the claim at 10,000 rows",
    ):
        assert line in table, (line, table)

    data = json.loads(out.read_text())
    for key in JSON_KEYS:
        assert key in data, key
    # The default corpus: the mix of bench.mix, at least 60 distinct files (issue 19).
    assert data["environment"]["corpus"] == "mix"
    assert len(data["environment"]["corpus_originals"]) >= 60
    assert "corpus: mix, " in table
    assert ("mediainfo_batched" in data) == installed
    if installed:
        # The CLI on mediad's own libmediainfo: run when it writes mediad's documents, and
        # otherwise skipped with the reason on record (never a silent absence).
        same = data["environment"]["mediainfo_cli_same_library"]
        assert same["documents_identical"] == ("mediainfo_same_library" in data), same
        if same["documents_identical"]:
            assert same["files_compared"] == len(data["environment"]["corpus_originals"])
            assert "mediad_over_mediainfo_same_library" in data["ratios"]
            assert "mediainfo CLI batched, mediad's lib" in table
        else:
            assert same["why_not"], same
        # And mediad on the CLI's own libmediainfo, under the same rule.
        other = data["environment"]["mediad_on_cli_library"]
        assert other["documents_identical"] == ("mediad_cli_library" in data), other
        if other["documents_identical"]:
            assert data["mediad_cli_library"]["done"] == 200
            assert "mediad_on_cli_library_over_mediainfo_batched" in data["ratios"]
            assert "mediad end to end, the CLI's lib" in table
        else:
            assert other["why_not"], other
    assert data["mediad"]["done"] + data["mediad"]["failed"] == 200
    # Timed from the enqueue into a daemon that was ready; and, as a second contender,
    # from the launch of a daemon whose rows were queued first.
    assert data["mediad"]["clock_from"] == "enqueue into a ready daemon"
    assert data["mediad"]["ready_seconds"] > 0
    # Both ways say how long queueing the 200 paths took (mediad's own enqueue).
    assert data["mediad"]["enqueue_seconds"] > 0
    assert data["mediad_from_launch"]["enqueue_seconds"] > 0
    assert data["mediad_from_launch"]["clock_from"] == "launch"
    assert data["mediad_from_launch"]["done"] == 200
    # What the ready daemon's clock leaves out: the supervisor's start (its imports alone
    # take about 0.15 s of CPU) against 200 files (about 10 ms of its CPU).
    assert (
        data["mediad"]["cpu_seconds_supervisor"]
        < data["mediad_from_launch"]["cpu_seconds_supervisor"]
    ), (data["mediad"], data["mediad_from_launch"])
    assert ("mediad_from_launch_over_mediainfo_batched" in data["ratios"]) == installed
    assert data["mediad"]["done"] == 200  # the generated corpus is all real media
    assert data["ideal"]["done"] == 200
    assert data["noop"]["done"] == 2000
    assert data["mediad"]["insert_to_done"]["samples"] == 5
    assert [c["rows"] for c in data["claim_latency"]] == [10_000, 20_000]
    plan = data["claim_latency"][0]["plan"]
    # The claim's index since paused rows are skipped (migration 0009).
    assert "files_claim_ready_idx" in plan or "not available" in plan, plan
    for name in ("mediad_over_ideal", "noop_files_per_s"):
        assert name in data["ratios"]


def _e2e(*args: str) -> list[str]:
    return [sys.executable, "-m", "bench.e2e", *args]


def test_the_end_to_end_harness_runs_this_checkouts_daemon_or_another(
    test_dsn: str, tmp_path: Path
) -> None:
    """bench.e2e (two versions of mediad in turn): every row done, once, by the daemon
    of the directory given; a directory without mediad makes the run fail, not pass."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAD_")}
    command = _e2e("--files", "60", "--engine", "noop", "--dsn", test_dsn, "--mediad", str(ROOT))
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    run = json.loads(result.stdout.strip().splitlines()[-1])
    assert (run["done"], run["failed"]) == (60, 0)
    assert run["table"]["updates"] == 120  # a claim and a completion per row, no more
    assert 1 <= run["write_statements"] <= 60
    assert run["clock_from"] == "launch"  # the noop engine's rows are queued first

    # MediaInfo: rows queued into a daemon that is ready, or before its launch.
    for flags, clock_from in (([], "enqueue into a ready daemon"), (["--from-launch"], "launch")):
        engine = [*command[:4], "40", "--engine", "mediainfo", *command[7:], *flags]
        result = subprocess.run(
            engine, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stdout + result.stderr
        run = json.loads(result.stdout.strip().splitlines()[-1])
        assert (run["done"], run["failed"], run["clock_from"]) == (40, 0, clock_from)

    empty = tmp_path / "no-mediad-here"
    empty.mkdir()
    elsewhere = subprocess.run(
        [*command[:-1], str(empty)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert elsewhere.returncode != 0


def test_the_end_to_end_harness_alternates_a_setting_against_none(test_dsn: str) -> None:
    """bench.e2e --versus (issue 19: the second reader on against off, in one run): each
    round runs both, every other round the variant first, and a last line judges them."""
    result = bench_command(
        "bench.e2e",
        *("--files", "30", "--repeat", "2", "--dsn", test_dsn),
        *("--versus", "EXTRACT_SECOND_READER=true"),
        timeout=180,
    )
    *runs, last = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [(run["round"], run["config"]) for run in runs] == [
        (1, "base"),
        (1, "versus"),
        (2, "versus"),
        (2, "base"),
    ]
    assert all((run["done"], run["failed"]) == (30, 0) for run in runs)
    summary = last["summary"]
    assert summary["settings"] == ["EXTRACT_SECOND_READER=true"]
    assert len(summary["ratio_by_round"]) == 2 and summary["ratio_median"] > 0
    assert len(summary["load_average"]["before"]) == 3


def test_the_write_cost_replay_claims_and_writes_back_every_row(test_dsn: str) -> None:
    """bench.writecost: each run claims and writes back every row with real records (it
    fails otherwise), and says the backend's CPU per row of each statement. pglz alone:
    a server may be built without lz4."""
    result = bench_command(
        "bench.writecost",
        *("--dsn", test_dsn, "--rows", "60", "--batch", "25", "--repeat", "2"),
        *("--compression", "pglz"),
    )
    lines = result.stdout.strip().splitlines()
    runs = [json.loads(line) for line in lines[:-1]]
    assert [(r["repetition"], r["compression"], r["rows"]) for r in runs] == [
        (1, "pglz", 60),
        (2, "pglz", 60),
    ]
    assert all(r["complete_us_per_row"] >= 0 and r["claim_us_per_row"] >= 0 for r in runs)
    assert lines[-1].startswith("pglz: claim + complete, median ")


def test_the_library_cost_comparison_reads_every_file_with_both_libraries(
    tmp_path: Path,
) -> None:
    """bench.libcost against mediad's own library: a row per corpus file, and no field
    that one library reports and the other does not (it is the same library)."""
    from pymediainfo import MediaInfo

    from tests.support.media import make_corpus

    names = make_corpus(tmp_path)
    own = str(MediaInfo._get_library()[0]._name)
    result = bench_command(
        "bench.libcost",
        *("--other", own, "--source", str(tmp_path), "--reads", "2", "--passes", "1"),
    )
    rows = [line.split() for line in result.stdout.splitlines()[2:-1]]
    assert sorted(row[0] for row in rows) == sorted(names), result.stdout
    assert all(row[-1] == "-" for row in rows), result.stdout
    assert result.stdout.splitlines()[-1].startswith("all (sum)")


def test_the_stage_breakdown_prints_every_stage() -> None:
    """bench.stages on a tiny corpus: a row per stage, and the CLI rows when installed."""
    result = subprocess.run(
        [sys.executable, "-m", "bench.stages", "--files", "40", "--rounds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    stages = [line.split("  ")[0].strip() for line in result.stdout.splitlines()[2:]]
    expected = ["read", "checks", "view", "gate", "no reader", "extract"]
    if shutil.which("mediainfo"):
        expected = ["cli", "cli, mediad's lib", *expected]
    assert stages == expected, result.stdout


def test_the_network_mount_comparison_reads_every_file_through_the_mount(
    test_dsn: str, tmp_path: Path
) -> None:
    """bench.nas: each contender (here also this checkout's mediad run as the compared
    one) reads every file through the lagging FUSE mount (the mount saw the reads), every
    row ends done, and the table has every contender."""
    from tests.support.fusefs import unavailable

    if reason := unavailable():
        pytest.skip(reason)
    out = tmp_path / "nas.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAD_")}
    command = [sys.executable, "-m", "bench.nas", "--files", "24", "--workers", "2"]
    options = ["--rounds", "1", "--lag-ms", "1", "--compare", str(ROOT), "--dsn", test_dsn]
    result = subprocess.run(
        [*command, *options, "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    contenders = ["mediad", "mediad_from_launch", "compared", "compared_from_launch"]
    if shutil.which("mediainfo"):
        contenders.append("mediainfo_cli")
        assert "mediad / CLI" in result.stdout
    data = json.loads(out.read_text())
    row = data["by_workers"]["2"]
    for name in contenders:
        assert name.replace("_", " ") in result.stdout, (name, result.stdout)
        run = row[name]["rounds"][0]
        finished = run["recognised"] if name == "mediainfo_cli" else run["done"]
        assert finished == 24, run
        # Every file's bytes were asked of the mount: at least one read each.
        assert run["ops_per_file"]["read"] >= 1, run["ops_per_file"]

    # Without FUSE (here: no fusermount3 on the PATH) it says why and measures nothing.
    bare = subprocess.run(
        [*command, "--out", str(tmp_path / "none.json")],
        cwd=ROOT,
        env={**env, "PATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bare.returncode == 0, bare.stderr
    assert "skipped, no FUSE mount can be made here: fusermount3 is missing" in bare.stderr
    assert not (tmp_path / "none.json").exists()


def test_the_dead_mount_comparison_runs_both_modes_and_reports_the_mount(
    test_dsn: str, tmp_path: Path
) -> None:
    """bench.nas --dead-mount, one round: every local file ends done in both modes, the
    dead mount's files never do (its reads block for the whole round) and stay uncharged
    beyond the claim's attempt, no process of either daemon is left, and the table has
    every row."""
    from tests.support.fusefs import unavailable

    if reason := unavailable():
        pytest.skip(reason)
    out = tmp_path / "dead.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAD_")}
    command = [sys.executable, "-m", "bench.nas", "--dead-mount", "--files", "40"]
    options = ["--dead-files", "4", "--rounds", "1", "--timeout", "2", "--dsn", test_dsn]
    result = subprocess.run(
        [*command, *options, "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for line in (
        "alone files/s",
        "dead mount files/s",
        "median",
        "dead mount / alone:",
        "target >= 0.9",
        "on the dead mount, when the last local file was done:",
        "round 1: after",
        "processes in D:",
        "dead rows:",
    ):
        assert line in result.stdout, (line, result.stdout)
    data = json.loads(out.read_text())
    summary = data["dead_mount"]["summary"]
    assert len(summary["ratio_by_round"]) == 1
    alone = data["dead_mount"]["rounds"]["alone"][0]
    dead = data["dead_mount"]["rounds"]["dead_mount"][0]
    for run in (alone, dead):
        assert (run["local_done"], run["local_failed"]) == (40, 0), run
        assert run["processes_left_after_unmount"] == 0, run
        assert run["exit_code"] == 0, run
    assert (alone["dead_files"], dead["dead_files"]) == (0, 4)
    # No dead file was done (its reads never answered) and none was charged a failure.
    rows = dead["dead_rows"]
    assert sum(r["rows"] for r in rows) == 4, rows
    assert all(r["state"] in ("pending", "running") for r in rows), rows
    assert dead["mount_status"]["fstype"] == "fuse.mediad-test", dead["mount_status"]
