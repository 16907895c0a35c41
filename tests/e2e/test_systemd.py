"""systemd: the units (verify, sandbox score, template kept alike, sysusers), the sd_notify
protocol (Notifier unit tests, and a real `mediad run` talking to a socket that plays
systemd), and MemoryDenyWriteExecute= holding for a real extraction."""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mediad import notify
from tests.support.processes import Daemon, counts, mediad, wait_until

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "systemd"
WATCHDOG_USEC = 2_000_000
SQL = Callable[..., list[tuple[Any, ...]]]

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


# --- the unit files -------------------------------------------------------------------


def mediad_executable() -> str:
    """The real `mediad` script of this environment, for ExecStart= in a unit copy."""
    candidate = Path(sys.executable).parent / "mediad"
    found = str(candidate) if candidate.exists() else shutil.which("mediad")
    if not found:
        pytest.skip("no `mediad` executable installed next to the interpreter")
    return found


def unit_copy(directory: Path, name: str, text: str | None = None) -> Path:
    """A copy of a unit with /usr/bin/mediad pointed at this environment's mediad."""
    source = (UNITS / name).read_text() if text is None else text
    assert "ExecStart=/usr/bin/mediad " in source
    target = directory / name
    target.write_text(source.replace("/usr/bin/mediad ", mediad_executable() + " "))
    return target


def verify(unit: Path, instance: str = "") -> list[str]:
    """Problems `systemd-analyze verify` finds in a unit (or an instance of a template).

    verify exits 0 on lines it parses with "ignoring" (an unknown key, a bad value), so
    every line of output that names the unit counts as a problem, not just the exit code.
    """
    path = unit.with_name(unit.name.replace("@.", f"@{instance}.")) if instance else unit
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", "--recursive-errors=no", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SYSTEMD_COLORS": "0"},
    )
    stem = unit.name.split("@")[0].split(".")[0]
    problems = [line for line in (result.stdout + result.stderr).splitlines() if stem in line]
    if result.returncode != 0:
        problems.append(f"exit code {result.returncode}: {result.stderr.strip()}")
    return problems


def exposure(unit: Path) -> float:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SYSTEMD_COLORS": "0"},
    )
    found = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert found, f"no exposure figure in:\n{result.stdout}\n{result.stderr}"
    return float(found.group(1))


@needs_analyze
@pytest.mark.parametrize(
    ("name", "instance"), [("mediad.service", ""), ("mediad@.service", "films")]
)
def test_units_verify_cleanly(tmp_path: Path, name: str, instance: str) -> None:
    assert verify(unit_copy(tmp_path, name), instance) == []


@needs_analyze
def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: a typo'd value, an unknown key, a missing binary."""
    text = (UNITS / "mediad.service").read_text()
    broken = text.replace("ProtectClock=yes", "ProtectClock=maybe")
    assert verify(unit_copy(tmp_path, "mediad.service", broken))
    unknown = text.replace("KillMode=mixed", "KillMode=mixed\nKilMode=mixed")
    assert verify(unit_copy(tmp_path, "mediad.service", unknown))
    missing = tmp_path / "missing"
    missing.mkdir()
    (missing / "mediad.service").write_text(text)  # /usr/bin/mediad is not installed here
    if not Path("/usr/bin/mediad").exists():
        assert verify(missing / "mediad.service")


@needs_analyze
@pytest.mark.parametrize("name", ["mediad.service", "mediad@films.service"])
def test_sandbox_exposure_is_2_or_better(tmp_path: Path, name: str) -> None:
    source = "mediad@.service" if "@" in name else name
    unit = unit_copy(tmp_path, source)
    if "@" in name:
        unit = unit.with_name(name)
    assert exposure(unit) <= 2.0
    figure = re.search(
        r"overall exposure of (\d+\.\d+)", (UNITS / source).read_text().replace("\n#", "")
    )
    if figure:  # the figure quoted in the unit's header is the measured one
        assert float(figure.group(1)) == pytest.approx(exposure(unit), abs=0.05)


def service_settings(path: Path) -> list[tuple[str, str]]:
    settings = []
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
            continue
        key, _, value = line.partition("=")
        settings.append((f"{section}{key}", value))
    return settings


