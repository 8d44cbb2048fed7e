"""The embedded runner's spill store: host states written out of memory (see ``streams.graph.HostStates``).

A SQLite table in a file of its own temporary directory, removed on :meth:`SpillFile.close`: memory stays
bounded however many host names the input makes up, and a spilled host costs a row on disk.
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

__all__ = ["SpillFile"]


class SpillFile:
    """Snapshot bytes by host name, on disk.

    Args:
        directory: where the temporary directory is made (default: the system's temporary directory).
    """

    def __init__(self, directory: str | Path | None = None) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="secstream-hosts-", dir=directory)
        # Only this process reads it back, and a crash loses nothing a re-run would not rebuild.
        self._db = sqlite3.connect(Path(self._dir.name) / "hosts.sqlite3", isolation_level=None)
        self._db.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
            "CREATE TABLE hosts (name TEXT PRIMARY KEY, snapshot BLOB NOT NULL) WITHOUT ROWID;"
        )

    def put(self, host: str, data: bytes) -> None:
        """Store (or replace) a host's snapshot."""
        self._db.execute("INSERT OR REPLACE INTO hosts VALUES (?, ?)", (host, data))

    def pop(self, host: str) -> bytes | None:
        """Take a host's snapshot out of the store; None when it holds none."""
        row = self._db.execute("DELETE FROM hosts WHERE name = ? RETURNING snapshot", (host,)).fetchone()
        return None if row is None else bytes(row[0])

    def __len__(self) -> int:
        count: int = self._db.execute("SELECT count(*) FROM hosts").fetchone()[0]
        return count

    def close(self) -> None:
        """Remove the store and its directory."""
        self._db.close()
        self._dir.cleanup()
