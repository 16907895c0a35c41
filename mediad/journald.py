"""Logging straight to the journal, with each event's fields as native journal fields.

Under systemd, stderr already goes to the journal, but as one opaque line per event.
Sending each event with sd_journal_send instead keeps its fields searchable
(`journalctl -u mediad ERROR_CLASS=timeout`, `journalctl -o verbose`) and gives it the
right priority. The message (MESSAGE=) is the event text, for example "file failed".
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Mapping, MutableMapping
from typing import IO, Any

import structlog

# sd_journal_send(MESSAGE, **fields), as systemd.journal.send has it.
SendFunction = Callable[..., object]

SYSLOG_IDENTIFIER = "mediad"

# syslog priorities (sd-daemon.h): what `journalctl -p` filters on.
PRIORITIES = {
    "critical": 2,
    "exception": 3,
    "error": 3,
    "warning": 4,
    "warn": 4,
    "info": 6,
    "debug": 7,
}
DEFAULT_PRIORITY = 6

# Fields this module sets itself, and those the journal or systemd.journal.send own; an
# event key that would map onto one of them gets a prefix instead of overwriting it.
RESERVED_FIELDS = frozenset(
    {
        "MESSAGE",
        "MESSAGE_ID",
        "PRIORITY",
        "SYSLOG_IDENTIFIER",
        "SYSLOG_FACILITY",
        "SYSLOG_PID",
        "SYSLOG_TIMESTAMP",
        "CODE_FILE",
        "CODE_LINE",
        "CODE_FUNC",
        "ERRNO",
    }
)
MAX_FIELD_NAME = 64  # journald drops longer names
_NOT_FIELD_CHARS = re.compile(r"[^A-Z0-9_]")


def field_name(key: str) -> str:
    """An event key as a journal field name: upper case, [A-Z0-9_], starting with a letter.

    journald accepts no other names: lower case is refused, and a leading underscore is
    reserved for the fields journald itself vouches for (_PID, _UID...).
    """
    name = _NOT_FIELD_CHARS.sub("_", key.upper()).lstrip("_")
    if not name or name[0].isdigit():
        name = "FIELD_" + name
    if name in RESERVED_FIELDS:
        name = "EVENT_" + name
    return name[:MAX_FIELD_NAME]


def field_value(value: Any) -> str:
    """Strings as they are; anything else as JSON (numbers, booleans, lists, mappings)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, ensure_ascii=False)


# structlog's CallsiteParameterAdder keys, sent as the journal's CODE_* fields.
CALLSITE_FIELDS = {"pathname": "CODE_FILE", "lineno": "CODE_LINE", "func_name": "CODE_FUNC"}
CALLSITE = structlog.processors.CallsiteParameterAdder(
    [
        structlog.processors.CallsiteParameter.PATHNAME,
        structlog.processors.CallsiteParameter.LINENO,
        structlog.processors.CallsiteParameter.FUNC_NAME,
    ]
)


def journal_fields(event_dict: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The MESSAGE text and the other fields of one structlog event."""
    fields = dict(event_dict)
    message = str(fields.pop("event", ""))
    level = str(fields.get("level", "info")).lower()
    out: dict[str, Any] = {}
    for key, code_field in CALLSITE_FIELDS.items():
        if key in fields:
            value = fields.pop(key)
            out[code_field] = value if code_field == "CODE_LINE" else str(value)
    for key, value in fields.items():
        if value is None:
            continue  # an absent value is no field (journalctl FIELD= would match it)
        name = base = field_name(str(key))
        suffix = 1
        while name in out:  # two keys that differ only in case or punctuation
            suffix += 1
            name = f"{base[: MAX_FIELD_NAME - 4]}_{suffix}"
        out[name] = field_value(value)
    out["PRIORITY"] = str(PRIORITIES.get(level, DEFAULT_PRIORITY))
    out["SYSLOG_IDENTIFIER"] = SYSLOG_IDENTIFIER
    return message, out


class JournaldRenderer:
    """The last structlog processor: sends the event to the journal, prints nothing.

    If the journal refuses the event (its socket is gone, say, when `log.format =
    "journald"` is set outside systemd), the event is written as a JSON line to
    `fallback` instead, so it is never lost, and that is said once.
    """

    def __init__(self, send: SendFunction, fallback: IO[str] | None = None) -> None:
        self._send = send
        self._fallback = fallback
        self._json = structlog.processors.JSONRenderer()
        self._warned = False

    def __call__(self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
        message, fields = journal_fields(event_dict)
        try:
            self._send(message, **fields)
        except OSError as exc:
            self._write_fallback(logger, method_name, event_dict, exc)
        raise structlog.DropEvent

    def _write_fallback(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any], exc: OSError
    ) -> None:
        stream = self._fallback or sys.stderr
        if not self._warned:
            self._warned = True
            notice = {
                "event": "journal refused an event: writing JSON lines to stderr",
                "level": "warning",
                "error": str(exc),
            }
            print(self._json(logger, "warning", notice), file=stream, flush=True)
        print(self._json(logger, method_name, event_dict), file=stream, flush=True)


JOURNAL_SOCKET = "/run/systemd/journal/socket"


def journal_present(socket_path: str = JOURNAL_SOCKET) -> bool:
    """Whether journald listens here: without it, sd_journal_send drops events silently."""
    return os.path.exists(socket_path)


def journal_send() -> SendFunction | None:
    """systemd.journal.send, or None without systemd-python (the `systemd` extra)."""
    try:
        from systemd import journal  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return None
    send: SendFunction = journal.send
    return send
