"""Mounts: the mount table, the stall state machine and the cap rule. Pure, no database."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mediad.daemon.mounts import MountState, worker_cap
from mediad.mounts import (
    Mount,
    MountTable,
    is_network,
    normalise,
    parse_mountinfo,
    read_mount_table,
)

# As a host with a NAS, an SMB share, sshfs, containers and an overmount shows it; the
# kernel lists "/" after mounts made on it early at boot (their parent is "/").
MOUNTINFO = r"""22 27 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
24 27 0:6 / /dev rw,nosuid,relatime shared:2 - devtmpfs udev rw,size=8123456k,mode=755
25 24 0:23 / /dev/shm rw,nosuid,nodev shared:3 - tmpfs tmpfs rw
27 1 8:2 / / rw,relatime shared:1 - ext4 /dev/sda2 rw,errors=remount-ro
30 25 0:27 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=4096k
40 27 0:40 / /mnt/nas rw,relatime shared:20 master:7 - nfs4 nas.lan:/export/media rw,vers=4.2,hard
41 27 0:41 / /mnt/nas2 rw,relatime shared:21 - cifs //server/share rw,vers=3.1.1
42 27 0:42 / /mnt/My\040Films rw,nosuid shared:22 - fuse.sshfs me@host:/srv/My\040Films rw,user_id=0
43 27 0:43 / /var/lib/docker/overlay2/1f2e/merged rw - overlay overlay rw,lowerdir=/a
44 40 0:44 / /mnt/nas/archive rw,relatime shared:23 - nfs nas.lan:/export/archive rw,vers=3
45 27 0:45 / /srv/media rw,relatime - nfs4 old.lan:/media rw
46 27 8:17 / /srv rw,relatime - ext4 /dev/sdb1 rw
47 46 0:47 / /srv/media/tv rw,relatime - nfs4 new.lan:/tv rw
48 27 0:48 / /mnt/back\134slash\011tab rw - tmpfs tmpfs rw
this line is not mountinfo
49 27 x:y / /broken rw - ext4 /dev/sdz rw
"""


@pytest.fixture
def table() -> MountTable:
    return MountTable(parse_mountinfo(MOUNTINFO))


def test_parse_reads_point_type_source_and_device(table: MountTable) -> None:
    nas = table.for_path("/mnt/nas")
    assert nas == Mount("/mnt/nas", "nfs4", "nas.lan:/export/media", os.makedev(0, 40))
    assert table.for_path("/") == Mount("/", "ext4", "/dev/sda2", os.makedev(8, 2))
    points = [m.point for m in table.mounts]
    assert "/broken" not in points  # a bad major:minor is skipped, not fatal


def test_escaped_spaces_tabs_and_backslashes_are_decoded(table: MountTable) -> None:
    films = table.for_path("/mnt/My Films/Heat (1995)/heat.mkv")
    assert films.point == "/mnt/My Films"
    assert films.fstype == "fuse.sshfs"
    assert films.source == "me@host:/srv/My Films"
    assert table.for_path("/mnt/back\\slash\ttab/a").fstype == "tmpfs"


def test_escapes_of_bytes_that_are_not_utf8_give_the_names_os_fsdecode_gives() -> None:
    mounts = parse_mountinfo("50 1 0:50 / /mnt/caf\\351 rw - nfs h:/x rw\n")
    assert mounts[0].point == os.fsdecode(b"/mnt/caf\xe9")


def test_an_overmount_hides_what_was_mounted_at_or_below_it(table: MountTable) -> None:
    # /dev/shm mounted twice: the top one (listed last) is what paths reach.
    assert table.for_path("/dev/shm/x").device == os.makedev(0, 27)
    # /srv mounted over /srv/media: the old NFS share is out of reach...
    assert table.for_path("/srv/media/film.mkv").point == "/srv"
    assert all(m.point != "/srv/media" for m in table.mounts)
    # ...but a mount made later on top of the new /srv is visible.
    assert table.for_path("/srv/media/tv/ep1.mkv").source == "new.lan:/tv"
    # Mounts made on "/" before "/" is listed are its children, not hidden by it.
    assert table.for_path("/proc/self").fstype == "proc"


def test_longest_prefix_on_whole_components(table: MountTable) -> None:
    assert table.for_path("/mnt/nas/movies/a.mkv").point == "/mnt/nas"
    assert table.for_path("/mnt/nas2/x").point == "/mnt/nas2"
    assert table.for_path("/mnt/nas/archive/old.avi").point == "/mnt/nas/archive"
    assert table.for_path("/mnt/nasty/file").point == "/"
    assert table.for_path("/mnt/nas/./archive/../b.mkv").point == "/mnt/nas"
    assert table.for_path("//mnt//nas/x").point == "/mnt/nas"
    assert table.for_path("relative/file").point == "/"


def test_root_always_matches_even_without_a_root_line() -> None:
    empty = MountTable(parse_mountinfo(""))
    assert empty.for_path("/anything/at/all").point == "/"
    nas_only = MountTable(parse_mountinfo("40 1 0:40 / /mnt/nas rw - nfs4 h:/x rw\n"))
    assert nas_only.for_path("/home/me/a.mkv").point == "/"
    assert nas_only.for_path("/mnt/nas/a.mkv").fstype == "nfs4"


def test_for_device_and_correcting_a_guess(table: MountTable) -> None:
    nas = table.for_path("/mnt/nas/a.mkv")
    assert table.for_device(os.makedev(0, 41)) == table.for_path("/mnt/nas2")
    assert table.for_device(os.makedev(9, 9)) is None
    # A symlink under / pointing into the NAS: the worker's st_dev tells the truth.
    guess = table.for_path("/home/me/link-to-nas.mkv")
    assert table.correct(guess, nas.device) == nas
    assert table.correct(nas, nas.device) is nas
    assert table.correct(guess, os.makedev(9, 9)) is guess


def test_a_bind_mount_shares_its_device_and_keeps_the_path_guess() -> None:
    text = (
        "27 1 8:2 / / rw - ext4 /dev/sda2 rw\n"
        "60 27 0:60 / /mnt/nas rw - nfs4 h:/media rw\n"
        "61 27 0:60 /movies /srv/movies rw - nfs4 h:/media rw\n"
    )
    table = MountTable(parse_mountinfo(text))
    bind = table.for_path("/srv/movies/a.mkv")
    assert table.correct(bind, os.makedev(0, 60)) is bind
    assert table.for_device(os.makedev(0, 60)) == table.for_path("/mnt/nas")


@pytest.mark.parametrize(
    ("fstype", "network"),
    [
        ("nfs", True),
        ("nfs4", True),
        ("cifs", True),
        ("smb3", True),
        ("fuse", True),
        ("fuse.sshfs", True),
        ("fuse.rclone", True),
        ("fuseblk", True),
        ("9p", True),
        ("ceph", True),
        ("glusterfs", True),
        ("ext4", False),
        ("xfs", False),
        ("btrfs", False),
        ("overlay", False),
        ("tmpfs", False),
        ("proc", False),
        ("fusectl", False),
    ],
)
def test_network_and_fuse_filesystems(fstype: str, network: bool) -> None:
    assert is_network(fstype) is network


def test_the_real_mount_table_agrees_with_stat(tmp_path: Path) -> None:
    table = read_mount_table()
    for path in ("/", str(tmp_path), "/proc/self"):
        mount = table.for_path(path)
        assert mount.device == os.stat(path).st_dev, path
        assert table.correct(mount, os.stat(path).st_dev) is mount
    assert table.for_path("/proc/self/status").fstype == "proc"


def test_configured_points_that_are_not_mount_points(table: MountTable) -> None:
    assert table.unknown_points(["/mnt/nas", "/mnt/nas2/", "/mnt/nas/movies"]) == [
        "/mnt/nas/movies"
    ]


def test_normalise_is_lexical() -> None:
    assert normalise("//a/./b/") == "/a/b"
    assert normalise("/a/../b") == "/b"
    assert normalise("/") == "/"


# --- the stall state machine ------------------------------------------------------------


def state() -> MountState:
    return MountState("/mnt/nas", stall_timeouts=3, stall_window_seconds=120, probe_seconds=15)


def test_three_timeouts_within_the_window_stall_the_mount() -> None:
    s = state()
    for t, name in ((100.0, "a"), (150.0, "b"), (210.0, "c")):
        s.record_timeout(t, f"/mnt/nas/{name}.mkv")
    assert s.timeouts_recent(210.0) == 3
    assert s.should_stall(210.0)
    s.stall(210.0)
    assert s.stalled and s.stalled_since == 210.0
    assert s.last_timed_out_path == "/mnt/nas/c.mkv"
    assert not s.should_stall(211.0)  # already stalled


def test_two_timeouts_do_not_stall() -> None:
    s = state()
    s.record_timeout(100.0, "/mnt/nas/a.mkv")
    s.record_timeout(101.0, "/mnt/nas/b.mkv")
    assert s.timeouts_recent(102.0) == 2
    assert not s.should_stall(102.0)
    assert not s.stalled


def test_old_timeouts_fall_out_of_the_window() -> None:
    s = state()
    s.record_timeout(0.0, "/mnt/nas/a.mkv")
    s.record_timeout(60.0, "/mnt/nas/b.mkv")
    s.record_timeout(120.0, "/mnt/nas/c.mkv")  # the first is exactly one window old: out
    assert s.timeouts_recent(120.0) == 2
    assert not s.should_stall(120.0)
    assert s.timeouts_recent(200.0) == 1
    assert s.timeouts_recent(1000.0) == 0


def test_probe_is_due_every_interval_one_at_a_time_and_resumes_the_mount() -> None:
    s = state()
    assert not s.probe_due(0.0)  # an ok mount is never probed
    for t in (1.0, 2.0, 3.0):
        s.record_timeout(t, f"/mnt/nas/{t}.mkv")
    s.stall(3.0)
    assert not s.probe_due(17.9)
    assert s.probe_due(18.0)
    s.probe_started(18.0)
    assert s.probe_running
    assert not s.probe_due(100.0)  # at most one probe at a time
    s.probe_failed(33.0)  # killed at its deadline
    assert s.stalled and not s.probe_running
    assert not s.probe_due(47.0)
    assert s.probe_due(48.0)
    s.probe_started(48.0)
    s.probe_answered(48.5)
    assert not s.stalled and not s.probe_running
    assert not s.probe_due(1000.0)
    # The timeouts that stalled it are forgotten: one more does not stall it again.
    s.record_timeout(49.0, "/mnt/nas/d.mkv")
    assert s.timeouts_recent(49.0) == 1
    assert not s.should_stall(49.0)


# --- caps ---------------------------------------------------------------------------------

NAS = Mount("/mnt/nas", "nfs4", "h:/x", 40)
SSHFS = Mount("/mnt/s", "fuse.sshfs", "me@h:/", 41)
LOCAL = Mount("/", "ext4", "/dev/sda2", 2050)


@pytest.mark.parametrize(
    ("mount", "pool", "others", "override", "cap"),
    [
        (NAS, 8, True, None, 4),  # competition: half
        (NAS, 8, False, None, 8),  # alone: all of them
        (SSHFS, 3, True, None, 1),
        (NAS, 1, True, None, 1),  # at least one
        (LOCAL, 8, True, None, 8),  # local: no cap
        (LOCAL, 8, False, None, 8),
        (NAS, 8, True, 6, 6),  # the override wins, competition or not
        (NAS, 8, False, 2, 2),
        (LOCAL, 8, True, 3, 3),  # an override caps a local disk too
        (NAS, 4, False, 10, 4),  # never more than the pool
    ],
)
def test_worker_cap(mount: Mount, pool: int, others: bool, override: int | None, cap: int) -> None:
    assert worker_cap(mount, pool, others, override) == cap


def test_overlay_and_tmpfs_are_local_mounts(table: MountTable) -> None:
    merged = table.for_path("/var/lib/docker/overlay2/1f2e/merged/etc/hosts")
    assert (merged.fstype, merged.network) == ("overlay", False)
    assert not table.for_path("/dev/shm/x").network
    assert table.for_path("/mnt/nas/a").network
