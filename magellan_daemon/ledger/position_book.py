"""The ledger's positions, closed trades and daily P&L: stored results of ``apply_fill``.

Every function takes the open SQLite connection (inside the caller's transaction) and only
stores what the pure accounting in ``ledger.accounting`` returns. A position row holds the
running ``PositionState``; each fill row keeps the P&L it realised, so a day's P&L and a
symbol's trades can be rebuilt from the fills alone (which a broker's trade bust needs).
"""

from __future__ import annotations

import sqlite3
from datetime import date, datetime
from decimal import Decimal

from magellan_daemon.ledger.accounting import FillOutcome, PositionState, apply_fill
from magellan_daemon.ledger.rows import Booking, booking_row
from magellan_daemon.ledger.split_accounting import split_state, whole_shares
from magellan_daemon.timefmt import iso, new_york_day, parse_iso, session_date

ZERO = Decimal(0)


def load_state(conn: sqlite3.Connection, strategy: str, symbol: str) -> PositionState:
    """The stored position of ``strategy`` in ``symbol`` (flat when there is none)."""
    row = conn.execute(
        "SELECT * FROM positions WHERE strategy = ? AND symbol = ?", (strategy, symbol)
    ).fetchone()
    if row is None:
        return PositionState()
    return PositionState(
        qty=Decimal(row["qty"]),
        avg_price=Decimal(row["avg_price"]),
        opened_at=None if row["opened_at"] is None else parse_iso(row["opened_at"]),
        realized_open=Decimal(row["realized_open"]),
        closed_qty=Decimal(row["sold_qty"]),
        closed_value=Decimal(row["sold_value"]),
        opened_qty=Decimal(row["bought_qty"]),
    )


def book_fill(
    conn: sqlite3.Connection,
    *,
    strategy: str,
    symbol: str,
    account: str,
    side: str,
    qty: Decimal,
    price: Decimal,
    ts: datetime,
) -> FillOutcome:
    """Apply one execution to the stored position; store the position, the closed trade
    and the day's realised P&L; return the outcome (the caller stores ``realized`` on the
    fill row)."""
    outcome = apply_fill(load_state(conn, strategy, symbol), side, qty, price, ts)
    store_state(conn, strategy, symbol, account, outcome.position)
    if outcome.closed is not None:
        _store_trip(conn, strategy, symbol, outcome)
    if outcome.realized:
        add_daily(conn, strategy, session_date(ts).isoformat(), outcome.realized)
    return outcome


def rebuild_symbol(conn: sqlite3.Connection, strategy: str, symbol: str, account: str) -> None:
    """Recompute the strategy's position, trades and the affected days' P&L in ``symbol``
    from its fills (those not voided by a bust or correction), oldest first, taken through
    the splits the ledger applied (each before the first fill of its ex-date)."""
    fills = conn.execute(
        "SELECT * FROM fills WHERE strategy = ? AND symbol = ? ORDER BY ts, id",
        (strategy, symbol),
    ).fetchall()
    splits = _split_bookings(conn, strategy, symbol)
    days = {session_date(parse_iso(f["ts"])).isoformat() for f in fills}
    conn.execute("DELETE FROM closed_trades WHERE strategy = ? AND symbol = ?", (strategy, symbol))
    state = PositionState()
    for fill in fills:
        while splits and splits[0][0].ex_date <= session_date(parse_iso(fill["ts"])):
            state = _through_split(state, splits.pop(0))
        if fill["voided"]:
            conn.execute("UPDATE fills SET realized = '0' WHERE id = ?", (fill["id"],))
            continue
        outcome = apply_fill(
            state, fill["side"], Decimal(fill["qty"]), Decimal(fill["price"]), parse_iso(fill["ts"])
        )
        conn.execute(
            "UPDATE fills SET realized = ? WHERE id = ?", (str(outcome.realized), fill["id"])
        )
        if outcome.closed is not None:
            _store_trip(conn, strategy, symbol, outcome)
        state = outcome.position
    for booking in splits:
        state = _through_split(state, booking)
    store_state(conn, strategy, symbol, account, state)
    for day in sorted(days):
        # The day's fills by time range (fills_by_strategy_ts), not every fill per day,
        # beside what the day's corporate actions realised.
        start, end = new_york_day(date.fromisoformat(day))
        total = corporate_realized(conn, strategy, day)
        for row in conn.execute(
            "SELECT realized FROM fills WHERE strategy = ? AND voided = 0 AND ts >= ? AND ts < ?",
            (strategy, iso(start), iso(end)),
        ):
            total += Decimal(row["realized"])
        conn.execute(
            "INSERT INTO pnl_daily (strategy, session_date, realized) VALUES (?, ?, ?) "
            "ON CONFLICT(strategy, session_date) DO UPDATE SET realized = excluded.realized",
            (strategy, day, str(total)),
        )


