"""The file's tables turned into a Config: one setting at a time, each typed and validated.

`apply_setting` is the single way a value enters a Config, whether it came from the
file, the environment or a flag.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any

from mediad.config.coerce import coerce
from mediad.config.schema import (
    ATTACH_KEYS,
    MOUNT_KEYS,
    SECTIONS,
    AttachConfig,
    Config,
    MountConfig,
)
from mediad.config.validators import PATH_SETTINGS, VALIDATORS
from mediad.errors import ConfigError
from mediad.mounts import normalise
from mediad.paths import escaped, is_utf8


def apply_setting(config: Config, section: str, key: str, value: Any, from_text: bool) -> Config:
    section_cls = SECTIONS.get(section)
    if section_cls is None:
        raise ConfigError(section, f"unknown section; known: {', '.join(SECTIONS)}")
    current = getattr(config, section)
    known = {f.name for f in fields(section_cls)}
    if key not in known:
        raise ConfigError(f"{section}.{key}", f"unknown key; known: {', '.join(sorted(known))}")
    coerced = coerce(section, key, getattr(current, key), value, from_text)
    if (section, key) not in PATH_SETTINGS and isinstance(coerced, str) and not is_utf8(coerced):
        # From a flag or the environment; PostgreSQL or a socket would fail on it later.
        raise ConfigError(f"{section}.{key}", f"{escaped(coerced)} is not valid UTF-8")
    validator = VALIDATORS.get((section, key))
    if validator is not None:
        try:
            coerced = validator(coerced)
        except ValueError as exc:
            raise ConfigError(f"{section}.{key}", str(exc)) from None
    return replace(config, **{section: replace(current, **{key: coerced})})


def from_mapping(data: Mapping[str, Any], base: Config | None = None) -> Config:
    config = base or Config()
    for section, values in data.items():
        if not isinstance(values, Mapping):
            raise ConfigError(section, "must be a table ([section])")
        if section == "attach":
            config = replace(config, attach=_attach_tables(values))
            continue
        if section == "mounts":
            config = replace(config, mounts=_mount_tables(values))
            continue
        for key, value in values.items():
            config = apply_setting(config, section, key, value, from_text=False)
    return config


def _attach_tables(data: Mapping[str, Any]) -> tuple[AttachConfig, ...]:
    """`[attach."public.media_files"]` tables: keys checked and typed, id and path required."""
    found: list[AttachConfig] = []
    for table, values in data.items():
        name = f'attach."{table}"'
        if not table.strip():
            raise ConfigError(name, "needs a table name")
        if not isinstance(values, Mapping):
            raise ConfigError(name, f'must be a table ([attach."{table}"] with id and path)')
        current = AttachConfig(table=table)
        for key, value in values.items():
            if key not in ATTACH_KEYS:
                raise ConfigError(f"{name}.{key}", f"unknown key; known: {', '.join(ATTACH_KEYS)}")
            coerced = coerce(name, key, getattr(current, key), value, from_text=False)
            if isinstance(coerced, str) and key != "summary_prefix" and coerced != coerced.strip():
                raise ConfigError(f"{name}.{key}", "has leading or trailing spaces")
            current = replace(current, **{key: coerced})
        for key in ("id", "path"):
            if not getattr(current, key):
                raise ConfigError(f"{name}.{key}", "is required (the column's name)")
        if current.path_prefix and not os.path.isabs(current.path_prefix):
            raise ConfigError(f"{name}.path_prefix", "must be an absolute directory (start with /)")
        found.append(current)
    return tuple(found)


def _mount_tables(data: Mapping[str, Any]) -> tuple[MountConfig, ...]:
    """`[mounts."/mnt/nas"]` tables: an absolute point, max_workers required and >= 1."""
    found: dict[str, MountConfig] = {}
    for point, values in data.items():
        name = f"mounts.{json.dumps(point)}"
        if not isinstance(values, Mapping):
            raise ConfigError(
                name, f"must be a table ([mounts.{json.dumps(point)}] with max_workers)"
            )
        if not point.startswith("/"):
            raise ConfigError(name, "the mount point must be an absolute path (start with /)")
        normal = normalise(point)
        if normal in found:
            raise ConfigError(name, f"is {normal} again, named by another [mounts] table")
        current = MountConfig(point=normal)
        for key, value in values.items():
            if key not in MOUNT_KEYS:
                raise ConfigError(f"{name}.{key}", f"unknown key; known: {', '.join(MOUNT_KEYS)}")
            current = replace(
                current, **{key: coerce(name, key, getattr(current, key), value, False)}
            )
        if "max_workers" not in values:
            raise ConfigError(f"{name}.max_workers", "is required")
        if current.max_workers < 1:
            raise ConfigError(f"{name}.max_workers", "must be 1 or more")
        found[normal] = current
    return tuple(found.values())
