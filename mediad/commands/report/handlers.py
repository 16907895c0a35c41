"""`mediad status` and `mediad show`: read what the database holds, print it."""

from __future__ import annotations

import argparse
import json
from typing import Any

from mediad.commands.options import path_arguments
from mediad.commands.output import database_json
from mediad.commands.report.output import (
    fleet_json,
    print_pauses,
    print_show,
    print_status,
    show_record,
)
from mediad.config import Config, database_label
from mediad.db import migrations, pauses, reads
from mediad.extract.summary import MAPPING_VERSION
from mediad.fleet import daemon_json
from mediad.paths import escaped
from mediad.runtime import open_database

# Paths looked up per statement: a long list from standard input prints as it goes.
SHOW_BATCH = 1000


def status(args: argparse.Namespace, config: Config) -> int:
    with open_database(config) as store:
        counts = reads.counts(store)
        failures = reads.failures_by_class(store)
        done_1m, failed_1m = reads.finished_since(store, 60)
        oldest = reads.oldest_pending_seconds(store)
        version = migrations.check_schema(store)
        # After the check: an older schema has no such table.
        fleet = reads.daemons(store)
        older = reads.older_mapping(store, MAPPING_VERSION)
        paused = pauses.active(store)
    live = [seen for seen in fleet if seen.live]
    report: dict[str, Any] = {
        "counts": counts,
        "total": sum(counts.values()),
        "failures_by_class": failures,
        "rates": {
            "done_per_s_1m": round(done_1m / 60, 3),
            "failed_per_s_1m": round(failed_1m / 60, 3),
        },
        "oldest_pending_seconds": oldest,
        "older_mapping": older,
        "schema": config.database.schema,
        "schema_version": version,
        **database_json(config),
        **fleet_json(live),
        "daemons": [daemon_json(seen) for seen in fleet],
        "pauses": [p.as_json() for p in paused],
    }
    if args.json:
        print(json.dumps(report))
    else:
        print_status(report, len(live))
        print_pauses(paused)
    return 0


def show(args: argparse.Namespace, config: Config) -> int:
    # A name that is not UTF-8 is stored, and so looked up and printed, escaped (enqueue
    # and scan record it so); it could not be sent to PostgreSQL or printed as it is.
    paths = [escaped(p) for p in path_arguments(args)]
    with open_database(config) as store:
        for start in range(0, len(paths), SHOW_BATCH):
            batch = paths[start : start + SHOW_BATCH]
            known = reads.show(store, batch)
            for path in batch:
                record = show_record(path, known.get(path))
                if args.json:
                    print(json.dumps(record))
                else:
                    print_show(record)
    if not args.json:
        print(f"database: {database_label(config)}")
    return 0
