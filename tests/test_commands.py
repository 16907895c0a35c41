"""The registry of commands: every command listed in `mediad --help`, and every handler
named by a family found where it says."""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path

import pytest

from mediad.commands import FAMILIES, ORDER, all_commands
from mediad.commands.base import Handled
from tests.conftest import mediad


def test_every_command_of_every_family_is_listed_once() -> None:
    names = [command.name for family in FAMILIES for command in family.COMMANDS]
    assert sorted(names) == sorted(ORDER)
    assert list(all_commands()) == list(ORDER)


@pytest.mark.parametrize("name", [n for n in ORDER if n != "run"])
def test_each_handler_is_where_its_family_names_it(name: str) -> None:
    launch = all_commands()[name].launch(argparse.Namespace())
    assert isinstance(launch, Handled), name
    handler = launch.handler()
    assert list(inspect.signature(handler).parameters) == ["args", "config"], name


@pytest.mark.slow
def test_extract_says_its_workers_cannot_start_as_run_does(
    tmp_path: Path, mediad_env: dict[str, str]
) -> None:
    env = {**mediad_env, "MEDIAD_EXTRACT_LIBRARY_FILE": "/nonexistent/libmediainfo.so.0"}
    assert mediad("enqueue", str(tmp_path / "a.mp4"), env=env).returncode == 0
    result = mediad("extract", env=env, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "mediad: workers cannot start: cannot load MediaInfo" in result.stderr
    assert "Traceback" not in result.stderr
