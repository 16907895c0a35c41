"""The mediainfo command line over the corpus: the baseline mediad is compared with."""

from __future__ import annotations

import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from bench.common import CORES, children_cpu, rate
from bench.procstat import MachineClock
from bench.results import CliRun

CLI_BATCH = 1000  # files per call of the batched CLI


def mediainfo_version(binary: str) -> str:
    result = subprocess.run([binary, "--Version"], capture_output=True, text=True, timeout=30)
    return " ".join(result.stdout.split()[-1:]) or "unknown"


def _cli_call(binary: str, chunk: list[str], env: dict[str, str] | None = None) -> int:
    """Run mediainfo on a chunk of files; returns how many documents name a media format."""
    result = subprocess.run(
        [binary, "--Output=JSON", *chunk],
        capture_output=True,
        timeout=600,
        check=False,
        env=env,
    )
    try:
        document = json.loads(result.stdout)
    except ValueError:
        return 0
    documents = document if isinstance(document, list) else [document]
    return sum(1 for d in documents if isinstance(d, dict) and d.get("media"))


def run_cli(
    binary: str,
    paths: list[str],
    workers: int,
    per_call: int,
    env: dict[str, str] | None = None,
) -> CliRun:
    chunks = [paths[i : i + per_call] for i in range(0, len(paths), per_call)]
    cpu_before = children_cpu()
    clock = MachineClock()
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as executor:
        recognised = sum(executor.map(lambda c: _cli_call(binary, c, env), chunks))
    elapsed = time.perf_counter() - started
    cpu = children_cpu() - cpu_before
    return CliRun(
        files=len(paths),
        workers=workers,
        files_per_call=per_call,
        recognised=recognised,
        seconds=round(elapsed, 3),
        files_per_s=rate(len(paths), elapsed),
        cpu_seconds=round(cpu, 2),
        cpu_utilisation=round(cpu / (elapsed * CORES), 3),
        load=clock.measure(cpu),
    )
