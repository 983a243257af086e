"""The ledger: every signal, intent, order, state change, fill, position and halt.

SQLite in WAL mode, one connection (``connection.py``) in autocommit: each write is
committed as it is made (a ``kill -9`` loses nothing), except inside
``Ledger.one_transaction()``, which groups every write until it ends in one transaction
(``_tx()`` blocks become savepoints in it): the backtest writes each step in one; the live
daemon never uses it. The tables are grouped by concept:
intents and orders (``orders.py``), broker news, fills, positions and P&L (``fills.py``, whose
``apply_event`` is the one door that changes an order, its fills and the strategy's
position), and evaluations, halts, strategy snapshots and discrepancies (``records.py``). The
rows they return are in ``rows.py``. Nothing outside ``ledger/`` writes SQL.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from magellan_daemon.ledger.corporate import CorporateTables
from magellan_daemon.ledger.fills import FillTables
from magellan_daemon.ledger.records import RecordTables
from magellan_daemon.ledger.rows import (
    Applied,
    AppliedFill,
    Booking,
    HaltRow,
    IntentRow,
    OrderRow,
    PositionRow,
)
from magellan_daemon.ledger.schema import SCHEMA, migrate

__all__ = [
    "Applied",
    "AppliedFill",
    "Booking",
    "HaltRow",
    "IntentRow",
    "Ledger",
    "OrderRow",
    "PositionRow",
]
log = logging.getLogger(__name__)
LEDGER_FILE = "ledger.sqlite"  # in the state directory: the daemon's and the CLI's ledger


class Ledger(FillTables, RecordTables, CorporateTables):
    """The SQLite ledger. Construct with ``Ledger.open(path)``.

    41 public methods, written as four table groups in their own files (``orders``, ``fills``,
    ``records``, ``corporate``) because it is the one writer of one SQLite connection whose
    transactions every caller shares; splitting it into objects per table group (composition
    instead of these mixins) is a named follow-up of issue 18."""

    @classmethod
    def open(cls, path: Path) -> Ledger:
        """Open (creating if needed) the ledger file at ``path`` in WAL mode."""
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.executescript(SCHEMA)
        if migrate(conn):
            log.warning("ledger %s migrated to the current schema", path)
        return cls(conn, path)

    def close(self) -> None:
        """Checkpoint the WAL and close."""
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._conn.close()
