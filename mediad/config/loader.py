"""The whole configuration: the file (if any), then the environment, then flags."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from mediad.config.environment import from_environment
from mediad.config.parse import apply_setting, from_mapping
from mediad.config.schema import Config
from mediad.errors import ConfigError
from mediad.paths import escaped, is_utf8


def load(
    path: str | None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[tuple[str, str], Any] | None = None,
) -> Config:
    """Read the file (if any), then the environment, then flags; validate every value."""
    environ = os.environ if environ is None else environ
    path = path or environ.get("MEDIAD_CONFIG") or None
    config = Config()
    if path:
        try:
            with open(path, "rb") as handle:
                data = tomllib.load(handle)
        except FileNotFoundError:
            raise ConfigError("--config", f"{escaped(path)}: no such file") from None
        except OSError as exc:
            raise ConfigError("--config", f"{escaped(path)}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("--config", f"{escaped(path)}: not valid TOML: {exc}") from None
        config = replace(from_mapping(data), source=path)
    config = from_environment(environ, config)
    for (section, key), value in (overrides or {}).items():
        config = apply_setting(config, section, key, value, from_text=False)
    return _cross_checks(config)


def _cross_checks(config: Config) -> Config:
    if config.database.password_file and not config.database.dsn:
        raise ConfigError("database.password_file", "is set but database.dsn is empty")
    if config.embedded and not is_utf8(str(config.state_path())):
        # The embedded server's tools take the directory as text and would fail on it.
        raise ConfigError(
            "daemon.state_dir",
            f"{escaped(str(config.state_path()))} is not valid UTF-8, so the embedded "
            "PostgreSQL cannot live there: choose another directory, or set database.dsn",
        )
    if config.embedded and not config.database.auto_migrate:
        # The private server is mediad's own: nobody else could have migrated it.
        config = replace(config, database=replace(config.database, auto_migrate=True))
    return config
