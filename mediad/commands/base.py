"""What a command is to the command line: its name, its flags, and how it starts.

Light on purpose (mediad/cli.py imports it before anything slow): a command's handler is
imported only when that command runs.
"""

from __future__ import annotations

import abc
import argparse
import contextlib
import importlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import NoReturn

from mediad.commands.options import load_config
from mediad.config import Config
from mediad.errors import UsageError

# What runs a command once its config is read; returns the exit code.
Handler = Callable[[argparse.Namespace, Config], int]


class Launch(abc.ABC):
    """One invocation of a command, in two steps: read the config (an error there is a
    configuration error), then run, with whatever must start before the heavy imports
    started first. Most commands only read the config (`handled_by`); the daemon's
    launch (mediad/commands/daemon) also starts the workers."""

    # The daemon: its logging covers the libraries' too, and it logs its own crash.
    daemon = False

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args

    def config(self) -> Config:
        return load_config(self.args)

    @abc.abstractmethod
    def started(self, config: Config) -> AbstractContextManager[Callable[[], int]]:
        """What must run before the command, started; yields the command to run."""


class Handled(Launch):
    """A command that only reads its config, then runs its handler: `name` in `module`,
    imported only then (tests/unit/test_commands.py checks that each one is there)."""

    def __init__(self, args: argparse.Namespace, module: str, name: str) -> None:
        super().__init__(args)
        self.module = module
        self.name = name

    def handler(self) -> Handler:
        found: Handler = getattr(importlib.import_module(self.module), self.name)
        return found

    @contextlib.contextmanager
    def started(self, config: Config) -> Iterator[Callable[[], int]]:
        yield lambda: self.handler()(self.args, config)


@dataclass(frozen=True)
class Command:
    """A subcommand: its help, its own flags (the global ones come on top), and how an
    invocation of it is launched."""

    name: str
    help: str
    options: Callable[[argparse.ArgumentParser], None]
    launch: Callable[[argparse.Namespace], Launch]


def handled_by(module: str, name: str) -> Callable[[argparse.Namespace], Launch]:
    """The launch of a command handled by `name` in `module` (see Handled)."""
    return lambda args: Handled(args, module, name)


def no_options(parser: argparse.ArgumentParser) -> None:
    """For a command whose only flags are the global ones."""


def raise_usage(message: str) -> NoReturn:
    raise UsageError(message)
