"""The ledger's one SQLite connection and its write transactions (shared by its tables).

The connection is in autocommit mode: a single statement is its own transaction, and a write
of several statements is a ``_tx()`` block, one ``BEGIN IMMEDIATE`` ... ``COMMIT``. So every
write is durable once its method returns, and a ``kill -9`` loses nothing: the live daemon
runs this way.

``one_transaction()`` groups every write made while it is open into one transaction, for a
caller that needs no durability between its writes: the backtest, which has no restart to
survive, writes each step of its loop in one. Inside it a ``_tx()`` block is a SAVEPOINT, so
a block that fails still rolls back only itself; single statements join the transaction.
Everything on the connection is inside the group while it is open, including the writes of
the coroutines the caller awaits (they share the connection); it does not nest. When an
exception leaves the group, what was written is committed, not rolled back: each write in it
is whole (a statement, or a ``_tx()`` block that committed or rolled itself back), so the
ledger is then exactly what autocommit would have left, and it still agrees with the broker
and the strategies, which a rollback would not undo. Grouping changes when rows are
committed, never which rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# A ``_tx()`` block inside ``one_transaction()``
_SAVEPOINT = "SAVEPOINT ledger_tx"
_RELEASE = "RELEASE ledger_tx"
_ROLLBACK_TO = "ROLLBACK TO ledger_tx"


class LedgerConnection:
    """One connection, used from the event loop thread only; each write is a small
    ``BEGIN IMMEDIATE`` transaction, so a ``kill -9`` after a commit loses nothing, unless
    a caller groups writes with ``one_transaction()`` (the backtest)."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._grouped = False

    @contextmanager
    def one_transaction(self) -> Iterator[None]:
        """Every write on the ledger until the block ends in one transaction, committed at
        its end, also when an exception leaves it (see the module's docstring). Not for the
        live daemon: nothing written inside is durable before the block ends."""
        if self._grouped:
            raise RuntimeError("the ledger is already in one_transaction()")
        self._conn.execute("BEGIN IMMEDIATE")
        self._grouped = True
        try:
            yield
        finally:
            self._grouped = False
            self._commit()

    def _commit(self) -> None:
        # A failed COMMIT (a full disk) leaves the transaction open: roll it back, or the
        # next autocommit statements would join a transaction nobody ends.
        if not self._conn.in_transaction:  # an I/O error rolled it back already
            return
        try:
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        if self._grouped:
            self._conn.execute(_SAVEPOINT)
            try:
                yield self._conn
            except BaseException:
                if self._conn.in_transaction:  # else an I/O error rolled the group back
                    self._conn.execute(_ROLLBACK_TO)
                    self._conn.execute(_RELEASE)
                raise
            self._conn.execute(_RELEASE)
            return
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
