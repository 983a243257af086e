"""What the ledger keeps beside orders and fills: evaluation records (the answer to "why
did it not buy X?"), halts, strategy snapshots and discrepancies."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import orjson

from magellan_daemon.domain import Discrepancy
from magellan_daemon.ledger.connection import LedgerConnection
from magellan_daemon.ledger.rows import HaltRow, halt_row
from magellan_daemon.ledger.strategy_states import StrategyStates
from magellan_daemon.timefmt import iso
from strategies.api.model import Evaluation


class RecordTables(LedgerConnection):
    """Evaluations, halts, strategy state, discrepancies."""

    def record_evaluations(self, evaluations: Iterable[Evaluation], now: datetime) -> None:
        """Store every evaluation record (the answer to "why did it not buy X?")."""
        rows = [
            (
                e.strategy,
                e.symbol,
                iso(e.bar_time),
                e.decision,
                e.reason,
                orjson.dumps(e.values).decode(),
                iso(now),
            )
            for e in evaluations
        ]
        if not rows:
            return
        with self._tx() as conn:
            conn.executemany(
                "INSERT INTO evaluations (strategy, symbol, bar_time, decision, reason, "
                "indicator_values, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def evaluations(self, strategy: str, symbol: str | None = None) -> list[dict[str, Any]]:
        """Evaluation records of a strategy (optionally one symbol), oldest first."""
        sql = "SELECT * FROM evaluations WHERE strategy = ?"
        args: list[Any] = [strategy]
        if symbol:
            sql += " AND symbol = ?"
            args.append(symbol)
        return [dict(r) for r in self._conn.execute(sql + " ORDER BY id", args)]

    def halt(self, strategy: str, reason: str, source: str, now: datetime) -> None:
        """Stop new entries for ``strategy`` until resumed (survives restarts)."""
        self._conn.execute(
            "INSERT INTO halts (strategy, reason, since, source) VALUES (?,?,?,?) "
            "ON CONFLICT(strategy) DO UPDATE SET reason = excluded.reason, "
            "since = excluded.since, source = excluded.source",
            (strategy, reason, iso(now), source),
        )

    def resume(self, strategy: str) -> bool:
        """Lift a halt; True if there was one."""
        cur = self._conn.execute("DELETE FROM halts WHERE strategy = ?", (strategy,))
        return cur.rowcount > 0

    def halts(self) -> list[HaltRow]:
        """Every halt in force, by strategy name."""
        rows = self._conn.execute("SELECT * FROM halts ORDER BY strategy")
        return [halt_row(r) for r in rows]

    def halt_of(self, strategy: str) -> HaltRow | None:
        """The halt in force for ``strategy``, if any."""
        row = self._conn.execute("SELECT * FROM halts WHERE strategy = ?", (strategy,)).fetchone()
        return None if row is None else halt_row(row)

    def halted(self, strategy: str) -> str | None:
        """The halt reason, or None when the strategy may enter."""
        row = self._conn.execute(
            "SELECT reason FROM halts WHERE strategy = ?", (strategy,)
        ).fetchone()
        return None if row is None else row["reason"]

    def save_strategy_state(self, strategy: str, state: dict[str, Any], now: datetime) -> None:
        """Persist a strategy's snapshot (rebuilt after a restart)."""
        self._conn.execute(
            "INSERT INTO strategy_state (strategy, state, updated_at) VALUES (?,?,?) "
            "ON CONFLICT(strategy) DO UPDATE SET state = excluded.state, "
            "updated_at = excluded.updated_at",
            (strategy, orjson.dumps(state).decode(), iso(now)),
        )

    def load_strategy_state(self, strategy: str) -> dict[str, Any] | None:
        """The last snapshot saved for ``strategy`` (per-symbol rows merged in)."""
        return self.strategy_states.load(strategy)

    @property
    def strategy_states(self) -> StrategyStates:
        """Snapshots saved per symbol (``strategy_states.py``)."""
        return StrategyStates(self._conn, self._tx)

    def record_discrepancy(self, discrepancy: Discrepancy, now: datetime) -> None:
        """Keep a discrepancy for the operator (it is also logged at WARNING)."""
        self._conn.execute(
            "INSERT INTO discrepancies (ts, kind, account, symbol, detail) VALUES (?,?,?,?,?)",
            (
                iso(now),
                discrepancy.kind,
                discrepancy.account,
                discrepancy.symbol,
                discrepancy.detail,
            ),
        )

    def discrepancies(self) -> list[dict[str, Any]]:
        """Every discrepancy recorded, oldest first."""
        return [dict(r) for r in self._conn.execute("SELECT * FROM discrepancies ORDER BY id")]
