"""A real FUSE filesystem that stalls or lags on command: a stand-in for an NFS, SMB, sshfs
or rclone mount whose server hangs for hours or answers slowly.

`mounted(source)` (and the `fuse_mount` fixture in conftest.py) mounts a read-only
pass-through view of `source` and hands back a `FuseMount` to drive while it runs:

    fs.block("a.mkv", "b.mkv")   reads of these files wait until release()
    fs.block()                   no names: reads of every file wait
    fs.block(..., stat=True)     their stat (and so the lookup that open() does) waits too
    fs.lag(50)                   every read answers 50 ms late (lag(0) ends it)
    fs.release()                 every waiting operation goes on; nothing is blocked any more
    fs.held()                    the operations waiting right now, e.g. [("read", "a.mkv")]
    fs.counts()                  operations served since the mount, by kind (see below)

Each call returns once the server has applied it. Names are paths relative to the mount.

The filesystem is served by its own process (this file run as a script, mfusepy over
libfuse3), driven through its stdin and stdout, so an operation it holds never holds the
test process. In /proc/self/mountinfo the mount's type is `fuse.mediad-test` (FSTYPE) and
its source `mediad-test`. The kernel caches neither attributes, names nor data
(attr_timeout, entry_timeout and negative_timeout are 0, reads are direct_io): every stat
and every read reaches the server, so a block or a lag applies to each one.

What the kernel does with a process whose read the server holds (Linux, checked by
tests/e2e/test_fusefs.py): the process sleeps interruptibly (state S in /proc/PID/stat), but a
signal does not end the read. SIGKILL turns the sleep uninterruptible: the process stays,
in state D, until the server answers; only then does it die. Killing the server instead
aborts the connection: every waiting operation fails with ENOTCONN at once.

`counts()` is what the server was asked, for telling what a reader costs a network mount:
`getattr` (a name looked up, as a path walk does for each component under the mount, or a
stat: the high-level libfuse API serves both as a getattr), `open`, `read`, `read_bytes`
(the bytes asked for), `release`, `readlink`, `readdir`, `statfs`.

On leaving, `mounted` releases whatever is held, unmounts (`fusermount3 -u`, lazily with
`-uz` while a file is still open) and stops the server, killing it if it does not exit, so
no mount and no stuck process outlives a test. Should the test process die first, the
server sees its stdin close and does the same on its own.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from ctypes.util import find_library
from pathlib import Path
from typing import Any, TextIO

import pytest

SUBTYPE = "mediad-test"
FSTYPE = f"fuse.{SUBTYPE}"
MOUNT_TIMEOUT = 15.0
CONTROL_TIMEOUT = 10.0
# libfuse serves at most this many operations at once; with its default of 10, ten held
# reads would leave none to serve the rest. (libfuse 3.14 also logs "Ignoring invalid max
# threads value 4294967295": its own unset default, libfuse issue 1003; harmless.)
MAX_THREADS = 64


def unavailable() -> str | None:
    """Why no FUSE filesystem can be mounted here, or None when one can."""
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return "/dev/fuse is missing or not usable by this user"
    if shutil.which("fusermount3") is None:
        return "fusermount3 is missing (Debian package fuse3; `make system-deps` installs it)"
    if importlib.util.find_spec("mfusepy") is None:
        return "the mfusepy FUSE binding is missing (the `test` extra installs it)"
    if not (os.environ.get("FUSE_LIBRARY_PATH") or find_library("fuse3") or find_library("fuse")):
        return "libfuse is missing (Debian package fuse3)"
    return None


def mount_types() -> dict[str, str]:
    """Mount point -> filesystem type, as /proc/self/mountinfo lists them."""
    found = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields, _, rest = line.partition(" - ")
        mountpoint = fields.split()[4].replace("\\040", " ")
        found[mountpoint] = rest.split()[0]
    return found


def process_state(pid: int) -> str | None:
    """The state letter of a process (R, S, D, Z, ...), or None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


