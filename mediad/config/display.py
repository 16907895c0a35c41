"""The configuration as a user sees it: secrets masked, directories written as typed."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mediad.config.schema import ATTACH_KEYS, MOUNT_KEYS, SECTIONS, Config


def mask_dsn(dsn: str) -> str:
    """The DSN with any password replaced, for logs and check-config."""
    if not dsn:
        return dsn
    if dsn.startswith(("postgres://", "postgresql://")):
        parts = urlsplit(dsn)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostinfo = netloc.rpartition("@")
            if ":" in userinfo:
                user = userinfo.split(":", 1)[0]
                netloc = f"{user}:***@{hostinfo}"
        query = re.sub(r"(?i)(password=)[^&]*", r"\1***", parts.query)
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    return re.sub(r"(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", dsn)


def database_label(config: Config) -> str:
    """Which database a command works on, for its summary and its errors: the DSN with
    its password masked, or the embedded server and the directory it lives in."""
    if config.database.dsn:
        return mask_dsn(config.database.dsn)
    return f"embedded ({home_relative(config.state_path())})"


def home_relative(path: Path) -> str:
    """The path with the home directory written `~`, as a user would type it."""
    try:
        home = str(Path.home())
    except (RuntimeError, KeyError):  # no HOME and no passwd entry (a container's uid)
        return str(path)
    text = str(path)
    if home != "/" and (text == home or text.startswith(home + "/")):
        return "~" + text[len(home) :]
    return text


def as_display_dict(config: Config) -> dict[str, dict[str, Any]]:
    """The effective configuration, secrets masked, for check-config and logs."""
    shown: dict[str, dict[str, Any]] = {}
    for section in SECTIONS:
        current = getattr(config, section)
        values = {f.name: getattr(current, f.name) for f in fields(SECTIONS[section])}
        for key, value in values.items():
            if isinstance(value, tuple):
                values[key] = list(value)
        shown[section] = values
    shown["database"]["dsn"] = mask_dsn(config.database.dsn)
    if config.attach:
        shown["attach"] = {
            a.table: {key: getattr(a, key) for key in ATTACH_KEYS} for a in config.attach
        }
    if config.mounts:
        shown["mounts"] = {
            m.point: {key: getattr(m, key) for key in MOUNT_KEYS} for m in config.mounts
        }
    return shown
