"""What the status page reads from the ledger, through its own read-only SQLite connection,
in a worker thread (never on the daemon's event loop, never through the daemon's writer
connection)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from magellan_daemon.domain import OPEN
from magellan_daemon.timefmt import NEW_YORK, iso

SIGNALS_SHOWN = 20
OPEN_STATUSES = sorted(str(s) for s in OPEN)


@contextmanager
def read_only(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection (WAL: it never blocks the daemon's writes)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2.0)
    conn.row_factory = sqlite3.Row
    try:
        yield conn
    finally:
        conn.close()


def positions(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Open positions with the stop working for each (the lowest open sell stop)."""
    stops: dict[tuple[str, str], str] = {}
    marks = ",".join("?" * len(OPEN))
    for r in conn.execute(
        "SELECT strategy, symbol, stop_price FROM orders WHERE side = 'sell' AND "
        f"stop_price IS NOT NULL AND status IN ({marks}) ORDER BY CAST(stop_price AS REAL) DESC",
        OPEN_STATUSES,
    ):
        stops[(r["strategy"], r["symbol"])] = r["stop_price"]
    return [
        {
            "strategy": r["strategy"],
            "symbol": r["symbol"],
            "qty": r["qty"],
            "avg_entry_price": r["avg_price"],
            "opened_at": r["opened_at"],
            "stop_price": stops.get((r["strategy"], r["symbol"])),
        }
        for r in conn.execute(
            "SELECT * FROM positions WHERE CAST(qty AS REAL) != 0 ORDER BY strategy, symbol"
        )
    ]


def open_orders(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Orders still working (or not yet known to have ended), oldest first."""
    marks = ",".join("?" * len(OPEN))
    return [
        {
            "strategy": r["strategy"],
            "symbol": r["symbol"],
            "side": r["side"],
            "type": r["order_type"],
            "qty": r["qty"],
            "filled_qty": r["filled_qty"],
            "stop_price": r["stop_price"],
            "leg": r["leg"],
            "status": r["status"],
            "client_order_id": r["client_order_id"],
            "created_at": r["created_at"],
        }
        for r in conn.execute(
            f"SELECT * FROM orders WHERE status IN ({marks}) ORDER BY rowid", OPEN_STATUSES
        )
    ]


def pnl_on(conn: sqlite3.Connection, day: date) -> dict[str, str]:
    """Realised P&L per strategy on New York date ``day``."""
    return {
        r["strategy"]: r["realized"]
        for r in conn.execute(
            "SELECT strategy, realized FROM pnl_daily WHERE session_date = ?", (day.isoformat(),)
        )
    }


def halts(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Strategies halted (by the operator or an emergency stop)."""
    return [dict(r) for r in conn.execute("SELECT * FROM halts ORDER BY strategy")]


def signals(conn: sqlite3.Connection, limit: int = SIGNALS_SHOWN) -> list[dict[str, Any]]:
    """The latest signals (intents) with their reasons and what became of them."""
    return [
        dict(r)
        for r in conn.execute(
            "SELECT strategy, symbol, action, leg, signal_time, reason, status, status_reason "
            "FROM intents ORDER BY id DESC LIMIT ?",
            (limit,),
        )
    ]


def fills_until(conn: sqlite3.Connection, until: datetime) -> list[dict[str, Any]]:
    """Every fill (not voided) up to ``until``, oldest first."""
    return [
        dict(r)
        for r in conn.execute(
            "SELECT strategy, symbol, side, qty, price, ts, realized FROM fills "
            "WHERE voided = 0 AND ts <= ? ORDER BY ts, id",
            (iso(until),),
        )
    ]


def fills_after(conn: sqlite3.Connection, after_id: int) -> list[dict[str, Any]]:
    """The fills (not voided) stored after the one with id ``after_id``, in id order (read
    through the primary key: the new ones only, however old the ledger)."""
    return [
        dict(r)
        for r in conn.execute(
            "SELECT id, strategy, symbol, side, qty, price, ts, realized FROM fills "
            "WHERE id > ? AND voided = 0 ORDER BY id",
            (after_id,),
        )
    ]


def fills_mark(conn: sqlite3.Connection) -> tuple[int | None, int]:
    """(how many times stored fill rows were changed, the highest fill id): what tells a
    reader that kept a replay of the fills up to an id whether it can go on from there. The
    count is None in a ledger without it (not yet opened by this version)."""
    top = conn.execute("SELECT MAX(id) FROM fills").fetchone()[0] or 0
    try:
        row = conn.execute("SELECT count FROM fills_rewrites WHERE id = 1").fetchone()
    except sqlite3.OperationalError:
        return None, top
    return (None if row is None else int(row[0])), top


def trades_on(conn: sqlite3.Connection, day: date) -> dict[str, Any]:
    """The fills and round trips of New York date ``day``."""
    start = datetime.combine(day, time(0), NEW_YORK)
    end = start + timedelta(days=1)
    fills = [
        dict(r)
        for r in conn.execute(
            "SELECT strategy, symbol, side, qty, price, ts, realized, client_order_id "
            "FROM fills WHERE voided = 0 AND ts >= ? AND ts < ? ORDER BY ts, id",
            (iso(start), iso(end)),
        )
    ]
    closed = [
        dict(r)
        for r in conn.execute(
            "SELECT strategy, symbol, qty, entry_price, exit_price, pnl, entry_time, exit_time "
            "FROM closed_trades WHERE session_date = ? ORDER BY id",
            (day.isoformat(),),
        )
    ]
    return {"date": day.isoformat(), "fills": fills, "closed_trades": closed}