class FuseMount:
    """A running FUSE mount and the control of its server."""

    fstype = FSTYPE

    def __init__(self, source: Path, path: Path, server: subprocess.Popen[str], log: Path):
        self.source = source
        self.path = path
        self._server = server
        self._log = log

    @property
    def pid(self) -> int:
        """The server process."""
        return self._server.pid

    def live(self) -> bool:
        return mount_types().get(str(self.path)) == FSTYPE

    def block(self, *names: str, stat: bool = False) -> None:
        self._call("block", names=[_name(n) for n in names] if names else None, stat=stat)

    def lag(self, ms: float) -> None:
        self._call("lag", ms=ms)

    def release(self) -> None:
        self._call("release")

    def held(self) -> list[tuple[str, str]]:
        return [(op, name) for op, name in self._call("held")]

    def counts(self) -> dict[str, int]:
        return {str(op): int(n) for op, n in self._call("counts").items()}

    def log(self) -> str:
        return self._log.read_text(errors="replace")

    def close(self) -> None:
        """Release, unmount and stop the server: whatever state it is in."""
        if self._server.poll() is None:
            with contextlib.suppress(AssertionError, OSError):
                self.release()
        self._unmount()
        with contextlib.suppress(OSError):
            if self._server.stdin:
                self._server.stdin.close()
        try:
            self._server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            # A lazy unmount keeps the server serving whoever still has a file open; killing
            # it aborts the connection, so no operation waits on it any more.
            self._server.kill()
            self._server.wait()
        self._unmount()
        if self._server.stdout:
            self._server.stdout.close()

    def _unmount(self) -> None:
        if str(self.path) not in mount_types():
            return
        done = subprocess.run(["fusermount3", "-u", str(self.path)], capture_output=True)
        if done.returncode != 0:  # busy: a file is open; detach now, end when it closes
            subprocess.run(["fusermount3", "-u", "-z", str(self.path)], capture_output=True)

    def _call(self, op: str, **args: Any) -> Any:
        stdin, stdout = self._server.stdin, self._server.stdout
        assert stdin is not None and stdout is not None
        stdin.write(json.dumps({"op": op, **args}) + "\n")
        stdin.flush()
        ready, _, _ = select.select([stdout], [], [], CONTROL_TIMEOUT)
        line = stdout.readline() if ready else ""
        if not line:
            raise AssertionError(f"the FUSE server did not answer {op}:\n{self.log()}")
        reply = json.loads(line)
        if "error" in reply:
            raise AssertionError(f"the FUSE server refused {op}: {reply['error']}")
        return reply["value"]


def _name(name: str) -> str:
    if name.startswith("/"):
        raise ValueError(f"a name relative to the mount, not {name!r}")
    return name.strip("/")


