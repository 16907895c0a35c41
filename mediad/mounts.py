"""Mounts: which filesystem a stored path lives on, without touching the file.

A stat() of a file on a dead network mount can hang for good, so the supervisor never
asks the filesystem where a path lives: it matches the path against the mount table
(/proc/self/mountinfo, which the kernel answers from memory). Everything here is pure
except `read_mount_table`, the one read of that file.

The stall state machine and the cap rule, pure too, are in mediad/daemon/mounts.py.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass

MOUNTINFO = "/proc/self/mountinfo"

# Filesystems whose reads wait on a server or a user-space process that can go away:
# a read there may block for as long as it is gone (FUSE and hard NFS even past SIGKILL).
# Any "fuse.*" type (sshfs, rclone, s3fs, glusterfs...) counts too, see is_network.
# autofs is here because touching an automount point mounts a (usually network) share,
# which waits on its server.
NETWORK_FSTYPES = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "ncpfs",
        "fuse",
        "fuseblk",
        "9p",
        "virtiofs",
        "ceph",
        "glusterfs",
        "lustre",
        "gpfs",
        "afs",
        "coda",
        "ocfs2",
        "gfs2",
        "beegfs",
        "orangefs",
        "davfs",
        "autofs",
    }
)

_OCTAL_ESCAPE = re.compile(rb"\\([0-7]{3})")


def is_network(fstype: str) -> bool:
    return fstype in NETWORK_FSTYPES or fstype.startswith("fuse.")


@dataclass(frozen=True)
class Mount:
    point: str
    fstype: str
    source: str
    device: int  # os.makedev(major, minor): what os.stat() reports as st_dev

    @property
    def network(self) -> bool:
        return is_network(self.fstype)


# Stands in when the table has no "/" (an empty or unreadable mountinfo), so that every
# path has a mount; a device of 0 matches no st_dev a worker reports.
ROOT = Mount(point="/", fstype="unknown", source="", device=0)


def _unescape(text: str) -> str:
    """mountinfo writes space, tab, newline and backslash as \\ooo. Undone on bytes, so a
    name that is not UTF-8 comes back as os.fsdecode gives it to every other path."""
    raw = _OCTAL_ESCAPE.sub(lambda m: bytes([int(m.group(1), 8) & 0xFF]), os.fsencode(text))
    return os.fsdecode(raw)


@dataclass(frozen=True)
class _Entry:
    mount_id: int
    parent_id: int
    mount: Mount


def _parse_line(line: str) -> _Entry | None:
    # 36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue
    # The optional fields before "-" vary in number, hence the split on the separator.
    head, sep, tail = line.partition(" - ")
    if not sep:
        return None
    fields_ = head.split()
    rest = tail.split()
    if len(fields_) < 6 or not rest:
        return None
    try:
        mount_id, parent_id = int(fields_[0]), int(fields_[1])
        major, _, minor = fields_[2].partition(":")
        device = os.makedev(int(major), int(minor))
    except ValueError:
        return None
    point = _unescape(fields_[4])
    source = _unescape(rest[1]) if len(rest) > 1 else ""
    return _Entry(mount_id, parent_id, Mount(point, _unescape(rest[0]), source, device))


def _is_under(path: str, point: str) -> bool:
    return point == "/" or path == point or path.startswith(point + "/")


def parse_mountinfo(text: str) -> list[Mount]:
    """The visible mounts, in the kernel's order. A mount over a directory hides what was
    mounted at or below it before (unless that was mounted on top of it, as its child);
    the kernel lists mounts in the order they were made, so the top one comes last.
    Lines that do not parse are skipped: a strange line must not stop the daemon."""
    entries = [e for e in (_parse_line(line) for line in text.splitlines()) if e is not None]
    parents = {e.mount_id: e.parent_id for e in entries}

    def descends_from(entry: _Entry, ancestor: int) -> bool:
        seen: set[int] = set()
        current = entry.parent_id
        while current in parents and current not in seen:
            if current == ancestor:
                return True
            seen.add(current)
            current = parents[current]
        return current == ancestor

    visible: list[_Entry] = []
    for entry in entries:
        point = entry.mount.point
        visible = [
            e
            for e in visible
            if not _is_under(e.mount.point, point) or descends_from(e, entry.mount_id)
        ]
        visible.append(entry)
    return [e.mount for e in visible]


def normalise(path: str) -> str:
    """Lexically (no filesystem access): "//a/./b/" is "/a/b". ".." is folded too, as the
    stored path names it; a symlink that leaves its mount is corrected by the worker's
    st_dev (MountTable.correct)."""
    normal = posixpath.normpath(path)
    return "/" + normal.lstrip("/") if normal.startswith("/") else normal


class MountTable:
    def __init__(self, mounts: Iterable[Mount]) -> None:
        self.mounts = list(mounts)
        self._by_point = {m.point: m for m in self.mounts}  # the last, visible one wins
        self._by_device: dict[int, Mount] = {}
        for mount in self.mounts:
            self._by_device.setdefault(mount.device, mount)
        self._root = self._by_point.get("/", ROOT)

    def for_path(self, path: str) -> Mount:
        """The mount holding `path`: the longest mount point that is a whole-component
        prefix, so /mnt/nas2/x is not under /mnt/nas. Relative paths get "/"."""
        if not path.startswith("/"):
            return self._root
        current = normalise(path)
        while current != "/":
            found = self._by_point.get(current)
            if found is not None:
                return found
            current = posixpath.dirname(current)
        return self._root

    def for_device(self, device: int) -> Mount | None:
        """The mount with this st_dev (a bind mount shares its source's device: the first
        listed is returned, which is why `correct` keeps a guess that already matches)."""
        return self._by_device.get(device)

    def correct(self, guess: Mount, device: int) -> Mount:
        """The mount a worker really read from, given the st_dev it reported: the guess by
        path if its device agrees (or the device is unknown), else the mount of that
        device. A symlink into another mount is what makes them differ."""
        if guess.device == device:
            return guess
        return self.for_device(device) or guess

    def unknown_points(self, points: Iterable[str]) -> list[str]:
        """Configured mount points that are not mount points here, for a warning."""
        return [p for p in points if normalise(p) not in self._by_point]


def read_mount_table(path: str = MOUNTINFO) -> MountTable:
    """The only effect in this module. /proc/self/mountinfo is made by the kernel from its
    own tables and never asks a mounted filesystem, so reading it cannot hang on a dead
    mount. Read as bytes so that mount points that are not UTF-8 keep their bytes."""
    with open(path, "rb") as handle:
        return MountTable(parse_mountinfo(os.fsdecode(handle.read())))
