"""The embedded PostgreSQL: mediad's own private server when no DSN is configured.

Uses pgserver (PostgreSQL binaries shipped as a wheel). The data directory lives in the
state directory, so every mediad command of the same user shares one server; pgserver
counts the processes using it and stops it when the last one exits.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from mediad.errors import MediadError

DATABASE = "mediad"


class EmbeddedUnavailable(MediadError):
    exit_code = 2


def start(state_dir: Path) -> tuple[str, Any]:
    """Start (or join) the private server; returns its DSN and the handle keeping it alive."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise EmbeddedUnavailable(
            "no database.dsn is configured and the embedded PostgreSQL is not installed: "
            "install mediad[embedded], or set database.dsn"
        ) from None
    pgdata = state_dir / "pgdata"
    pgdata.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pgserver.get_server(  # type: ignore[attr-defined,unused-ignore]
            pgdata, cleanup_mode="stop"
        )
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}';")
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {DATABASE};")
    return server.get_uri(DATABASE), server
