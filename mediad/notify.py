"""systemd's notification protocol (sd_notify): READY, STATUS, WATCHDOG, RELOADING, STOPPING.

Active only when systemd asks for it (NOTIFY_SOCKET is set); then systemd-python must be
installed, and mediad says so plainly if it is not. Without systemd every call is a no-op.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping

from mediad.errors import MediadError


class NotifyUnavailable(MediadError):
    exit_code = 1


class Notifier:
    """Sends state changes to the service manager; rate-limits watchdog pings."""

    def __init__(self, send: Callable[[str], object] | None, watchdog_usec: int = 0) -> None:
        self._send = send
        self.watchdog_interval = watchdog_usec / 2e6 if watchdog_usec else 0.0
        self._last_ping = 0.0

    @property
    def enabled(self) -> bool:
        return self._send is not None

    def _notify(self, message: str) -> None:
        if self._send is not None:
            self._send(message)

    def ready(self, status: str = "") -> None:
        self._notify("READY=1\nSTATUS=" + status if status else "READY=1")

    def status(self, text: str) -> None:
        self._notify(f"STATUS={text}")

    def watchdog(self) -> None:
        """Ping at half the interval systemd gave; call it only from a healthy loop turn."""
        if not self.watchdog_interval:
            return
        now = time.monotonic()
        if now - self._last_ping >= self.watchdog_interval:
            self._last_ping = now
            self._notify("WATCHDOG=1")

    def reloading(self) -> None:
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self._notify(f"RELOADING=1\nMONOTONIC_USEC={usec}")

    def stopping(self) -> None:
        self._notify("STOPPING=1")

    def extend_timeout(self, seconds: float) -> None:
        self._notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1e6)}")


def from_environment(environ: Mapping[str, str] | None = None) -> Notifier:
    environ = os.environ if environ is None else environ
    if not environ.get("NOTIFY_SOCKET"):
        return Notifier(None)
    try:
        from systemd import daemon  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        raise NotifyUnavailable(
            "systemd asks for notifications (NOTIFY_SOCKET is set) but systemd-python is not "
            "installed: pip install 'mediad[systemd]' (it builds against libsystemd-dev), "
            "or use Type=simple in the unit"
        ) from None
    watchdog_usec = 0
    if environ.get("WATCHDOG_USEC") and environ.get("WATCHDOG_PID", str(os.getpid())) == str(
        os.getpid()
    ):
        watchdog_usec = int(environ["WATCHDOG_USEC"])
    return Notifier(daemon.notify, watchdog_usec)
