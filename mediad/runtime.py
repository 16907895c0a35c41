"""Putting the pieces together for a command: the database (embedded or configured), the
password, the handle on it, and the schema check."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mediad import embedded, logs, startup
from mediad.config import Config
from mediad.db import migrations
from mediad.db.connection import Database, Target
from mediad.errors import ConfigError

CREDENTIAL_NAME = "database-password"


def read_password(config: Config) -> str | None:
    """The database password from a file or a systemd credential, never from argv."""
    path = config.database.password_file
    if not path:
        credentials = os.environ.get("CREDENTIALS_DIRECTORY")
        candidate = Path(credentials) / CREDENTIAL_NAME if credentials else None
        if candidate is None or not candidate.is_file():
            # libpq's own variable, kept working after `run` removes it from the
            # environment its workers inherit.
            password = startup.variable("PGPASSWORD")
            logs.register_secret(password)
            return password
        path = str(candidate)
    try:
        with open(path, encoding="utf-8") as handle:
            password = handle.read().rstrip("\r\n")
    except OSError as exc:
        raise ConfigError("database.password_file", f"{path}: {exc.strerror}") from None
    logs.register_secret(password)  # masked wherever it might appear in a log line
    return password


@contextlib.contextmanager
def database(config: Config) -> Iterator[tuple[str, str | None]]:
    """The DSN to use and its password; starts the embedded server when none is set."""
    if config.database.dsn:
        yield config.database.dsn, read_password(config)
        return
    dsn, handle = embedded.start(config.state_path())
    keep: list[Any] = [handle]  # the server stays up while this command runs
    try:
        yield dsn, None
    finally:
        keep.clear()


@contextlib.contextmanager
def open_database(
    config: Config, *, owner: str = "", migrate: bool | None = None, check: bool = True
) -> Iterator[Database]:
    """An open handle on a schema of the right version (migrated first where configured)."""
    with database(config) as (dsn, password):
        db = _opened(Target.of(config, dsn, password, owner), config, migrate, check)
        try:
            yield db
        finally:
            db.close()


def connect(config: Config, owner: str) -> Database:
    """An open handle for a configured DSN (a reload's new database); schema checked."""
    if config.embedded:
        raise ConfigError("database.dsn", "cannot switch to the embedded database while running")
    target = Target.of(config, config.database.dsn, read_password(config), owner)
    return _opened(target, config, None, True)


def _opened(target: Target, config: Config, migrate: bool | None, check: bool) -> Database:
    """The one place a handle for a command or the daemon is made: opened, migrated where
    configured (or asked), its schema version checked."""
    db = Database(target)
    db.open()
    try:
        if config.database.auto_migrate if migrate is None else migrate:
            migrations.migrate(db)
        if check:
            migrations.check_schema(db)
    except BaseException:
        db.close()
        raise
    return db
