"""What a failed connection attempt means: worth waiting for, or not.

psycopg 3 gives no SQLSTATE for a connection that fails before the session starts (there
is no result to carry one: `exc.sqlstate` and `exc.diag` are empty), only libpq's message,
e.g. `connection failed: connection to server at "h", port 5432 failed: FATAL:  database
"x" does not exist`. So the message is read: the few failures that can pass by themselves
are recognised, and every other one is final, reported at once with the server's reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Failures that can pass without anyone changing anything: the server is down, restarting,
# unreachable for now, or full. Lower case; matched anywhere in an attempt's reason.
TRANSIENT = (
    "connection refused",  # nothing listens (yet): stopped or restarting
    "timeout expired",  # psycopg's "connection timeout expired", libpq's "timeout expired"
    "timed out",
    "no route to host",
    "temporary failure in name resolution",  # the resolver is not up yet (boot) or away
    "network is unreachable",
    "connection reset by peer",
    "server closed the connection unexpectedly",
    "no such file or directory",  # the socket of a local server that is not running
    # SQLSTATE 57P03 cannot_connect_now
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
    # SQLSTATE 53300 too_many_connections
    "too many clients already",
    "too many connections",
    "remaining connection slots are reserved",
)

# libpq's framing around the server's own words.
_PREFIXES = re.compile(
    r"""^(?:
        connection\ (?:failed|is\ bad):\s*
      | -\ host:\ .*?,\ port:\ .*?,\ hostaddr:\ .*?:\s*
      | connection\ to\ server\ (?:at|on\ socket)\ .*?\ failed:\s*
      | (?:FATAL|ERROR):\s*
    )""",
    re.VERBOSE,
)
_SUMMARY_LINE = "Multiple connection attempts failed. All failures were:"


@dataclass(frozen=True)
class ConnectFailure:
    reason: str  # one line, in the server's (or libpq's) words
    transient: bool


def reasons(message: str) -> list[str]:
    """The reason of each attempt in a failed connection's message, one line each, in
    order and without repeats (psycopg repeats the last attempt's on the first line)."""
    chunks: list[str] = []
    for line in message.strip().splitlines():
        if line.strip() == _SUMMARY_LINE or not line.strip():
            continue
        if line[:1].isspace() and chunks:
            # libpq's hint on its own indented line ("Is the server running...?")
            chunks[-1] = f"{chunks[-1].rstrip('.')}. {line.strip()}"
        else:
            chunks.append(line.strip())
    found: list[str] = []
    for chunk in chunks:
        reason = _strip_prefixes(chunk)
        if reason and reason not in found:
            found.append(reason)
    return found


def _strip_prefixes(text: str) -> str:
    while True:
        shorter = _PREFIXES.sub("", text, count=1)
        if shorter == text:
            return text.strip()
        text = shorter


def is_transient(reason: str) -> bool:
    lowered = reason.lower()
    return any(marker in lowered for marker in TRANSIENT)


def classify(message: str) -> ConnectFailure:
    """Final when any attempt failed for a lasting reason (a missing database or role, a
    wrong password, no pg_hba.conf entry, a bad DSN, an unknown host): a server that
    answered so will answer so again. Transient when every attempt met a closed port, a
    timeout or a server starting up or full."""
    found = reasons(message) or [message.strip() or "connection failed"]
    final = [reason for reason in found if not is_transient(reason)]
    if final:
        return ConnectFailure("; ".join(final), transient=False)
    return ConnectFailure("; ".join(found), transient=True)
