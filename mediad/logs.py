"""Logging with structlog: console on a terminal, JSON lines otherwise, journald under systemd."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}


def choose_format(configured: str) -> str:
    if configured != "auto":
        return configured
    if os.environ.get("JOURNAL_STREAM") and not sys.stderr.isatty():
        return "journald"
    return "console" if sys.stderr.isatty() else "json"


def configure(level: str = "info", fmt: str = "auto") -> None:
    chosen = choose_format(fmt)
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    if chosen == "console":
        renderer: Any = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    else:
        # journald: the journal stores each stderr line; JSON keeps the fields parseable.
        renderer = structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
