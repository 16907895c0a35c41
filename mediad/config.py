"""Configuration: one TOML file, overridden by MEDIAD_<SECTION>_<KEY> variables, then flags.

Pure logic: nothing here opens a socket or a database. Every setting is declared once in
SETTINGS with its type, default and validator, so parsing, validation, environment
overrides and `check-config` all come from the same table.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mediad.errors import ConfigError
from mediad.mounts import normalise
from mediad.paths import escaped, is_utf8

IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("auto", "console", "json", "journald")


@dataclass(frozen=True)
class DatabaseConfig:
    dsn: str = ""
    password_file: str = ""
    schema: str = "mediad"
    listen: bool = True
    auto_migrate: bool = False
    connect_timeout_seconds: float = 5.0
    prepared_statements: bool = True  # false behind PgBouncer in transaction mode (< 1.21)


@dataclass(frozen=True)
class DaemonConfig:
    workers: int = 0  # 0 means one per core
    batch_size: int = 500  # the most rows per claim; the claim follows the pace (pace.py)
    poll_seconds: float = 5.0
    lease_seconds: float = 30.0
    shutdown_grace_seconds: float = 30.0
    state_dir: str = ""
    flush_seconds: float = 0.25
    max_files_per_worker: int = 5000
    memory_limit_mb: int = 1024
    instance: str = ""
    prefetch: int = 16  # the most files a worker holds; it holds about 50 ms of work (pace.py)
    mount_stall_timeouts: int = 3  # this many timeouts on one mount within the window stall it
    mount_stall_window_seconds: float = 120.0
    mount_probe_seconds: float = 15.0  # a stalled mount is probed this often
    max_stuck_workers: int = 0  # 0 means the worker count
    heartbeat_seconds: float = 5.0  # the daemon's row in the daemons table; gone after 3


@dataclass(frozen=True)
class ExtractConfig:
    roots: tuple[str, ...] = ()
    timeout_seconds: float = 60.0
    parse_speed: float = 0.5
    max_file_bytes: int = 0  # 0 means no limit
    full_document: bool = False
    engine: str = "mediainfo"  # "noop": skip MediaInfo, to measure the pipeline alone
    library_file: str = ""  # a libmediainfo to load instead of pymediainfo's own
    cpu_seconds: float = 60.0  # CPU time one file may use (RLIMIT_CPU); 0: no limit


@dataclass(frozen=True)
class RetryConfig:
    max_attempts: int = 3
    backoff_base_seconds: float = 10.0
    backoff_max_seconds: float = 3600.0


@dataclass(frozen=True)
class MetricsConfig:
    listen: str = "127.0.0.1:9464"


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    format: str = "auto"


@dataclass(frozen=True)
class AttachConfig:
    """One `[attach."schema.table"]` table: an application table mediad works from
    (docs/attach.md). Applied when `mediad run` starts."""

    table: str = ""  # the TOML key: the table's name, schema-qualified or not
    id: str = ""  # required
    path: str = ""  # required
    metadata: str = ""  # empty: results are not written into the table
    summary_prefix: str = ""  # empty: no summary columns
    skip_existing: bool = True
    path_prefix: str = ""  # empty: paths are used as the table holds them


ATTACH_KEYS = ("id", "path", "metadata", "summary_prefix", "skip_existing", "path_prefix")


@dataclass(frozen=True)
class MountConfig:
    """One `[mounts."/mnt/nas"]` table: settings for the filesystem mounted there
    (docs/operations.md). The point is matched against the mount table as written,
    never resolved: resolving would touch the mount, which may hang."""

    point: str = ""  # the TOML key: an absolute mount point
    max_workers: int = 0  # required: the most files of this mount in flight at once


MOUNT_KEYS = ("max_workers",)


@dataclass(frozen=True)
class Config:
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    log: LogConfig = field(default_factory=LogConfig)
    attach: tuple[AttachConfig, ...] = ()  # file only: no environment variables
    mounts: tuple[MountConfig, ...] = ()  # file only: no environment variables
    source: str = ""  # the file it was read from, for messages

    @property
    def embedded(self) -> bool:
        """No DSN configured: mediad runs its own PostgreSQL in its state directory."""
        return not self.database.dsn

    def effective_workers(self) -> int:
        return self.daemon.workers or (os.cpu_count() or 1)

    def effective_max_stuck(self) -> int:
        """Stuck processes tolerated before network mounts get no more files."""
        return self.daemon.max_stuck_workers or self.effective_workers()

    def mount_overrides(self) -> dict[str, int]:
        """Mount point -> max_workers, from the `[mounts."..."]` tables."""
        return {m.point: m.max_workers for m in self.mounts}

    def state_path(self) -> Path:
        if self.daemon.state_dir:
            return Path(self.daemon.state_dir)
        systemd_state = os.environ.get("STATE_DIRECTORY")
        if systemd_state:
            return Path(systemd_state.split(":")[0])
        xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        return Path(xdg) / "mediad"


SECTIONS: dict[str, type[Any]] = {
    "database": DatabaseConfig,
    "daemon": DaemonConfig,
    "extract": ExtractConfig,
    "retry": RetryConfig,
    "metrics": MetricsConfig,
    "log": LogConfig,
}


# --- validators: each returns the normalised value or raises ValueError with a reason ---


def _positive(value: float) -> float:
    if value <= 0:
        raise ValueError("must be greater than 0")
    return value


def _non_negative(value: float) -> float:
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


def _identifier(value: str) -> str:
    if not IDENTIFIER_RE.match(value):
        raise ValueError(
            "must be a plain identifier: a letter or underscore, then letters, digits or "
            "underscores, at most 63 characters"
        )
    return value


def _one_of(*choices: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value.lower() not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value.lower()

    return check


def _listen_address(value: str) -> str:
    if value == "":
        return value  # metrics off
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("must be HOST:PORT (for example 127.0.0.1:9464), or empty to disable")
    if not host:
        raise ValueError("needs a host: use 127.0.0.1:PORT, or 0.0.0.0:PORT deliberately")
    return value


def _roots(value: tuple[str, ...]) -> tuple[str, ...]:
    for root in value:
        if not os.path.isabs(root):
            raise ValueError(f"every root must be an absolute path, not {root!r}")
    # Confinement is checked against resolved paths, so the roots are resolved too.
    return tuple(os.path.realpath(root) for root in value)


def _parse_speed(value: float) -> float:
    if not 0 <= value <= 1:
        raise ValueError("must be between 0 and 1")
    return value


def _dsn(value: str) -> str:
    if value and not (value.startswith(("postgres://", "postgresql://")) or "=" in value):
        raise ValueError("must be a postgresql:// URL or a libpq 'key=value' string")
    return value


# File names, which may be any bytes; every other text setting must be UTF-8.
PATH_SETTINGS = frozenset(
    {
        ("database", "password_file"),
        ("daemon", "state_dir"),
        ("extract", "roots"),
        ("extract", "library_file"),
    }
)

VALIDATORS: dict[tuple[str, str], Callable[[Any], Any]] = {
    ("database", "dsn"): _dsn,
    ("database", "schema"): _identifier,
    ("database", "connect_timeout_seconds"): _positive,
    ("daemon", "workers"): _non_negative,
    ("daemon", "batch_size"): _positive,
    ("daemon", "poll_seconds"): _positive,
    ("daemon", "lease_seconds"): _positive,
    ("daemon", "shutdown_grace_seconds"): _non_negative,
    ("daemon", "flush_seconds"): _positive,
    ("daemon", "max_files_per_worker"): _non_negative,
    ("daemon", "memory_limit_mb"): _non_negative,
    ("daemon", "prefetch"): _positive,
    ("daemon", "mount_stall_timeouts"): _positive,
    ("daemon", "mount_stall_window_seconds"): _positive,
    ("daemon", "mount_probe_seconds"): _positive,
    ("daemon", "max_stuck_workers"): _non_negative,
    ("daemon", "heartbeat_seconds"): _positive,
    ("extract", "roots"): _roots,
    ("extract", "timeout_seconds"): _positive,
    ("extract", "cpu_seconds"): _non_negative,
    ("extract", "parse_speed"): _parse_speed,
    ("extract", "max_file_bytes"): _non_negative,
    ("extract", "engine"): _one_of("mediainfo", "noop"),
    ("retry", "max_attempts"): _positive,
    ("retry", "backoff_base_seconds"): _non_negative,
    ("retry", "backoff_max_seconds"): _non_negative,
    ("metrics", "listen"): _listen_address,
    ("log", "level"): _one_of(*LOG_LEVELS),
    ("log", "format"): _one_of(*LOG_FORMATS),
}


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


def _coerce(section: str, key: str, expected: Any, value: Any, from_text: bool) -> Any:
    """Turn a TOML value (or an environment string) into the declared type."""
    return COERCERS[type(expected)](f"{section}.{key}", value, from_text)


def _apply(config: Config, section: str, key: str, value: Any, from_text: bool) -> Config:
    section_cls = SECTIONS.get(section)
    if section_cls is None:
        raise ConfigError(section, f"unknown section; known: {', '.join(SECTIONS)}")
    current = getattr(config, section)
    known = {f.name for f in fields(section_cls)}
    if key not in known:
        raise ConfigError(f"{section}.{key}", f"unknown key; known: {', '.join(sorted(known))}")
    coerced = _coerce(section, key, getattr(current, key), value, from_text)
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
            config = _apply(config, section, key, value, from_text=False)
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
            coerced = _coerce(name, key, getattr(current, key), value, from_text=False)
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
                current, **{key: _coerce(name, key, getattr(current, key), value, False)}
            )
        if "max_workers" not in values:
            raise ConfigError(f"{name}.max_workers", "is required")
        if current.max_workers < 1:
            raise ConfigError(f"{name}.max_workers", "must be 1 or more")
        found[normal] = current
    return tuple(found.values())


def from_environment(environ: Mapping[str, str], base: Config) -> Config:
    """Apply MEDIAD_<SECTION>_<KEY> variables; unknown MEDIAD_ names are errors, not ignored."""
    config = base
    for name, value in sorted(environ.items()):
        if not name.startswith("MEDIAD_") or name in NON_SETTING_VARIABLES:
            continue
        if name.startswith("MEDIAD_TEST_"):
            continue  # reserved for the test suite (MEDIAD_TEST_DSN, MEDIAD_TEST_HOOKS...)
        rest = name[len("MEDIAD_") :].lower()
        section, _, key = rest.partition("_")
        if section not in SECTIONS or not key:
            raise ConfigError(name, "does not name a setting (MEDIAD_<SECTION>_<KEY>)")
        config = _apply(config, section, key, value, from_text=True)
    return config


# Variables that share the prefix but are not settings.
NON_SETTING_VARIABLES = frozenset({"MEDIAD_CONFIG"})


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
        config = _apply(config, section, key, value, from_text=False)
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
