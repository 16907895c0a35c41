"""The PostgreSQL server the tests use: MEDIAD_TEST_DSN, or a throwaway one they own."""

from __future__ import annotations

import contextlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Server:
    """A PostgreSQL server the tests may use; `owned` when the tests started it."""

    admin_dsn: str
    pgdata: Path | None = None
    owned: bool = False

    def restart(self) -> None:
        """Restart the server the tests own (fast mode: connections are cut)."""
        self._pg_ctl("-l", str(self._owned_pgdata() / "log"), "restart")

    def stop(self) -> None:
        """Stop the server the tests own, whichever postmaster runs it now. pgserver's
        own cleanup only stops the postmaster it started: after a restart it would
        delete the data directory under a server still running."""
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self._pg_ctl("stop")

    def _owned_pgdata(self) -> Path:
        assert self.owned and self.pgdata is not None
        return self.pgdata

    def _pg_ctl(self, *args: str) -> None:
        from pgserver._commands import pg_ctl

        user = "pgserver" if os.geteuid() == 0 else None
        pg_ctl(["-w", "-m", "fast", *args], pgdata=self._owned_pgdata(), user=user, timeout=60)
