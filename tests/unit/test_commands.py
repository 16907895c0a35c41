"""The registry of commands: every command listed in `mediad --help`, and every handler
named by a family found where it says."""

from __future__ import annotations

import argparse
import inspect

import pytest

from mediad.commands import FAMILIES, ORDER, all_commands
from mediad.commands.base import Handled


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
