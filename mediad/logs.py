"""Logging with structlog: console on a terminal, JSON lines otherwise, journald under systemd.

Every format runs the same processors, ending with `mask_secrets`: whatever a log call is
given, a database password does not reach the output (defence in depth: mediad already
masks DSNs where it logs them).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

from mediad import journald
from mediad.config import mask_dsn

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

MASK = "***"

# A postgres:// URL inside any text (an error message, a repr): passed to mask_dsn.
_URL_DSN = re.compile(r"(?i)postgres(?:ql)?://[^\s'\"<>]+")
# password=..., PGPASSWORD=..., "password": "...", passwd: ...; the value quoted or bare.
_PASSWORD_ASSIGNMENT = re.compile(
    r"""(?ix)
    \b((?:pg)?passw(?:or)?d)               # the name
    (["']?\s*[=:]\s*)                      # = or : (a JSON key's closing quote too)
    ('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s'",;&}]+)  # the value
    """
)
# Event keys whose whole value is a secret, whatever it looks like.
_SECRET_KEY = re.compile(r"(?i)passw(?:or)?d|secret")
_MIN_SECRET_LENGTH = 4  # shorter known secrets would mask ordinary text

_secrets: set[str] = set()
_warned_no_journal = False


def register_secret(value: str | None) -> None:
    """A secret (the database password as read) that must never appear in a log line."""
    if value and len(value) >= _MIN_SECRET_LENGTH:
        _secrets.add(value)


def mask_text(text: str) -> str:
    """The text with passwords in DSNs, `password=` assignments and known secrets masked."""
    text = _URL_DSN.sub(lambda match: mask_dsn(match.group(0)), text)
    text = _PASSWORD_ASSIGNMENT.sub(lambda m: m.group(1) + m.group(2) + MASK, text)
    for secret in _secrets:
        text = text.replace(secret, MASK)
    return text


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, Mapping):
        return {key: _mask_item(str(key), item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_mask_value(item) for item in value]
    return value


def _mask_item(key: str, value: Any) -> Any:
    if _SECRET_KEY.search(key) and value not in (None, ""):
        return MASK
    return _mask_value(value)


def mask_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> dict[str, Any]:
    """structlog processor: masks secrets in every value (the event text included)."""
    return {key: _mask_item(key, value) for key, value in event_dict.items()}


def stderr_is_journal(environ: Mapping[str, str] | None = None, fd: int = 2) -> bool:
    """True when stderr is the journal stream systemd connected (systemd.exec(5)).

    JOURNAL_STREAM is "DEVICE:INODE" of that stream. It is inherited by children, so a
    process whose stderr was redirected elsewhere (a pipe, a file) must not trust the
    variable alone: compare it with what fd 2 really is.
    """
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    device, sep, inode = value.partition(":")
    if not sep or not device.isdigit() or not inode.isdigit():
        return False
    try:
        status = os.fstat(fd)
    except OSError:
        return False
    return status.st_dev == int(device) and status.st_ino == int(inode)


def choose_format(configured: str) -> str:
    if configured != "auto":
        return configured
    if stderr_is_journal():
        return "journald"
    return "console" if sys.stderr.isatty() else "json"


def _renderer(chosen: str) -> tuple[list[Any], str]:
    """The last processors for a format, and why journald could not be used (or "")."""
    if chosen == "journald":
        send = journald.journal_send()
        if send is None:
            return [structlog.processors.JSONRenderer()], (
                "log format journald needs systemd-python (pip install 'mediad[systemd]'): "
                "writing JSON lines to stderr instead"
            )
        if not journald.journal_present():
            return [structlog.processors.JSONRenderer()], (
                f"log format journald but no journal listens at {journald.JOURNAL_SOCKET}: "
                "writing JSON lines to stderr instead"
            )
        return [journald.CALLSITE, journald.JournaldRenderer(send, sys.stderr)], ""
    if chosen == "console":
        return [structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())], ""
    return [structlog.processors.JSONRenderer()], ""


class _ToStructlog(logging.Handler):
    """Third-party logging (psycopg_pool's reconnect warnings...) in mediad's own format,
    masked like everything else."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            logger = structlog.get_logger(record.name)
            method = getattr(logger, record.levelname.lower(), logger.warning)
            method(record.getMessage(), logger=record.name)
        except Exception:
            self.handleError(record)


def _route_standard_logging(level: str, libraries: bool) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _ToStructlog):
            root.removeHandler(handler)
    root.addHandler(_ToStructlog())
    root.setLevel(library_level(level, libraries))


def library_level(level: str, libraries: bool) -> int:
    """Libraries speak at warning and above in the daemon, where their reconnect warnings
    tell an operator what is going on; a command reports its own outcome in one line, so
    there they are silent. With mediad itself debugging, everything is shown."""
    if level == "debug":
        return logging.DEBUG
    return logging.WARNING if libraries else logging.CRITICAL + 1


def configure(level: str = "info", fmt: str = "auto", *, libraries: bool = True) -> None:
    """`libraries`: whether third-party log lines (psycopg_pool's...) are shown at all
    below --log-level debug; only `run` wants them."""
    global _warned_no_journal
    renderer, problem = _renderer(choose_format(fmt))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            mask_secrets,
            *renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    _route_standard_logging(level, libraries)
    if problem and not _warned_no_journal:
        _warned_no_journal = True  # once per process, not at every reload
        structlog.get_logger("mediad").warning(problem)
