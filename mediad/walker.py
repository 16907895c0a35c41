"""The walk of `mediad scan`, run as a process of its own (mediad/scan.py starts it).

A stat on a dead NFS, SMB or FUSE mount can block for hours, and no signal interrupts it.
In a separate process the command can give up on it: this process walks, and reports to
the command over a pipe: batches of files, the directories it cannot read, and a beat
every BEAT seconds saying where it is and how far it got. When the beats stop counting up,
the command knows the walk is stuck, and in which directory.

Runs as a script (`python -I -S walker.py FD BEAT ROOT...`) on the standard library
alone, so that it starts fast and imports nothing from wherever it is started. Messages
are pickled tuples, each framed by its length (HEADER):

- ("beat", directory, steps): steps counts the directories and entries looked at so far
- ("batch", [(path, size_bytes, mtime_us, sidecar_size_bytes, sidecar_mtime_us), ...]):
  regular files, symlinks to files too; the last two describe the file's XMP sidecar
  (sidecar_names), None when it has none. Sidecars are not files of their own here.
- ("unreadable", directory, reason)
- ("not_a_directory", root): nothing is walked then
- ("error", text): the walk itself failed
- ("done",)
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import struct
import sys
import threading
import time

HEADER = struct.Struct("!I")
BATCH = 1000
# Without progress for this long, `mediad scan` reports a tree unreachable and stops
# (`--stall-seconds`). A stall shorter than the beat could not be told from one.
STALL_SECONDS = 30.0
MIN_STALL_SECONDS = 1.0
# How often the walk says where it is: well under the shortest stall allowed.
BEAT_SECONDS = 0.25
File = tuple[str, int, int, int | None, int | None]
SIDECAR_SUFFIX = ".xmp"


def sidecar_names(name: str) -> tuple[str, ...]:
    """The names an XMP sidecar of the file `name` may have, in the order they are looked
    for, in the file's own directory: `name.ext.xmp`, else `name.xmp`, each also in upper
    case (`IMG_0001.XMP`, as some cards and photo managers write it: is_sidecar keeps such
    a file from being a row, so it must be read as the sidecar it is)."""
    stem, ext = os.path.splitext(name)
    bases = (name, stem) if ext else (name,)
    return tuple(base + suffix for base in bases for suffix in (SIDECAR_SUFFIX, ".XMP"))


def is_sidecar(name: str) -> bool:
    """An XMP file: never a file of its own for mediad, whether or not it has a partner."""
    return name.lower().endswith(SIDECAR_SUFFIX)


class Channel:
    """The pipe to the command. Files gather in `pending` (list.append is atomic, so the
    walk appends without a lock) and leave in batches, from the walk when a batch is full
    and from the beat when they have waited: a walk that blocks has sent all it found."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.lock = threading.Lock()
        self.pending: list[File] = []

    def send(self, message: tuple[object, ...]) -> None:
        with self.lock:
            self._write(message)

    def flush(self) -> None:
        with self.lock:
            count = len(self.pending)
            if count:
                batch = self.pending[:count]
                del self.pending[:count]  # what the walk appended meanwhile stays
                self._write(("batch", batch))

    def _write(self, message: tuple[object, ...]) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        view = memoryview(HEADER.pack(len(data)) + data)
        while view:
            view = view[os.write(self.fd, view) :]


class Position:
    """Where the walk is: written by the walk, read by the beat."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.steps = 0


def walk(roots: list[str], channel: Channel, position: Position) -> None:
    """Every regular file under the roots. Symlinked directories are not descended (no
    loops, no escaping the tree by accident); symlinked files are listed, and the
    extractor's gate decides whether they may be read."""
    for root in roots:
        position.directory = root
        position.steps += 1
        if not os.path.isdir(root):
            channel.send(("not_a_directory", root))
            return
    pending = channel.pending
    stack = list(reversed(roots))
    while stack:
        directory = stack.pop()
        position.directory = directory
        position.steps += 1
        try:
            with os.scandir(directory) as entries:
                children = sorted(entries, key=lambda e: e.name)
        except OSError as exc:
            channel.send(("unreadable", directory, exc.strerror or str(exc)))
            continue
        # From the listing itself: only a file that has a sidecar costs one more stat.
        sidecars = {entry.name: entry for entry in children if is_sidecar(entry.name)}
        subdirs: list[str] = []
        for entry in children:
            position.steps += 1
            try:
                if entry.is_dir(follow_symlinks=False):
                    subdirs.append(entry.path)
                    continue
                if entry.name in sidecars or not entry.is_file():
                    continue
                st = entry.stat()
            except OSError:
                continue  # vanished or a broken symlink: nothing to enqueue
            side = _sidecar(sidecars, entry.name) if sidecars else None
            pending.append(
                (
                    entry.path,
                    st.st_size,
                    st.st_mtime_ns // 1000,
                    None if side is None else side.st_size,
                    None if side is None else side.st_mtime_ns // 1000,
                )
            )
            if len(pending) >= BATCH:
                channel.flush()
        stack.extend(reversed(subdirs))
    channel.flush()
    channel.send(("done",))


def _sidecar(sidecars: dict[str, os.DirEntry[str]], name: str) -> os.stat_result | None:
    """The stat of the file's sidecar among the directory's XMP files, None if none."""
    for candidate in sidecar_names(name):
        entry = sidecars.get(candidate)
        if entry is None:
            continue
        try:
            if entry.is_file():
                return entry.stat()
        except OSError:
            continue  # vanished or a broken symlink: as if there were none
    return None


def _beat(channel: Channel, position: Position, interval: float) -> None:
    try:
        while True:
            time.sleep(interval)
            channel.flush()
            channel.send(("beat", position.directory, position.steps))
    except OSError:
        return  # the command has gone: the walk ends at its next write


def main(argv: list[str]) -> int:
    # Ctrl-C reaches the whole process group: the command handles it and ends this walk.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    fd, interval, roots = int(argv[1]), float(argv[2]), argv[3:]
    channel = Channel(fd)
    position = Position(roots[0])
    try:
        channel.send(("beat", position.directory, position.steps))
        threading.Thread(target=_beat, args=(channel, position, interval), daemon=True).start()
        walk(roots, channel, position)
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            return 0  # the command has gone
        return _fail(channel, exc)
    except Exception as exc:
        return _fail(channel, exc)
    return 0


def _fail(channel: Channel, exc: BaseException) -> int:
    with contextlib.suppress(OSError):
        channel.send(("error", f"{type(exc).__name__}: {exc}"))
    return 1


if __name__ == "__main__":
    # No interpreter shutdown: the beat thread may hold the pipe, and nothing is buffered.
    os._exit(main(sys.argv))
