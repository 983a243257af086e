"""The channel between the operator's CLI and a running daemon: two tables in the ledger file.

``control_commands`` is a queue of operator commands (``flatten`` …): the CLI submits a row
as *pending*, the daemon moves it to *running*, then *done* or *failed* with a JSON result
the CLI prints. ``control_status`` holds exactly one row, the daemon's latest status
snapshot; its wall-clock age tells the CLI whether a daemon is running at all.

The CLI and the daemon each use their own connection to the same SQLite file (WAL mode, so
readers never block the writer); every call is one short autocommit statement, and the busy
timeout absorbs the ledger's own brief write transactions. Times here are WALL clock
(a person reads them, and staleness is about the process, not the market), in UTC.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from magellan_core.clock import Clock, WallClock

log = logging.getLogger(__name__)
BUSY_TIMEOUT_SECONDS = 10.0
STALE_AFTER_SECONDS = 15.0  # a snapshot older than this: no daemon is running
PENDING, RUNNING, DONE, FAILED, WITHDRAWN = "pending", "running", "done", "failed", "withdrawn"

SCHEMA = """
PRAGMA journal_mode = WAL;
CREATE TABLE IF NOT EXISTS control_commands (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    strategy TEXT,
    args TEXT NOT NULL,
    status TEXT NOT NULL,          -- pending, running, done, failed, withdrawn
    result TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS control_commands_by_status ON control_commands (status, id);
CREATE TABLE IF NOT EXISTS control_status (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    data TEXT NOT NULL,
    written_at TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """One operator command and, once the daemon has run it, its result."""

    id: int
    kind: str
    strategy: str | None
    args: dict[str, Any]
    status: str
    result: dict[str, Any] | None
    created_at: str
    updated_at: str

    @property
    def finished(self) -> bool:
        """True once the daemon is done with it (successfully or not)."""
        return self.status in (DONE, FAILED)


@dataclass(frozen=True, slots=True, kw_only=True)
class DaemonStatus:
    """The daemon's last status snapshot and when (wall clock, UTC) it was written."""

    data: dict[str, Any]
    written_at: datetime
    read_at: datetime

    @property
    def age_seconds(self) -> float:
        """Wall seconds between the write and the read."""
        return (self.read_at - self.written_at).total_seconds()

    @property
    def fresh(self) -> bool:
        """True when a daemon wrote it recently enough to be considered running."""
        return self.age_seconds <= STALE_AFTER_SECONDS


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="microseconds")


class ControlChannel:
    """Commands and the status snapshot, shared by the CLI and the daemon."""

    def __init__(self, ledger_path: Path, *, wall: Clock | None = None) -> None:
        ledger_path.parent.mkdir(parents=True, exist_ok=True)
        self._wall = wall or WallClock()
        self._conn = sqlite3.connect(
            ledger_path,
            timeout=BUSY_TIMEOUT_SECONDS,
            isolation_level=None,
            check_same_thread=False,
        )
        self._conn.row_factory = sqlite3.Row
        self._conn.executescript(SCHEMA)

    def close(self) -> None:
        """Close this side's connection."""
        self._conn.close()

    # -- CLI side ------------------------------------------------------------------------

    def submit(self, kind: str, strategy: str | None, args: dict[str, Any]) -> int:
        """Queue a command as pending; return its id."""
        now = _iso(self._wall.now())
        cur = self._conn.execute(
            "INSERT INTO control_commands (kind, strategy, args, status, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (kind, strategy, orjson.dumps(args).decode(), PENDING, now, now),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def get(self, command_id: int) -> Command | None:
        """The command with this id, or None."""
        row = self._conn.execute(
            "SELECT * FROM control_commands WHERE id = ?", (command_id,)
        ).fetchone()
        return None if row is None else _command(row)

    def withdraw(self, command_id: int) -> bool:
        """Take back a command the daemon has not started; True if it was still pending."""
        cur = self._conn.execute(
            "UPDATE control_commands SET status = ?, updated_at = ? WHERE id = ? AND status = ?",
            (WITHDRAWN, _iso(self._wall.now()), command_id, PENDING),
        )
        return cur.rowcount > 0

    def read_status(self) -> DaemonStatus | None:
        """The daemon's last snapshot, or None if no daemon ever wrote one."""
        row = self._conn.execute("SELECT data, written_at FROM control_status").fetchone()
        if row is None:
            return None
        return DaemonStatus(
            data=orjson.loads(row["data"]),
            written_at=datetime.fromisoformat(row["written_at"]),
            read_at=self._wall.now(),
        )

    # -- daemon side ---------------------------------------------------------------------

    def pending(self) -> list[Command]:
        """Commands waiting for the daemon, oldest first."""
        rows = self._conn.execute(
            "SELECT * FROM control_commands WHERE status = ? ORDER BY id", (PENDING,)
        )
        return [_command(r) for r in rows]

    def start(self, command_id: int) -> None:
        """Mark a command as being carried out."""
        self._set_status(command_id, RUNNING, None)

    def finish(self, command_id: int, ok: bool, result: dict[str, Any]) -> None:
        """Record the outcome: ``done`` when ``ok``, else ``failed``."""
        self._set_status(command_id, DONE if ok else FAILED, orjson.dumps(result).decode())

    def write_status(self, status: dict[str, Any]) -> None:
        """Replace the one snapshot row."""
        self._conn.execute(
            "INSERT INTO control_status (id, data, written_at) VALUES (1, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET data = excluded.data, written_at = excluded.written_at",
            (orjson.dumps(status).decode(), _iso(self._wall.now())),
        )

    def _set_status(self, command_id: int, status: str, result: str | None) -> None:
        self._conn.execute(
            "UPDATE control_commands SET status = ?, result = COALESCE(?, result), "
            "updated_at = ? WHERE id = ?",
            (status, result, _iso(self._wall.now()), command_id),
        )


def _command(row: sqlite3.Row) -> Command:
    return Command(
        id=row["id"],
        kind=row["kind"],
        strategy=row["strategy"],
        args=orjson.loads(row["args"]),
        status=row["status"],
        result=None if row["result"] is None else orjson.loads(row["result"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
