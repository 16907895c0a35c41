"""Starting a worker process: a `spawn` context, so it inherits no threads, connections
or locks from the supervisor, and no more of the supervisor's imports than it needs."""

from __future__ import annotations

import importlib.util
import sys
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnContext
from multiprocessing.process import BaseProcess
from typing import Any

from mediad.extract import wire, worker


def spawn_light() -> None:
    """Spawned workers first re-run the parent's main module, unless it is a package's
    `__main__`. `python -m mediad` is one; the installed `mediad` script (what systemd
    runs) is not: each worker ran its `from mediad.cli import main`, loading psycopg,
    structlog and the rest of the CLI it never uses (49 MiB per worker instead of 31, and
    a slower boot). Give the script the identity of `python -m mediad`, whose `__main__`
    imports nothing at the top; multiprocessing then leaves main alone in the workers."""
    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__spec__", None) is not None:
        return
    spec = importlib.util.find_spec("mediad.__main__")
    if spec is not None:
        main.__spec__ = spec


def start_worker(
    ctx: SpawnContext, settings: worker.WorkerSettings
) -> tuple[BaseProcess, Connection, Any]:
    """A started worker process, the supervisor's end of its pipe, and the shared memory
    where it names the file it reads (mediad/extract/wire.py)."""
    parent_conn, child_conn = ctx.Pipe(duplex=True)
    reading = ctx.RawArray("q", wire.READING_FIELDS)
    process = ctx.Process(
        target=worker.main,
        args=(child_conn, settings, reading),
        name="mediad-worker",
        daemon=True,
    )
    process.start()
    child_conn.close()
    return process, parent_conn, reading
