"""Corporate actions in the ledger: splits and cash dividends, each applied exactly once.

A split is applied to every strategy's position in the symbol, in every account, in one
transaction that also records it in ``corporate_actions`` (keyed by symbol, ex-date and
kind): applying it again (a second pre-open run, a restart before or after it) finds the
row and changes nothing. Each strategy's share of it is kept in
``corporate_action_bookings``, so rebuilding a position from its fills (a trade bust)
takes it through the split again (``position_book.rebuild_symbol``). Pending intents of the
symbol (an exit decided at yesterday's 16:05 for today's open) are re-based with it: a
sell's quantity multiplied, an entry's reference price divided.

A cash dividend is booked as realised P&L, on its ex-date, to each strategy holding the
symbol when it is applied (the pre-open of the ex-date: the holders of the record date), so
the daily P&L and the daily loss limit see it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal

import orjson

from magellan_core.corporate_actions import CorporateAction
from magellan_daemon.ledger import position_book
from magellan_daemon.ledger.accounting import PositionState
from magellan_daemon.ledger.connection import LedgerConnection
from magellan_daemon.ledger.rows import Booking, booking_row
from magellan_daemon.ledger.split_accounting import split_positions, whole_shares
from magellan_daemon.timefmt import iso

ZERO = Decimal(0)


def action_kind(action: CorporateAction) -> str:
    """The ledger's key for the action's kind: one split and one dividend per ex-date."""
    return "split" if action.is_split else "cash_dividend"


class CorporateTables(LedgerConnection):
    """The ``corporate_actions`` and ``corporate_action_bookings`` tables."""

    def corporate_action_applied(self, symbol: str, ex_date: date, kind: str) -> bool:
        """True once the action was applied (it never is twice)."""
        row = self._conn.execute(
            "SELECT 1 FROM corporate_actions WHERE symbol = ? AND ex_date = ? AND kind = ?",
            (symbol, ex_date.isoformat(), kind),
        ).fetchone()
        return row is not None

    def apply_split(
        self,
        action: CorporateAction,
        at: datetime,
        cash_in_lieu: Mapping[str, Decimal] | None = None,
        detail: str = "",
    ) -> list[Booking] | None:
        """Apply a split to every strategy's position in its symbol (``cash_in_lieu``: the
        broker's CIL per account, when known). None when it was applied before."""
        assert action.is_split
        with self._tx() as conn:
            if not self._record_action(conn, action, at, detail):
                return None
            accounts: dict[str, dict[str, PositionState]] = {}
            for row in conn.execute(
                "SELECT strategy, account FROM positions WHERE symbol = ?", (action.symbol,)
            ).fetchall():
                state = position_book.load_state(conn, row["strategy"], action.symbol)
                accounts.setdefault(row["account"], {})[row["strategy"]] = state
            bookings: list[Booking] = []
            for account, positions in sorted(accounts.items()):
                cash = None if cash_in_lieu is None else cash_in_lieu.get(account)
                for strategy, share in split_positions(positions, action.ratio, cash).items():
                    position_book.store_state(conn, strategy, action.symbol, account, share.after)
                    booking = Booking(
                        symbol=action.symbol,
                        ex_date=action.ex_date,
                        kind="split",
                        strategy=strategy,
                        account=account,
                        qty_before=share.before.qty,
                        qty_after=share.after.qty,
                        avg_before=share.before.avg_price,
                        avg_after=share.after.avg_price,
                        cash=share.cash,
                        realized=share.realized,
                    )
                    self._store_booking(conn, booking)
                    bookings.append(booking)
            _rebase_pending_intents(conn, action.symbol, action.ratio, at)
            return bookings

    def apply_dividend(
        self, action: CorporateAction, at: datetime, detail: str = ""
    ) -> list[Booking] | None:
        """Book a cash dividend to each strategy holding the symbol now (its ex-date's
        pre-open). None when it was applied before."""
        assert not action.is_split
        with self._tx() as conn:
            if not self._record_action(conn, action, at, detail):
                return None
            bookings = []
            for row in conn.execute(
                "SELECT strategy, account FROM positions WHERE symbol = ? ORDER BY strategy",
                (action.symbol,),
            ).fetchall():
                state = position_book.load_state(conn, row["strategy"], action.symbol)
                if state.qty <= 0:
                    continue
                cash = state.qty * action.rate
                booking = Booking(
                    symbol=action.symbol,
                    ex_date=action.ex_date,
                    kind="cash_dividend",
                    strategy=row["strategy"],
                    account=row["account"],
                    qty_before=state.qty,
                    qty_after=state.qty,
                    avg_before=state.avg_price,
                    avg_after=state.avg_price,
                    cash=cash,
                    realized=cash,
                )
                self._store_booking(conn, booking)
                bookings.append(booking)
            return bookings

    def corporate_bookings(self, strategy: str | None = None) -> list[Booking]:
        """Every booking, oldest ex-date first."""
        sql, args = "SELECT * FROM corporate_action_bookings", ()
        if strategy is not None:
            sql, args = sql + " WHERE strategy = ?", (strategy,)
        return [
            booking_row(r)
            for r in self._conn.execute(sql + " ORDER BY ex_date, symbol, kind, strategy", args)
        ]

    def _record_action(
        self, conn: sqlite3.Connection, action: CorporateAction, at: datetime, detail: str
    ) -> bool:
        cursor = conn.execute(
            "INSERT OR IGNORE INTO corporate_actions (symbol, ex_date, kind, action_type, "
            "new_rate, old_rate, rate, applied_at, detail) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                action.symbol,
                action.ex_date.isoformat(),
                action_kind(action),
                action.type,
                str(action.new_rate),
                str(action.old_rate),
                str(action.rate),
                iso(at),
                detail,
            ),
        )
        return cursor.rowcount == 1

    def _store_booking(self, conn: sqlite3.Connection, booking: Booking) -> None:
        conn.execute(
            "INSERT INTO corporate_action_bookings (symbol, ex_date, kind, strategy, account, "
            "qty_before, qty_after, avg_before, avg_after, cash, realized) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                booking.symbol,
                booking.ex_date.isoformat(),
                booking.kind,
                booking.strategy,
                booking.account,
                str(booking.qty_before),
                str(booking.qty_after),
                str(booking.avg_before),
                str(booking.avg_after),
                str(booking.cash),
                str(booking.realized),
            ),
        )
        if booking.realized:
            position_book.add_daily(
                conn, booking.strategy, booking.ex_date.isoformat(), booking.realized
            )


def _rebase_pending_intents(
    conn: sqlite3.Connection, symbol: str, ratio: Decimal, at: datetime
) -> None:
    """Intents of the symbol not sent yet, on the new scale: share counts multiplied, the
    reference price of an entry's sizing and a stop price divided."""
    for row in conn.execute(
        "SELECT id, qty, sizing, stop_price FROM intents WHERE symbol = ? AND status = 'pending'",
        (symbol,),
    ).fetchall():
        qty = None if row["qty"] is None else int(whole_shares(Decimal(row["qty"]), ratio))
        sizing = row["sizing"]
        if sizing is not None:
            fields = orjson.loads(sizing)
            for key in ("price", "stop"):
                if isinstance(fields.get(key), int | float):
                    fields[key] = float(Decimal(str(fields[key])) / ratio)
            sizing = orjson.dumps(fields).decode()
        stop = row["stop_price"]
        if stop is not None:
            stop = str(Decimal(stop) / ratio)
        conn.execute(
            "UPDATE intents SET qty = ?, sizing = ?, stop_price = ?, updated_at = ? WHERE id = ?",
            (qty, sizing, stop, iso(at), row["id"]),
        )
