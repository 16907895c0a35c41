"""The fleet as readers show it (mediad/fleet.py) and `mediad top`'s layout
(mediad/commands/report/topview.py): states, ages, the figures per daemon, and lines that
fit 80 columns whatever the rows hold."""

from __future__ import annotations

from dataclasses import replace

from mediad.commands.report.topview import Snapshot, fit, fit_left, layout
from mediad.fleet import count_by_state, daemon_json, daemon_name, elapsed, per_daemon
from mediad.models import DaemonReport, DaemonSeen, InFlight, MountReport


def report(pid: int = 10, instance: str = "a", **changes: object) -> DaemonReport:
    base = DaemonReport(
        owner=f"host1:{pid}:{instance}" if instance else f"host1:{pid}",
        host="host1",
        pid=pid,
        instance=instance,
        mediad_version="0.1.0",
        uptime_seconds=60.0,
        heartbeat_seconds=2.0,
        workers_target=2,
        workers_alive=2,
        workers_stuck=0,
        workers_stuck_limit=2,
        in_flight=(InFlight("/media/a.mkv", 101, "/media", 4.0),),
        files_finished=7,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def seen(rep: DaemonReport, age: float = 0.5, live: bool = True) -> DaemonSeen:
    return DaemonSeen(rep, rep.state, age, live)


def test_a_daemon_is_gone_when_its_row_is_not_live_whatever_it_wrote() -> None:
    assert seen(report()).state_now == "running"
    assert seen(report(draining=True)).state_now == "draining"
    assert seen(report(draining=True), age=7.0, live=False).state_now == "gone"
    counts = count_by_state([seen(report()), seen(report(pid=11), 9.0, live=False)])
    assert counts == {"running": 1, "draining": 0, "degraded": 0, "gone": 1}


def test_seconds_on_a_file_grow_with_the_row_age_only_while_the_daemon_lives() -> None:
    assert elapsed(seen(report(), age=1.5), 4.0) == 5.5
    assert elapsed(seen(report(), age=30.0, live=False), 4.0) == 4.0


def test_status_json_of_a_daemon_has_exactly_its_documented_keys() -> None:
    entry = daemon_json(seen(report(), age=1.0))
    assert list(entry) == [
        "owner", "host", "pid", "instance", "state", "workers", "heartbeat_age_s",
        "mounts", "in_flight",
    ]  # fmt: skip
    assert entry["workers"] == {"target": 2, "alive": 2, "stuck": 0}
    assert entry["in_flight"] == [
        {"path": "/media/a.mkv", "worker_pid": 101, "mount": "/media", "seconds": 5.0}
    ]


def test_a_restarted_daemon_is_up_under_its_name_beside_its_killed_self() -> None:
    assert daemon_name(report()) == "host1:a" and daemon_name(report(instance="")) == "host1"
    killed = seen(report(pid=10, workers_stuck=1), age=600.0, live=False)
    again = seen(report(pid=20, files_finished=3), age=0.2)
    figures = per_daemon([killed, again])
    assert list(figures) == ["host1:a"]
    up = figures["host1:a"]
    assert (up.up, up.in_flight, up.workers_stuck, up.files_finished) == (True, 1, 0, 3)
    assert up.heartbeat_age_seconds == 0.2
    gone = per_daemon([killed])["host1:a"]
    assert (gone.up, gone.in_flight, gone.heartbeat_age_seconds) == (False, 0, 600.0)


def snapshot(*daemons: DaemonSeen) -> Snapshot:
    return Snapshot(
        database="postgresql://mediad@db.example.org:5432/mediad",
        counts={"pending": 1200, "running": 4, "done": 98765432, "failed": 12},
        done_per_s=41.25,
        failed_per_s=0.1,
        oldest_pending_seconds=3725.0,
        failures={"timeout": 3, "unsupported": 2, "corrupt": 1},
        daemons=list(daemons),
    )


def test_the_top_view_fits_80_columns_with_long_names_and_paths() -> None:
    deep = "/mnt/nas/" + "/".join(f"directory-{i:02d}" for i in range(12)) + "/the-file.mkv"
    nas = MountReport("/mnt/nas", "nfs4", "stalled", 1, 1, 3)
    busy = report(
        instance="a-very-long-instance-name-for-this-host",
        mounts=(nas,),
        in_flight=(
            InFlight("/media/quick.mkv", 101, "/media", 0.3),
            InFlight(deep, 102, "/mnt/nas", 4000.0),
        ),
    )
    killed = seen(report(pid=99, instance="b"), age=90.0, live=False)
    lines = layout(snapshot(seen(busy), killed), 80)
    texts = [line.text for line in lines]
    assert max(map(len, texts)) <= 80, texts
    assert all(text.isascii() and "\x1b" not in text for text in texts)
    assert texts[1] == "queue: pending 1200  running 4  done 98765432  failed 12"
    assert "failures, last 5 min: timeout 3, unsupported 2, corrupt 1" in texts
    assert "stalled mount /mnt/nas on host1:a-very-long-instance-name-for-this-host" in texts
    assert any("gone" in t and " 99 " in t for t in texts)
    # Slowest first; a long path keeps its file name; a gone daemon's files are not read.
    workers = texts[texts.index(next(t for t in texts if t.lstrip().startswith("ELAPSED"))) :]
    assert workers[1].endswith("/the-file.mkv") and "1h06m" in workers[1]
    assert workers[2].endswith("/media/quick.mkv")
    assert len(workers) == 3


def test_every_line_fits_a_narrow_terminal_and_an_empty_fleet_says_so() -> None:
    texts = [line.text for line in layout(snapshot(seen(report())), 40)]
    assert max(map(len, texts)) <= 40
    empty = [line.text for line in layout(snapshot(), 80)]
    assert "no daemon has a row in this schema" in empty
    assert "no file is being read" in empty


def test_cuts_are_marked_and_keep_the_end_of_a_path() -> None:
    assert fit("abcdefghij", 10) == "abcdefghij" and fit("abcdefghijk", 10) == "abcdefg..."
    assert fit_left("/a/b/c/file.mkv", 12) == ".../file.mkv"


def test_with_no_live_row_a_name_counts_the_files_of_its_newest_gone_row_alone() -> None:
    """Killed twice within a day: the gauge follows the newest self, not a sum that jumps
    (rate() would read the drop back as a counter reset)."""
    older = seen(report(pid=10, files_finished=500), age=3000.0, live=False)
    newer = seen(report(pid=20, files_finished=40), age=30.0, live=False)
    assert per_daemon([older, newer])["host1:a"].files_finished == 40


def test_names_with_control_characters_never_reach_the_terminal_as_they_are() -> None:
    hostile = "/media/\x1b]0;owned\x07\x1b[31mred\nsecond-line.mkv"
    rep = report(in_flight=(InFlight(hostile, 101, "/media", 2.0),), instance="i\x1b[2J")
    texts = [line.text for line in layout(snapshot(seen(rep)), 80)]
    assert all(text.isprintable() for text in texts), texts
    assert any(text.endswith("\\x1b[31mred\\x0asecond-line.mkv") for text in texts), texts