def test_template_keeps_the_main_units_settings() -> None:
    per_instance = {
        "[Unit]Description",
        "[Service]ExecStart",
        "[Service]Environment",
        "[Service]StateDirectory",
        "[Service]RuntimeDirectory",
        "[Service]LoadCredential",
    }
    main = service_settings(UNITS / "mediad.service")
    template = service_settings(UNITS / "mediad@.service")
    assert [s for s in main if s[0] not in per_instance] == [
        s for s in template if s[0] not in per_instance
    ]
    values = dict(template)
    assert values["[Service]ExecStart"].endswith("--config /etc/mediad/%i.toml")
    assert values["[Service]Environment"] == "MEDIAD_DAEMON_INSTANCE=%i"
    assert values["[Service]StateDirectory"] == "mediad/%i"
    main_values = dict(main)
    for key, want in {
        "Type": "notify",
        "NotifyAccess": "main",
        "KillMode": "mixed",
        "ExecReload": "/bin/kill -HUP $MAINPID",
        "User": "mediad",
        "ProcSubset": "pid",
        "MemoryDenyWriteExecute": "yes",
    }.items():
        assert main_values[f"[Service]{key}"] == want, key
    # The stop timeout covers the default drain grace (30 s) plus the last flush.
    stop = main_values["[Service]TimeoutStopSec"]
    assert stop.endswith("s") and int(stop[:-1]) > 60


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="no systemd-sysusers")
def test_sysusers_creates_the_service_user(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    conf = tmp_path / "usr/lib/sysusers.d"
    conf.mkdir(parents=True)
    shutil.copy(UNITS / "mediad.sysusers", conf / "mediad.conf")
    result = subprocess.run(
        ["systemd-sysusers", f"--root={tmp_path}"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "ignoring" not in result.stderr.lower() and "failed" not in result.stderr.lower()
    users = {
        line.split(":")[0]: line.split(":")
        for line in (tmp_path / "etc/passwd").read_text().splitlines()
    }
    assert users["mediad"][5] == "/var/lib/mediad"
    assert users["mediad"][6].endswith("nologin")
    assert "mediad" in (tmp_path / "etc/group").read_text().split(":")


# --- Notifier ---------------------------------------------------------------------------


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_messages_have_systemds_format() -> None:
    sent: list[str] = []
    notifier = notify.Notifier(sent.append)
    notifier.ready()
    notifier.ready("3.0 files/s")
    notifier.status("idle")
    notifier.stopping()
    notifier.extend_timeout(45.5)
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert sent[:5] == [
        "READY=1",
        "READY=1\nSTATUS=3.0 files/s",
        "STATUS=idle",
        "STOPPING=1",
        "EXTEND_TIMEOUT_USEC=45500000",
    ]
    reloading, monotonic = sent[5].split("\n")
    assert reloading == "RELOADING=1"
    assert before <= int(monotonic.removeprefix("MONOTONIC_USEC=")) <= after


def test_watchdog_pings_at_most_every_half_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(1000.0)
    monkeypatch.setattr(notify.time, "monotonic", clock)
    sent: list[tuple[float, str]] = []
    notifier = notify.Notifier(lambda m: sent.append((clock.now, m)), watchdog_usec=WATCHDOG_USEC)
    assert notifier.watchdog_interval == 1.0
    for step in range(0, 301):  # a loop turning every 10 ms for 3 s
        clock.now = 1000.0 + step / 100
        notifier.watchdog()
    assert [m for _, m in sent] == ["WATCHDOG=1"] * 4
    assert [round(t, 2) for t, _ in sent] == [1000.0, 1001.0, 1002.0, 1003.0]


def test_no_watchdog_no_systemd_no_messages() -> None:
    sent: list[str] = []
    quiet = notify.Notifier(sent.append, watchdog_usec=0)
    for _ in range(3):
        quiet.watchdog()
    assert sent == []
    off = notify.from_environment({})
    assert not off.enabled
    off.ready("x")  # a no-op without systemd


def test_watchdog_meant_for_another_process_is_ignored() -> None:
    pytest.importorskip("systemd.daemon")
    env = {"NOTIFY_SOCKET": "/nonexistent", "WATCHDOG_USEC": str(WATCHDOG_USEC)}
    assert notify.from_environment({**env, "WATCHDOG_PID": "1"}).watchdog_interval == 0
    mine = {**env, "WATCHDOG_PID": str(os.getpid())}
    assert notify.from_environment(mine).watchdog_interval == 1.0
    assert notify.from_environment(env).watchdog_interval == 1.0


def test_missing_systemd_python_is_said_plainly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "systemd", None)  # import systemd raises ImportError
    with pytest.raises(notify.NotifyUnavailable, match=re.escape("mediad[systemd]")):
        notify.from_environment({"NOTIFY_SOCKET": "/run/systemd/notify"})


# --- a socket that plays systemd --------------------------------------------------------


class NotifySocket:
    """The service manager's end of NOTIFY_SOCKET: collects datagrams with arrival times."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[tuple[float, str]] = []

    def receive(self, timeout: float) -> bool:
        self.sock.settimeout(max(0.001, timeout))
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return False
        self.messages.append((time.monotonic(), data.decode()))
        return True

    def wait_for(
        self, predicate: Callable[[str], bool], timeout: float, what: str, after: int = 0
    ) -> tuple[int, str]:
        """The first message from index `after` on that matches, waiting up to `timeout`."""
        deadline = time.monotonic() + timeout
        index = after
        while True:
            while index < len(self.messages):
                if predicate(self.messages[index][1]):
                    return index, self.messages[index][1]
                index += 1
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [m for _, m in self.messages[after:]]
                raise AssertionError(f"timed out after {timeout} s waiting for {what}; got {seen}")
            self.receive(remaining)

    def drain(self) -> None:
        while self.receive(0.001):
            pass

    def close(self) -> None:
        self.sock.close()


def lines(message: str) -> list[str]:
    return message.split("\n")


def is_ping(message: str) -> bool:
    return "WATCHDOG=1" in lines(message)


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    path = tmp_path / "notify"
    short_dir = None
    if len(str(path)) > 100:  # sun_path holds 108 bytes
        short_dir = tempfile.mkdtemp(prefix="mediad-notify-")
        path = Path(short_dir) / "notify"
    receiver = NotifySocket(path)
    yield receiver
    receiver.close()
    if short_dir:
        shutil.rmtree(short_dir, ignore_errors=True)


def systemd_env(mediad_env: dict[str, str], sock: NotifySocket, **extra: str) -> dict[str, str]:
    pytest.importorskip("systemd.daemon")
    return {
        **mediad_env,
        "NOTIFY_SOCKET": str(sock.path),
        "WATCHDOG_USEC": str(WATCHDOG_USEC),
        **extra,
    }


@pytest.mark.slow
def test_mediad_speaks_sd_notify(
    mediad_env: dict[str, str], notify_socket: NotifySocket, daemons: Callable[..., Daemon]
) -> None:
    daemon = daemons(env=systemd_env(mediad_env, notify_socket))
    at, ready = notify_socket.wait_for(lambda m: "READY=1" in lines(m), 90, "READY=1")
    assert any(line.startswith("STATUS=") and "workers busy" in line for line in lines(ready))
    notify_socket.wait_for(lambda m: m.startswith("STATUS="), 30, "a STATUS= update", at + 1)

    first, _ = notify_socket.wait_for(is_ping, 30, "WATCHDOG=1", at)
    index = first
    for _ in range(2):
        index, _ = notify_socket.wait_for(is_ping, 30, "repeated WATCHDOG=1", index + 1)

    sent_at = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    daemon.signal(signal.SIGHUP)
    index, reloading = notify_socket.wait_for(
        lambda m: "RELOADING=1" in lines(m), 30, "RELOADING=1 after SIGHUP", index + 1
    )
    monotonic = [line for line in lines(reloading) if line.startswith("MONOTONIC_USEC=")]
    assert len(monotonic) == 1, reloading
    usec = int(monotonic[0].removeprefix("MONOTONIC_USEC="))
    assert sent_at <= usec <= time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    index, _ = notify_socket.wait_for(
        lambda m: "READY=1" in lines(m), 30, "READY=1 after the reload", index + 1
    )

    daemon.signal(signal.SIGTERM)
    index, _ = notify_socket.wait_for(
        lambda m: "STOPPING=1" in lines(m), 30, "STOPPING=1 after SIGTERM", index + 1
    )
    _, extend = notify_socket.wait_for(
        lambda m: m.startswith("EXTEND_TIMEOUT_USEC="),
        30,
        "EXTEND_TIMEOUT_USEC= for the drain",
        index,
    )
    # The default grace is 30 s: systemd is asked for more than that.
    assert int(extend.removeprefix("EXTEND_TIMEOUT_USEC=")) > 30_000_000
    assert daemon.stop(timeout=60) == 0, daemon.log()


@pytest.mark.slow
def test_a_wedged_loop_stops_the_watchdog(
    mediad_env: dict[str, str], notify_socket: NotifySocket, daemons: Callable[..., Daemon]
) -> None:
    daemon = daemons(env=systemd_env(mediad_env, notify_socket, MEDIAD_TEST_HOOKS="1"))
    at, _ = notify_socket.wait_for(lambda m: "READY=1" in lines(m), 90, "READY=1")
    index, _ = notify_socket.wait_for(is_ping, 30, "WATCHDOG=1", at)
    index, _ = notify_socket.wait_for(is_ping, 30, "a second WATCHDOG=1", index + 1)

    daemon.signal(signal.SIGUSR2)
    wait_until(lambda: "wedging the main loop" in daemon.log(), 30, "the loop to wedge")
    # The hook logs before blocking, and the loop pings only after it: whatever is queued
    # now was sent before the wedge.
    notify_socket.drain()
    wedged_at = len(notify_socket.messages)
    window = 2 * WATCHDOG_USEC / 1e6  # systemd would have killed it after half of this
    deadline = time.monotonic() + window
    while (remaining := deadline - time.monotonic()) > 0:
        notify_socket.receive(remaining)
    late = [m for _, m in notify_socket.messages[wedged_at:] if is_ping(m)]
    assert late == [], f"a wedged loop still pinged the watchdog {len(late)} times"
    assert daemon.process.poll() is None  # alive, just not healthy: systemd's job now
    os.killpg(daemon.pid, signal.SIGKILL)


@pytest.mark.slow
def test_notify_socket_without_systemd_python_exits_1(
    mediad_env: dict[str, str], notify_socket: NotifySocket, tmp_path: Path
) -> None:
    fake = tmp_path / "no-systemd"
    (fake / "systemd").mkdir(parents=True)
    (fake / "systemd" / "__init__.py").write_text(
        "raise ImportError('systemd-python is not installed (test double)')\n"
    )
    env = {
        **mediad_env,
        "NOTIFY_SOCKET": str(notify_socket.path),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(fake), mediad_env.get("PYTHONPATH")])),
    }
    probe = subprocess.run(
        [sys.executable, "-c", "import systemd.daemon"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "test double" in probe.stderr  # the stand-in really hides systemd-python
    result = mediad("run", env=env, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "mediad[systemd]" in result.stderr
    assert "NOTIFY_SOCKET" in result.stderr
    notify_socket.drain()
    assert notify_socket.messages == []


# --- MemoryDenyWriteExecute= ------------------------------------------------------------

PR_SET_MDWE = 65
PR_GET_MDWE = 66
PR_MDWE_REFUSE_EXEC_GAIN = 1

UNDER_MDWE = textwrap.dedent(
    """
    import ctypes, mmap, subprocess, sys
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(65, 1, 0, 0, 0) != 0:
        sys.exit(77)
    try:
        mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except OSError:
        pass
    else:
        sys.exit("a writable and executable mapping was allowed: MDWE is not in force")
    # Children (the spawned workers) inherit it across fork and exec.
    child = subprocess.run([sys.executable, "-c",
                            "import ctypes; print(ctypes.CDLL(None).prctl(66, 0, 0, 0, 0))"],
                           capture_output=True, text=True, check=True)
    if child.stdout.strip() != "1":
        sys.exit("a child process does not inherit MDWE")
    from mediad.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def mdwe_supported() -> bool:
    """PR_SET_MDWE (Linux 6.3+) gives the kernel's version of MemoryDenyWriteExecute=."""
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import ctypes,sys; sys.exit(ctypes.CDLL(None).prctl(65, 1, 0, 0, 0) != 0)",
        ],
        timeout=60,
    )
    return probe.returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
