"""The direction of dependencies, as a test, per package (docs/architecture.md):

- only the database layer (`mediad.db`) imports psycopg;
- the worker side (`mediad.extract`) never reaches the database, the daemon, the pool or
  the commands: a worker process must not even load them;
- the pool owns processes and knows nothing of the database or the daemon's loop;
- the daemon never imports a command; the database layer imports neither;
- pure modules import no effects, so their tests need no process, socket or server."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "mediad"
EFFECTS = {
    "psycopg",
    "psycopg_pool",
    "multiprocessing",
    "socket",
    "subprocess",
    "threading",
    "prometheus_client",
    "pymediainfo",
    "exiv2",
    "signal",
}
# Modules (or whole packages) whose logic is pure: policy, parsing, normalisation, state.
PURE = {
    "config",
    "retry",
    "reextract",
    "paths",
    "queries",
    "models",
    "errors",
    "mounts",
    "extract.summary",
    "extract.camera",
    "extract.camera_values",
    "extract.record",
    "extract.options",
    "daemon.mounts",
    "daemon.plan",
    "daemon.ledger",
    "fleet",
    "commands.report.topview",
}
# What each package may not import (a prefix forbids the package and all below it).
FORBIDDEN = {
    "extract": {"mediad.db", "mediad.daemon", "mediad.pool", "mediad.commands", "mediad.cli"},
    "pool": {"mediad.db", "mediad.daemon", "mediad.commands", "mediad.cli"},
    "db": {"mediad.daemon", "mediad.pool", "mediad.commands", "mediad.cli"},
    "config": {"mediad.db", "mediad.daemon", "mediad.pool", "mediad.commands", "mediad.cli"},
    "daemon": {"mediad.commands", "mediad.cli"},
}
# Not the database layer, but where every request of the daemon runs: it tells psycopg's
# errors (the database unavailable, retried after a back-off) from bugs (re-raised), for
# every request at once (mediad/daemon/dbthread.py).
CLASSIFIES_DRIVER_ERRORS = {"daemon.dbthread"}
# Top-level modules a worker process loads beside mediad.extract.
WORKER_SIDE_SHARED = {"models", "errors", "paths"}


def files_of(module: str) -> list[Path]:
    """A module's file, or every file of a package, by dotted name under mediad."""
    path = PACKAGE.joinpath(*module.split("."))
    return sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")]


def imports_of(module: str) -> set[str]:
    found: set[str] = set()
    for source in files_of(module):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
    return found


def modules() -> list[str]:
    """Every module of mediad by dotted name; packages' modules as `package.module`."""
    found = [p.relative_to(PACKAGE).with_suffix("") for p in PACKAGE.rglob("*.py")]
    return sorted(".".join(p.parts) for p in found if p.name != "__init__")


def reaches(names: set[str], prefixes: set[str]) -> set[str]:
    return {n for n in names for p in prefixes if n == p or n.startswith(f"{p}.")}


def test_the_listed_modules_exist() -> None:
    """A renamed module must not silently drop out of the rules below."""
    named = {*PURE, *FORBIDDEN, *WORKER_SIDE_SHARED}
    assert all(files_of(name)[0].exists() for name in named), named


@pytest.mark.parametrize("module", modules())
def test_only_the_database_layer_imports_psycopg(module: str) -> None:
    uses_psycopg = {n.split(".")[0] for n in imports_of(module)} & {"psycopg", "psycopg_pool"}
    allowed = module.startswith("db.") or module in CLASSIFIES_DRIVER_ERRORS
    assert not uses_psycopg or allowed, module


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_each_package_depends_only_downstream(package: str) -> None:
    assert not reaches(imports_of(package), FORBIDDEN[package]), package


@pytest.mark.parametrize("module", sorted(WORKER_SIDE_SHARED))
def test_what_workers_share_never_reaches_the_database(module: str) -> None:
    assert not reaches(imports_of(module), FORBIDDEN["extract"]), module


@pytest.mark.parametrize("module", sorted(PURE))
def test_pure_modules_have_no_effects(module: str) -> None:
    assert not {name.split(".")[0] for name in imports_of(module)} & EFFECTS, module


def test_the_command_line_loads_the_database_driver_only_after_starting_workers() -> None:
    """`mediad run` starts its workers from mediad/cli.py, before it imports the commands:
    importing the command line must not load psycopg, structlog, prometheus-client or
    rich, or the workers' boot would wait for them (mediad/cli.py)."""
    heavy = ("psycopg", "structlog", "prometheus_client", "rich", "mediad.db", "mediad.daemon")
    code = f"import sys, mediad.cli; print([m for m in {heavy!r} if m in sys.modules])"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PACKAGE.parent,
        check=True,
    )
    assert result.stdout.strip() == "[]", result.stdout
