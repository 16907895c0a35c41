"""`mediad migrate` and `mediad check-config`."""

from __future__ import annotations

import argparse
import json

from mediad.config import Config, as_display_dict, database_label
from mediad.db import migrations
from mediad.paths import escaped
from mediad.runtime import open_database

# Sections made of named tables: [attach."TABLE"], [mounts."/POINT"].
TABLE_SECTIONS = ("attach", "mounts")


def migrate(args: argparse.Namespace, config: Config) -> int:
    with open_database(config, migrate=False, check=False) as store:
        applied = migrations.migrate(store)
        version = migrations.check_schema(store)
    if applied:
        steps = ", ".join(f"{name} (version {int(name[:4])})" for name in applied)
        print(
            f"schema {config.database.schema} on {database_label(config)}: applied {steps}; "
            f"now version {version}"
        )
    else:
        print(
            f"schema {config.database.schema} on {database_label(config)} is up to date "
            f"(version {version})"
        )
    return 0


def check_config(args: argparse.Namespace, config: Config) -> int:
    shown = as_display_dict(config)
    if args.json:
        print(json.dumps(shown))
        return 0
    source = escaped(config.source) if config.source else "defaults"
    print(f"# configuration is valid (source: {source})")
    print(f"# database: {database_label(config)}")
    for section, values in shown.items():
        tables = values.items() if section in TABLE_SECTIONS else [("", values)]
        for table, table_values in tables:
            print(f"[{section}]" if not table else f"[{section}.{json.dumps(table)}]")
            for key, value in table_values.items():
                print(f"{key} = {json.dumps(value)}")
            print()
    return 0
