"""Turning a TOML value, or an environment variable's text, into a setting's declared type."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from mediad.errors import ConfigError


def _to_bool(name: str, value: Any, from_text: bool) -> bool:
    if from_text:
        lowered = str(value).strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
    elif isinstance(value, bool):
        return value
    raise ConfigError(name, f"must be true or false, not {value!r}")


def _to_int(name: str, value: Any, from_text: bool) -> int:
    if from_text:
        try:
            return int(str(value).strip())
        except ValueError:
            pass
    elif isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ConfigError(name, f"must be a whole number, not {value!r}")


def _to_float(name: str, value: Any, from_text: bool) -> float:
    if from_text:
        try:
            return float(str(value).strip())
        except ValueError:
            pass
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise ConfigError(name, f"must be a number, not {value!r}")


def _to_tuple(name: str, value: Any, from_text: bool) -> tuple[str, ...]:
    if from_text:
        # A path list in one variable is os.pathsep-separated, as PATH is.
        return tuple(part for part in str(value).split(os.pathsep) if part)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(name, f"must be a list of strings, not {value!r}")


def _to_str(name: str, value: Any, from_text: bool) -> str:
    if isinstance(value, str):
        return value
    raise ConfigError(name, f"must be a string, not {value!r}")


COERCERS: dict[type, Callable[[str, Any, bool], Any]] = {
    bool: _to_bool,
    int: _to_int,
    float: _to_float,
    tuple: _to_tuple,
    str: _to_str,
}


def coerce(section: str, key: str, expected: Any, value: Any, from_text: bool) -> Any:
    """Turn a TOML value (or an environment string) into the declared type."""
    return COERCERS[type(expected)](f"{section}.{key}", value, from_text)
