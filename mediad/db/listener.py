"""The thread that LISTENs for new work on a connection of its own."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

# The payload of a notification that says the pauses changed (mediad/db/pauses.py).
PAUSE_PAYLOAD = "pause"


class Listener:
    """A dedicated connection that LISTENs for new work and calls `on_notify`; a
    notification that the pauses changed calls `on_pause` first.

    Runs in its own thread, reconnecting after errors; the supervisor's loop only sees a
    wake-up, so losing notifications costs latency (polling still runs), never rows.
    """

    def __init__(
        self,
        dsn: str,
        kwargs: dict[str, Any],
        listen_statement: sql.Composed,
        on_notify: Callable[[], None],
        on_pause: Callable[[], None] | None = None,
    ) -> None:
        self._dsn = dsn
        self._kwargs = kwargs
        self._listen = listen_statement
        self._on_notify = on_notify
        self._on_pause = on_pause or (lambda: None)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mediad-listen", daemon=True)
        self.connected = threading.Event()
        self.connections_opened = 0  # written by its thread only; read for the metrics

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._dsn, **self._kwargs) as conn:
                    self.connections_opened += 1
                    conn.execute(self._listen)
                    self.connected.set()
                    # A notification may have been missed while (re)connecting.
                    self._on_pause()
                    self._on_notify()
                    while not self._stop.is_set():
                        for notification in conn.notifies(timeout=1.0):
                            if notification.payload == PAUSE_PAYLOAD:
                                self._on_pause()
                            self._on_notify()
            except psycopg.Error:
                self.connected.clear()
                self._stop.wait(1.0)
