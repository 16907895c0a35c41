"""The direction of dependencies, as a test: pure logic imports no effects, workers never
reach the database, and only the database layer imports psycopg."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mediad"
DATABASE_LAYER = {"store", "attach"}
# Modules a worker process loads: they must not even import the database layer.
WORKER_SIDE = {"worker", "extractor", "summary", "models", "errors", "paths"}
PURE = {"config", "retry", "summary", "paths", "queries", "models", "errors", "mounts"}


def imports_of(module: str) -> set[str]:
    """What a module imports; for a package (mediad/config/), what any of its files do."""
    package = PACKAGE / module
    sources = sorted(package.glob("*.py")) if package.is_dir() else [PACKAGE / f"{module}.py"]
    found: set[str] = set()
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
    return found


def modules() -> list[str]:
    files = [p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"]
    packages = [p.parent.name for p in PACKAGE.glob("*/__init__.py")]
    return sorted(files + packages)


@pytest.mark.parametrize("module", modules())
def test_only_the_database_layer_imports_psycopg(module: str) -> None:
    uses_psycopg = any(
        name.split(".")[0] in ("psycopg", "psycopg_pool") for name in imports_of(module)
    )
    assert not uses_psycopg or module in DATABASE_LAYER, module


@pytest.mark.parametrize("module", sorted(WORKER_SIDE))
def test_worker_side_never_reaches_the_database(module: str) -> None:
    forbidden = {
        f"mediad.{m}"
        for m in (*DATABASE_LAYER, "supervisor", "runtime", "cli", "commands", "dbthread", "pool")
    }
    assert not imports_of(module) & forbidden, module


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
    heavy = ("psycopg", "structlog", "prometheus_client", "mediad.store", "mediad.supervisor")
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
