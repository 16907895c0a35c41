"""What the figures were measured on: the host, the versions, mediad's settings."""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.cli_baseline import mediainfo_version
from bench.common import CORES
from bench.db import Sql
from mediad.config import load as load_config


def git_describe() -> str:
    root = Path(__file__).resolve().parent.parent
    stamp = root / "COMMIT"  # a snapshot (git archive) says which commit it is
    if stamp.is_file():
        return stamp.read_text().strip()
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "mediad"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}{' + uncommitted changes in mediad/' if dirty else ''}"


def python_interpreter() -> dict[str, Any]:
    """Which CPython runs mediad and the ideal pool, and whether it is linked to a shared
    libpython: such a build without profile-guided optimisation (pyenv's default) runs
    mediad's own Python code about 30 % slower than Debian's static, optimised
    python3.11 (docs/benchmarks.md, "The interpreter"). Build flags themselves cannot be
    read back reliably (Debian's sysconfig describes its shared build)."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        maps = ""
    return {
        "executable": sys.executable,
        "base": sys.base_prefix,
        "shared_libpython": "libpython" in maps,
    }


def environment(
    args: argparse.Namespace, sql: Sql, server_kind: str, env: dict[str, str], originals: list[str]
) -> dict[str, Any]:
    import pymediainfo

    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    config = load_config(None, environ=env)
    return {
        "mediad_commit": git_describe(),
        "cores": CORES,
        "cpu_model": cpu_model,
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_interpreter": python_interpreter(),
        "pymediainfo": pymediainfo.__version__,
        "libmediainfo": ".".join(str(v) for v in pymediainfo.MediaInfo._get_library()[3]),
        "mediainfo_cli": mediainfo_version(args.mediainfo) if args.mediainfo else None,
        "postgresql": sql.server_version(),
        "server": server_kind,
        "corpus": str(args.source) if args.source else args.corpus,
        "corpus_originals": originals,
        "parse_speed": config.extract.parse_speed,
        "batch_size": config.daemon.batch_size,
        "flush_seconds": config.daemon.flush_seconds,
        "full_document": config.extract.full_document,
    }
