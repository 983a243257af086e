"""The ledger's intents and orders: written before the HTTP call, read by every part."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal

from magellan_daemon.domain import ClientOrderId
from magellan_daemon.ledger.connection import LedgerConnection
from magellan_daemon.ledger.rows import IntentRow, OrderRow, intent_row, order_row, sizing_json
from magellan_daemon.ledger.schema import OPEN_STATUS_SQL
from magellan_daemon.timefmt import NEW_YORK, iso
from strategies.api.model import Intent


class OrderTables(LedgerConnection):
    """Intents and orders."""

    # -- intents -------------------------------------------------------------------------

    def add_intent(
        self,
        intent: Intent,
        *,
        now: datetime,
        not_before: datetime | None = None,
        expires_at: datetime | None = None,
    ) -> IntentRow:
        """Persist an intent as pending (idempotent on its identity); return its row."""
        sizing = None if intent.sizing is None else sizing_json(intent.sizing)
        with self._tx() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO intents (strategy, symbol, action, leg, signal_time, "
                "reason, qty, sizing, stop_price, execute, status, not_before, expires_at, "
                "created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?, 'pending', ?,?,?,?)",
                (
                    intent.strategy,
                    intent.symbol,
                    intent.action,
                    intent.leg,
                    iso(intent.signal_time),
                    intent.reason,
                    intent.qty,
                    sizing,
                    None if intent.stop_price is None else str(intent.stop_price),
                    intent.execute,
                    None if not_before is None else iso(not_before),
                    None if expires_at is None else iso(expires_at),
                    iso(now),
                    iso(now),
                ),
            )
        row = self._conn.execute(
            "SELECT * FROM intents WHERE strategy=? AND symbol=? AND signal_time=? AND leg=? "
            "AND action=?",
            (
                intent.strategy,
                intent.symbol,
                iso(intent.signal_time),
                intent.leg,
                intent.action,
            ),
        ).fetchone()
        return intent_row(row)

    def intents(self, status: str | None = None) -> list[IntentRow]:
        """Intents, optionally only those in ``status``, oldest first."""
        if status is None:
            rows = self._conn.execute("SELECT * FROM intents ORDER BY id")
        else:
            rows = self._conn.execute(
                "SELECT * FROM intents WHERE status = ? ORDER BY id", (status,)
            )
        return [intent_row(r) for r in rows]

    def intent(self, intent_id: int) -> IntentRow | None:
        """One intent by id (None if there is no such intent)."""
        row = self._conn.execute("SELECT * FROM intents WHERE id = ?", (intent_id,)).fetchone()
        return None if row is None else intent_row(row)

    def set_intent_status(self, intent_id: int, status: str, reason: str, now: datetime) -> None:
        """Move an intent to sent / blocked / expired / failed, with the reason."""
        self._conn.execute(
            "UPDATE intents SET status = ?, status_reason = ?, updated_at = ? WHERE id = ?",
            (status, reason, iso(now), intent_id),
        )

    # -- orders --------------------------------------------------------------------------

    def create_order(
        self,
        *,
        client_order_id: ClientOrderId,
        account: str,
        strategy: str,
        symbol: str,
        side: str,
        order_type: str,
        qty: Decimal,
        stop_price: Decimal | None,
        time_in_force: str,
        leg: str,
        signal_time: datetime,
        intent_id: int | None,
        replaces: ClientOrderId | None,
        now: datetime,
    ) -> OrderRow:
        """Write the order as ``pending_submit`` BEFORE the HTTP call that creates it."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO orders (client_order_id, account, strategy, symbol, side, "
                "order_type, qty, stop_price, time_in_force, leg, signal_time, intent_id, "
                "replaces, status, created_at, updated_at) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?, 'pending_submit', ?, ?)",
                (
                    client_order_id,
                    account,
                    strategy,
                    symbol,
                    side,
                    order_type,
                    str(qty),
                    None if stop_price is None else str(stop_price),
                    time_in_force,
                    leg,
                    iso(signal_time),
                    intent_id,
                    replaces,
                    iso(now),
                    iso(now),
                ),
            )
            conn.execute(
                "INSERT INTO order_events (client_order_id, ts, event, source, from_status, "
                "to_status) VALUES (?, ?, 'create', 'router', '', 'pending_submit')",
                (client_order_id, iso(now)),
            )
        order = self.order(client_order_id)
        assert order is not None
        return order

    def order(self, client_order_id: str) -> OrderRow | None:
        """The order with this client_order_id, or None."""
        row = self._conn.execute(
            "SELECT * FROM orders WHERE client_order_id = ?", (client_order_id,)
        ).fetchone()
        return None if row is None else order_row(row)

    def order_by_broker_id(self, broker_order_id: str) -> OrderRow | None:
        """The order the broker knows as ``broker_order_id``, or None."""
        row = self._conn.execute(
            "SELECT * FROM orders WHERE broker_order_id = ?", (broker_order_id,)
        ).fetchone()
        return None if row is None else order_row(row)

    def orders(
        self,
        *,
        strategy: str | None = None,
        symbol: str | None = None,
        account: str | None = None,
        open_only: bool = False,
    ) -> list[OrderRow]:
        """Orders matching the filters, oldest first."""
        clauses, args = [], []
        for column, value in (("strategy", strategy), ("symbol", symbol), ("account", account)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        if open_only:
            clauses.append(OPEN_STATUS_SQL)  # literally: the partial index's own list
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._conn.execute(f"SELECT * FROM orders {where} ORDER BY rowid", args)
        return [order_row(r) for r in rows]

    def orders_of_signal(
        self, strategy: str, symbol: str, leg: str, signal_time: datetime
    ) -> list[OrderRow]:
        """Every attempt at one decision (strategy, symbol, leg, signal time), oldest first."""
        rows = self._conn.execute(
            "SELECT * FROM orders WHERE strategy = ? AND symbol = ? AND signal_time = ? "
            "AND leg = ? ORDER BY rowid",
            (strategy, symbol, iso(signal_time), leg),
        )
        return [order_row(r) for r in rows]

    def last_order_of_leg(self, strategy: str, symbol: str, leg: str) -> OrderRow | None:
        """The strategy's most recent order of ``leg`` in ``symbol`` (any status), or None."""
        row = self._conn.execute(
            "SELECT * FROM orders WHERE strategy = ? AND symbol = ? AND leg = ? "
            "ORDER BY rowid DESC LIMIT 1",
            (strategy, symbol, leg),
        ).fetchone()
        return None if row is None else order_row(row)

    def orders_of_intent(self, intent_id: int) -> list[OrderRow]:
        """The orders written for one intent."""
        rows = self._conn.execute("SELECT * FROM orders WHERE intent_id = ?", (intent_id,))
        return [order_row(r) for r in rows]

    def count_orders_like(self, prefix: str) -> int:
        """How many orders have a client_order_id starting with ``prefix``."""
        row = self._conn.execute(
            "SELECT COUNT(*) AS n FROM orders WHERE client_order_id LIKE ? ESCAPE '\\'",
            (prefix.replace("%", "\\%").replace("_", "\\_") + "%",),
        ).fetchone()
        return int(row["n"])

    def entries_on(self, strategy: str, day: date) -> int:
        """Entry orders the strategy got accepted on New York date ``day``."""
        # The day's bounds in the stored format: ISO UTC text of one width compares as time.
        start = datetime.combine(day, time(0), NEW_YORK)
        end = datetime.combine(day + timedelta(days=1), time(0), NEW_YORK)
        row = self._conn.execute(
            "SELECT COUNT(*) AS n FROM orders WHERE strategy = ? AND leg = 'entry' "
            "AND status NOT IN ('rejected', 'not_found') AND created_at >= ? AND created_at < ?",
            (strategy, iso(start), iso(end)),
        ).fetchone()
        return int(row["n"])
