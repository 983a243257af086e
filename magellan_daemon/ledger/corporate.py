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
symbol at the start of the ex-date (00:00 New York, when the broker pays it), so the daily
P&L and the daily loss limit see it. It is usually booked at the ex-date's pre-open, when
the positions are those holders; when it is booked later (the daemon was down over the
ex-date) the holders are taken back from the positions now through the fills since and the
splits booked since (``holders_at``), and when the ledger cannot tell them
(``HoldersUnknown``) nothing is booked rather than a guess.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import orjson

from magellan_core.corporate_actions import CorporateAction
from magellan_daemon.ledger import position_book
from magellan_daemon.ledger.accounting import PositionState
from magellan_daemon.ledger.connection import LedgerConnection
from magellan_daemon.ledger.rows import Booking, booking_row
from magellan_daemon.ledger.split_accounting import split_positions, whole_shares
from magellan_daemon.timefmt import iso, new_york_day, parse_iso, session_date

ZERO = Decimal(0)


def action_kind(action: CorporateAction) -> str:
    """The ledger's key for the action's kind: one split and one dividend per ex-date."""
    return "split" if action.is_split else "cash_dividend"


class HoldersUnknown(Exception):
    """The ledger cannot tell how many shares a strategy held at an instant (says why)."""


@dataclass(frozen=True)
class Holding:
    """One strategy's shares of a symbol at an instant, and its position now."""

    strategy: str
    account: str
    qty: Decimal  # held at the instant
    now: PositionState


@dataclass(frozen=True)
class _FillSince:
    side: str
    qty: Decimal
    ts: datetime


@dataclass(frozen=True)
class _SplitSince:
    ex_date: date
    start: datetime  # 00:00 New York of the ex-date: fills from then on are on its scale
    qty_before: Decimal  # what the strategy's booking says (0 without one: it was flat)
    qty_after: Decimal


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
        """Book a cash dividend to each strategy holding the symbol at the start of its
        ex-date (counted from the fills when booked later). None when it was applied
        before; ``HoldersUnknown`` (nothing recorded) when the ledger cannot tell."""
        assert not action.is_split
        ex_start, _ = new_york_day(action.ex_date)
        with self._tx() as conn:
            if not self._record_action(conn, action, at, detail):
                return None
            bookings = []
            for holding in holders_at(conn, action.symbol, ex_start):
                if holding.qty <= 0:
                    continue
                cash = holding.qty * action.rate
                booking = Booking(
                    symbol=action.symbol,
                    ex_date=action.ex_date,
                    kind="cash_dividend",
                    strategy=holding.strategy,
                    account=holding.account,
                    qty_before=holding.qty,
                    qty_after=holding.qty,
                    # a dividend leaves the average alone: the position's now, for the record
                    avg_before=holding.now.avg_price,
                    avg_after=holding.now.avg_price,
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


def holders_at(conn: sqlite3.Connection, symbol: str, at: datetime) -> list[Holding]:
    """Each strategy's shares of ``symbol`` at the instant ``at``, by strategy: its position
    now, less what it bought and plus what it sold since (fills at or after ``at`` not
    voided), taken back through each split booked since (its ex-date after ``at``'s New York
    date). Raises ``HoldersUnknown`` when the ledger does not add up (see ``_held_at``)."""
    since = iso(at)
    out = []
    for row in conn.execute(
        "SELECT strategy, account FROM positions WHERE symbol = ? ORDER BY strategy", (symbol,)
    ).fetchall():
        strategy = row["strategy"]
        fills = [
            _FillSince(f["side"], Decimal(f["qty"]), parse_iso(f["ts"]))
            for f in conn.execute(
                "SELECT side, qty, ts FROM fills WHERE strategy = ? AND symbol = ? "
                "AND voided = 0 AND ts >= ? ORDER BY ts DESC, id DESC",
                (strategy, symbol, since),
            )
        ]
        splits = [
            _SplitSince(
                ex_date=date.fromisoformat(s["ex_date"]),
                start=new_york_day(date.fromisoformat(s["ex_date"]))[0],
                qty_before=Decimal(s["qty_before"] or 0),
                qty_after=Decimal(s["qty_after"] or 0),
            )
            for s in conn.execute(
                "SELECT a.ex_date, b.qty_before, b.qty_after FROM corporate_actions a "
                "LEFT JOIN corporate_action_bookings b ON b.symbol = a.symbol "
                "AND b.ex_date = a.ex_date AND b.kind = a.kind AND b.strategy = ? "
                "WHERE a.symbol = ? AND a.kind = 'split' AND a.ex_date > ? "
                "ORDER BY a.ex_date DESC",
                (strategy, symbol, session_date(at).isoformat()),
            )
        ]
        now = position_book.load_state(conn, strategy, symbol)
        try:
            qty = _held_at(now.qty, fills, splits)
        except HoldersUnknown as exc:
            raise HoldersUnknown(f"{strategy} in {symbol} at {iso(at)}: {exc}") from None
        out.append(Holding(strategy=strategy, account=row["account"], qty=qty, now=now))
    return out


def _held_at(qty: Decimal, fills: Sequence[_FillSince], splits: Sequence[_SplitSince]) -> Decimal:
    """The shares held before ``fills`` (newest first) given ``qty`` held after them,
    through ``splits`` (newest first). A split is taken back through its booking, exact
    where a ratio would round: refused when the position just after it is no longer the
    one it booked (a fill before it restated since), as a count below zero is."""
    pending = list(fills)
    for split in splits:
        while pending and pending[0].ts >= split.start:
            qty = _undo(qty, pending.pop(0))
        if qty != split.qty_after:
            raise HoldersUnknown(
                f"{qty} shares just after the split of {split.ex_date}, which booked "
                f"{split.qty_after}: a fill before it was restated since"
            )
        qty = split.qty_before
    for fill in pending:
        qty = _undo(qty, fill)
    if qty < 0:
        raise HoldersUnknown(f"{qty} shares before the fills since: a fill is missing")
    return qty


def _undo(qty: Decimal, fill: _FillSince) -> Decimal:
    return qty - fill.qty if fill.side == "buy" else qty + fill.qty


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
