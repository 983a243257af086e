"""Broker news into the ledger: the one door (``apply_event``) that changes an order, its
fills and the strategy's position, and the queries of fills, positions and P&L.

Fills are deduplicated twice: by the broker's execution id when there is one, and by
``(broker_order_id, cumulative filled qty)``, so the same execution seen on the stream and in
REST activities (whose ids differ at Alpaca) is stored once. The increment is always computed
from the cumulative quantity, never taken from the event (Alpaca's ``qty`` is per-execution,
but a missed event would otherwise lose shares).
"""

from __future__ import annotations

import sqlite3
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from magellan_daemon.domain import BrokerEvent, OrderEvent
from magellan_daemon.ledger import position_book
from magellan_daemon.ledger.order_fsm import transition
from magellan_daemon.ledger.orders import OrderTables
from magellan_daemon.ledger.rows import Applied, AppliedFill, OrderRow, PositionRow
from magellan_daemon.timefmt import iso, new_york_day, parse_iso

ZERO = Decimal(0)
RESTATEMENTS = frozenset({OrderEvent.TRADE_BUST, OrderEvent.TRADE_CORRECT})


class FillTables(OrderTables):
    """Fills, positions, closed trades and daily P&L (stored results of ``apply_fill``)."""

    # Bumped each time this process rewrote stored closed trades (a bust or correction, a
    # fill repriced): running totals over them must be built again.
    trades_revision: int = 0

    def apply_event(self, event: BrokerEvent) -> Applied:
        """Apply one broker event exactly once: status, fill increment, position, P&L.

        An event that cannot be news about the order it names (another broker order's id, a
        fill whose price cannot be known or is not positive) is dropped whole, its
        transaction rolled back, with the reason in ``Applied.dropped``."""
        order = self.order(event.client_order_id)
        if order is None and event.broker_order_id:
            order = self.order_by_broker_id(event.broker_order_id)
        if order is None:
            return Applied(order=None, previous_status=None, fill=None)
        problem = self._identity_conflict(order, event)
        if not problem:
            try:
                return self._apply(order, event)
            except InconsistentEvent as exc:
                problem = str(exc)
        return Applied(order=order, previous_status=order.status, fill=None, dropped=problem)

    def _identity_conflict(self, order: OrderRow, event: BrokerEvent) -> str:
        """Why ``event`` cannot be about ``order``: it names another broker order than the
        one the order already is, or one the ledger knows as another of ours (applying it
        would book one order's fills on another). Empty when the identities agree."""
        theirs = event.broker_order_id
        if not theirs or theirs == order.broker_order_id:
            return ""
        if order.broker_order_id is not None:
            return f"broker order {theirs}, but {order.client_order_id} is {order.broker_order_id}"
        other = self.order_by_broker_id(theirs)
        if other is not None and other.client_order_id != order.client_order_id:
            return f"broker order {theirs} is {other.client_order_id}, not {order.client_order_id}"
        return ""

    def _apply(self, order: OrderRow, event: BrokerEvent) -> Applied:
        if (
            event.execution_id
            and self._conn.execute(
                "SELECT 1 FROM fills WHERE broker_execution_id = ?", (event.execution_id,)
            ).fetchone()
        ):
            return Applied(order=order, previous_status=order.status, fill=None, duplicate=True)
        move = transition(order.status, event.event, event.order_status)
        fill: AppliedFill | None = None
        restated = repriced = False
        with self._tx() as conn:
            filled_qty, avg = order.filled_qty, order.filled_avg_price
            broker_id = event.broker_order_id or order.broker_order_id
            cum = event.cum_filled_qty
            if event.event in RESTATEMENTS and broker_id:
                restated = self._restate(conn, order, broker_id, event)
                if restated:
                    filled_qty = event.cum_filled_qty or ZERO
                    avg = event.filled_avg_price
            elif cum is not None and cum > filled_qty and broker_id:
                increment = cum - filled_qty
                price, derived = _execution_price(event, increment, filled_qty, avg)
                outcome = position_book.book_fill(
                    conn,
                    strategy=order.strategy,
                    symbol=order.symbol,
                    account=order.account,
                    side=order.side,
                    qty=increment,
                    price=price,
                    ts=event.ts_event,
                )
                conn.execute(
                    "INSERT INTO fills (client_order_id, broker_order_id, broker_execution_id, "
                    "account, strategy, symbol, side, qty, price, cum_qty, ts, source, realized, "
                    "revision, price_derived) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        order.client_order_id,
                        broker_id,
                        event.execution_id,
                        order.account,
                        order.strategy,
                        order.symbol,
                        order.side,
                        str(increment),
                        str(price),
                        str(cum),
                        iso(event.ts_event),
                        event.source,
                        str(outcome.realized),
                        self._revision(conn, broker_id),
                        int(derived),
                    ),
                )
                avg = (
                    event.filled_avg_price
                    if event.filled_avg_price is not None
                    else ((avg or ZERO) * filled_qty + price * increment) / cum
                )
                filled_qty = cum
                fill = AppliedFill(
                    order=order,
                    qty=increment,
                    price=price,
                    ts=event.ts_event,
                    position_after=outcome.position.qty,
                )
            elif cum is not None and broker_id and event.price is not None and event.qty:
                repriced = self._reprice(
                    conn, order, broker_id, cum, event.qty, event.price, event.execution_id
                )
            status = move.status if move.verdict in ("applied", "repeat") else order.status
            conn.execute(
                "UPDATE orders SET status = ?, filled_qty = ?, filled_avg_price = ?, "
                "broker_order_id = COALESCE(broker_order_id, ?), updated_at = ? "
                "WHERE client_order_id = ?",
                (
                    str(status),
                    str(filled_qty),
                    None if avg is None else str(avg),
                    event.broker_order_id,
                    iso(event.ts_event),
                    order.client_order_id,
                ),
            )
            invalid = move.reason if move.verdict == "invalid" else None
            if status != order.status or fill is not None or invalid or restated or repriced:
                detail = invalid or (f"fill {fill.qty} @ {fill.price}" if fill else "")
                if restated:
                    detail = f"fills restated: {filled_qty} @ {avg}"
                if repriced:
                    detail = f"fill up to {cum} repriced at its execution's {event.price}"
                conn.execute(
                    "INSERT INTO order_events (client_order_id, ts, event, source, from_status, "
                    "to_status, detail) VALUES (?,?,?,?,?,?,?)",
                    (
                        order.client_order_id,
                        iso(event.ts_event),
                        event.event,
                        event.source,
                        order.status,
                        str(status),
                        detail,
                    ),
                )
        updated = self.order(order.client_order_id)
        assert updated is not None
        return Applied(
            order=updated,
            previous_status=order.status,
            fill=fill,
            verdict=move.verdict,
            reason=move.reason,
            restated=restated,
            repriced=repriced,
        )

    @staticmethod
    def _revision(conn: sqlite3.Connection, broker_order_id: str) -> int:
        row = conn.execute(
            "SELECT MAX(revision) AS r FROM fills WHERE broker_order_id = ?", (broker_order_id,)
        ).fetchone()
        return 0 if row is None or row["r"] is None else int(row["r"])

    def _reprice(
        self,
        conn: sqlite3.Connection,
        order: OrderRow,
        broker_id: str,
        cum: Decimal,
        qty: Decimal,
        price: Decimal,
        execution_id: str | None,
    ) -> bool:
        """An execution already booked, arriving with its own price. The row that booked it
        from the order's rounded average (``price_derived``) takes the execution's price; a
        row that booked several executions at once gives this one its own row when it lies at
        either end of the row's range (the rest stays derived, its value reduced by this
        one's, until its executions come too). The strategy's position, trades and P&L in
        the symbol are then rebuilt. False when there was nothing to correct."""
        row = conn.execute(
            "SELECT * FROM fills WHERE broker_order_id = ? AND price_derived = 1 AND voided = 0 "
            "AND CAST(cum_qty AS REAL) >= ? AND CAST(cum_qty AS REAL) - CAST(qty AS REAL) < ?",
            (broker_id, float(cum), float(cum)),
        ).fetchone()
        if row is None:
            return False
        top, booked = Decimal(row["cum_qty"]), Decimal(row["qty"])
        if qty == booked and cum == top:
            conn.execute(
                "UPDATE fills SET price = ?, price_derived = 0, "
                "broker_execution_id = COALESCE(broker_execution_id, ?) WHERE id = ?",
                (str(price), execution_id, row["id"]),
            )
        elif qty < booked and cum in (top, top - booked + qty):
            rest = booked - qty
            rest_price = (Decimal(row["price"]) * booked - price * qty) / rest
            rest_top = top - qty if cum == top else top
            if rest_price <= 0:
                return False  # the averages and this execution disagree: leave it derived
            conn.execute(
                "UPDATE fills SET qty = ?, price = ?, cum_qty = ? WHERE id = ?",
                (str(rest), str(rest_price), str(rest_top), row["id"]),
            )
            conn.execute(
                "INSERT INTO fills (client_order_id, broker_order_id, broker_execution_id, "
                "account, strategy, symbol, side, qty, price, cum_qty, ts, source, revision) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    order.client_order_id,
                    broker_id,
                    execution_id,
                    order.account,
                    order.strategy,
                    order.symbol,
                    order.side,
                    str(qty),
                    str(price),
                    str(cum),
                    row["ts"],
                    f"{row['source']}+execution",
                    row["revision"],
                ),
            )
        else:
            return False  # inside the range: its neighbours split off first
        position_book.rebuild_symbol(conn, order.strategy, order.symbol, order.account)
        self.trades_revision += 1
        return True

    def derived_fills(self, account: str) -> frozenset[tuple[str, Decimal, Decimal]]:
        """(broker order id, cumulative qty before, cumulative qty after) of the account's
        fills still priced from an average: reconciliation looks for the executions in those
        ranges among the FILL activities."""
        rows = self._conn.execute(
            "SELECT broker_order_id, qty, cum_qty FROM fills "
            "WHERE account = ? AND price_derived = 1 AND voided = 0",
            (account,),
        )
        return frozenset(
            (r["broker_order_id"], Decimal(r["cum_qty"]) - Decimal(r["qty"]), Decimal(r["cum_qty"]))
            for r in rows
        )

    def _restate(
        self, conn: sqlite3.Connection, order: OrderRow, broker_id: str, event: BrokerEvent
    ) -> bool:
        """A trade bust or correction: the order's executions are now what the broker says
        (its cumulative qty and average price). The old fill rows are voided, one row at the
        new totals replaces them, and the strategy's position, trades and P&L in the symbol
        are rebuilt from the fills. False when nothing changed."""
        cum = event.cum_filled_qty or ZERO
        avg = event.filled_avg_price
        if cum == order.filled_qty and avg == order.filled_avg_price:
            return False
        revision = self._revision(conn, broker_id) + 1
        conn.execute(
            "UPDATE fills SET voided = 1 WHERE client_order_id = ?", (order.client_order_id,)
        )
        if cum > 0 and avg is not None:
            conn.execute(
                "INSERT INTO fills (client_order_id, broker_order_id, broker_execution_id, "
                "account, strategy, symbol, side, qty, price, cum_qty, ts, source, revision) "
                "VALUES (?,?,NULL,?,?,?,?,?,?,?,?,?,?)",
                (
                    order.client_order_id,
                    broker_id,
                    order.account,
                    order.strategy,
                    order.symbol,
                    order.side,
                    str(cum),
                    str(avg),
                    str(cum),
                    iso(event.ts_event),
                    f"{event.source}:{event.event}",
                    revision,
                ),
            )
        position_book.rebuild_symbol(conn, order.strategy, order.symbol, order.account)
        self.trades_revision += 1
        return True

    # -- positions and P&L ---------------------------------------------------------------

    def positions(self, strategy: str | None = None) -> list[PositionRow]:
        """Open positions (qty != 0), per strategy and symbol."""
        sql = "SELECT * FROM positions WHERE CAST(qty AS REAL) != 0"
        args: tuple[Any, ...] = ()
        if strategy is not None:
            sql += " AND strategy = ?"
            args = (strategy,)
        return [
            PositionRow(
                strategy=r["strategy"],
                symbol=r["symbol"],
                account=r["account"],
                qty=Decimal(r["qty"]),
                avg_price=Decimal(r["avg_price"]),
                opened_at=None if r["opened_at"] is None else parse_iso(r["opened_at"]),
            )
            for r in self._conn.execute(sql + " ORDER BY strategy, symbol", args)
        ]

    def holds_any(self) -> bool:
        """Any open position at all (one row read, none built: asked every minute)."""
        return (
            self._conn.execute(
                "SELECT 1 FROM positions WHERE CAST(qty AS REAL) != 0 LIMIT 1"
            ).fetchone()
            is not None
        )

    def position_qty(self, strategy: str, symbol: str) -> Decimal:
        """The strategy's own shares of ``symbol``."""
        row = self._conn.execute(
            "SELECT qty FROM positions WHERE strategy = ? AND symbol = ?", (strategy, symbol)
        ).fetchone()
        return ZERO if row is None else Decimal(row["qty"])

    def net_positions(self, account: str) -> dict[str, Decimal]:
        """The account's net shares per symbol, summed over strategies (what the broker
        should show)."""
        net: dict[str, Decimal] = {}
        for r in self._conn.execute(
            "SELECT symbol, qty FROM positions WHERE account = ?", (account,)
        ):
            qty = Decimal(r["qty"])
            if qty:
                net[r["symbol"]] = net.get(r["symbol"], ZERO) + qty
        return net

    def realized_on(self, strategy: str, day: date) -> Decimal:
        """Realised P&L of the strategy on New York date ``day``."""
        row = self._conn.execute(
            "SELECT realized FROM pnl_daily WHERE strategy = ? AND session_date = ?",
            (strategy, day.isoformat()),
        ).fetchone()
        return ZERO if row is None else Decimal(row["realized"])

    def closed_trades_after(self, strategy: str, after_id: int) -> list[dict[str, Any]]:
        """The strategy's round trips stored after the one with id ``after_id``, oldest
        first (read by id: the new ones only)."""
        return [
            dict(r)
            for r in self._conn.execute(
                "SELECT * FROM closed_trades WHERE id > ? AND strategy = ? ORDER BY id",
                (after_id, strategy),
            )
        ]

    def closed_trades(self, strategy: str | None = None) -> list[dict[str, Any]]:
        """Round trips, oldest first."""
        sql, args = "SELECT * FROM closed_trades", ()
        if strategy is not None:
            sql, args = sql + " WHERE strategy = ?", (strategy,)
        return [dict(r) for r in self._conn.execute(sql + " ORDER BY id", args)]

    def fills(self, strategy: str | None = None, day: date | None = None) -> list[dict[str, Any]]:
        """Fills, oldest first, optionally one strategy and one New York date; a fill voided
        by a trade bust or correction is left out (its replacement is listed)."""
        sql, args = "SELECT * FROM fills WHERE voided = 0", []
        if strategy is not None:
            sql += " AND strategy = ?"
            args.append(strategy)
        if day is not None:
            # ts is iso() text (fixed width, UTC, Z): its order is time order, so the day is
            # a range, read through fills_by_strategy_ts instead of every fill ever.
            start, end = new_york_day(day)
            sql += " AND ts >= ? AND ts < ?"
            args += [iso(start), iso(end)]
        return [dict(r) for r in self._conn.execute(sql + " ORDER BY ts, id", args)]

    def symbols_filled_since(self, account: str, since: datetime) -> set[str]:
        """The symbols the account's strategies had a fill in (not voided) at or after
        ``since``: the corporate watch asks about them too, since a position sold entirely
        since an ex-date was still paid its dividend. Read per strategy through
        fills_by_strategy_ts (the strategies from the positions table, which keeps a row
        for each symbol a strategy ever traded), so only the window's fills are read."""
        rows = self._conn.execute(
            "SELECT DISTINCT symbol FROM fills WHERE strategy IN "
            "(SELECT DISTINCT strategy FROM positions WHERE account = ?) "
            "AND ts >= ? AND account = ? AND voided = 0",
            (account, iso(since), account),
        )
        return {r["symbol"] for r in rows}

    def last_fill_time(self) -> str | None:
        """When the latest fill happened (ISO text), None before the first."""
        row = self._conn.execute("SELECT MAX(ts) AS ts FROM fills WHERE voided = 0").fetchone()
        return None if row is None else row["ts"]


class InconsistentEvent(ValueError):
    """A broker event whose numbers cannot describe a real execution."""


def _execution_price(
    event: BrokerEvent, increment: Decimal, prev_qty: Decimal, prev_avg: Decimal | None
) -> tuple[Decimal, bool]:
    """This increment's price, and whether it was derived: the event's own when it describes
    exactly this execution, otherwise derived from the change of the order's average price
    (which the broker rounds, so the result is close, not exact)."""
    if event.price is not None and (event.qty is None or event.qty == increment):
        return event.price, False
    if event.filled_avg_price is not None and event.cum_filled_qty:
        total = event.filled_avg_price * event.cum_filled_qty - (prev_avg or ZERO) * prev_qty
        if total <= 0:
            raise InconsistentEvent(
                f"average price {event.filled_avg_price} over {event.cum_filled_qty} leaves "
                f"no positive price for the {increment} just filled"
            )
        return total / increment, True
    if event.price is not None:
        return event.price, True
    raise InconsistentEvent(f"a fill of {increment} carries no price")