def test_extraction_works_without_writable_executable_memory(
    tmp_path: Path, mediad_env: dict[str, str], sql: SQL, schema: str
) -> None:
    if not mdwe_supported():
        pytest.skip("the kernel has no PR_SET_MDWE (Linux 6.3+)")
    from tests.support.media import make_corpus

    corpus = tmp_path / "media"
    expected = make_corpus(corpus)
    # A photo with EXIF, so the second reader (libexiv2) runs under MDWE too.
    photo = _exif_photo(corpus / "camera.jpg")
    scanned = mediad("scan", str(corpus), env=mediad_env)
    assert scanned.returncode == 0, scanned.stderr
    result = subprocess.run(
        [sys.executable, "-c", UNDER_MDWE, "extract", "--json"],
        env=mediad_env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert counts(sql, schema) == {
        "pending": 0,
        "running": 0,
        "done": len(expected) + 1,
        "failed": 0,
    }
    ((make, orientation, tags),) = sql(
        f"SELECT summary->>'camera_make', summary->'orientation', metadata->'reader'->'exif' "
        f'FROM "{schema}".files WHERE path = %s',
        (str(photo),),
    )
    assert (make, orientation) == ("Canon", 6)
    assert tags["Exif.Image.Model"] == "Canon EOS R5"


def _exif_photo(path: Path) -> Path:
    from PIL import Image

    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = "Canon", "Canon EOS R5", 6
    Image.new("RGB", (64, 48)).save(path, exif=exif)
    return path


def test_mdwe_refuses_writable_executable_memory_here() -> None:
    """The premise of the test above, checked in a child so this process stays unbound."""
    if not sys.platform.startswith("linux") or not mdwe_supported():
        pytest.skip("the kernel has no PR_SET_MDWE (Linux 6.3+)")
    code = (
        "import ctypes, mmap\n"
        f"ctypes.CDLL(None).prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0)\n"
        "mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "PermissionError" in result.stderr or "Permission denied" in result.stderr
    assert ctypes.CDLL(None).prctl(PR_GET_MDWE, 0, 0, 0, 0) == 0  # pytest itself unbound
