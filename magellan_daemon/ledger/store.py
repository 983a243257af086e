"""The ledger: every signal, intent, order, state change, fill, position and halt.

SQLite in WAL mode, one connection, used from the event loop thread only (each write is a
small transaction; a ``kill -9`` after a commit loses nothing). Every broker event, from the
stream or from reconciliation, goes through ``apply_event``: the one door that changes an
order, its fills and the strategy's position.

Fills are deduplicated twice: by the broker's execution id when there is one, and by
``(broker_order_id, cumulative filled qty)``, so the same execution seen on the stream and in
REST activities (whose ids differ at Alpaca) is stored once. The increment is always computed
from the cumulative quantity, never taken from the event (Alpaca's ``qty`` is per-execution,
but a missed event would otherwise lose shares).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from magellan_daemon.domain import BrokerEvent, ClientOrderId, Discrepancy
from magellan_daemon.ledger import position_book
from magellan_daemon.ledger.order_fsm import OPEN, OrderEvent, Verdict, transition
from magellan_daemon.ledger.schema import SCHEMA, migrate
from magellan_daemon.timefmt import iso, parse_iso, session_date
from strategies.model import Evaluation, Intent

log = logging.getLogger(__name__)
ZERO = Decimal(0)
RESTATEMENTS = frozenset({OrderEvent.TRADE_BUST, OrderEvent.TRADE_CORRECT})


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderRow:
    """An order as the ledger knows it."""

    client_order_id: ClientOrderId
    account: str
    strategy: str
    symbol: str
    side: str
    order_type: str
    qty: Decimal
    stop_price: Decimal | None
    time_in_force: str
    leg: str
    signal_time: datetime
    intent_id: int | None
    replaces: ClientOrderId | None
    status: str
    filled_qty: Decimal
    filled_avg_price: Decimal | None
    broker_order_id: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def is_open(self) -> bool:
        """Still able to fill (or not yet known not to exist)."""
        return self.status in OPEN


@dataclass(frozen=True, slots=True, kw_only=True)
class IntentRow:
    """A persisted intent and its execution status."""

    id: int
    intent: Intent
    status: str
    status_reason: str
    not_before: datetime | None
    expires_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AppliedFill:
    """A fill increment the ledger accepted (not a duplicate)."""

    order: OrderRow
    qty: Decimal
    price: Decimal
    ts: datetime
    position_after: Decimal  # the strategy's position in the symbol after this fill


@dataclass(frozen=True, slots=True, kw_only=True)
class Applied:
    """What ``apply_event`` did: the order after it, the fill increment if any, and how the
    state machine judged the event (``verdict``, with ``reason`` when not applied)."""

    order: OrderRow | None
    previous_status: str | None
    fill: AppliedFill | None
    duplicate: bool = False
    verdict: Verdict = "repeat"
    reason: str = ""
    restated: bool = False  # a trade bust / correction rewrote the order's fills

    @property
    def status_changed(self) -> bool:
        """True when the event moved the order to another status."""
        return self.order is not None and self.order.status != self.previous_status

    @property
    def invalid(self) -> str | None:
        """Why the event contradicts the order's state (logged at ERROR), else None."""
        return self.reason if self.verdict == "invalid" else None


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionRow:
    """One strategy's own position in one symbol."""

    strategy: str
    symbol: str
    account: str
    qty: Decimal
    avg_price: Decimal
    opened_at: datetime | None


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


