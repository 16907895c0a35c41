"""Two configurations of one daemon, alternated round by round (`bench.e2e --versus`):
which runs first in each round, and the figures the comparison is judged on."""

from __future__ import annotations

import os
import statistics
from typing import Any

BASE, VARIANT = "base", "versus"


def order(round_index: int) -> tuple[str, str]:
    """Every other round backwards, so neither configuration always runs after the
    other (a host's load drifts within a round as much as between rounds)."""
    return (BASE, VARIANT) if round_index % 2 == 0 else (VARIANT, BASE)


def load_average() -> list[float]:
    """The host's 1, 5 and 15 minute load averages, as `uptime` prints them."""
    return [round(value, 2) for value in os.getloadavg()]


def _cpu_us_per_file(run: dict[str, Any]) -> float | None:
    """CPU of the supervisor, the workers and the database backends per file, in µs: less
    swayed by others' load than files/s, which it takes from our processes' cores."""
    files = (run.get("done") or 0) + (run.get("failed") or 0)
    parts = ("cpu_seconds_supervisor", "cpu_seconds_workers", "cpu_seconds_db_backends")
    if not files or any(run.get(part) is None for part in parts):
        return None
    seconds: float = sum(run[part] for part in parts)
    return round(seconds / files * 1e6, 1)


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def summary(runs: list[dict[str, Any]], settings: list[str]) -> dict[str, Any]:
    """Per configuration, the median and range of files/s and of CPU per file; per round,
    the ratio variant ÷ base of files/s (the two runs of a round are closest in time: the
    ratio to judge) and base ÷ variant of CPU per file."""
    by_round: dict[int, dict[str, dict[str, Any]]] = {}
    for run in runs:
        by_round.setdefault(run["round"], {})[run["config"]] = run
    found: dict[str, Any] = {"settings": settings}
    for config in (BASE, VARIANT):
        mine = [run for run in runs if run["config"] == config]
        rates = [run["files_per_s"] for run in mine]
        cpu = [c for run in mine if (c := _cpu_us_per_file(run)) is not None]
        found[config] = {
            "files_per_s": rates,
            "median_files_per_s": _median(rates),
            "cpu_us_per_file": cpu,
            "median_cpu_us_per_file": _median(cpu),
            "other_load_cores": [run.get("other_load_cores") for run in mine],
        }
    rate_ratios, cpu_ratios = [], []
    for _, pair in sorted(by_round.items()):
        if BASE not in pair or VARIANT not in pair:
            continue
        base, variant = pair[BASE], pair[VARIANT]
        if base["files_per_s"]:
            rate_ratios.append(round(variant["files_per_s"] / base["files_per_s"], 3))
        base_cpu, variant_cpu = _cpu_us_per_file(base), _cpu_us_per_file(variant)
        if base_cpu and variant_cpu:
            cpu_ratios.append(round(base_cpu / variant_cpu, 3))
    found["ratio_by_round"] = rate_ratios
    found["ratio_median"] = _median(rate_ratios)
    found["cpu_ratio_by_round"] = cpu_ratios
    found["cpu_ratio_median"] = _median(cpu_ratios)
    return found
