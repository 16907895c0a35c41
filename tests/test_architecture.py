"""The direction of dependencies, as a test: pure logic imports no effects, workers never
reach the database, and only the database layer imports psycopg."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mediad"
# The database layer is the package mediad/db: its modules are named "db.<module>".
DATABASE_LAYER = "db"
# Modules a worker process loads: they must not even import the database layer.
WORKER_SIDE = {
    "extract.engine",
    "extract.extractor",
    "extract.gate",
    "extract.limits",
    "extract.mediainfo",
    "extract.options",
    "extract.record",
    "extract.resolve",
    "extract.summary",
    "extract.view",
    "extract.wire",
    "extract.worker",
    "models",
    "errors",
    "paths",
}
PURE = {"config", "retry", "extract.summary", "paths", "queries", "models", "errors", "mounts"}


def source_of(module: str) -> Path:
    """A module by its dotted name under mediad: `extract.worker`, or a package's
    `__init__` by the package's name."""
    path = PACKAGE.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def imports_of(module: str) -> set[str]:
    tree = ast.parse(source_of(module).read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def modules() -> list[str]:
    return sorted(
        ".".join(p.relative_to(PACKAGE).with_suffix("").parts)
        for p in PACKAGE.rglob("*.py")
        if p.stem != "__init__"
    )


@pytest.mark.parametrize("module", modules())
def test_only_the_database_layer_imports_psycopg(module: str) -> None:
    uses_psycopg = any(
        name.split(".")[0] in ("psycopg", "psycopg_pool") for name in imports_of(module)
    )
    assert not uses_psycopg or module.split(".")[0] == DATABASE_LAYER, module


@pytest.mark.parametrize("module", sorted(WORKER_SIDE))
def test_worker_side_never_reaches_the_database(module: str) -> None:
    forbidden = {
        f"mediad.{m}"
        for m in (DATABASE_LAYER, "supervisor", "runtime", "cli", "commands", "dbthread", "pool")
    }
    found = imports_of(module)
    assert not {n for n in found for f in forbidden if n == f or n.startswith(f"{f}.")}, module


@pytest.mark.parametrize("module", sorted(PURE))
def test_pure_modules_have_no_effects(module: str) -> None:
    effects = {
        "psycopg",
        "psycopg_pool",
        "multiprocessing",
        "socket",
        "subprocess",
        "threading",
        "prometheus_client",
        "pymediainfo",
        "signal",
    }
    assert not {name.split(".")[0] for name in imports_of(module)} & effects, module


def test_the_command_line_loads_the_database_driver_only_after_starting_workers() -> None:
    """`mediad run` starts its workers from mediad/cli.py, before it imports the commands:
    importing the command line must not load psycopg, structlog or prometheus-client, or
    the workers' boot would wait for them (mediad/cli.py)."""
    heavy = ("psycopg", "structlog", "prometheus_client", "mediad.db", "mediad.supervisor")
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
