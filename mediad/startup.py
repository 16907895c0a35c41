"""The environment the process started with. `run` removes secrets from its live
environment before a worker can inherit it; what needs one of them later (libpq's
PGPASSWORD, read when the database is first reached) asks here."""

from __future__ import annotations

import os
from collections.abc import Mapping

_kept: dict[str, str] | None = None


def keep(environ: Mapping[str, str]) -> None:
    """Remember the environment as it was, before secrets leave the live one."""
    global _kept
    _kept = dict(environ)


def variable(name: str) -> str | None:
    """A variable as the process started with it: the kept copy if there is one."""
    return (_kept if _kept is not None else os.environ).get(name)
