"""The probe of a stalled mount: is it answering again?

A disposable child process asks the mount a statfs and reads 4 KiB of a file on it (the
last one that timed out). The child, not the daemon, is the one that hangs if the mount is
still dead: a read on a dead FUSE or hard NFS mount may never return, even after SIGKILL.
So nothing here ever waits on the child without a deadline: `poll` looks without blocking,
`kill` sends SIGKILL and returns, and a killed child that has not gone is `stuck` until
`reap` finds it gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Literal

Status = Literal["running", "ok", "failed", "timed_out"]

# A killed probe still there this long after SIGKILL is blocked in the kernel (D state).
STUCK_AFTER_SECONDS = 3.0

# Errors with which the filesystem itself answers about the file: the mount is alive even
# though this file cannot be read (it was deleted or renamed while the mount was stalled).
# Others (EIO, ENOTCONN from a FUSE server that died, ESTALE, ETIMEDOUT, EHOSTDOWN...)
# mean the mount is still not answering properly.
ANSWERS = frozenset(
    {"ENOENT", "ENOTDIR", "EACCES", "EPERM", "EISDIR", "ELOOP", "ENAMETOOLONG", "ENXIO"}
)

# Run with -I -S: no site, no environment, no user path, so nothing but the interpreter
# itself loads (a few ms) and nothing of the daemon's environment can change what it does.
SCRIPT = """
import errno, os, sys
point, path = sys.argv[1], sys.argv[2]
step = "statfs"
try:
    os.statvfs(point)
    if path:
        step = "open"
        fd = os.open(path, os.O_RDONLY)
        try:
            step = "read"
            os.read(fd, 4096)
        finally:
            os.close(fd)
except OSError as exc:
    name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    print("error", step, name, exc.strerror, flush=True)
    sys.exit(1)
print("ok", flush=True)
"""


class Probe:
    def __init__(self, process: subprocess.Popen[bytes], deadline: float) -> None:
        self._process = process
        self._deadline = deadline  # time.monotonic()
        self._killed_at: float | None = None
        self._status: Status = "running"
        self._reaped = False
        self.error = ""  # why it failed: "open ENOENT No such file or directory", ...

    @classmethod
    def start(cls, mount_point: str, path: str, deadline_s: float) -> Probe:
        """Launch the probe; it has `deadline_s` seconds to answer. `path` may be empty
        (statfs alone)."""
        process = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", SCRIPT, mount_point, path],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # Its own process group: a kill reaches nothing of the daemon's, and a
            # terminal's Ctrl-C reaches the daemon alone, which decides.
            process_group=0,
            close_fds=True,
        )
        return cls(process, time.monotonic() + deadline_s)

    @property
    def pid(self) -> int:
        return self._process.pid

    def poll(self) -> Status:
        """Never blocks. Past the deadline the child is killed and the answer is
        "timed_out" from then on, whether or not it has gone yet."""
        if not self.reap() and self._status == "running" and time.monotonic() >= self._deadline:
            self.kill()
            self._status = "timed_out"
        return self._status

    def mount_answered(self) -> bool:
        """The mount is answering: the probe read the file, or the filesystem said
        clearly why it could not (the file is gone, say)."""
        if self._status == "ok":
            return True
        if self._status != "failed":
            return False
        words = self.error.split()
        return len(words) >= 2 and words[0] in ("open", "read") and words[1] in ANSWERS

    def kill(self) -> None:
        """SIGKILL, and return at once: a child blocked in the kernel goes when it can."""
        if self._reaped:
            return
        if self._killed_at is None:
            self._killed_at = time.monotonic()
        try:
            os.killpg(self._process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # gone already; reap() collects it
        except PermissionError:
            # The group is gone and its id reused by another user's process: kill ours.
            self._process.kill()

    def is_stuck(self) -> bool:
        """Killed, and still not gone STUCK_AFTER_SECONDS later: blocked in the kernel."""
        if self._killed_at is None or self.reap():
            return False
        return time.monotonic() - self._killed_at >= STUCK_AFTER_SECONDS

    def reap(self) -> bool:
        """True once the child has exited and been collected. Never blocks."""
        if self._reaped:
            return True
        code = self._process.poll()
        if code is None:
            return False
        self._reaped = True
        output = self._read_output()
        if self._status == "running":
            if code == 0 and output.startswith("ok"):
                self._status = "ok"
            else:
                self._status = "failed"
                self.error = output.removeprefix("error ").strip() or f"exit status {code}"
        return True

    def _read_output(self) -> str:
        # The child has exited, so its end of the pipe is closed and this reads to EOF at
        # once (it has no children of its own to keep the pipe open).
        stdout = self._process.stdout
        if stdout is None:
            return ""
        with stdout:
            data = stdout.read()
        lines = os.fsdecode(data).strip().splitlines()
        return lines[-1] if lines else ""
