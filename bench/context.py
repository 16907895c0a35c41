"""What every contender of `python -m bench.run` shares: its arguments, database and corpus."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from bench.daemon import DaemonSpec
from bench.db import Sql


@dataclass
class Context:
    args: argparse.Namespace
    dsn: str
    sql: Sql
    work: Path
    paths: list[str]
    extra_paths: list[str]
    roots: str

    def spec(self, schema: str, engine: str, workers: int | None = None) -> DaemonSpec:
        return DaemonSpec(
            self.dsn, schema, workers or self.args.workers, engine, self.roots, self.work / "state"
        )
