"""The worker pool and the workers' settings a config asks for."""

from __future__ import annotations

import os

from mediad.config import Config
from mediad.extract.options import ExtractOptions
from mediad.extract.worker import WorkerSettings
from mediad.pool.pool import WorkerPool


def extract_options(config: Config) -> ExtractOptions:
    return ExtractOptions(
        roots=config.extract.roots,
        parse_speed=config.extract.parse_speed,
        max_file_bytes=config.extract.max_file_bytes,
        full_document=config.extract.full_document,
        engine=config.extract.engine,
        library_file=config.extract.library_file or None,
        second_reader=config.extract.second_reader,
    )


def worker_settings(config: Config) -> WorkerSettings:
    return WorkerSettings(
        extract_options(config),
        config.daemon.memory_limit_mb,
        os.getpid(),
        config.extract.cpu_seconds,
    )


def make_pool(config: Config) -> WorkerPool:
    """The worker pool a config asks for (no worker started yet)."""
    return WorkerPool(
        worker_settings(config),
        config.effective_workers(),
        timeout_seconds=config.extract.timeout_seconds,
        max_files_per_worker=config.daemon.max_files_per_worker,
        prefetch=config.daemon.prefetch,
        max_stuck=config.daemon.max_stuck_workers,
    )
