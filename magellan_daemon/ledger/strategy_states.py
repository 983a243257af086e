"""Strategy snapshots saved per symbol: only the symbols that changed are written.

A strategy that watches the whole market holds ~10,000 symbols' state, and serialising all
of it takes hundreds of milliseconds; a minute changes every symbol's indicators but a
decision changes one symbol. So a strategy whose ``snapshot(symbols=...)`` gives those
symbols' entries alone (``per_symbol_state``) is saved as a header row in ``strategy_state``
(the snapshot without its symbols, ``"per_symbol": true``) and one row per symbol in
``strategy_symbol_state`` with that symbol's last bar time. ``load`` merges them back into
the one-row format, so restoring a strategy does not depend on how it was saved.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

import orjson

from magellan_daemon.timefmt import iso


class StrategyStates:
    """Per-symbol strategy snapshots on the ledger's connection (event-loop thread only)."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        tx: Callable[[], AbstractContextManager[sqlite3.Connection]],
    ) -> None:
        self._conn = conn
        self._tx = tx  # the ledger's write transaction (``LedgerConnection._tx``)

    def save(
        self,
        strategy: str,
        header: Mapping[str, Any],
        symbols: Mapping[str, Any],
        last_bar: Mapping[str, datetime],
        now: datetime,
    ) -> None:
        """Write the header and the given symbols' entries in one transaction."""
        stamp = iso(now)
        rows = [
            (strategy, s, orjson.dumps(state).decode(), _iso_or_none(last_bar.get(s)), stamp)
            for s, state in symbols.items()
        ]
        head = orjson.dumps({**header, "per_symbol": True}).decode()
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO strategy_state (strategy, state, updated_at) VALUES (?,?,?) "
                "ON CONFLICT(strategy) DO UPDATE SET state = excluded.state, "
                "updated_at = excluded.updated_at",
                (strategy, head, stamp),
            )
            conn.executemany(
                "INSERT INTO strategy_symbol_state (strategy, symbol, state, last_bar, "
                "updated_at) VALUES (?,?,?,?,?) ON CONFLICT(strategy, symbol) DO UPDATE SET "
                "state = excluded.state, last_bar = excluded.last_bar, "
                "updated_at = excluded.updated_at",
                rows,
            )

    def load(self, strategy: str) -> dict[str, Any] | None:
        """The runner's snapshot ``{"strategy": ..., "last_bar": ...}``, per-symbol rows
        merged into it; None when nothing was saved."""
        row = self._conn.execute(
            "SELECT state FROM strategy_state WHERE strategy = ?", (strategy,)
        ).fetchone()
        if row is None:
            return None
        saved: dict[str, Any] = orjson.loads(row[0])
        if not saved.pop("per_symbol", False):
            return saved
        symbols = saved["strategy"].setdefault("symbols", {})
        last_bar = saved.setdefault("last_bar", {})
        for symbol, state, seen in self._conn.execute(
            "SELECT symbol, state, last_bar FROM strategy_symbol_state WHERE strategy = ? "
            "ORDER BY symbol",
            (strategy,),
        ):
            symbols[symbol] = orjson.loads(state)
            if seen is not None:
                last_bar[symbol] = seen
        return saved


def _iso_or_none(t: datetime | None) -> str | None:
    return None if t is None else iso(t)
