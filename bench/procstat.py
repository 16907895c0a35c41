"""CPU time and memory of a process tree, and of the whole machine, from /proc (Linux)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces: split after its closing parenthesis.
    return text.rsplit(")", 1)[1].split()


def cpu_seconds(pid: int, *, with_reaped_children: bool = False) -> float | None:
    """utime + stime (+ cutime + cstime: children already reaped) in seconds."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    # fields[0] is the state (stat field 3): utime is field 14, so index 11.
    ticks = int(fields[11]) + int(fields[12])
    if with_reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) in KiB; empty if the process is gone."""
    found: dict[str, int] = {}
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


def children(pid: int) -> list[int]:
    """Direct children of `pid`."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found.extend(int(p) for p in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies over all cores since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already inside user
    return total - idle, total


@dataclass
class TreeSampler:
    """Follows a supervisor and its workers: CPU, RSS, and the peak of each."""

    pid: int
    worker_cpu: dict[int, float] = field(default_factory=dict)
    worker_rss_max_kib: int = 0
    worker_pids: set[int] = field(default_factory=set)
    supervisor_rss_max_kib: int = 0
    supervisor_cpu: float = 0.0
    _machine_start: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        self._machine_start = machine_ticks()

    def sample(self) -> None:
        own = cpu_seconds(self.pid, with_reaped_children=False)
        if own is not None:
            self.supervisor_cpu = own
        self.supervisor_rss_max_kib = max(
            self.supervisor_rss_max_kib, memory_kib(self.pid).get("VmRSS", 0)
        )
        for child in children(self.pid):
            cpu = cpu_seconds(child)
            if cpu is None:
                continue
            self.worker_pids.add(child)
            self.worker_cpu[child] = cpu
            mem = memory_kib(child)
            self.worker_rss_max_kib = max(
                self.worker_rss_max_kib, mem.get("VmHWM", 0), mem.get("VmRSS", 0)
            )

    def machine_busy_fraction(self) -> float:
        busy0, total0 = self._machine_start
        busy1, total1 = machine_ticks()
        return (busy1 - busy0) / max(1, total1 - total0)

    def supervisor_peak_kib(self) -> int:
        return max(self.supervisor_rss_max_kib, memory_kib(self.pid).get("VmHWM", 0))

    def worker_cpu_total(self) -> float:
        return sum(self.worker_cpu.values())


def self_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class MachineClock:
    """How busy the whole machine was during a phase, and how much of that was not ours.

    Other load (another job on the host) slows every figure; the report says so."""

    def __init__(self) -> None:
        import time

        self._now = time.perf_counter
        self.started = self._now()
        self.busy0, self.total0 = machine_ticks()
        self.self0 = self_cpu()

    def measure(self, own_cpu_seconds: float) -> dict[str, float]:
        busy1, total1 = machine_ticks()
        elapsed = max(1e-9, self._now() - self.started)
        busy_seconds = (busy1 - self.busy0) / CLK_TCK
        ours = own_cpu_seconds + (self_cpu() - self.self0)
        return {
            "machine_busy_fraction": round((busy1 - self.busy0) / max(1, total1 - self.total0), 3),
            "other_load_cores": round(max(0.0, busy_seconds - ours) / elapsed, 2),
        }
