"""Configuration: one TOML file, overridden by MEDIAD_<SECTION>_<KEY> variables, then flags.

Pure logic: nothing here opens a socket or a database. Every setting is declared once
(schema) with its type and default, and its rule (validators), so parsing, validation,
environment overrides and `check-config` all come from the same table.

    schema       the sections and their defaults
    validators   what each value must be
    coerce       a TOML value or a variable's text into the declared type
    parse        the file's tables into a Config, one setting at a time
    environment  MEDIAD_<SECTION>_<KEY> variables
    loader       file, then environment, then flags, then the checks across settings
    display      secrets masked, for logs and check-config
"""

from mediad.config.coerce import COERCERS
from mediad.config.display import as_display_dict, database_label, home_relative, mask_dsn
from mediad.config.environment import NON_SETTING_VARIABLES, from_environment
from mediad.config.loader import load
from mediad.config.parse import apply_setting, from_mapping
from mediad.config.schema import (
    ATTACH_KEYS,
    LOG_FORMATS,
    LOG_LEVELS,
    MOUNT_KEYS,
    SECTIONS,
    AttachConfig,
    Config,
    DaemonConfig,
    DatabaseConfig,
    ExtractConfig,
    LogConfig,
    MetricsConfig,
    MountConfig,
    RetryConfig,
)
from mediad.config.validators import IDENTIFIER_RE, PATH_SETTINGS, VALIDATORS

__all__ = [
    "ATTACH_KEYS",
    "COERCERS",
    "IDENTIFIER_RE",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "MOUNT_KEYS",
    "NON_SETTING_VARIABLES",
    "PATH_SETTINGS",
    "SECTIONS",
    "VALIDATORS",
    "AttachConfig",
    "Config",
    "DaemonConfig",
    "DatabaseConfig",
    "ExtractConfig",
    "LogConfig",
    "MetricsConfig",
    "MountConfig",
    "RetryConfig",
    "apply_setting",
    "as_display_dict",
    "database_label",
    "from_environment",
    "from_mapping",
    "home_relative",
    "load",
    "mask_dsn",
]
