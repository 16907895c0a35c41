"""Output shared by several commands."""

from __future__ import annotations

from mediad.config import Config, database_label, mask_dsn


def database_json(config: Config) -> dict[str, str]:
    """The database in a --json output: "database" as `status --json` has always given it
    (the DSN masked, or "embedded"), and "database_label" as the text output names it."""
    return {
        "database": mask_dsn(config.database.dsn) or "embedded",
        "database_label": database_label(config),
    }
