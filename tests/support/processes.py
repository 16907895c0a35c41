"""Running mediad as a user would: commands, daemons with their logs, the test engine,
and polling for what a user would check."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[2]


TEST_ENGINE = "tests.support.engine:ENGINE"


def engine_env() -> dict[str, str]:
    """The test engine (tests/support/README.md), active only where a test adds
    MEDIAD_TEST_HOOKS=1; PYTHONPATH lets mediad and its workers import it."""
    path = os.pathsep.join(p for p in (str(REPOSITORY), os.environ.get("PYTHONPATH")) if p)
    return {"MEDIAD_TEST_ENGINE": TEST_ENGINE, "PYTHONPATH": path}


def mediad(
    *args: str, env: dict[str, str], timeout: float = 120, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mediad", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
    )


def mediad_bytes_in(
    *args: str, env: dict[str, str], stdin: bytes, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`mediad` fed raw bytes, e.g. names that are not UTF-8; its output must be UTF-8."""
    done = subprocess.run(
        [sys.executable, "-m", "mediad", *args],
        env=env,
        capture_output=True,
        timeout=timeout,
        input=stdin,
    )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode("utf-8"), done.stderr.decode("utf-8")
    )


def bench_command(
    module: str, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """A benchmark command (`python -m bench.…`) from the repository's root; it must succeed."""
    result = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


class Daemon:
    """A `mediad run` subprocess with its log in a file."""

    def __init__(
        self, env: dict[str, str], log_path: Path, *args: str, command: list[str] | None = None
    ) -> None:
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [*(command or [sys.executable, "-m", "mediad"]), "run", *args],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_started(self, timeout: float = 60) -> None:
        wait_until(
            lambda: '"started"' in self.log() or self.process.poll() is not None,
            timeout,
            "the daemon to start",
        )
        assert self.process.poll() is None, f"mediad run exited early:\n{self.log()}"

    def ready_worker_pids(self, timeout: float = 60) -> list[int]:
        """The workers, once the daemon logged that every one reported ready."""
        wait_until(lambda: '"ready"' in self.log(), timeout, "the workers to be ready")
        return self.worker_pids()

    def worker_pids(self) -> list[int]:
        return children_of(self.pid, "spawn_main")

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            self._log.close()
        return code


def children_of(pid: int, marker: str = "") -> list[int]:
    """Child pids of `pid` whose command line contains `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and marker in cmdline:
            found.append(int(entry.name))
    return found


def wait_until(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05
) -> Any:
    """Poll a condition a user would check, up to a bound; fail saying what never happened."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def counts(sql: Callable[..., list[tuple[Any, ...]]], schema: str) -> dict[str, int]:
    rows = sql(f'SELECT state, count(*) FROM "{schema}".files GROUP BY state')
    result = {"pending": 0, "running": 0, "done": 0, "failed": 0}
    result.update({state: n for state, n in rows})
    return result


def link_files(source: Path, directory: Path, count: int, marker: str = "") -> list[Path]:
    """`count` hard links of one file: thousands of files for no disk. A marker in the name
    triggers a fault of the test engine (MEDIAD_TEST_HOOKS=1, tests/support/engine.py), e.g.
    __mediad_sleep_20ms__."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"{marker}f{i:05d}.mp4" for i in range(count)]
    for path in paths:
        os.link(source, path)
    return paths


def free_port() -> int:
    """A loopback port nobody listens on now (for metrics endpoints and servers)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