@contextlib.contextmanager
def mounted(source: Path) -> Iterator[FuseMount]:
    """Mount a pass-through view of `source` under /tmp until the block ends."""
    from tests.support.processes import wait_until

    base = Path(tempfile.mkdtemp(prefix="mediad-fuse-"))
    mountpoint, log = base / "mnt", base / "server.log"
    mountpoint.mkdir()
    with log.open("w") as log_file:
        server = subprocess.Popen(
            [sys.executable, __file__, str(source.resolve()), str(mountpoint)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
        )
    fs = FuseMount(source, mountpoint, server, log)
    try:
        try:
            wait_until(
                lambda: fs.live() or server.poll() is not None,
                MOUNT_TIMEOUT,
                f"the FUSE mount on {mountpoint}",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the server's log:\n{fs.log()}") from None
        if not fs.live():
            _mount_failed(fs)
        yield fs
    finally:
        fs.close()
        mountpoint.rmdir()
        log.unlink()
        base.rmdir()


def _mount_failed(fs: FuseMount) -> None:
    text = fs.log()
    if "Operation not permitted" in text or "Permission denied" in text:
        pytest.skip(f"FUSE mounts are not permitted here: {text.strip().splitlines()[-1]}")
    raise AssertionError(f"the FUSE server exited before mounting:\n{text}")


# --- the server process ------------------------------------------------------------------

OPERATIONS = (
    "getattr",
    "open",
    "read",
    "read_bytes",
    "release",
    "readlink",
    "readdir",
    "statfs",
)


class Faults:
    """Which operations wait and how late reads answer; shared by libfuse's threads."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._blocked: frozenset[str] | None = frozenset()  # None: every name
        self._stat = False
        self._lag = 0.0
        self._held: list[tuple[str, str]] = []
        self._counts: dict[str, int] = dict.fromkeys(OPERATIONS, 0)

    def apply(self, command: dict[str, Any]) -> Any:
        with self._changed:
            match command["op"]:
                case "block":
                    names = command["names"]
                    self._blocked = None if names is None else frozenset(names)
                    self._stat = bool(command["stat"])
                case "lag":
                    self._lag = float(command["ms"]) / 1000
                case "release":
                    self._blocked, self._stat = frozenset(), False
                case "held":
                    return list(self._held)
                case "counts":
                    return dict(self._counts)
                case other:
                    raise ValueError(f"unknown operation {other!r}")
            self._changed.notify_all()  # what is held is decided anew
            return None

    def count(self, op: str, amount: int = 1) -> None:
        with self._changed:
            self._counts[op] += amount

    def gate(self, op: str, path: str) -> None:
        """Hold `op` on `path` while it is blocked, then add the lag of a read."""
        name = path.strip("/")
        with self._changed:
            if self._stops(op, name):
                entry = (op, name)
                self._held.append(entry)
                try:
                    self._changed.wait_for(lambda: not self._stops(op, name))
                finally:
                    self._held.remove(entry)
            delay = self._lag if op == "read" else 0.0
        if delay:
            time.sleep(delay)

    def _stops(self, op: str, name: str) -> bool:
        if op == "stat" and not self._stat:
            return False
        return self._blocked is None or name in self._blocked


def _operations(source: Path, faults: Faults) -> Any:
    import mfusepy

    class PassThrough(mfusepy.Operations):  # type: ignore[misc]
        use_ns = True

        def _real(self, path: str) -> str:
            return os.path.join(source, path.lstrip("/"))

        def getattr(self, path: str, fh: int | None = None) -> dict[str, int]:
            faults.count("getattr")
            faults.gate("stat", path)
            st = os.lstat(self._real(path))
            keys = ("st_mode", "st_ino", "st_nlink", "st_uid", "st_gid", "st_size")
            attrs = {key: getattr(st, key) for key in keys}
            attrs.update(st_atime=st.st_atime_ns, st_mtime=st.st_mtime_ns, st_ctime=st.st_ctime_ns)
            return attrs

        def readdir(self, path: str, fh: int) -> list[str]:
            faults.count("readdir")
            return [".", "..", *os.listdir(self._real(path))]

        def readlink(self, path: str) -> str:
            faults.count("readlink")
            return os.readlink(self._real(path))

        def open(self, path: str, flags: int) -> int:
            faults.count("open")
            return os.open(self._real(path), os.O_RDONLY)

        def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
            faults.count("read")
            faults.count("read_bytes", size)
            faults.gate("read", path)
            return os.pread(fh, size, offset)

        def release(self, path: str, fh: int) -> int:
            faults.count("release")
            os.close(fh)
            return 0

        def statfs(self, path: str) -> dict[str, int]:
            faults.count("statfs")
            st = os.statvfs(self._real(path))
            return {key: getattr(st, key) for key in dir(st) if key.startswith("f_")}

    return PassThrough()


def _control(faults: Faults, commands: TextIO, replies: TextIO, mountpoint: Path) -> None:
    for line in commands:
        try:
            reply = {"value": faults.apply(json.loads(line))}
        except Exception as exc:
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()
    # The test process is gone: let nothing wait on this filesystem any more.
    faults.apply({"op": "release"})
    if str(mountpoint) in mount_types():
        subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], check=False)


def serve(source: Path, mountpoint: Path) -> None:
    import mfusepy

    faults = Faults()
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # libfuse's chatter stays off the channel
    threading.Thread(
        target=_control, args=(faults, sys.stdin, replies, mountpoint), daemon=True
    ).start()
    mfusepy.FUSE(
        _operations(source, faults),
        str(mountpoint),
        foreground=True,
        ro=True,
        fsname=SUBTYPE,
        subtype=SUBTYPE,
        direct_io=True,
        attr_timeout=0,
        entry_timeout=0,
        negative_timeout=0,
        max_threads=MAX_THREADS,
    )


if __name__ == "__main__":
    serve(Path(sys.argv[1]), Path(sys.argv[2]))