class Ledger:
    """The SQLite ledger. Construct with ``Ledger.open(path)``."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path

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

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # -- meta ----------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        """A small persisted value (e.g. the last stream event time)."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row["value"]

    def set_meta(self, key: str, value: str) -> None:
        """Persist a small value."""
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # -- signals -------------------------------------------------------------------------

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
        sizing = None
        if intent.sizing is not None:
            sizing = orjson.dumps(
                {"kind": type(intent.sizing).__name__, **_fields(intent.sizing)}
            ).decode()
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
        return _intent_row(row)

    def intents(self, status: str | None = None) -> list[IntentRow]:
        """Intents, optionally only those in ``status``, oldest first."""
        if status is None:
            rows = self._conn.execute("SELECT * FROM intents ORDER BY id")
        else:
            rows = self._conn.execute(
                "SELECT * FROM intents WHERE status = ? ORDER BY id", (status,)
            )
        return [_intent_row(r) for r in rows]

    def intent(self, intent_id: int) -> IntentRow | None:
        """One intent by id (None if there is no such intent)."""
        row = self._conn.execute("SELECT * FROM intents WHERE id = ?", (intent_id,)).fetchone()
        return None if row is None else _intent_row(row)

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
        return None if row is None else _order_row(row)

    def order_by_broker_id(self, broker_order_id: str) -> OrderRow | None:
        """The order the broker knows as ``broker_order_id``, or None."""
        row = self._conn.execute(
            "SELECT * FROM orders WHERE broker_order_id = ?", (broker_order_id,)
        ).fetchone()
        return None if row is None else _order_row(row)

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
            clauses.append(f"status IN ({','.join('?' * len(OPEN))})")
            args.extend(sorted(OPEN))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._conn.execute(f"SELECT * FROM orders {where} ORDER BY rowid", args)
        return [_order_row(r) for r in rows]

    def orders_of_intent(self, intent_id: int) -> list[OrderRow]:
        """The orders written for one intent."""
        rows = self._conn.execute("SELECT * FROM orders WHERE intent_id = ?", (intent_id,))
        return [_order_row(r) for r in rows]

    def last_fill_time(self) -> str | None:
        """When the latest fill happened (ISO text), None before the first."""
        row = self._conn.execute("SELECT MAX(ts) AS ts FROM fills WHERE voided = 0").fetchone()
        return None if row is None else row["ts"]

    def count_orders_like(self, prefix: str) -> int:
        """How many orders have a client_order_id starting with ``prefix``."""
        row = self._conn.execute(
            "SELECT COUNT(*) AS n FROM orders WHERE client_order_id LIKE ? ESCAPE '\\'",
            (prefix.replace("%", "\\%").replace("_", "\\_") + "%",),
        ).fetchone()
        return int(row["n"])

    def entries_on(self, strategy: str, day: date) -> int:
        """Entry orders the strategy got accepted on New York date ``day``."""
        rows = self._conn.execute(
            "SELECT created_at FROM orders WHERE strategy = ? AND leg = 'entry' "
            "AND status NOT IN ('rejected', 'not_found')",
            (strategy,),
        )
        return sum(1 for r in rows if session_date(parse_iso(r["created_at"])) == day)

    # -- the one door for broker news ----------------------------------------------------

    def apply_event(self, event: BrokerEvent) -> Applied:
        """Apply one broker event exactly once: status, fill increment, position, P&L."""
        order = self.order(event.client_order_id)
        if order is None and event.broker_order_id:
            order = self.order_by_broker_id(event.broker_order_id)
        if order is None:
            return Applied(order=None, previous_status=None, fill=None)
        if (
            event.execution_id
            and self._conn.execute(
                "SELECT 1 FROM fills WHERE broker_execution_id = ?", (event.execution_id,)
            ).fetchone()
        ):
            return Applied(order=order, previous_status=order.status, fill=None, duplicate=True)
        move = transition(order.status, event.event, event.order_status)
        fill: AppliedFill | None = None
        restated = False
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
                price = _execution_price(event, increment, filled_qty, avg)
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
                    "revision) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
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
            if status != order.status or fill is not None or invalid or restated:
                detail = invalid or (f"fill {fill.qty} @ {fill.price}" if fill else "")
                if restated:
                    detail = f"fills restated: {filled_qty} @ {avg}"
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
        )

    @staticmethod
    def _revision(conn: sqlite3.Connection, broker_order_id: str) -> int:
        row = conn.execute(
            "SELECT MAX(revision) AS r FROM fills WHERE broker_order_id = ?", (broker_order_id,)
        ).fetchone()
        return 0 if row is None or row["r"] is None else int(row["r"])

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
        rows = [dict(r) for r in self._conn.execute(sql + " ORDER BY ts, id", args)]
        if day is not None:
            rows = [r for r in rows if session_date(parse_iso(r["ts"])) == day]
        return rows

    # -- halts, strategy state, discrepancies --------------------------------------------

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
        """The last snapshot saved for ``strategy``."""
        row = self._conn.execute(
            "SELECT state FROM strategy_state WHERE strategy = ?", (strategy,)
        ).fetchone()
        return None if row is None else orjson.loads(row["state"])

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

    def execute_read(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """A read-only query for the operator's CLI and the tests."""
        return [dict(r) for r in self._conn.execute(sql, args)]


def _fields(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


def _execution_price(
    event: BrokerEvent, increment: Decimal, prev_qty: Decimal, prev_avg: Decimal | None
) -> Decimal:
    """This increment's price: the event's own when it describes exactly this execution,
    otherwise derived from the change of the order's average price."""
    if event.price is not None and (event.qty is None or event.qty == increment):
        return event.price
    if event.filled_avg_price is not None and event.cum_filled_qty:
        total = event.filled_avg_price * event.cum_filled_qty - (prev_avg or ZERO) * prev_qty
        return total / increment
    if event.price is not None:
        return event.price
    raise ValueError(f"fill on {event.client_order_id} carries no price")


def _order_row(r: sqlite3.Row) -> OrderRow:
    return OrderRow(
        client_order_id=ClientOrderId(r["client_order_id"]),
        account=r["account"],
        strategy=r["strategy"],
        symbol=r["symbol"],
        side=r["side"],
        order_type=r["order_type"],
        qty=Decimal(r["qty"]),
        stop_price=_dec(r["stop_price"]),
        time_in_force=r["time_in_force"],
        leg=r["leg"],
        signal_time=parse_iso(r["signal_time"]),
        intent_id=r["intent_id"],
        replaces=None if r["replaces"] is None else ClientOrderId(r["replaces"]),
        status=r["status"],
        filled_qty=Decimal(r["filled_qty"]),
        filled_avg_price=_dec(r["filled_avg_price"]),
        broker_order_id=r["broker_order_id"],
        created_at=parse_iso(r["created_at"]),
        updated_at=parse_iso(r["updated_at"]),
    )


def _intent_row(r: sqlite3.Row) -> IntentRow:
    from strategies.model import FixedDollars, RiskBased

    sizing = None
    if r["sizing"]:
        data = orjson.loads(r["sizing"])
        kind = data.pop("kind")
        sizing = FixedDollars(**data) if kind == "FixedDollars" else RiskBased(**data)
    intent = Intent(
        strategy=r["strategy"],
        symbol=r["symbol"],
        action=r["action"],
        leg=r["leg"],
        signal_time=parse_iso(r["signal_time"]),
        reason=r["reason"],
        qty=r["qty"],
        sizing=sizing,
        stop_price=None if r["stop_price"] is None else float(r["stop_price"]),
        execute=r["execute"],
    )
    return IntentRow(
        id=r["id"],
        intent=intent,
        status=r["status"],
        status_reason=r["status_reason"],
        not_before=None if r["not_before"] is None else parse_iso(r["not_before"]),
        expires_at=None if r["expires_at"] is None else parse_iso(r["expires_at"]),
    )