def store_state(
    conn: sqlite3.Connection, strategy: str, symbol: str, account: str, state: PositionState
) -> None:
    conn.execute(
        "INSERT INTO positions (strategy, symbol, account, qty, avg_price, opened_at, "
        "realized_open, sold_qty, sold_value, bought_qty) VALUES (?,?,?,?,?,?,?,?,?,?) "
        "ON CONFLICT(strategy, symbol) DO UPDATE SET qty = excluded.qty, "
        "avg_price = excluded.avg_price, opened_at = excluded.opened_at, "
        "realized_open = excluded.realized_open, sold_qty = excluded.sold_qty, "
        "sold_value = excluded.sold_value, bought_qty = excluded.bought_qty",
        (
            strategy,
            symbol,
            account,
            str(state.qty),
            str(state.avg_price),
            None if state.opened_at is None else iso(state.opened_at),
            str(state.realized_open),
            str(state.closed_qty),
            str(state.closed_value),
            str(state.opened_qty),
        ),
    )


def _store_trip(conn: sqlite3.Connection, strategy: str, symbol: str, outcome: FillOutcome) -> None:
    trip = outcome.closed
    assert trip is not None
    conn.execute(
        "INSERT INTO closed_trades (strategy, symbol, qty, entry_price, exit_price, pnl, "
        "entry_time, exit_time, session_date) VALUES (?,?,?,?,?,?,?,?,?)",
        (
            strategy,
            symbol,
            str(trip.qty),
            str(trip.entry_price),
            str(trip.exit_price),
            str(trip.pnl),
            iso(trip.entry_time),
            iso(trip.exit_time),
            session_date(trip.exit_time).isoformat(),
        ),
    )


def add_daily(conn: sqlite3.Connection, strategy: str, day: str, realized: Decimal) -> None:
    current = conn.execute(
        "SELECT realized FROM pnl_daily WHERE strategy = ? AND session_date = ?",
        (strategy, day),
    ).fetchone()
    total = (Decimal(current["realized"]) if current else ZERO) + realized
    conn.execute(
        "INSERT INTO pnl_daily (strategy, session_date, realized) VALUES (?, ?, ?) "
        "ON CONFLICT(strategy, session_date) DO UPDATE SET realized = excluded.realized",
        (strategy, day, str(total)),
    )


def corporate_realized(conn: sqlite3.Connection, strategy: str, day: str) -> Decimal:
    """P&L the corporate actions of New York date ``day`` realised for the strategy (cash in
    lieu of a split, dividends): part of that day's P&L beside its fills'."""
    total = ZERO
    for row in conn.execute(
        "SELECT realized FROM corporate_action_bookings WHERE strategy = ? AND ex_date = ?",
        (strategy, day),
    ):
        total += Decimal(row["realized"])
    return total


def _split_bookings(
    conn: sqlite3.Connection, strategy: str, symbol: str
) -> list[tuple[Booking, Decimal]]:
    """The strategy's split bookings in ``symbol`` with each split's ratio, by ex-date."""
    return [
        (booking_row(r), Decimal(r["new_rate"]) / Decimal(r["old_rate"]))
        for r in conn.execute(
            "SELECT b.*, a.new_rate, a.old_rate FROM corporate_action_bookings b "
            "JOIN corporate_actions a USING (symbol, ex_date, kind) "
            "WHERE b.strategy = ? AND b.symbol = ? AND b.kind = 'split' ORDER BY b.ex_date",
            (strategy, symbol),
        )
    ]


def _through_split(state: PositionState, split: tuple[Booking, Decimal]) -> PositionState:
    """The rebuilt position taken through a split as the ledger booked it (its fills before
    it may have been restated since: the ratio then gives the count)."""
    booking, ratio = split
    if state.qty <= 0:
        return state
    if state.qty == booking.qty_before:
        return split_state(state, ratio, booking.qty_after, booking.cash, booking.realized)
    return split_state(state, ratio, whole_shares(state.qty, ratio), ZERO, ZERO)
