"""MEDIAD_<SECTION>_<KEY> variables, applied over what the file said."""

from __future__ import annotations

from collections.abc import Mapping

from mediad.config.parse import apply_setting
from mediad.config.schema import SECTIONS, Config
from mediad.errors import ConfigError

# Variables that share the prefix but are not settings.
NON_SETTING_VARIABLES = frozenset({"MEDIAD_CONFIG"})


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
        config = apply_setting(config, section, key, value, from_text=True)
    return config
